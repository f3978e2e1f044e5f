import Foundation
import Logging
import ShmEngine
import Synchronization
import TestSupport
import Testing

@testable import Server

/// A job queue on a fake engine and a temporary state dir, instances 14 and 15 (no segments touched).
final class QueueHarness: Sendable {
    let directory: TemporaryDirectory
    let engine = FakeEngine()
    let config: Config
    let queue: JobQueue
    /// Signalled each time a job's thread is done (record written, instance freed, records pruned).
    let ended = TestSignal()
    private let deferred = DeferredStarts()

    /// `deferStart`: accepted jobs wait for `startDeferred()`, so a test can act between acceptance and start.
    /// `retryDelay`: the runner's first wait before writing an unsaved final record again.
    init(deferStart: Bool = false, retryDelay: Duration = .seconds(3600)) throws {
        let root = try TemporaryDirectory()
        directory = root
        var settings = ServiceSettings()
        settings.stateDir = root.path + "/state"
        config = Config(
            file: "", service: settings,
            instances: [14, 15].map {
                InstanceConfig(instance: $0, backupPath: root.path + "/b\($0)", namespaces: ["x", "y"])
            }, authToken: nil)
        for instance in config.instances {
            try FileManager.default.createDirectory(atPath: instance.backupPath, withIntermediateDirectories: true)
        }
        let deferred = self.deferred
        let ended = self.ended
        queue = JobQueue(
            config: config, metrics: Metrics(version: "t"), logger: Logger(label: "t"), engine: engine,
            launch: { name, body in
                let run: @Sendable () -> Void = {
                    body()
                    ended.signal()
                }
                if deferStart { deferred.runs.withLock { $0.append(run) } } else { JobRunner.thread(name, run) }
            }, retryDelay: retryDelay)
        try queue.recover()
    }

    /// Starts the jobs held back by `deferStart`.
    func startDeferred() {
        let runs = deferred.runs.withLock { list in
            defer { list = [] }
            return list
        }
        for run in runs { JobRunner.thread("deferred", run) }
    }

    var jobsDirectory: String { queue.store.directory }

    /// Makes every write of a job record fail (ENOTDIR, even for root): the jobs directory becomes a file.
    func breakStateDir() throws {
        try FileManager.default.moveItem(atPath: jobsDirectory, toPath: jobsDirectory + ".saved")
        #expect(FileManager.default.createFile(atPath: jobsDirectory, contents: Data()))
    }

    func repairStateDir() throws {
        try FileManager.default.removeItem(atPath: jobsDirectory)
        try FileManager.default.moveItem(atPath: jobsDirectory + ".saved", toPath: jobsDirectory)
    }

    /// The record on disk (not `loadAll`, which removes temporary files a running job may be writing).
    func onDisk(_ id: String) -> JobRecord? {
        guard let data = FileManager.default.contents(atPath: queue.store.path(of: id)) else { return nil }
        return try? JSONDecoder().decode(JobRecord.self, from: data)
    }

    /// The record as left in the broken jobs directory.
    func savedOnDisk(_ id: String) -> JobRecord? {
        guard let data = FileManager.default.contents(atPath: jobsDirectory + ".saved/\(id).json") else { return nil }
        return try? JSONDecoder().decode(JobRecord.self, from: data)
    }

    /// A restore of backup "b1" whose final record cannot be written: it ran to the end, the disk says running.
    func restoreWithUnsavedFinalRecord() async throws -> String {
        try makeBackup("b1")
        engine.holdRuns()
        let id = try accepted(try await restore(backup: "b1"))
        #expect(await engine.runStarted.wait())
        try breakStateDir()
        engine.release.signal()
        #expect(await ended.wait())
        #expect(queue.job(id)?.state == .success)
        #expect(savedOnDisk(id)?.state == .running)
        #expect(queue.unsavedJobs == [id])
        return id
    }

    /// A complete backup `id` of instance 14 (manifest holding "x").
    func makeBackup(_ id: String, instance: Int = 14) throws {
        let path = directory.path + "/b\(instance)/" + id
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: false)
        try FakeEngine.writeManifest(directory: path, instance: instance)
    }

    func backup(_ instance: Int = 14, dryRun: Bool = false) async throws(APIError) -> Submission {
        try await queue.submitBackup(
            BackupSubmission(instance: instance, dryRun: dryRun, options: BackupOptions()))
    }

    func restore(_ instance: Int = 14, backup: String? = nil) async throws(APIError) -> Submission {
        try await queue.submitRestore(
            RestoreSubmission(instance: instance, namespaces: ["x"], options: RestoreOptions(backup: backup)))
    }

    /// The accepted job's id; records an issue otherwise.
    func accepted(_ submission: Submission) throws -> String {
        guard case .accepted(let record) = submission else {
            Issue.record("not accepted: \(submission)")
            throw APIError(.internalError, "not accepted")
        }
        #expect(record.state == .queued)
        #expect(onDisk(record.id)?.state == .queued || onDisk(record.id)?.state == .running)
        return record.id
    }
}

/// Job starts held back by a test.
final class DeferredStarts: Sendable {
    let runs = Mutex<[@Sendable () -> Void]>([])
}

/// The API error `body` throws (nil when it throws none).
func apiError(_ body: () async throws(APIError) -> Submission) async -> APIError? {
    do {
        _ = try await body()
        return nil
    } catch {
        return error
    }
}

@Suite struct JobQueueTests {
    @Test func oneJobPerInstanceUntilItEnds() async throws {
        let h = try QueueHarness()
        h.engine.holdRuns()
        let first = try h.accepted(try await h.backup(14))
        #expect(await h.engine.runStarted.wait())
        let busy = await apiError { () throws(APIError) in try await h.backup(14) }
        #expect(busy?.code == .instanceBusy)
        #expect(busy?.details["job"] == first)
        let busyRestore = await apiError { () throws(APIError) in try await h.restore(14) }
        #expect(busyRestore?.code == .instanceBusy)
        // Refused before planning: nothing was planned for them.
        #expect(h.engine.calls.planBackup == 1 && h.engine.calls.planRestore == 0)
        // Another instance is free.
        let other = try h.accepted(try await h.backup(15))
        #expect(await h.engine.runStarted.wait())
        h.engine.release.signal()
        h.engine.release.signal()
        #expect(await h.ended.wait())
        #expect(await h.ended.wait())
        #expect(h.queue.job(first)?.state == .success)
        #expect(h.queue.job(other)?.state == .success)
        #expect(h.onDisk(first)?.state == .success)
        #expect(h.queue.activeCount == 0)
        // Free again once the job ended.
        h.engine.holdRuns(false)
        _ = try h.accepted(try await h.backup(14))
        #expect(await h.ended.wait())
    }

    @Test func aBackupInUseIsRefusedBothWays() async throws {
        let h = try QueueHarness()
        try h.makeBackup("b1")
        try h.queue.reserveBackup("b1", for: "deleting")
        let refused = await apiError { () throws(APIError) in try await h.restore(backup: "b1") }
        #expect(refused?.code == .backupInUse)
        #expect(refused?.details["job"] == "deleting")
        h.queue.releaseBackup("b1", for: "deleting")

        h.engine.holdRuns()
        let restore = try h.accepted(try await h.restore(backup: "b1"))
        #expect(h.queue.user(ofBackup: "b1") == restore)
        #expect(await h.engine.runStarted.wait())
        #expect(throws: APIError(.backupInUse, "backup b1 is in use by \(restore)", details: ["job": restore])) {
            try h.queue.reserveBackup("b1", for: "deleting")
        }
        h.engine.release.signal()
        #expect(await h.ended.wait())
        #expect(h.queue.job(restore)?.state == .success)
        #expect(h.queue.user(ofBackup: "b1") == nil)
        try h.queue.reserveBackup("b1", for: "deleting")
    }

    @Test func aRestoreWithoutABackupTakesTheNewestCompleteOne() async throws {
        let h = try QueueHarness()
        let none = await apiError { () throws(APIError) in try await h.restore() }
        #expect(none?.code == .noCompleteBackup)
        try h.makeBackup("20260101-000000-00000001")
        let restore = try h.accepted(try await h.restore())
        #expect(await h.ended.wait())
        #expect(h.queue.job(restore)?.backup == "20260101-000000-00000001")
        let missing = await apiError { () throws(APIError) in try await h.restore(backup: "nope") }
        #expect(missing?.code == .backupNotFound)
    }

    @Test func nothingIsTakenOnceShuttingDown() async throws {
        let h = try QueueHarness()
        h.queue.stopAccepting()
        let refused = await apiError { () throws(APIError) in try await h.backup() }
        #expect(refused?.code == .shuttingDown)
        #expect(h.engine.calls.planBackup == 0)
        #expect(h.queue.jobs(limit: 10) { _ in true }.isEmpty)
    }

    @Test func aShutdownDuringPlanningRefusesTheJobAndFreesTheInstance() async throws {
        let h = try QueueHarness()
        let queue = h.queue
        h.engine.onPlan { queue.stopAccepting() }
        let refused = await apiError { () throws(APIError) in try await h.backup() }
        #expect(refused?.code == .shuttingDown)
        #expect(h.queue.jobs(limit: 10) { _ in true }.isEmpty)
        #expect(FileSystem.list(h.jobsDirectory).isEmpty)
        #expect(h.queue.activeCount == 0)
    }

    @Test func aCancelBeforeTheStartNeverRunsTheEngine() async throws {
        let h = try QueueHarness(deferStart: true)
        let id = try h.accepted(try await h.backup())
        #expect(try h.queue.cancel(id).state == .queued)
        h.startDeferred()
        #expect(await h.ended.wait())
        let job = try #require(h.queue.job(id))
        #expect(job.state == .canceled)
        #expect(job.error == JobErrorRecord(code: "CANCELED", message: "canceled before it started"))
        #expect(job.segments.map(\.state) == [.canceled])
        #expect(h.engine.calls.backup == 0)
        #expect(h.onDisk(id)?.state == .canceled)
        #expect(throws: APIError(.jobFinished, "job \(id) already finished (canceled)")) { try h.queue.cancel(id) }
        #expect(throws: APIError(.jobNotFound, "no job nope")) { try h.queue.cancel("nope") }
        _ = try h.accepted(try await h.backup())
    }

    @Test func aCancelWhileRunningStopsTheJobAndRemovesItsDirectory() async throws {
        let h = try QueueHarness()
        h.engine.holdRuns()
        let id = try h.accepted(try await h.backup())
        #expect(await h.engine.runStarted.wait())
        let path = try #require(h.queue.job(id)?.path)
        #expect(FileSystem.kind(path) == .directory)
        _ = try h.queue.cancel(id)
        #expect(await h.ended.wait())
        #expect(h.queue.job(id)?.state == .canceled)
        #expect(h.queue.job(id)?.error?.code == "CANCELED")
        #expect(FileSystem.kind(path) == .missing)
    }

    @Test func drainLetsARunningJobFinishWithinTheTimeout() async throws {
        let h = try QueueHarness()
        h.engine.holdRuns()
        let id = try h.accepted(try await h.backup())
        #expect(await h.engine.runStarted.wait())
        h.queue.stopAccepting()
        let queue = h.queue
        let drained = Task { await queue.drain(timeout: .seconds(60)) }
        h.engine.release.signal()
        await drained.value
        #expect(h.queue.activeCount == 0)
        #expect(h.queue.job(id)?.state == .success)
    }

    @Test func drainCancelsWhatOutlivesTheTimeoutAndWaitsForItsCleanUp() async throws {
        let h = try QueueHarness()
        h.engine.holdRuns()
        let id = try h.accepted(try await h.backup())
        #expect(await h.engine.runStarted.wait())
        let path = try #require(h.queue.job(id)?.path)
        h.queue.stopAccepting()
        await h.queue.drain(timeout: .milliseconds(100))
        #expect(h.queue.activeCount == 0)
        #expect(h.queue.job(id)?.state == .canceled)
        #expect(h.onDisk(id)?.state == .canceled)
        #expect(FileSystem.kind(path) == .missing)
    }

    @Test func engineFailuresBecomeTheJobsErrorAndPlanFailuresTheResponse() async throws {
        let h = try QueueHarness()
        h.engine.failPlans(EngineError(.segmentsExist, "segments of instance 14 exist"))
        let refused = await apiError { () throws(APIError) in try await h.backup() }
        #expect(refused == APIError(.segmentsExist, "segments of instance 14 exist"))
        h.engine.failPlans(nil)
        h.engine.failRuns(EngineError(.serverRunning, "0xae0e1000 is attached"))
        let id = try h.accepted(try await h.backup())
        #expect(await h.ended.wait())
        let job = try #require(h.queue.job(id))
        #expect(job.state == .failure)
        #expect(job.error == JobErrorRecord(code: "SERVER_RUNNING", message: "0xae0e1000 is attached"))
        #expect(job.segments.map(\.state) == [.failed])
        #expect(FileSystem.kind(job.path) == .missing)
        #expect(h.onDisk(id) == job)
    }

    @Test func aDryRunPlansAndKeepsNothing() async throws {
        let h = try QueueHarness()
        guard case .backupPlan(let plan) = try await h.backup(dryRun: true) else {
            Issue.record("not a plan")
            return
        }
        #expect(plan.segments.count == 1)
        #expect(h.queue.jobs(limit: 10) { _ in true }.isEmpty)
        #expect(h.engine.calls.backup == 0)
        _ = try h.accepted(try await h.backup())
        #expect(await h.ended.wait())
    }

    @Test func aJobWhoseRecordCannotBeWrittenIsRefused() async throws {
        let h = try QueueHarness()
        try h.breakStateDir()
        let refused = await apiError { () throws(APIError) in try await h.backup() }
        #expect(refused?.code == .io)
        #expect(h.queue.jobs(limit: 10) { _ in true }.isEmpty)
        #expect(h.queue.activeCount == 0)
        try h.repairStateDir()
        _ = try h.accepted(try await h.backup())
        #expect(await h.ended.wait())
    }

    @Test func aJobWhoseStartCannotBeRecordedDoesNotRun() async throws {
        let h = try QueueHarness(deferStart: true)
        try h.makeBackup("b1")
        let id = try h.accepted(try await h.restore(backup: "b1"))
        try h.breakStateDir()
        h.startDeferred()
        #expect(await h.ended.wait())
        #expect(h.engine.calls.restore == 0)
        let job = try #require(h.queue.job(id))
        #expect(job.state == .failure)
        #expect(job.error == JobErrorRecord(code: "IO_ERROR", message: "cannot write the job record"))
        #expect(h.queue.user(ofBackup: "b1") == nil)
    }

    @Test func aJournalEntryIsOnDiskBeforeTheJobGoesOn() async throws {
        let h = try QueueHarness()
        h.engine.holdRuns()
        let id = try h.accepted(try await h.backup())
        #expect(await h.engine.runStarted.wait())
        try h.queue.runner.journal(id) { $0.segments[0].file = "journaled" }
        #expect(h.onDisk(id)?.segments.map(\.file) == ["journaled"])
        #expect(h.queue.job(id)?.segments.map(\.file) == ["journaled"])
        try h.breakStateDir()
        #expect(throws: FileSystemError.self) { try h.queue.runner.journal(id) { $0.segments[0].file = "lost" } }
        #expect(h.queue.job(id)?.segments.map(\.file) == ["journaled"])
        try h.repairStateDir()
        h.engine.release.signal()
        #expect(await h.ended.wait())
    }

    @Test func recoveryDecidesOnTheEvidence() async throws {
        let h = try QueueHarness()
        let request = JobRequest(instance: 14, namespaces: ["x"], compress: nil, verify: true, threads: 0)
        func record(_ id: String, _ type: JobType, backup: String) -> JobRecord {
            JobRecord(
                id: id, type: type, state: .running, request: request, backup: backup,
                path: h.config.instances[0].backupPath + "/" + backup, created: 1, started: 2, finished: nil,
                pid: 99999, progress: ProgressRecord(),
                segments: [
                    SegmentRecord(
                        key: "0xae0e1000", kind: "pi-base", namespace: "x", size: 4096, file: "ae0e1000.dat",
                        compressed: false, state: .running)
                ], error: nil)
        }
        try h.makeBackup("complete")
        try FileManager.default.createDirectory(
            atPath: h.config.instances[0].backupPath + "/partial", withIntermediateDirectories: false)
        let invalid = h.config.instances[0].backupPath + "/invalid"
        try FileManager.default.createDirectory(atPath: invalid, withIntermediateDirectories: false)
        #expect(FileManager.default.createFile(atPath: invalid + "/asmtd-manifest.json", contents: Data("{".utf8)))
        let records = [
            record("j1", .backup, backup: "complete"), record("j2", .backup, backup: "partial"),
            record("j6", .backup, backup: "invalid"),
            record("j3", .restore, backup: "complete"), record("j4", .restore, backup: "complete"),
            record("j5", .restore, backup: "complete"),
        ]
        for r in records { try h.queue.store.save(r) }
        h.engine.answerRecovery(.committed, for: "j3")
        h.engine.answerRecovery(.removed(count: 2, stuck: ["0xae0e1001"]), for: "j4")

        let restarted = JobQueue(
            config: h.config, metrics: Metrics(version: "t"), logger: Logger(label: "t"), engine: h.engine)
        try restarted.recover()
        #expect(h.engine.calls.recoverRestore.sorted() == ["j3", "j4", "j5"])
        let j = Dictionary(uniqueKeysWithValues: restarted.jobs(limit: 10) { _ in true }.map { ($0.id, $0) })
        #expect(j["j1"]?.state == .success && j["j1"]?.error == nil)
        #expect(j["j2"]?.state == .failure && j["j2"]?.error?.code == "INTERRUPTED")
        #expect(j["j2"]?.error?.message.contains("incomplete backup directory") == true)
        #expect(FileSystem.kind(h.config.instances[0].backupPath + "/partial") == .missing)
        // A manifest that cannot be read proves nothing: the directory stays.
        #expect(j["j6"]?.state == .failure)
        #expect(j["j6"]?.error?.message.contains("was left in place: manifest") == true, "\(j["j6"]?.error)")
        #expect(FileSystem.kind(invalid) == .directory)
        #expect(j["j3"]?.state == .success)
        #expect(j["j4"]?.state == .failure)
        #expect(
            j["j4"]?.error?.message
                == "pid 99999 stopped while the job was running; removed 2 segment(s) it had created; "
                + "1 attached segment(s) could not be removed: 0xae0e1001")
        #expect(j["j4"]?.segments.map(\.state) == [.failed])
        #expect(j["j5"]?.error?.message.hasSuffix("it had not started creating segments") == true)
        // Settled on disk too.
        #expect(restarted.store.loadAll().records.allSatisfy { $0.state.isFinished })
    }
}

@Suite struct UnsavedRecordTests {
    @Test func anUnsavedFinalRecordIsReportedAndWrittenBeforeTheNextJob() async throws {
        let h = try QueueHarness()
        let id = try await h.restoreWithUnsavedFinalRecord()
        let api = API(config: h.config, jobs: h.queue, metrics: Metrics(version: "t"))
        let ready = await api.ready()
        let checks = try #require(
            (try JSONSerialization.jsonObject(with: Data(ready.body)) as? [String: Any])?["checks"] as? [[String: Any]])
        let check = try #require(checks.first { $0["name"] as? String == "job-records" })
        #expect(ready.status == 503)
        #expect(check["ok"] as? Bool == false)
        #expect(check["message"] as? String == "final record not on disk yet for job(s) \(id)")

        h.engine.holdRuns(false)
        let refused = await apiError { () throws(APIError) in try await h.backup(15) }
        #expect(refused?.code == .io)
        #expect(refused?.message.contains(id) == true)
        try h.repairStateDir()
        _ = try h.accepted(try await h.backup(15))
        #expect(h.onDisk(id)?.state == .success)
        #expect(h.queue.unsavedJobs.isEmpty)
        #expect(await h.ended.wait())
    }

    @Test func theRunnerWritesItAgainOnItsOwn() async throws {
        let h = try QueueHarness(retryDelay: .milliseconds(20))
        let id = try await h.restoreWithUnsavedFinalRecord()
        try h.repairStateDir()
        // Bounded wait for the retrying thread (20 ms, 40 ms, ...), not a sleep standing in for a signal.
        let deadline = ContinuousClock.now + .seconds(20)
        while (h.onDisk(id)?.state != .success || !h.queue.unsavedJobs.isEmpty) && ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(10))
        }
        #expect(h.onDisk(id)?.state == .success)
        #expect(h.queue.unsavedJobs.isEmpty)
        h.queue.stopAccepting()
    }

    @Test func drainMakesTheLastAttempt() async throws {
        let h = try QueueHarness()
        let id = try await h.restoreWithUnsavedFinalRecord()
        try h.repairStateDir()
        h.queue.stopAccepting()
        await h.queue.drain(timeout: .seconds(1))
        #expect(h.onDisk(id)?.state == .success)
    }

    /// The disk says running after the job succeeded: a restart settles it on the engine's evidence only.
    @Test(arguments: [
        (RestoreEvidence.committed, JobState.success),
        (RestoreEvidence.removed(count: 1, stuck: []), JobState.failure),
    ])
    func aRestartDecidesOnTheEngineEvidence(evidence: RestoreEvidence, expected: JobState) async throws {
        let h = try QueueHarness()
        let id = try await h.restoreWithUnsavedFinalRecord()
        defer { h.queue.stopAccepting() }
        // The next process: same backups, the state dir as the crash left it.
        let state = try TemporaryDirectory()
        try FileManager.default.createDirectory(atPath: state.path + "/jobs", withIntermediateDirectories: false)
        try FileManager.default.copyItem(
            atPath: h.jobsDirectory + ".saved/\(id).json", toPath: state.path + "/jobs/\(id).json")
        var config = h.config
        config.service.stateDir = state.path
        h.engine.answerRecovery(evidence, for: id)
        let restarted = JobQueue(
            config: config, metrics: Metrics(version: "t"), logger: Logger(label: "t"), engine: h.engine)
        try restarted.recover()
        #expect(h.engine.calls.recoverRestore == [id])
        let job = try #require(restarted.job(id))
        #expect(job.state == expected)
        #expect(job.error?.code == (expected == .success ? nil : "INTERRUPTED"))
        #expect(restarted.store.loadAll().records.first?.state == expected)
    }
}

@Suite struct JobRegistryTests {
    @Test func reservationsBelongToTheirHolder() throws {
        let registry = JobRegistry()
        try registry.reserve(instance: 3, job: "a")
        registry.release(instance: 3, job: "b")
        #expect(throws: APIError.self) { try registry.reserve(instance: 3, job: "c") }
        registry.release(instance: 3, job: "a")
        try registry.reserve(instance: 3, job: "c")

        try registry.reserveBackup("x", for: "a")
        try registry.reserveBackup("x", for: "a")
        registry.releaseBackup("x", for: "b")
        #expect(registry.user(ofBackup: "x") == "a")
        registry.releaseBackup("x", for: "a")
        #expect(registry.user(ofBackup: "x") == nil)
    }

    func record(_ id: String) -> JobRecord {
        JobRecord(
            id: id, type: .backup, state: .queued,
            request: JobRequest(instance: 1, namespaces: ["x"], compress: nil, verify: true, threads: 0),
            backup: id, path: "/nowhere/\(id)", created: 1, started: nil, finished: nil, pid: nil,
            progress: ProgressRecord(), segments: [], error: nil)
    }

    @Test func idleIsSignalledWhenTheLastJobEnds() async throws {
        let registry = JobRegistry()
        #expect(await registry.idle(within: .seconds(60)))
        #expect(await registry.idle(within: .zero))
        try registry.admit(record("a"))
        try registry.admit(record("b"))
        #expect(await !registry.idle(within: .milliseconds(20)))
        let waiting = Task { await registry.idle(within: .seconds(60)) }
        registry.finish(record("a"), saved: true)
        registry.withdraw(record("b"))
        #expect(await waiting.value)
        // A canceled wait returns at once, whatever the jobs do.
        try registry.admit(record("c"))
        let canceled = Task { await registry.waitUntilIdle() }
        canceled.cancel()
        await canceled.value
        #expect(registry.activeCount == 1)
    }
}
