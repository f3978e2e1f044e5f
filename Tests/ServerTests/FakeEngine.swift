import Dispatch
import Foundation
import Synchronization
import TestSupport
import Testing

@testable import Server
@testable import ShmEngine

/// A one-shot signal between a job thread and a test; the test's wait leaves the cooperative pool.
final class TestSignal: Sendable {
    private let semaphore = DispatchSemaphore(value: 0)

    func signal() { semaphore.signal() }

    /// True when signalled within `seconds`.
    func wait(seconds: Double = 10) async -> Bool {
        let semaphore = self.semaphore
        return await blocking { semaphore.wait(timeout: .now() + seconds) == .success }
    }

    /// For a job thread: blocks until signalled or `token` is cancelled (checked every millisecond, as the
    /// engine checks between chunks). True when signalled.
    func wait(unlessCancelled token: CancellationToken) -> Bool {
        while !token.isCancelled {
            if semaphore.wait(timeout: .now() + .milliseconds(1)) == .success { return true }
        }
        return false
    }
}

/// An engine without shared memory: plans of one segment, runs that wait for the test to release them,
/// outcomes and recovery evidence chosen by the test, every call counted.
final class FakeEngine: JobEngine {
    struct Calls: Sendable, Equatable {
        var planBackup = 0
        var backup = 0
        var planRestore = 0
        var restore = 0
        var recoverRestore: [String] = []
    }

    private struct Settings: Sendable {
        var calls = Calls()
        var runFailure: EngineError?
        var planFailure: EngineError?
        var holdRuns = false
        var evidence: [String: RestoreEvidence] = [:]
        var planHook: (@Sendable () -> Void)?
    }

    private let settings = Mutex(Settings())
    /// Signalled each time a run starts.
    let runStarted = TestSignal()
    /// Releases one held run.
    let release = TestSignal()

    var calls: Calls { settings.withLock { $0.calls } }

    /// Runs wait for `release` (or cancellation) before they end.
    func holdRuns(_ hold: Bool = true) { settings.withLock { $0.holdRuns = hold } }
    func failRuns(_ error: EngineError?) { settings.withLock { $0.runFailure = error } }
    func failPlans(_ error: EngineError?) { settings.withLock { $0.planFailure = error } }
    /// What `recoverRestore` answers for a job (`.nothingCreated` for the others).
    func answerRecovery(_ evidence: RestoreEvidence, for job: String) {
        settings.withLock { $0.evidence[job] = evidence }
    }
    /// Called inside every plan, before it returns.
    func onPlan(_ hook: (@Sendable () -> Void)?) { settings.withLock { $0.planHook = hook } }

    static func plan(instance: Int, directory: String) -> (PlannedNamespace, [PlannedSegment]) {
        let key = SegmentKey(kind: .base, instance: instance, nsid: 1)
        let segment = PlannedSegment(
            key: key, kind: .base, namespace: "x", size: 4096, file: "\(key.hex.dropFirst(2)).dat", compressed: false,
            uid: 0, gid: 0, mode: 0o600)
        return (PlannedNamespace(name: "x", nsid: 1), [segment])
    }

    func planBackup(_ request: BackupRequest) throws(EngineError) -> BackupPlan {
        let (failure, hook) = settings.withLock { s in
            s.calls.planBackup += 1
            return (s.planFailure, s.planHook)
        }
        hook?()
        if let failure { throw failure }
        let (namespace, segments) = Self.plan(instance: request.instance, directory: request.directory)
        return BackupPlan(
            instance: request.instance, directory: request.directory, namespaces: [namespace], segments: segments,
            totalBytes: 4096)
    }

    func planRestore(_ request: RestoreRequest) throws(EngineError) -> RestorePlan {
        let (failure, hook) = settings.withLock { s in
            s.calls.planRestore += 1
            return (s.planFailure, s.planHook)
        }
        hook?()
        if let failure { throw failure }
        let (namespace, segments) = Self.plan(instance: request.instance, directory: request.directory)
        return RestorePlan(
            instance: request.instance, directory: request.directory, namespaces: [namespace], segments: segments,
            totalBytes: 4096)
    }

    func backup(
        _ plan: BackupPlan, request: BackupRequest, progress: JobProgress, cancellation: CancellationToken
    ) throws(EngineError) {
        settings.withLock { $0.calls.backup += 1 }
        // Like the engine: the directory first, the manifest last.
        try? FileManager.default.createDirectory(atPath: request.directory, withIntermediateDirectories: false)
        try run(progress: progress, cancellation: cancellation)
        try FakeEngine.writeManifest(directory: request.directory, instance: request.instance)
    }

    func restore(
        _ plan: RestorePlan, request: RestoreRequest, progress: JobProgress, cancellation: CancellationToken
    ) throws(EngineError) {
        settings.withLock { $0.calls.restore += 1 }
        try run(progress: progress, cancellation: cancellation)
    }

    private func run(progress: JobProgress, cancellation: CancellationToken) throws(EngineError) {
        let (hold, failure) = settings.withLock { ($0.holdRuns, $0.runFailure) }
        progress.start([(SegmentKey(kind: .base, instance: 14, nsid: 1), 4096)])
        runStarted.signal()
        if hold, !release.wait(unlessCancelled: cancellation) {
            throw EngineError(.canceled, "canceled")
        }
        if let failure { throw failure }
        progress.add(bytes: 4096)
        progress.set(0, .done)
    }

    func backupEvidence(directory: String) -> BackupEvidence {
        LiveEngine().backupEvidence(directory: directory)
    }

    func recoverRestore(_ record: JobRecord) -> RestoreEvidence {
        settings.withLock { s in
            s.calls.recoverRestore.append(record.id)
            return s.evidence[record.id] ?? .nothingCreated
        }
    }

    /// A manifest holding namespace "x", as a finished backup has.
    static func writeManifest(directory: String, instance: Int) throws(EngineError) {
        let manifest = BackupManifest(
            formatVersion: BackupManifest.currentFormatVersion, toolVersion: "test", host: "test", instance: instance,
            created: "2026-01-01T00:00:00Z", namespaces: [PlannedNamespace(name: "x", nsid: 1)], segments: [])
        let path = directory + "/" + BackupManifest.fileName
        guard FileManager.default.createFile(atPath: path, contents: Data(manifest.encoded())) else {
            throw EngineError(.io, "cannot write \(path)")
        }
    }
}
