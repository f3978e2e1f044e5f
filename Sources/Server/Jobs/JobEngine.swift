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

    /// Whether `directory` holds a complete backup (its manifest is there and reads).
    func isCompleteBackup(directory: String) -> Bool
    /// Start-up recovery of a restore whose record was left unfinished: what is left of the segments the job
    /// created, after removing those that are not committed.
    func recoverRestore(_ record: JobRecord) -> RestoreEvidence
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

/// The engine on this host's shared memory and file systems.
struct LiveEngine: JobEngine {
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

    func isCompleteBackup(directory: String) -> Bool {
        (try? BackupManifest.load(directory: directory)) != nil
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
