import Glibc

/// Backup and restore of Aerospike shared-memory segments, compatible with asmt's files.
///
/// Every function here blocks the calling thread (file and shm I/O, a bounded pool of worker threads):
/// call them off Swift's cooperative thread pool. They are safe to call from several threads, but two jobs
/// on the same instance and namespace would refuse or race each other, as they would with asmt.
public enum Engine {
    /// Tool version written in manifests, reported by /version.
    public static let version = "0.1.0"

    /// Name of the compression codec in use ("isa-l" or "zlib").
    package static var codecName: String { Codec.name }

    /// Pre-flight: reads live segments and the directory, writes nothing. All of asmt's sanity rules.
    public static func planBackup(_ request: BackupRequest) throws(EngineError) -> BackupPlan {
        _ = try RequestValidation.check(
            instance: request.instance, namespaces: request.namespaces, directory: request.directory,
            threads: request.threads)
        var files: [String] = []
        var manifestPresent = false
        switch try FileIO.kind(request.directory) {
        case .directory:
            files = try BackupStaging.namesAfterCleanup(directory: request.directory)
            manifestPresent = files.contains(BackupManifest.fileName)
        case .other:
            throw EngineError(.io, "\(request.directory) exists and is not a directory")
        case .missing:
            let parent = FileIO.parent(of: request.directory)
            guard try FileIO.kind(parent) == .directory else {
                throw EngineError(.io, "parent directory \(parent) of \(request.directory) does not exist")
            }
        }
        let segments = try SharedMemory.scan(instance: request.instance)
        return try BackupPlanner.plan(
            request, segments: segments, existingFiles: files, manifestPresent: manifestPresent)
    }

    /// Runs a plan. Holds the directory's lock (`DirectoryLock.exclusive`, else `.backupBusy`) for the whole run,
    /// first removes the leftovers of an interrupted backup there (`removeStaging`), then writes every file under
    /// a staging name and publishes them only once all are written, synced, verified and every segment is found
    /// unattached and unchanged since its copy (else `.serverRunning`): the base files last, then the manifest,
    /// atomically. On failure or cancellation removes every file it wrote (all kinds) and throws.
    public static func backup(
        _ plan: BackupPlan, request: BackupRequest, progress: JobProgress, cancellation: CancellationToken
    ) throws(EngineError) -> BackupManifest {
        let directory = request.directory
        _ = try RequestValidation.check(
            instance: request.instance, namespaces: request.namespaces, directory: directory,
            threads: request.threads)
        var createdDirectory = false
        switch try FileIO.kind(directory) {
        case .directory: break
        case .other: throw EngineError(.io, "\(directory) is not a directory")
        case .missing:
            guard mkdir(directory, 0o700) == 0 else {
                throw EngineError(.io, "cannot create directory \(directory): \(errnoText())")
            }
            createdDirectory = true
        }
        // Only a holder of the lock removes the directory it created: a concurrent backup may already use it.
        let lock = try DirectoryLock.exclusive(directory)
        defer { lock.release() }
        do throws(EngineError) {
            _ = try BackupStaging.clean(directory: directory)
            // Re-plan: the segments must not have changed since the caller's plan.
            let fresh = try planBackup(request)
            guard fresh.directory == plan.directory, same(fresh.segments, plan.segments) else {
                throw EngineError(.invalidSegments, "the segments changed since the backup was planned; plan again")
            }
            return try BackupRunner.run(
                fresh, request: request, progress: progress, cancellation: cancellation,
                createdDirectory: createdDirectory)
        } catch {
            if createdDirectory { rmdir(directory) }
            throw error
        }
    }

    /// Removes what an interrupted backup left in `directory` (staging files, and the files of an unfinished
    /// publication, base files first); completes a publication that lacked only the manifest's rename. Takes the
    /// directory's lock (`.backupBusy` while a backup or a restore holds it). Returns the names removed.
    package static func removeStaging(directory: String) throws(EngineError) -> [String] {
        let lock = try DirectoryLock.exclusive(directory)
        defer { lock.release() }
        return try BackupStaging.clean(directory: directory)
    }

    public static func planRestore(_ request: RestoreRequest) throws(EngineError) -> RestorePlan {
        _ = try RequestValidation.check(
            instance: request.instance, namespaces: request.namespaces, directory: request.directory,
            threads: request.threads)
        guard try FileIO.kind(request.directory) == .directory else {
            throw EngineError(.invalidBackup, "backup directory \(request.directory) does not exist")
        }
        let manifest = try BackupManifest.load(directory: request.directory)
        let files = try BackupScanner.scan(directory: request.directory, instance: request.instance)
        let live = try SharedMemory.segments(instance: request.instance)
        return try RestorePlanner.plan(request, files: files, live: live, manifest: manifest)
    }

    /// On failure or cancellation removes every segment it created and throws.
    public static func restore(
        _ plan: RestorePlan, request: RestoreRequest, progress: JobProgress, cancellation: CancellationToken
    ) throws(EngineError) {
        // Read under the directory's shared lock: no backup writes into it or cleans it meanwhile (`.backupBusy`).
        let directoryLock = try DirectoryLock.shared(request.directory)
        defer { directoryLock.release() }
        let fresh = try planRestore(request)
        guard fresh.directory == plan.directory, same(fresh.segments, plan.segments) else {
            throw EngineError(.invalidBackup, "the backup files changed since the restore was planned; plan again")
        }
        try RestoreRunner.run(fresh, request: request, progress: progress, cancellation: cancellation)
    }

    static func same(_ a: [PlannedSegment], _ b: [PlannedSegment]) -> Bool {
        a.count == b.count
            && zip(a, b).allSatisfy {
                $0.key == $1.key && $0.size == $1.size && $0.file == $1.file && $0.compressed == $1.compressed
                    && $0.fileSize == $1.fileSize
            }
    }
}
