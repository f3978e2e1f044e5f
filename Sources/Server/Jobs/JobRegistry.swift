import ShmEngine
import Synchronization

/// The queue's memory: every job record, what each unfinished job holds (its instance, its backup), the
/// live progress and cancellation of those jobs, and whether new jobs are taken. No I/O: each method is one
/// short critical section, so the rules hold whatever threads call them.
final class JobRegistry: Sendable {
    /// What an accepted, unfinished job shares with its thread.
    struct Live: Sendable {
        let progress: JobProgress
        let token: CancellationToken
    }

    private struct State {
        var records: [String: JobRecord] = [:]
        /// instance → id of the job holding it (reserved from submission to the job's end).
        var busy: [Int: String] = [:]
        var live: [String: Live] = [:]
        /// backup id → id of the job reading or writing it (or "deleting").
        var backupsInUse: [String: String] = [:]
        var accepting = true
        /// Accepted jobs whose thread has not finished them yet.
        var active = 0
    }

    private let state = Mutex(State())

    static func shuttingDown() -> APIError {
        APIError(.shuttingDown, "asmtd is shutting down and takes no new jobs")
    }

    /// The records found at start-up (all finished by then).
    func load(_ records: [JobRecord]) {
        state.withLock { s in
            for record in records { s.records[record.id] = record }
        }
    }

    // MARK: reservations

    /// One job per instance: held from the submission (before planning) to the job's end.
    func reserve(instance: Int, job: String) throws(APIError) {
        let refused: APIError? = state.withLock { s in
            if !s.accepting { return Self.shuttingDown() }
            if let holder = s.busy[instance] {
                return APIError(
                    .instanceBusy, "job \(holder) is already queued or running for instance \(instance)",
                    details: ["job": holder])
            }
            s.busy[instance] = job
            return nil
        }
        if let refused { throw refused }
    }

    func release(instance: Int, job: String) {
        state.withLock { s in
            if s.busy[instance] == job { s.busy[instance] = nil }
        }
    }

    /// Marks a backup as used by `user` (a job id, or "deleting"); 409 when something else already uses it.
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

    /// The job using a backup (reading or writing it), if any.
    func user(ofBackup id: String) -> String? {
        state.withLock { $0.backupsInUse[id] }
    }

    // MARK: a job's life

    /// Registers an accepted job (queued): it holds its backup, gets its progress and token, counts as active.
    /// Refused once shutting down.
    func admit(_ record: JobRecord) throws(APIError) {
        let refused: APIError? = state.withLock { s in
            if !s.accepting { return Self.shuttingDown() }
            s.backupsInUse[record.backup] = record.id
            s.records[record.id] = record
            s.live[record.id] = Live(progress: JobProgress(), token: CancellationToken())
            s.active += 1
            return nil
        }
        if let refused { throw refused }
    }

    /// Undoes `admit` (its record could not be written); the caller still holds the instance.
    func withdraw(_ record: JobRecord) {
        state.withLock { s in
            if s.backupsInUse[record.backup] == record.id { s.backupsInUse[record.backup] = nil }
            s.records[record.id] = nil
            s.live[record.id] = nil
            s.active -= 1
        }
    }

    /// The record and live part of an admitted, unfinished job.
    func admitted(_ id: String) -> (record: JobRecord, live: Live)? {
        state.withLock { s in
            guard let record = s.records[id], let live = s.live[id] else { return nil }
            return (record, live)
        }
    }

    /// Publishes a new version of an unfinished job's record.
    func update(_ record: JobRecord) {
        state.withLock { $0.records[record.id] = record }
    }

    /// Publishes the final record and frees the instance and the backup in one step, so that a client that
    /// sees the job finished also sees them free.
    func finish(_ record: JobRecord) {
        state.withLock { s in
            s.records[record.id] = record
            s.live[record.id] = nil
            if s.busy[record.request.instance] == record.id { s.busy[record.request.instance] = nil }
            if s.backupsInUse[record.backup] == record.id { s.backupsInUse[record.backup] = nil }
            s.active -= 1
        }
    }

    /// Drops the oldest finished records beyond `keep`; returns their ids.
    func prune(keep: Int) -> [String] {
        state.withLock { s in
            let finished = s.records.values.filter { $0.state.isFinished }.sorted {
                ($0.created, $0.id) < ($1.created, $1.id)
            }
            let excess = finished.count - keep
            guard excess > 0 else { return [] }
            let ids = finished.prefix(excess).map(\.id)
            for id in ids { s.records[id] = nil }
            return ids
        }
    }

    // MARK: queries and control

    /// The record with live progress merged in.
    func job(_ id: String) -> JobRecord? {
        state.withLock { s in
            guard var record = s.records[id] else { return nil }
            if record.state == .running, let live = s.live[id] { record.apply(live.progress.snapshot()) }
            return record
        }
    }

    /// The records `matching`, newest first, at most `limit`.
    func jobs(limit: Int, matching: (JobRecord) -> Bool) -> [JobRecord] {
        let ids: [String] = state.withLock { s in
            s.records.values.filter(matching)
                .sorted { ($0.created, $0.id) > ($1.created, $1.id) }
                .prefix(limit).map(\.id)
        }
        return ids.compactMap(job)
    }

    /// Asks an unfinished job to stop (before it starts, or between the engine's chunks).
    func cancel(_ id: String) throws(APIError) -> JobRecord {
        let result: Result<JobRecord, APIError> = state.withLock { s in
            guard let record = s.records[id] else { return .failure(APIError(.jobNotFound, "no job \(id)")) }
            if record.state.isFinished {
                return .failure(APIError(.jobFinished, "job \(id) already finished (\(record.state.rawValue))"))
            }
            s.live[id]?.token.cancel()
            return .success(record)
        }
        return try result.get()
    }

    /// Cancels every unfinished job; returns their ids.
    @discardableResult
    func cancelAll() -> [String] {
        state.withLock { s in
            for live in s.live.values { live.token.cancel() }
            return Array(s.live.keys)
        }
    }

    func stopAccepting() {
        state.withLock { $0.accepting = false }
    }

    /// Takes jobs again (the automatic mode's stop-time backups, once the HTTP server is closed).
    func resumeAccepting() {
        state.withLock { $0.accepting = true }
    }

    var isAccepting: Bool { state.withLock { $0.accepting } }

    var activeCount: Int { state.withLock { $0.active } }
}
