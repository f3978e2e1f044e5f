import ShmEngine

/// What the job queue needs of the engine: plans, runs, and the evidence start-up recovery decides on.
///
/// `LiveEngine` is the production conformer (host shared memory and files); tests plug in a fake so that the
/// queue's rules run without root or segments. Every call may block: the queue makes them off the
/// cooperative pool.
protocol JobEngine: Sendable {
    func planBackup(_ request: BackupRequest) throws(EngineError) -> BackupPlan
    func backup(
        _ plan: BackupPlan, request: BackupRequest, progress: JobProgress, cancellation: CancellationToken
    ) throws(EngineError)
    func planRestore(_ request: RestoreRequest) throws(EngineError) -> RestorePlan
    func restore(
        _ plan: RestorePlan, request: RestoreRequest, progress: JobProgress, cancellation: CancellationToken
    ) throws(EngineError)

    /// The host-wide lock of an instance (`InstanceLock`), held by the queue from a job's acceptance to its end so
    /// that CLI jobs and the service exclude each other; `.instanceBusy` when another process holds it.
    func lockInstance(_ instance: Int, runtimeDirectory: String, job: String) throws(EngineError) -> InstanceLock?

    /// Whether `directory` holds a complete backup (its manifest is there and reads).
    func backupEvidence(directory: String) -> BackupEvidence
    /// Start-up recovery of a restore whose record was left unfinished: what is left of the segments the job
    /// created, after removing those that are not committed.
    func recoverRestore(_ record: JobRecord) -> RestoreEvidence
}

/// What a backup directory says of the backup written into it.
enum BackupEvidence: Sendable, Equatable {
    /// The manifest is there and reads: the backup is complete.
    case complete
    /// No manifest: unfinished, its files may go.
    case incomplete
    /// The manifest cannot be read (I/O error, invalid): nothing may be concluded, nothing removed.
    case unreadable(String)
}

/// What the engine found of an unfinished restore at start-up.
enum RestoreEvidence: Sendable, Equatable {
    /// Every segment the job created is there, committed and matching the backup: the restore finished.
    case committed
    /// The job's segments were removed (`removed` of them); `stuck` (keys) are attached and could not be.
    case removed(count: Int, stuck: [String])
    /// The record names no segment the job created: it had not started creating them.
    case nothingCreated
    /// The base is committed but the segments cannot be shown to be the backup's: left in place, never removed.
    case kept(reason: String)
}

extension JobEngine {
    /// Fakes take no host lock.
    func lockInstance(_ instance: Int, runtimeDirectory: String, job: String) throws(EngineError) -> InstanceLock? {
        nil
    }
}

/// The engine on this host's shared memory and file systems.
struct LiveEngine: JobEngine {
    func lockInstance(_ instance: Int, runtimeDirectory: String, job: String) throws(EngineError) -> InstanceLock? {
        try InstanceLock.acquire(
            instance: instance, runtimeDirectory: runtimeDirectory, holder: "asmtd service job \(job)")
    }

    func planBackup(_ request: BackupRequest) throws(EngineError) -> BackupPlan {
        try Engine.planBackup(request)
    }

    func backup(
        _ plan: BackupPlan, request: BackupRequest, progress: JobProgress, cancellation: CancellationToken
    ) throws(EngineError) {
        _ = try Engine.backup(plan, request: request, progress: progress, cancellation: cancellation)
    }

    func planRestore(_ request: RestoreRequest) throws(EngineError) -> RestorePlan {
        try Engine.planRestore(request)
    }

    func restore(
        _ plan: RestorePlan, request: RestoreRequest, progress: JobProgress, cancellation: CancellationToken
    ) throws(EngineError) {
        try Engine.restore(plan, request: request, progress: progress, cancellation: cancellation)
    }

    func backupEvidence(directory: String) -> BackupEvidence {
        do {
            return try BackupManifest.load(directory: directory) == nil ? .incomplete : .complete
        } catch {
            return .unreadable(error.message)
        }
    }

    /// Settles the segments the job recorded creating (key and shmid, no pids: this works across PID
    /// namespaces). A job killed before its record named them can only have left uncommitted segments with its
    /// planned keys: the unattached ones are removed.
    func recoverRestore(_ record: JobRecord) -> RestoreEvidence {
        guard let created = record.createdSegments else {
            let planned = record.segments.compactMap { SegmentKey(hex: $0.key) }
            let removed = Engine.removeUncommitted(keys: planned)
            return removed.isEmpty ? .nothingCreated : .removed(count: removed.count, stuck: [])
        }
        switch Engine.recoverRestore(created: created, directory: record.path) {
        case .committed: return .committed
        case .removed(let keys, let stuck): return .removed(count: keys.count, stuck: stuck.map(\.hex))
        case .kept(let reason): return .kept(reason: reason)
        }
    }
}
