import Glibc

/// Runs a restore plan: creates and reports every segment, has the workers fill them, sets owner and mode, checks
/// that nobody else attached them, and commits (`RestoreCommit`).
enum RestoreRunner {
    static let chunkSize = 16 << 20

    /// Creates every segment (bases first, all 0600, the bases' first 8 bytes zero), reports them, fills them,
    /// sets owner and mode, checks that nobody else attached them, and commits each namespace by writing its base's
    /// first 8 bytes last (see README, "How a restore commits"). On failure removes every segment it created.
    static func run(
        _ plan: RestorePlan, request: RestoreRequest, progress: JobProgress, cancellation: CancellationToken
    ) throws(EngineError) {
        progress.start(plan.segments.map { ($0.key, $0.size) })
        let files = plan.segments.enumerated().map {
            RestoreFileState(index: $0.offset, segment: $0.element, directory: plan.directory, chunkSize: chunkSize)
        }
        let creation = files.filter { $0.segment.kind == .base } + files.filter { $0.segment.kind != .base }
        defer { RestoreRegistry.unregister(files.map(\.shmid)) }
        do throws(EngineError) {
            if cancellation.isCancelled { throw EngineError(.canceled, "the job was cancelled") }
            for file in files { try file.check() }
            var created: [CreatedSegment] = []
            for file in creation {
                file.shmid = try SharedMemory.create(file.segment.key, size: file.segment.size)
                RestoreRegistry.register(file.shmid, namespace: file.segment.namespace)
                let ctime = SharedMemory.stat(shmid: file.shmid)?.ctime ?? 0
                created.append(CreatedSegment(key: file.segment.key.hex, shmid: file.shmid, ctime: ctime))
            }
            try request.onCreated?(created)
            try fill(files, request: request, progress: progress, cancellation: cancellation)
            request.afterFill?()
            if cancellation.isCancelled { throw EngineError(.canceled, "the job was cancelled") }
            for file in files {
                try SharedMemory.setOwner(
                    shmid: file.shmid, key: file.segment.key, uid: file.segment.uid, gid: file.segment.gid,
                    mode: file.segment.mode)
            }
            for file in files { try RestoreCommit.checkUntouched(file) }
            if cancellation.isCancelled { throw EngineError(.canceled, "the job was cancelled") }
            for file in files where file.segment.kind == .base { try RestoreCommit.commit(file) }
        } catch {
            for file in files {
                file.release()
                if file.shmid >= 0 {
                    SharedMemory.remove(shmid: file.shmid)
                    progress.set(file.index, .failed)
                }
            }
            throw error
        }
    }

    /// Fills every segment on the workers of a pool.
    static func fill(
        _ files: [RestoreFileState], request: RestoreRequest, progress: JobProgress, cancellation: CancellationToken
    ) throws(EngineError) {
        // Sequential compressed files first (largest first), then the chunks of the others, round-robin over a
        // window of a few files per thread: a file is open only while its chunks are being copied.
        let sequential = files.filter(\.sequential).sorted { $0.segment.size > $1.segment.size }
        let chunked = files.filter { !$0.sequential }
        let threads = WorkPool.threadCount(request.threads)
        let order = ChunkOrder.windowed(chunked.map(\.chunkCount), window: 2 * threads)
        let items = sequential.map { ($0, 0) } + order.map { (chunked[$0.file], $0.chunk) }
        let pool = WorkPool(items: items.count, cancellation: cancellation)
        let verify = request.verify
        let access = request.segmentAccess
        try pool.run(threads: request.threads) { () throws(EngineError) in
            let worker = RestoreWorker(verify: verify, access: access, pool: pool, progress: progress)
            return { (item: Int) throws(EngineError) in
                let (file, chunk) = items[item]
                try worker.restore(file, chunk: chunk)
            }
        }
    }
}
