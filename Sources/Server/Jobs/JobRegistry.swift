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
        /// instance → its host-wide lock, held as long as `busy` names a job for it.
        var instanceLocks: [Int: InstanceLock] = [:]
        var live: [String: Live] = [:]
        /// backup id → id of the job reading or writing it (or "deleting").
        var backupsInUse: [String: String] = [:]
        var accepting = true
        /// Accepted jobs whose thread has not finished them yet.
        var active = 0
        /// Finished jobs whose final record could not be written (the disk still says queued or running).
        var unsaved: Set<String> = []
        /// Whether a thread is retrying the unsaved records.
        var retrying = false
        /// Tasks waiting for `active` to reach 0, by waiter number.
        var idleWaiters: [Int: IdleWaiter] = [:]
        var nextWaiter = 0
    }

    private enum IdleWaiter {
        /// Numbered, not waiting yet.
        case pending
        case waiting(CheckedContinuation<Void, Never>)
        /// Canceled before it waited: it must not start.
        case canceled
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

    /// Keeps the instance's host-wide lock with its reservation (released with it).
    func hold(_ lock: InstanceLock, instance: Int, job: String) {
        let kept = state.withLock { s in
            guard s.busy[instance] == job else { return false }
            s.instanceLocks[instance] = lock
            return true
        }
        if !kept { lock.release() }
    }

    func release(instance: Int, job: String) {
        state.withLock { s in
            guard s.busy[instance] == job else { return }
            s.busy[instance] = nil
            s.instanceLocks.removeValue(forKey: instance)?.release()
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
        let waiters = state.withLock { s in
            if s.backupsInUse[record.backup] == record.id { s.backupsInUse[record.backup] = nil }
            s.records[record.id] = nil
            s.live[record.id] = nil
            return Self.deactivate(&s)
        }
        for waiter in waiters { waiter.resume() }
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
    /// sees the job finished also sees them free. `saved`: whether the record is on disk.
    func finish(_ record: JobRecord, saved: Bool) {
        let waiters = state.withLock { s in
            s.records[record.id] = record
            if !saved { s.unsaved.insert(record.id) }
            s.live[record.id] = nil
            if s.busy[record.request.instance] == record.id {
                s.busy[record.request.instance] = nil
                s.instanceLocks.removeValue(forKey: record.request.instance)?.release()
            }
            if s.backupsInUse[record.backup] == record.id { s.backupsInUse[record.backup] = nil }
            return Self.deactivate(&s)
        }
        for waiter in waiters { waiter.resume() }
    }

    /// One job fewer; the waiters to resume (outside the lock) when none is left.
    private static func deactivate(_ s: inout State) -> [CheckedContinuation<Void, Never>] {
        s.active -= 1
        guard s.active == 0 else { return [] }
        var resumed: [CheckedContinuation<Void, Never>] = []
        for (number, waiter) in s.idleWaiters {
            guard case .waiting(let continuation) = waiter else { continue }
            s.idleWaiters[number] = nil
            resumed.append(continuation)
        }
        return resumed
    }

    /// Returns once no accepted job is left unfinished, or when the calling task is canceled.
    func waitUntilIdle() async {
        let number = state.withLock { s in
            defer { s.nextWaiter += 1 }
            s.idleWaiters[s.nextWaiter] = .pending
            return s.nextWaiter
        }
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let now = state.withLock { s in
                    if s.active == 0, case .pending = s.idleWaiters[number] {
                        s.idleWaiters[number] = nil
                        return true
                    }
                    if case .canceled = s.idleWaiters[number] {
                        s.idleWaiters[number] = nil
                        return true
                    }
                    s.idleWaiters[number] = .waiting(continuation)
                    return false
                }
                if now { continuation.resume() }
            }
        } onCancel: {
            let waiting: CheckedContinuation<Void, Never>? = state.withLock { s in
                switch s.idleWaiters[number] {
                case .waiting(let continuation):
                    s.idleWaiters[number] = nil
                    return continuation
                case .pending:
                    s.idleWaiters[number] = .canceled
                    return nil
                case .canceled, nil:
                    return nil
                }
            }
            waiting?.resume()
        }
    }

    /// True when no accepted job is left unfinished within `timeout`.
    func idle(within timeout: Duration) async -> Bool {
        if activeCount == 0 { return true }
        return await withTaskGroup(of: Bool.self) { group in
            group.addTask {
                await self.waitUntilIdle()
                return self.activeCount == 0
            }
            group.addTask {
                try? await Task.sleep(for: timeout)
                return false
            }
            let first = await group.next() ?? false
            group.cancelAll()
            return first
        }
    }

    /// Drops the oldest finished records beyond `keep`; returns their ids.
    func prune(keep: Int) -> [String] {
        state.withLock { s in
            let finished = s.records.values.filter { $0.state.isFinished && !s.unsaved.contains($0.id) }.sorted {
                ($0.created, $0.id) < ($1.created, $1.id)
            }
            let excess = finished.count - keep
            guard excess > 0 else { return [] }
            let ids = finished.prefix(excess).map(\.id)
            for id in ids { s.records[id] = nil }
            return ids
        }
    }

    // MARK: final records not on disk

    /// The finished records that could not be written, oldest first.
    func unsaved() -> [JobRecord] {
        state.withLock { s in
            s.unsaved.compactMap { s.records[$0] }.sorted { ($0.created, $0.id) < ($1.created, $1.id) }
        }
    }

    func markSaved(_ id: String) {
        _ = state.withLock { $0.unsaved.remove(id) }
    }

    /// True for the one caller that may start retrying; it calls `endRetrying()` when it stops.
    func startRetrying() -> Bool {
        state.withLock { s in
            if s.retrying { return false }
            s.retrying = true
            return true
        }
    }

    func endRetrying() {
        state.withLock { $0.retrying = false }
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
