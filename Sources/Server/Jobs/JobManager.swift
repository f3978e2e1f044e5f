import Foundation
import Logging
import ShmEngine
import Synchronization

/// What a submission produced: an accepted job, or (dry run) the plan.
enum Submission: Sendable {
    case accepted(JobRecord)
    case backupPlan(BackupPlan)
    case restorePlan(RestorePlan)
}

/// The job queue: at most one job per instance, each job on its own thread, every change persisted.
final class JobManager: Sendable {
    private struct Live: Sendable {
        let progress: JobProgress
        let token: CancellationToken
    }

    private struct State {
        var records: [String: JobRecord] = [:]
        /// instance → id of the job holding it (reserved from submission to the job's end).
        var busy: [Int: String] = [:]
        var live: [String: Live] = [:]
        /// backup id → id of the job reading or writing it.
        var backupsInUse: [String: String] = [:]
        var accepting = true
        var threads = 0
    }

    let config: Config
    let store: JobStore
    let metrics: Metrics
    let logger: Logger
    private let state = Mutex(State())
    let completions = JobCompletions()

    init(config: Config, metrics: Metrics, logger: Logger) {
        self.config = config
        self.store = JobStore(stateDirectory: config.service.stateDir)
        self.metrics = metrics
        self.logger = logger
    }

    // MARK: start-up recovery

    /// Loads the records; a job left queued or running by a dead process becomes `failure`/INTERRUPTED and
    /// its partial output is removed (backup directory without manifest, segments the dead process created).
    func recover() throws(FileSystemError) {
        try store.prepare()
        let (records, warnings) = store.loadAll()
        for warning in warnings { logger.warning("\(warning)") }
        var loaded: [String: JobRecord] = [:]
        for var record in records {
            if !record.state.isFinished {
                recoverInterrupted(&record)
                do {
                    try store.save(record)
                } catch {
                    logger.error(
                        "cannot save recovered job record", metadata: ["job": "\(record.id)", "error": "\(error)"])
                }
            }
            loaded[record.id] = record
        }
        state.withLock { $0.records = loaded }
        prune()
    }

    private func recoverInterrupted(_ record: inout JobRecord) {
        let pid = record.pid.map { "pid \($0)" } ?? "an earlier asmtd"
        var message = "\(pid) stopped while the job was \(record.state.rawValue)"
        var success = false
        switch record.type {
        case .backup:
            let complete = (try? BackupManifest.load(directory: record.path)) != nil
            if complete {
                success = true
            } else if FileSystem.kind(record.path) == .directory, isBelowBackupPath(record) {
                do {
                    try FileSystem.removeTree(record.path)
                    message += "; its incomplete backup directory \(record.path) was removed"
                } catch {
                    message += "; removing its incomplete backup directory failed: \(error)"
                }
            }
        case .restore:
            let keys = record.segments.compactMap { SegmentKey(hex: $0.key) }
            if let dead = record.pid {
                let removed = Engine.removeSegments(keys, createdBy: dead)
                message += "; removed \(removed.count) segment(s) it had created"
                let left = (try? SharedMemory.segments(instance: record.request.instance)) ?? []
                let stuck = left.filter { keys.contains($0.key) && $0.creatorPID == dead }
                if !stuck.isEmpty {
                    message +=
                        "; \(stuck.count) attached segment(s) could not be removed: "
                        + stuck.map(\.key.hex).joined(separator: ", ")
                }
            } else {
                message += "; it had not started creating segments"
            }
        }
        record.finished = Time.now()
        if success {
            record.state = .success
            record.error = nil
            logger.warning(
                "job finished its backup before the process stopped; marked success",
                metadata: ["job": "\(record.id)"])
        } else {
            record.state = .failure
            record.error = JobErrorRecord(code: APIError.Code.interrupted.rawValue, message: message)
            for index in record.segments.indices where record.segments[index].state != "done" {
                record.segments[index].state = "failed"
            }
            logger.warning("job interrupted", metadata: ["job": "\(record.id)", "detail": "\(message)"])
        }
    }

    private func isBelowBackupPath(_ record: JobRecord) -> Bool {
        guard let instance = config.instance(record.request.instance) else { return false }
        return Paths.directory(of: record.path) == instance.backupPath && Paths.isSafeName(record.backup)
    }

    // MARK: submissions

    func submitBackup(_ submission: BackupSubmission) async throws(APIError) -> Submission {
        let instance = try instanceConfig(submission.instance)
        let namespaces = try checkNamespaces(submission.namespaces, instance)
        let id = JobID.make(now: Time.now())
        try reserve(instance: instance.instance, job: id)
        var keep = false
        defer { if !keep { release(instance: instance.instance, job: id) } }
        let directory = Paths.join(instance.backupPath, id)
        let request = BackupRequest(
            instance: instance.instance, namespaces: namespaces, directory: directory,
            compress: submission.compress ?? instance.compress, verify: submission.verify ?? instance.verify,
            threads: submission.threads ?? instance.threads)
        let plan = try await Blocking.run { () throws(EngineError) -> BackupPlan in try Engine.planBackup(request) }
            .mapError { APIError($0) }.get()
        if submission.dryRun { return .backupPlan(plan) }
        let record = JobRecord(
            id: id, type: .backup, state: .queued,
            request: JobRequest(
                instance: instance.instance, namespaces: namespaces, compress: request.compress,
                verify: request.verify, threads: request.threads),
            backup: id, path: directory, created: Time.now(), started: nil, finished: nil, pid: nil,
            progress: ProgressRecord(bytesTotal: plan.totalBytes, segmentsTotal: plan.segments.count),
            segments: plan.segments.map(SegmentRecord.init), error: nil)
        try accept(record)
        keep = true
        start(record) { progress, token throws(EngineError) in
            _ = try Engine.backup(plan, request: request, progress: progress, cancellation: token)
        }
        return .accepted(record)
    }

    func submitRestore(_ submission: RestoreSubmission) async throws(APIError) -> Submission {
        let instance = try instanceConfig(submission.instance)
        let namespaces = try checkNamespaces(submission.namespaces, instance)
        let id = JobID.make(now: Time.now())
        try reserve(instance: instance.instance, job: id)
        var keep = false
        defer { if !keep { release(instance: instance.instance, job: id) } }
        let backup = try chooseBackup(submission.backup, instance: instance, namespaces: namespaces)
        // Held from now on, so that a DELETE cannot remove it between the plan and the run.
        try reserveBackup(backup, for: id)
        defer { if !keep { releaseBackup(backup, for: id) } }
        let directory = Paths.join(instance.backupPath, backup)
        let request = RestoreRequest(
            instance: instance.instance, namespaces: namespaces, directory: directory,
            verify: submission.verify ?? instance.verify, threads: submission.threads ?? instance.threads)
        let plan = try await Blocking.run { () throws(EngineError) -> RestorePlan in try Engine.planRestore(request) }
            .mapError { APIError($0) }.get()
        if submission.dryRun { return .restorePlan(plan) }
        let record = JobRecord(
            id: id, type: .restore, state: .queued,
            request: JobRequest(
                instance: instance.instance, namespaces: namespaces, compress: nil, verify: request.verify,
                threads: request.threads),
            backup: backup, path: directory, created: Time.now(), started: nil, finished: nil, pid: nil,
            progress: ProgressRecord(bytesTotal: plan.totalBytes, segmentsTotal: plan.segments.count),
            segments: plan.segments.map(SegmentRecord.init), error: nil)
        try accept(record)
        keep = true
        start(record) { progress, token throws(EngineError) in
            try Engine.restore(plan, request: request, progress: progress, cancellation: token)
        }
        return .accepted(record)
    }

    private func instanceConfig(_ number: Int) throws(APIError) -> InstanceConfig {
        guard let instance = config.instance(number) else {
            let known = config.instances.map { "\($0.instance)" }.joined(separator: ", ")
            throw APIError(.unknownInstance, "instance \(number) is not configured (configured: \(known))")
        }
        return instance
    }

    private func checkNamespaces(_ requested: [String]?, _ instance: InstanceConfig) throws(APIError) -> [String] {
        guard let requested else { return instance.namespaces }
        for name in requested where !instance.namespaces.contains(name) {
            throw APIError(
                .unknownNamespace,
                "namespace \"\(name)\" is not configured for instance \(instance.instance) "
                    + "(configured: \(instance.namespaces.joined(separator: ", ")))")
        }
        return requested
    }

    private func reserve(instance: Int, job: String) throws(APIError) {
        let result: APIError? = state.withLock { s in
            if !s.accepting { return APIError(.shuttingDown, "asmtd is shutting down and takes no new jobs") }
            if let holder = s.busy[instance] {
                return APIError(
                    .instanceBusy, "job \(holder) is already queued or running for instance \(instance)",
                    details: ["job": holder])
            }
            s.busy[instance] = job
            return nil
        }
        if let result { throw result }
    }

    private func release(instance: Int, job: String) {
        state.withLock { s in
            if s.busy[instance] == job { s.busy[instance] = nil }
        }
    }

    private func accept(_ record: JobRecord) throws(APIError) {
        let refused: APIError? = state.withLock { s in
            if !s.accepting { return APIError(.shuttingDown, "asmtd is shutting down and takes no new jobs") }
            s.backupsInUse[record.backup] = record.id
            s.records[record.id] = record
            s.live[record.id] = Live(progress: JobProgress(), token: CancellationToken())
            s.threads += 1
            return nil
        }
        if let refused { throw refused }
        do {
            try store.save(record)
        } catch {
            state.withLock { s in
                s.backupsInUse[record.backup] = nil
                s.records[record.id] = nil
                s.live[record.id] = nil
                s.threads -= 1
            }
            throw APIError(.io, "cannot write the job record: \(error)")
        }
    }

    /// Runs the job on its own thread; the record is persisted when it starts and when it ends.
    private func start(
        _ record: JobRecord,
        _ body: @escaping @Sendable (JobProgress, CancellationToken) throws(EngineError) -> Void
    ) {
        metrics.jobStarted(type: record.type.rawValue)
        let thread = Thread { [self] in self.run(record.id, body) }
        thread.name = "asmtd-job-\(record.id)"
        thread.stackSize = 1 << 20
        thread.start()
    }

    private func run(_ id: String, _ body: (JobProgress, CancellationToken) throws(EngineError) -> Void) {
        let begin = Time.monotonic()
        guard let (started, live, saved) = markRunning(id) else { return }
        logger.info(
            "job started",
            metadata: [
                "job": "\(id)", "type": "\(started.type.rawValue)", "instance": .typed(started.request.instance),
                "namespaces": "\(started.request.namespaces.joined(separator: ","))", "backup": "\(started.backup)",
            ])
        var outcome: (JobState, JobErrorRecord?) = (.success, nil)
        if live.token.isCancelled {
            outcome = (.canceled, JobErrorRecord(code: "CANCELED", message: "canceled before it started"))
        } else if !saved {
            // Without the record on disk a crash could not be cleaned up after: do not start.
            outcome = (
                .failure, JobErrorRecord(code: APIError.Code.io.rawValue, message: "cannot write the job record")
            )
        } else {
            do {
                try body(live.progress, live.token)
            } catch {
                let state: JobState = error.code == .canceled ? .canceled : .failure
                outcome = (state, JobErrorRecord(code: APIError(error).code.rawValue, message: error.message))
            }
        }
        if started.type == .backup, outcome.0 != .success {
            removeIncompleteBackup(started.path)
        }
        let final = finish(id, live: live, state: outcome.0, error: outcome.1, begin: begin)
        let seconds = Time.monotonic() - begin
        var metadata: Logger.Metadata = [
            "job": "\(id)", "type": "\(final.type.rawValue)", "outcome": "\(final.state.rawValue)",
            "seconds": .typed(LogDecimal(seconds)), "bytes": .typed(final.progress.bytesDone),
        ]
        if let error = final.error {
            metadata["code"] = "\(error.code)"
            metadata["error"] = "\(error.message)"
        }
        logger.log(level: final.state == .failure ? .error : .info, "job finished", metadata: metadata)
        prune()
    }

    /// Records the start (with this process's pid, which crash recovery needs) on disk first, then
    /// publishes it: a client that sees `running` knows the record on disk says so too.
    private func markRunning(_ id: String) -> (record: JobRecord, live: Live, saved: Bool)? {
        guard var record = state.withLock({ $0.records[id] }), let live = state.withLock({ $0.live[id] }) else {
            return nil
        }
        record.state = .running
        record.started = Time.now()
        record.pid = getpid()
        var saved = true
        do {
            try store.save(record)
        } catch {
            saved = false
            logger.error("cannot save job record", metadata: ["job": "\(id)", "error": "\(error)"])
        }
        let published = record
        state.withLock { $0.records[id] = published }
        return (record, live, saved)
    }

    /// Persists the final record, counts it, then publishes it and frees the instance in one step, so a
    /// client that sees the job finished also sees the instance free and the metrics updated.
    private func finish(
        _ id: String, live: Live, state newState: JobState, error: JobErrorRecord?, begin: Double
    ) -> JobRecord {
        let snapshot = live.progress.snapshot()
        var record: JobRecord = state.withLock { $0.records[id]! }
        record.state = newState
        record.error = error
        record.finished = Time.now()
        if snapshot.segmentsTotal > 0 {
            record.apply(progress: ProgressRecord(snapshot), segmentStates: snapshot.segments.map(\.state.rawValue))
        }
        if newState != .success {
            for index in record.segments.indices where record.segments[index].state != "done" {
                record.segments[index].state = newState == .canceled ? "canceled" : "failed"
            }
        }
        do {
            try store.save(record)
        } catch {
            logger.error("cannot save job record", metadata: ["job": "\(id)", "error": "\(error)"])
        }
        metrics.jobFinished(
            type: record.type.rawValue, outcome: record.state.rawValue, instance: record.request.instance,
            seconds: Time.monotonic() - begin, bytes: record.progress.bytesDone, now: Time.now())
        let final = record
        state.withLock { s in
            s.records[id] = final
            s.live[id] = nil
            if s.busy[final.request.instance] == id { s.busy[final.request.instance] = nil }
            if s.backupsInUse[final.backup] == id { s.backupsInUse[final.backup] = nil }
            s.threads -= 1
        }
        completions.finished(id)
        return final
    }

    /// The engine removes the files it wrote; the directory it created goes too, unless it is complete.
    private func removeIncompleteBackup(_ path: String) {
        guard FileSystem.kind(path) == .directory else { return }
        if (try? BackupManifest.load(directory: path)) != nil { return }
        do {
            try FileSystem.removeTree(path)
        } catch {
            logger.error(
                "cannot remove incomplete backup directory", metadata: ["path": "\(path)", "error": "\(error)"])
        }
    }

    /// Drops the oldest finished records beyond `jobs-kept`.
    private func prune() {
        let removed: [String] = state.withLock { s in
            let finished = s.records.values.filter { $0.state.isFinished }.sorted {
                ($0.created, $0.id) < ($1.created, $1.id)
            }
            let excess = finished.count - config.service.jobsKept
            guard excess > 0 else { return [] }
            let ids = finished.prefix(excess).map(\.id)
            for id in ids { s.records[id] = nil }
            return ids
        }
        for id in removed { store.delete(id) }
    }

    // MARK: queries and control

    /// The record with live progress merged in.
    func job(_ id: String) -> JobRecord? {
        state.withLock { s in
            guard var record = s.records[id] else { return nil }
            if record.state == .running, let live = s.live[id] {
                let snapshot = live.progress.snapshot()
                if snapshot.segmentsTotal > 0 {
                    record.apply(
                        progress: ProgressRecord(snapshot), segmentStates: snapshot.segments.map(\.state.rawValue))
                }
            }
            return record
        }
    }

    /// Newest first.
    func jobs(type: Set<JobType>?, states: StateFilter, limit: Int) -> [JobRecord] {
        let ids: [String] = state.withLock { s in
            s.records.values.filter { r in
                (type?.contains(r.type) ?? true) && states.matches(r.state)
            }
            .sorted { ($0.created, $0.id) > ($1.created, $1.id) }
            .prefix(limit).map(\.id)
        }
        return ids.compactMap(job)
    }

    func cancel(_ id: String) throws(APIError) -> JobRecord {
        let result: Result<JobRecord, APIError> = state.withLock { s in
            guard let record = s.records[id] else { return .failure(APIError(.jobNotFound, "no job \(id)")) }
            if record.state.isFinished {
                return .failure(APIError(.jobFinished, "job \(id) already finished (\(record.state.rawValue))"))
            }
            s.live[id]?.token.cancel()
            return .success(record)
        }
        let record = try result.get()
        logger.info("job cancel requested", metadata: ["job": "\(id)"])
        return record
    }

    /// The job using a backup (reading or writing it), if any.
    func user(ofBackup id: String) -> String? {
        state.withLock { $0.backupsInUse[id] }
    }

    /// Marks a backup as used by `user` (a job id, or "deleting"); 409 when something already uses it.
    func reserveBackup(_ id: String, for user: String) throws(APIError) {
        let holder: String? = state.withLock { s in
            if let holder = s.backupsInUse[id], holder != user { return holder }
            s.backupsInUse[id] = user
            return nil
        }
        if let holder {
            throw APIError(.backupInUse, "backup \(id) is in use by \(holder)", details: ["job": holder])
        }
    }

    func releaseBackup(_ id: String, for user: String) {
        state.withLock { s in
            if s.backupsInUse[id] == user { s.backupsInUse[id] = nil }
        }
    }

    private func chooseBackup(
        _ requested: String?, instance: InstanceConfig, namespaces: [String]
    ) throws(APIError)
        -> String
    {
        if let requested {
            let directory = Paths.join(instance.backupPath, requested)
            guard FileSystem.kind(directory) == .directory else {
                throw APIError(.backupNotFound, "no backup \(requested) for instance \(instance.instance)")
            }
            if let writer = user(ofBackup: requested), job(writer)?.type == .backup {
                throw APIError(.backupIncomplete, "backup \(requested) is still being written by job \(writer)")
            }
            let manifest: BackupManifest?
            do {
                manifest = try BackupManifest.load(directory: directory)
            } catch {
                throw APIError(.invalidBackup, "backup \(requested): \(error.message)")
            }
            guard let manifest else {
                throw APIError(
                    .backupIncomplete,
                    "backup \(requested) has no manifest: it is incomplete or was not written by asmtd")
            }
            let held = Set(manifest.namespaces.map(\.name))
            for name in namespaces where !held.contains(name) {
                throw APIError(.namespaceNotFound, "backup \(requested) does not hold namespace \"\(name)\"")
            }
            return requested
        }
        let candidates = BackupCatalog.list(instance: instance)
            .filter { $0.complete && Set(namespaces).isSubset(of: Set($0.namespaces)) }
        guard let newest = candidates.max(by: { ($0.created, $0.id) < ($1.created, $1.id) }) else {
            throw APIError(
                .noCompleteBackup,
                "no complete backup of instance \(instance.instance) holds \(namespaces.joined(separator: ", "))")
        }
        return newest.id
    }

    // MARK: shutdown

    func stopAccepting() {
        state.withLock { $0.accepting = false }
    }

    /// Cancels every queued or running job (their clean-up still runs).
    func cancelAll() {
        state.withLock { s in
            for live in s.live.values { live.token.cancel() }
        }
    }

    var isAccepting: Bool { state.withLock { $0.accepting } }

    var activeCount: Int { state.withLock { $0.threads } }

    /// Lets running jobs finish within `timeout`, then cancels them and waits for their clean-up.
    func drain(timeout: Duration) async {
        let deadline = ContinuousClock.now + timeout
        while activeCount > 0 && ContinuousClock.now < deadline {
            try? await Task.sleep(for: .milliseconds(50))
        }
        if activeCount > 0 {
            let ids: [String] = state.withLock { s in
                for live in s.live.values { live.token.cancel() }
                return Array(s.live.keys)
            }
            logger.warning("shutdown timeout reached; canceling running jobs", metadata: ["jobs": "\(ids)"])
        }
        var waited = 0
        while activeCount > 0 {
            try? await Task.sleep(for: .milliseconds(50))
            waited += 1
            if waited % 100 == 0 { logger.warning("still waiting for canceled jobs to clean up") }
        }
    }
}

/// `state` filter of GET /v1/jobs: a comma-separated list, `!` excludes (ABS v3 syntax).
struct StateFilter: Sendable, Equatable {
    var include: Set<JobState> = []
    var exclude: Set<JobState> = []

    static func parse(_ text: String?) throws(APIError) -> StateFilter {
        var filter = StateFilter()
        guard let text, !text.isEmpty else { return filter }
        for part in text.split(separator: ",") {
            let negated = part.hasPrefix("!")
            let name = negated ? String(part.dropFirst()) : String(part)
            guard let state = JobState(rawValue: name) else {
                let names = JobState.allCases.map(\.rawValue).joined(separator: ", ")
                throw APIError(.invalidQuery, "unknown state \"\(name)\"; use \(names), each optionally prefixed by !")
            }
            if negated { filter.exclude.insert(state) } else { filter.include.insert(state) }
        }
        return filter
    }

    func matches(_ state: JobState) -> Bool {
        (include.isEmpty || include.contains(state)) && !exclude.contains(state)
    }
}

extension SegmentRecord {
    init(_ planned: PlannedSegment) {
        self.init(
            key: planned.key.hex, kind: planned.kind.rawValue, namespace: planned.namespace, size: planned.size,
            file: planned.file, compressed: planned.compressed, state: "pending")
    }
}

extension ProgressRecord {
    init(_ snapshot: ProgressSnapshot) {
        self.init(
            bytesTotal: snapshot.bytesTotal, bytesDone: snapshot.bytesDone, segmentsTotal: snapshot.segmentsTotal,
            segmentsDone: snapshot.segmentsDone)
    }
}

extension SegmentKey {
    /// From "0x%08x".
    init?(hex: String) {
        guard hex.hasPrefix("0x"), let value = UInt32(hex.dropFirst(2), radix: 16) else { return nil }
        self.init(rawValue: value)
    }
}

/// Runs blocking work (shm walks, file reads) off the cooperative thread pool.
enum Blocking {
    static func run<T: Sendable, E: Error>(_ body: @escaping @Sendable () throws(E) -> T) async -> Result<T, E> {
        await withCheckedContinuation { continuation in
            DispatchQueue.global().async {
                do throws(E) {
                    continuation.resume(returning: .success(try body()))
                } catch {
                    continuation.resume(returning: .failure(error))
                }
            }
        }
    }
}
