import Foundation
import Logging
import ShmEngine

/// Runs accepted jobs, each on a thread of its own, and persists their records when they start and when they
/// end (then drops the oldest finished records beyond `jobs-kept`).
struct JobRunner: Sendable {
    /// The engine work of one job.
    typealias Body = @Sendable (JobProgress, CancellationToken) throws(EngineError) -> Void
    /// Starts `body` on a new thread named `name`; tests substitute their own to control when a job starts.
    typealias Launcher = @Sendable (_ name: String, _ body: @escaping @Sendable () -> Void) -> Void

    let registry: JobRegistry
    let store: JobStore
    let engine: any JobEngine
    let metrics: Metrics
    /// Long-poll waiters (`GET /v1/jobs/{id}?wait=`), resumed when their job ends.
    let completions = JobCompletions()
    let logger: Logger
    let jobsKept: Int
    var launch: Launcher = JobRunner.thread
    /// First wait before writing a final record again that could not be written; it doubles up to 30 s.
    var retryDelay: Duration = .milliseconds(500)
    /// Called on the job's thread once its final record is published (the warm-reboot hooks).
    var finished: (@Sendable (JobRecord) -> Void)? = nil

    /// A thread with a 1 MiB stack: the engine's work blocks, so never on the cooperative pool.
    static let thread: Launcher = { name, body in
        let thread = Thread(block: body)
        thread.name = name
        thread.stackSize = 1 << 20
        thread.start()
    }

    /// Starts an admitted job.
    func start(_ record: JobRecord, _ body: @escaping Body) {
        metrics.jobStarted(type: record.type.rawValue)
        let id = record.id
        launch("asmtd-job-\(id)") { run(id, body) }
    }

    private func run(_ id: String, _ body: Body) {
        let begin = Time.monotonic()
        guard let (started, live, startSaved) = markRunning(id) else { return }
        metrics.jobRunning(
            id: id, type: started.type.rawValue, instance: started.request.instance, progress: live.progress)
        logger.info(
            "job started",
            metadata: [
                "job": "\(id)", "type": "\(started.type.rawValue)", "instance": .typed(started.request.instance),
                "namespaces": "\(started.request.namespaces.joined(separator: ","))", "backup": "\(started.backup)",
            ])
        var outcome: (JobState, JobErrorRecord?) = (.success, nil)
        if live.token.isCancelled {
            outcome = (
                .canceled,
                JobErrorRecord(code: APIError.Code.canceled.rawValue, message: "canceled before it started")
            )
        } else if !startSaved {
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
        let (final, finalSaved) = finish(id, live: live, state: outcome.0, error: outcome.1, begin: begin)
        finished?(final)
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
        if !finalSaved {
            let runner = self
            JobRunner.thread("asmtd-record-retry") { runner.retryUnsaved() }
        }
    }

    /// Records the start (with this process's pid, which crash recovery needs) on disk first, then
    /// publishes it: a client that sees `running` knows the record on disk says so too.
    private func markRunning(_ id: String) -> (record: JobRecord, live: JobRegistry.Live, saved: Bool)? {
        guard let admitted = registry.admitted(id) else { return nil }
        var record = admitted.record
        let live = admitted.live
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
        registry.update(record)
        return (record, live, saved)
    }

    /// Persists the final record, counts it, then publishes it and frees the instance in one step, so a
    /// client that sees the job finished also sees the instance free and the metrics updated.
    private func finish(
        _ id: String, live: JobRegistry.Live, state newState: JobState, error: JobErrorRecord?, begin: Double
    ) -> (record: JobRecord, saved: Bool) {
        var record = registry.admitted(id)!.record
        record.state = newState
        record.error = error
        record.finished = Time.now()
        record.apply(live.progress.snapshot())
        if newState != .success {
            for index in record.segments.indices where record.segments[index].state != .done {
                record.segments[index].state = newState == .canceled ? .canceled : .failed
            }
        }
        // Not written, the record on disk still says running, and the next start would take the job for
        // interrupted: it is kept in memory and written again (`retryUnsaved`), and recovery decides on the
        // engine's evidence, never on the record alone.
        var saved = true
        do {
            try store.save(record)
        } catch {
            saved = false
            logger.error(
                "cannot save the final job record; kept in memory and retried",
                metadata: ["job": "\(id)", "error": "\(error)"])
        }
        metrics.jobFinished(
            id: id, type: record.type.rawValue, outcome: record.state.rawValue, instance: record.request.instance,
            seconds: Time.monotonic() - begin, bytes: record.progress.bytesDone, now: Time.now())
        registry.finish(record, saved: saved)
        completions.finished(id)
        return (record, saved)
    }

    /// Records a fact about a running job on disk before the job goes on (for example the segments a restore
    /// created, before it writes a byte into them), then publishes it. A throw means the fact is not on disk:
    /// the caller must not go on (a crash would leave recovery without it).
    func journal(_ id: String, _ change: (inout JobRecord) -> Void) throws(FileSystemError) {
        guard var record = registry.admitted(id)?.record else { return }
        change(&record)
        try store.save(record)
        registry.update(record)
    }

    /// Writes the final records that could not be written when their jobs ended; true when none is left.
    @discardableResult
    func saveUnsaved() -> Bool {
        var left = false
        for record in registry.unsaved() {
            do {
                try store.save(record)
                registry.markSaved(record.id)
                logger.info("final job record written after all", metadata: ["job": "\(record.id)"])
            } catch {
                left = true
            }
        }
        return !left
    }

    /// On a thread of its own: writes the unsaved records again, waiting longer each time (up to 30 s), until
    /// none is left or the service shuts down (its drain makes the last attempt). One such thread at a time.
    private func retryUnsaved() {
        guard registry.startRetrying() else { return }
        var delay = retryDelay
        while true {
            let (seconds, attoseconds) = delay.components
            Thread.sleep(forTimeInterval: Double(seconds) + Double(attoseconds) / 1e18)
            if saveUnsaved() || !registry.isAccepting {
                registry.endRetrying()
                // A record left unsaved meanwhile found this thread still retrying: take it up again.
                guard registry.isAccepting, !registry.unsaved().isEmpty, registry.startRetrying() else { return }
                delay = retryDelay
            } else {
                delay = min(delay * 2, .seconds(30))
            }
        }
    }

    /// The engine removes the files it wrote; the directory it created goes too, unless it is complete (or its
    /// manifest cannot be read, which proves nothing).
    private func removeIncompleteBackup(_ path: String) {
        guard FileSystem.kind(path) == .directory, engine.backupEvidence(directory: path) == .incomplete else {
            return
        }
        do {
            try FileSystem.removeTree(path)
        } catch {
            logger.error(
                "cannot remove incomplete backup directory", metadata: ["path": "\(path)", "error": "\(error)"])
        }
    }

    /// Drops the oldest finished records beyond `jobs-kept`, in memory and on disk (never an unsaved one).
    func prune() {
        for id in registry.prune(keep: jobsKept) { store.delete(id) }
    }
}
