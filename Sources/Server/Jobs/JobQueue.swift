import Logging
import ShmEngine

/// What a submission produced: an accepted job, or (dry run) the plan.
enum Submission: Sendable {
    case accepted(JobRecord)
    case backupPlan(BackupPlan)
    case restorePlan(RestorePlan)
}

/// The job queue: checks a submission against the config, reserves its instance (one job per instance) and
/// backup, plans it with the engine, persists it, and hands it to the runner. The rooms it wires:
/// `JobRegistry` (memory and reservations), `JobRunner` (threads and records on disk), `JobRecovery`
/// (start-up), `BackupSelection`; drain and shutdown are in JobQueue+Shutdown.swift.
final class JobQueue: Sendable {
    let config: Config
    let store: JobStore
    let registry: JobRegistry
    let runner: JobRunner
    let engine: any JobEngine
    let logger: Logger
    /// Freshness, evidence, space and retention (the warm-reboot hooks); nil runs the queue without them.
    let warm: WarmJobHooks?

    init(
        config: Config, metrics: Metrics, logger: Logger, engine: any JobEngine = LiveEngine(),
        launch: @escaping JobRunner.Launcher = JobRunner.thread, retryDelay: Duration = .milliseconds(500),
        warm: WarmJobHooks? = nil
    ) {
        self.config = config
        self.store = JobStore(stateDirectory: config.service.stateDir)
        let registry = JobRegistry()
        self.registry = registry
        self.engine = engine
        self.logger = logger
        self.warm = warm
        var runner = JobRunner(
            registry: registry, store: store, engine: engine, metrics: metrics, logger: logger,
            jobsKept: config.service.jobsKept, launch: launch, retryDelay: retryDelay)
        if let warm {
            runner.finished = { record in warm.jobEnded(record, registry: registry) }
        }
        self.runner = runner
    }

    /// Loads the records; a job left queued or running by a dead process is finished by `JobRecovery`.
    func recover() throws(FileSystemError) {
        try store.prepare()
        let (records, warnings) = store.loadAll()
        for warning in warnings { logger.warning("\(warning)") }
        let recovery = JobRecovery(config: config, engine: engine, logger: logger)
        var loaded: [JobRecord] = []
        for var record in records {
            if !record.state.isFinished {
                recovery.recover(&record)
                do {
                    try store.save(record)
                } catch {
                    logger.error(
                        "cannot save recovered job record", metadata: ["job": "\(record.id)", "error": "\(error)"])
                }
            }
            loaded.append(record)
        }
        registry.load(loaded)
        runner.metrics.seed(from: loaded)
        runner.prune()
    }

    // MARK: submissions

    /// What a submission holds until its job is accepted: the checked instance and namespaces, and the instance
    /// reserved for the new job id with its host-wide lock held (CLI jobs take the same lock).
    struct Reservation {
        let job: String
        let instance: InstanceConfig
        let namespaces: [String]
        /// The job is accepted: its runner releases the instance when it ends.
        private(set) var committed = false

        mutating func commit() { committed = true }
    }

    private func reserve(_ number: Int, _ requested: [String]?) throws(APIError) -> Reservation {
        let instance = try instanceConfig(number)
        let namespaces = try checkNamespaces(requested, instance)
        let job = JobID.make(now: Time.now())
        try registry.reserve(instance: instance.instance, job: job)
        let reservation = Reservation(job: job, instance: instance, namespaces: namespaces)
        do throws(EngineError) {
            if let lock = try engine.lockInstance(
                instance.instance, runtimeDirectory: config.service.runtimeDir, job: job)
            {
                registry.hold(lock, instance: instance.instance, job: job)
            }
        } catch {
            release(reservation)
            throw APIError(error)
        }
        return reservation
    }

    /// Gives the instance back unless the job was accepted.
    private func release(_ reservation: Reservation) {
        if !reservation.committed { registry.release(instance: reservation.instance.instance, job: reservation.job) }
    }

    func submitBackup(_ submission: BackupSubmission) async throws(APIError) -> Submission {
        var reservation = try reserve(submission.instance, submission.namespaces)
        defer { release(reservation) }
        let (id, instance, namespaces) = (reservation.job, reservation.instance, reservation.namespaces)
        warm?.willAttach(instance.instance)
        defer { if !reservation.committed { warm?.didDetach(instance.instance) } }
        let directory = Paths.join(instance.backupPath, id)
        let request = BackupRequest(
            instance: instance.instance, namespaces: namespaces, directory: directory,
            compress: submission.options.compress ?? instance.compress, verify: submission.verify ?? instance.verify,
            threads: submission.threads ?? instance.threads)
        let engine = self.engine
        let plan = try await Blocking.run { () throws(EngineError) -> BackupPlan in try engine.planBackup(request) }
            .mapError { APIError($0) }.get()
        try warm?.checkSpace(plan, compress: request.compress, instance: instance)
        if submission.dryRun { return .backupPlan(plan) }
        let record = JobRecord.queued(
            id, .backup,
            JobRequest(
                instance: instance.instance, namespaces: namespaces, compress: request.compress,
                verify: request.verify, threads: request.threads),
            backup: id, path: directory, segments: plan.segments, totalBytes: plan.totalBytes)
        try accept(record)
        reservation.commit()
        let warm = self.warm
        runner.start(record) { progress, token throws(EngineError) in
            try engine.backup(plan, request: request, progress: progress, cancellation: token)
            warm?.backupCompleted(id: id, instance: request.instance, directory: directory)
        }
        return .accepted(record)
    }

    func submitRestore(_ submission: RestoreSubmission) async throws(APIError) -> Submission {
        var reservation = try reserve(submission.instance, submission.namespaces)
        defer { release(reservation) }
        let (id, instance, namespaces) = (reservation.job, reservation.instance, reservation.namespaces)
        let registry = self.registry
        let backup = try BackupSelection.choose(submission.options.backup, instance: instance, namespaces: namespaces) {
            backup in
            guard let user = registry.user(ofBackup: backup), registry.job(user)?.type == .backup else { return nil }
            return user
        }
        let warnings =
            try warm?.checkRestore(backup: backup, namespaces: namespaces, force: submission.options.force) ?? []
        warm?.willAttach(instance.instance)
        defer { if !reservation.committed { warm?.didDetach(instance.instance) } }
        // Held from now on, so that a DELETE cannot remove it between the plan and the run.
        try registry.reserveBackup(backup, for: id)
        defer { if !reservation.committed { registry.releaseBackup(backup, for: id) } }
        let directory = Paths.join(instance.backupPath, backup)
        let request = RestoreRequest(
            instance: instance.instance, namespaces: namespaces, directory: directory,
            verify: submission.verify ?? instance.verify, threads: submission.threads ?? instance.threads)
        let engine = self.engine
        let plan = try await Blocking.run { () throws(EngineError) -> RestorePlan in try engine.planRestore(request) }
            .mapError { APIError($0) }.get()
        if submission.dryRun { return .restorePlan(plan) }
        for warning in plan.warnings { logger.warning("restore plan: \(warning)", metadata: ["job": "\(id)"]) }
        var record = JobRecord.queued(
            id, .restore,
            JobRequest(
                instance: instance.instance, namespaces: namespaces, compress: nil, verify: request.verify,
                threads: request.threads, force: submission.options.force ? true : nil),
            backup: backup, path: directory, segments: plan.segments, totalBytes: plan.totalBytes)
        record.warnings = warnings.isEmpty ? nil : warnings
        try accept(record)
        reservation.commit()
        var tracked = request
        let runner = self.runner
        // The segments exist and none is written yet: their record must be on disk before the restore goes on,
        // so that recovery after a crash finds exactly them.
        tracked.onCreated = { created throws(EngineError) in
            do {
                try runner.journal(id) { $0.createdSegments = created }
            } catch {
                throw EngineError(.io, "cannot write the job record: \(error)")
            }
        }
        runner.start(record) { [tracked] progress, token throws(EngineError) in
            try engine.restore(plan, request: tracked, progress: progress, cancellation: token)
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

    /// Admits the job, then writes its record: a job whose record cannot be written is refused. So is any
    /// job while an earlier job's final record is not on disk yet (it is written first when it can be).
    private func accept(_ record: JobRecord) throws(APIError) {
        guard runner.saveUnsaved() else {
            let ids = registry.unsaved().map(\.id).joined(separator: ", ")
            throw APIError(
                .io,
                "cannot write job records: the final record of job(s) \(ids) is not on disk yet; check the state dir")
        }
        try registry.admit(record)
        do {
            try store.save(record)
        } catch {
            registry.withdraw(record)
            throw APIError(.io, "cannot write the job record: \(error)")
        }
    }

    // MARK: queries and control

    /// The record with live progress merged in.
    func job(_ id: String) -> JobRecord? { registry.job(id) }

    var completions: JobCompletions { runner.completions }

    /// The records `matching`, newest first, at most `limit`.
    func jobs(limit: Int, matching: (JobRecord) -> Bool) -> [JobRecord] {
        registry.jobs(limit: limit, matching: matching)
    }

    func cancel(_ id: String) throws(APIError) -> JobRecord {
        let record = try registry.cancel(id)
        logger.info("job cancel requested", metadata: ["job": "\(id)"])
        return record
    }

    /// The job using a backup (reading or writing it), if any.
    func user(ofBackup id: String) -> String? { registry.user(ofBackup: id) }

    /// Marks a backup as used by `user` (a job id, or "deleting"); 409 when something already uses it.
    func reserveBackup(_ id: String, for user: String) throws(APIError) {
        try registry.reserveBackup(id, for: user)
    }

    func releaseBackup(_ id: String, for user: String) { registry.releaseBackup(id, for: user) }

    /// Finished jobs whose final record is not on disk yet.
    var unsavedJobs: [String] { registry.unsaved().map(\.id) }
}
