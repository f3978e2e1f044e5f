import Glibc

/// Runs a backup plan: checks and registers every segment, has the workers copy (and verify) every file, checks
/// that no segment was used meanwhile, and publishes the files with their manifest.
enum BackupRunner {
    static let chunkSize = 8 << 20

    /// A work item: one chunk of a file, or the whole file in order (`chunk` nil), to copy; one chunk to verify.
    enum Item {
        case copy(BackupFileState, chunk: Int?)
        case verify(BackupFileState, chunk: Int)
    }

    /// Runs a plan whose directory exists and is locked (`DirectoryLock.exclusive`) by the caller; publishes it
    /// (`BackupPublisher`) or, on failure or cancellation, removes every file it wrote.
    static func run(
        _ plan: BackupPlan, request: BackupRequest, progress: JobProgress, cancellation: CancellationToken,
        createdDirectory: Bool
    ) throws(EngineError) -> BackupManifest {
        let directory = plan.directory
        progress.start(plan.segments.map { ($0.key, $0.size) })
        let files = plan.segments.enumerated().map {
            BackupFileState(index: $0.offset, segment: $0.element, directory: directory, chunkSize: chunkSize)
        }
        let publisher = BackupPublisher(directory: directory, createdDirectory: createdDirectory)
        let listing = ListingCache.Registration()
        defer { listing.end() }
        do throws(EngineError) {
            if cancellation.isCancelled { throw EngineError(.canceled, "the job was cancelled") }
            for file in files { try file.stamp(listing: listing) }
            try copy(files, request: request, progress: progress, cancellation: cancellation)
            if cancellation.isCancelled { throw EngineError(.canceled, "the job was cancelled") }
            for file in files { try file.checkUntouched() }
            let manifest = BackupManifest(
                formatVersion: BackupManifest.currentFormatVersion, toolVersion: Engine.version,
                host: BackupManifest.hostName(), instance: plan.instance, created: rfc3339(),
                namespaces: plan.namespaces, segments: files.map(\.manifestEntry))
            try publisher.publish(manifest, files: files, cancellation: cancellation)
            return manifest
        } catch {
            for file in files where file.created { progress.set(file.index, .failed) }
            for file in files { file.release() }
            publisher.withdraw(files)
            throw error
        }
    }

    /// Copies every chunk, then (with verify) reads each file back once it is complete; every file is synced and
    /// has the size written when this returns.
    static func copy(
        _ files: [BackupFileState], request: BackupRequest, progress: JobProgress, cancellation: CancellationToken
    ) throws(EngineError) {
        // A compressed file is deflated chunk by chunk on every worker (CPU-bound). A plain file is one item, its
        // chunks written in order by one worker: workers writing into the same file contend on its inode and
        // scatter its writeback (scripts/bench-engine: ~400 MB/s this way, against ~650-950 for one writer per file).
        let copyItems: [Item] = files.flatMap { file in
            file.segment.compressed ? (0..<file.chunkCount).map { .copy(file, chunk: $0) } : [.copy(file, chunk: nil)]
        }
        let verifyItems: [Item] =
            request.verify ? files.flatMap { file in (0..<file.chunkCount).map { .verify(file, chunk: $0) } } : []
        let items = copyItems + verifyItems
        let pool = WorkPool(items: items.count, cancellation: cancellation)
        let syncer = FileSyncer()
        defer { syncer.wait() }
        let verify = request.verify
        if verify {
            for file in files { file.pendingSteps += file.chunkCount }
        }
        let access = request.segmentAccess
        try pool.run(threads: request.threads) { () throws(EngineError) in
            let worker = BackupWorker(
                pool: pool, syncer: syncer, progress: progress, access: access, verifying: verify)
            return { (item: Int) throws(EngineError) in
                switch items[item] {
                case .copy(let file, let chunk): try worker.copy(file, chunk: chunk)
                case .verify(let file, let chunk): try worker.verify(file, chunk: chunk)
                }
            }
        }
        syncer.wait()
        if let error = syncer.error { throw error }
        for file in files {
            var st = stat()
            guard lstat(file.stagingPath, &st) == 0 else {
                throw EngineError(.io, "cannot stat \(file.stagingPath): \(errnoText())")
            }
            guard (st.st_mode & S_IFMT) == S_IFREG, UInt64(st.st_size) == file.fileSize else {
                throw EngineError(.verifyFailed, "\(file.stagingPath) does not have the size written")
            }
        }
    }
}
