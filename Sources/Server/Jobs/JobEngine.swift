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

    /// Removes the unattached segments of the record's keys that its (dead) process created.
    func recoverRestore(_ record: JobRecord) -> RestoreEvidence {
        guard let dead = record.pid else { return .nothingCreated }
        let keys = record.segments.compactMap { SegmentKey(hex: $0.key) }
        let removed = Engine.removeSegments(keys, createdBy: dead)
        let left = (try? SharedMemory.segments(instance: record.request.instance)) ?? []
        let stuck = left.filter { keys.contains($0.key) && $0.creatorPID == dead }
        return .removed(count: removed.count, stuck: stuck.map(\.key.hex))
    }
}
