import CISAL
import Dispatch
import Foundation
import Glibc

/// One file being written by a backup. Mutable fields are guarded by `lock`.
///
/// The file is written under its staging name (`<key>.dat.partial`, `<key>.dat.gz.partial`) and gets its real name
/// only when the whole backup is published (`BackupPublisher`). It is created and its segment attached when the
/// first worker reaches it, and both are released when its copy is complete: at most a few files per worker are
/// open at any time, whatever the number of segments.
final class BackupFileState: FileAndSegment, @unchecked Sendable {
    let index: Int
    let segment: PlannedSegment
    /// The file's real name in the directory, and the name it is written under until the backup is published.
    let path: String
    let stagingPath: String
    let chunkSize: Int
    let chunkCount: Int
    let lock = NSCondition()
    var fd: Int32 = -1
    var shmid: Int32 = -1
    var segmentFD: Int32 = -1
    /// The segment as found when the run started (shmid, change time); checked again before publishing.
    var planned = SegmentStamp()
    /// The segment right after our own attach, then right after our own detach.
    var attached = SegmentStamp()
    var detached: SegmentStamp?
    /// The staging file was created (and so is ours to remove).
    var created = false
    var opened = false
    var attachment: Attachment?
    var nextToPlace = 0
    var writeOffset: UInt64
    var remaining: Int
    var chunkCRC: [UInt32]
    var chunkRange: [(offset: UInt64, length: Int)]
    var crc: UInt32 = 0
    var fileSize: UInt64 = 0
    var started = ""
    var finished = ""
    /// All data, header and trailer written (not necessarily synced).
    var written = false
    /// fsync plus verify chunks still to do before the segment counts as done.
    var pendingSteps = 1

    /// Counts one finished step; marks the segment done in `progress` after the last one.
    func stepDone(_ progress: JobProgress) {
        lock.lock()
        pendingSteps -= 1
        let done = pendingSteps == 0
        lock.unlock()
        if done { progress.set(index, .done) }
    }

    init(index: Int, segment: PlannedSegment, directory: String, chunkSize: Int) {
        self.index = index
        self.segment = segment
        path = directory + "/" + segment.file
        stagingPath = path + BackupStaging.suffix
        self.chunkSize = chunkSize
        chunkCount = Int((segment.size + UInt64(chunkSize) - 1) / UInt64(chunkSize))
        writeOffset = segment.compressed ? UInt64(ASMTHeader.size + GzipFraming.header.count) : 0
        remaining = chunkCount
        chunkCRC = Array(repeating: 0, count: chunkCount)
        chunkRange = Array(repeating: (0, 0), count: chunkCount)
    }

    func chunkLength(_ chunk: Int) -> Int { min(chunkSize, Int(segment.size) - chunk * chunkSize) }

    /// Segment bytes of chunk `chunk` (while the segment is attached).
    func input(_ chunk: Int) -> UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(start: attachment!.address + chunk * chunkSize, count: chunkLength(chunk))
    }

    func combinedCRC() -> UInt32 { CRC32.combine(chunkCRC, chunkSize: chunkSize, totalLength: segment.size) }

    /// Attaches the segment and creates the staging file, once, by the first worker that reaches this file.
    func open(access: SegmentAccess) throws(EngineError) {
        lock.lock()
        defer { lock.unlock() }
        guard !opened else {
            if fd < 0 { throw EngineError(.system, "\(stagingPath) could not be opened") }
            return
        }
        opened = true
        try BackupRunner.prepare(self, access: access)
    }
}

/// What the kernel says about a segment's attachments: who attached or detached last, and when.
struct SegmentStamp: Equatable {
    var shmid: Int32 = -1
    var attachCount: UInt64 = 0
    var changed: Int64 = 0
    var lastPID: Int32 = 0
    var attachedAt: Int64 = 0
    var detachedAt: Int64 = 0

    init() {}

    init(_ info: cisal_shm_info) {
        shmid = info.shmid
        attachCount = info.nattch
        changed = info.ctime
        lastPID = info.lpid
        attachedAt = info.atime
        detachedAt = info.dtime
    }

    static func read(_ key: SegmentKey) -> SegmentStamp? {
        guard let shmid = SharedMemory.lookup(key), let info = SharedMemory.stat(shmid: shmid) else { return nil }
        return SegmentStamp(info)
    }
}

enum BackupRunner {
    static let chunkSize = 8 << 20

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
            for file in files { try stamp(file, listing: listing) }
            try copy(files, request: request, progress: progress, cancellation: cancellation)
            if cancellation.isCancelled { throw EngineError(.canceled, "the job was cancelled") }
            for file in files { try checkUntouched(file) }
            let manifest = BackupManifest(
                formatVersion: BackupManifest.currentFormatVersion, toolVersion: Engine.version, host: hostName(),
                instance: plan.instance, created: rfc3339(), namespaces: plan.namespaces,
                segments: files.map { file in
                    ManifestSegment(
                        key: file.segment.key, kind: file.segment.kind, namespace: file.segment.namespace,
                        file: file.segment.file, size: file.segment.size, compressed: file.segment.compressed,
                        fileSize: file.fileSize, crc32: file.crc, uid: file.segment.uid, gid: file.segment.gid,
                        mode: file.segment.mode, started: file.started, finished: file.finished,
                        chunks: file.segment.compressed
                            ? DeflateChunks(
                                size: file.chunkSize, lengths: file.chunkRange.map(\.length), crc32: file.chunkCRC)
                            : nil)
                })
            try publisher.publish(manifest, files: files, cancellation: cancellation)
            return manifest
        } catch {
            for file in files where file.created { progress.set(file.index, .failed) }
            for file in files { file.release() }
            publisher.withdraw(files)
            throw error
        }
    }

    /// Re-checks a segment before anything is written, and records what the publish check compares with.
    static func stamp(_ file: BackupFileState, listing: ListingCache.Registration) throws(EngineError) {
        let segment = file.segment
        guard let shmid = SharedMemory.lookup(segment.key), let info = SharedMemory.stat(shmid: shmid) else {
            throw EngineError(.invalidSegments, "segment \(segment.key.hex) disappeared")
        }
        guard info.size == segment.size else {
            throw EngineError(.invalidSegments, "segment \(segment.key.hex) changed size since planning")
        }
        guard SharedMemory.settledAttachCount(shmid: shmid, atMost: 0) == 0 else {
            throw EngineError(.serverRunning, "segment \(segment.key.hex) is attached: the server is running")
        }
        // This process's own segment listings read the cached prefix instead of attaching (an attach would look
        // like a server's to the publish check).
        try listing.add(shmid: shmid, key: segment.key, size: info.size)
        guard let settled = SharedMemory.stat(shmid: shmid) else {
            throw EngineError(.invalidSegments, "segment \(segment.key.hex) disappeared")
        }
        file.shmid = shmid
        file.planned = SegmentStamp(settled)
    }

    /// Attaches the segment read-only after re-checking it, and creates the staging file exclusively.
    /// Called under `file.lock` by `BackupFileState.open`.
    static func prepare(_ file: BackupFileState, access: SegmentAccess) throws(EngineError) {
        let segment = file.segment
        guard let info = SharedMemory.stat(shmid: file.shmid), SegmentStamp(info).changed == file.planned.changed,
            info.key == segment.key.rawValue
        else {
            throw EngineError(.invalidSegments, "segment \(segment.key.hex) changed since the backup started")
        }
        guard SharedMemory.settledAttachCount(shmid: file.shmid, atMost: 0) == 0 else {
            throw EngineError(.serverRunning, "segment \(segment.key.hex) is attached: the server is running")
        }
        try file.attach(shmid: file.shmid, readOnly: true, access: access)
        guard let after = SharedMemory.stat(shmid: file.shmid) else {
            throw EngineError(.invalidSegments, "segment \(segment.key.hex) disappeared")
        }
        file.attached = SegmentStamp(after)
        let fd = Glibc.open(file.stagingPath, O_CREAT | O_EXCL | O_RDWR | O_NOFOLLOW | O_CLOEXEC, 0o600)
        guard fd >= 0 else {
            let code = errno
            if code == EEXIST { throw EngineError(.filesExist, "file \(file.stagingPath) already exists") }
            throw EngineError(.io, "cannot create \(file.stagingPath): \(errnoText(code))")
        }
        file.fd = fd
        file.created = true
        if !segment.compressed {
            let rc = posix_fallocate(fd, 0, off_t(segment.size))
            if rc != 0 && rc != EOPNOTSUPP && rc != ENOSYS && rc != EINVAL {
                throw EngineError(
                    .io, "cannot allocate \(segment.size) bytes for \(file.stagingPath): \(errnoText(rc))")
            }
        }
    }

    /// Copies every chunk, then (with verify) reads each file back once it is complete. fsync runs on a
    /// separate queue so that the workers keep compressing while the disk catches up.
    static func copy(
        _ files: [BackupFileState], request: BackupRequest, progress: JobProgress, cancellation: CancellationToken
    ) throws(EngineError) {
        // A compressed file is deflated chunk by chunk on every worker (CPU-bound). A plain file is one item, its
        // chunks written in order by one worker: workers writing into the same file contend on its inode and
        // scatter its writeback (scripts/bench-engine: ~400 MB/s this way, against ~650-950 for one writer per file).
        let copyItems = files.flatMap { file in
            file.segment.compressed ? (0..<file.chunkCount).map { (file, $0, false) } : [(file, -1, false)]
        }
        let verifyItems = request.verify ? files.flatMap { file in (0..<file.chunkCount).map { (file, $0, true) } } : []
        let items = copyItems + verifyItems
        let pool = WorkPool(items: items.count, cancellation: cancellation)
        let syncer = Syncer()
        defer { syncer.wait() }
        let verify = request.verify
        if verify {
            for file in files { file.pendingSteps += file.chunkCount }
        }
        let access = request.segmentAccess
        try pool.run(threads: request.threads) { () throws(EngineError) in
            let worker = BackupWorker(progress: progress, verifying: verify)
            return { (item: Int) throws(EngineError) in
                let (file, chunk, verifying) = items[item]
                if verifying {
                    try worker.verify(file, chunk: chunk, pool: pool)
                    return
                }
                try file.open(access: access)
                for chunk in chunk < 0 ? 0..<file.chunkCount : chunk..<chunk + 1 {
                    if pool.shouldStop { return }
                    if try worker.copy(file, chunk: chunk, pool: pool) {
                        try finish(file)
                        syncer.sync(file, pool: pool, progress: progress)
                    }
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

    /// Header and trailer, owner and mode from the segment; detaches, checks nobody attached meanwhile, closes.
    static func finish(_ file: BackupFileState) throws(EngineError) {
        let segment = file.segment
        file.lock.lock()
        let crc = file.combinedCRC()
        let end = file.writeOffset
        file.crc = crc
        file.lock.unlock()
        var fileSize = segment.size
        if segment.compressed {
            let trailer = GzipFraming.trailer(crc32: crc, size: segment.size)
            try FileIO.writeAll(file.fd, bytes: trailer, at: end, file: file.stagingPath)
            let head = ASMTHeader(segmentSize: segment.size, crc32: crc).encoded() + GzipFraming.header
            try FileIO.writeAll(file.fd, bytes: head, at: 0, file: file.stagingPath)
            fileSize = end + UInt64(trailer.count)
        }
        guard fchown(file.fd, segment.uid, segment.gid) == 0 else {
            throw EngineError(.io, "cannot set the owner of \(file.stagingPath): \(errnoText())")
        }
        guard fchmod(file.fd, mode_t(segment.mode & 0o777)) == 0 else {
            throw EngineError(.io, "cannot set the mode of \(file.stagingPath): \(errnoText())")
        }
        // Every chunk is copied: detach, then nobody else may have attached meanwhile.
        file.detachSegment()
        if let attached = SharedMemory.settledAttachCount(shmid: file.shmid, atMost: 0), attached > 0 {
            throw EngineError(
                .serverRunning, "segment \(segment.key.hex) was attached by another process during the backup")
        }
        guard let info = SharedMemory.stat(shmid: file.shmid) else {
            throw EngineError(.invalidSegments, "segment \(segment.key.hex) disappeared during the backup")
        }
        let detached = SegmentStamp(info)
        guard detached.lastPID == getpid(), detached.attachedAt == file.attached.attachedAt,
            detached.changed == file.planned.changed
        else {
            throw EngineError(
                .serverRunning, "segment \(segment.key.hex) was attached by another process during the backup")
        }
        file.release()
        file.lock.lock()
        file.detached = detached
        file.fileSize = fileSize
        file.finished = rfc3339()
        file.written = true
        file.lock.broadcast()
        file.lock.unlock()
    }

    /// The end-of-backup attach check: since our own detach, nobody attached the segment, changed it or replaced
    /// it (same shmid, no attachment, same change time, last attach or detach still ours at the same times).
    static func checkUntouched(_ file: BackupFileState) throws(EngineError) {
        let key = file.segment.key
        guard let detached = file.detached else {
            throw EngineError(.system, "segment \(key.hex) was not copied")
        }
        guard let now = SegmentStamp.read(key), now.shmid == file.planned.shmid else {
            throw EngineError(.invalidSegments, "segment \(key.hex) was removed or replaced during the backup")
        }
        guard now.attachCount == 0, now == detached else {
            throw EngineError(
                .serverRunning,
                "segment \(key.hex) was attached after it was copied (\(now.attachCount) attachment(s), "
                    + "last by pid \(now.lastPID)): the server is running; nothing was published")
        }
    }

    static func checkFraming(_ file: BackupFileState, fd: Int32) throws(EngineError) {
        let expectedHead = ASMTHeader(segmentSize: file.segment.size, crc32: file.crc).encoded() + GzipFraming.header
        let expectedTail = GzipFraming.trailer(crc32: file.crc, size: file.segment.size)
        let head = try FileIO.read(fd, count: expectedHead.count, at: 0, file: file.stagingPath)
        let tail = try FileIO.read(
            fd, count: expectedTail.count, at: file.fileSize - UInt64(expectedTail.count), file: file.stagingPath)
        guard head == expectedHead, tail == expectedTail else {
            throw EngineError(
                .verifyFailed, "\(file.stagingPath): header or gzip trailer differs from what was written")
        }
    }
}

/// fsyncs finished files one at a time, off the worker threads.
final class Syncer: @unchecked Sendable {
    private let queue = DispatchQueue(label: "asmtd.backup.fsync")
    private let group = DispatchGroup()
    private let lock = NSLock()
    private var firstError: EngineError?

    var error: EngineError? { lock.withLock { firstError } }

    func sync(_ file: BackupFileState, pool: WorkPool, progress: JobProgress) {
        queue.async(group: group) { [self] in
            guard !pool.shouldStop else { return }
            // The writer's descriptor is closed already: fsync through one of our own (it flushes the inode).
            let fd = open(file.stagingPath, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)
            let failed = fd < 0 || fsync(fd) != 0
            let code = errno
            if fd >= 0 { close(fd) }
            if failed {
                let failure = EngineError(.io, "cannot fsync \(file.stagingPath): \(errnoText(code))")
                lock.withLock { if firstError == nil { firstError = failure } }
                pool.fail(failure)
                return
            }
            file.stepDone(progress)
        }
    }

    func wait() { group.wait() }
}

/// Per-thread state of a backup worker: codecs and bounded buffers.
final class BackupWorker {
    private let progress: JobProgress
    /// With verification, half of a chunk's bytes count when it is written and half when it is checked.
    private let verifying: Bool
    private var deflater: (any PieceDeflater)?
    private var inflater: (any StreamInflater)?
    private var output: WorkBuffer?
    private var input: WorkBuffer?
    private var check: WorkBuffer?
    private var staging: WorkBuffer?

    init(progress: JobProgress, verifying: Bool) {
        self.progress = progress
        self.verifying = verifying
    }

    /// Copies one chunk; returns true when it was the file's last outstanding chunk.
    func copy(_ file: BackupFileState, chunk: Int, pool: WorkPool) throws(EngineError) -> Bool {
        let segment = file.segment
        let chunkSize = file.chunkSize
        if chunk == 0 {
            progress.set(file.index, .running)
            file.lock.lock()
            file.started = rfc3339()
            file.lock.unlock()
        }
        let count = file.chunkLength(chunk)
        if segment.compressed {
            let data: UnsafeRawBufferPointer
            if file.segmentFD >= 0 {
                // Read through the segment's file (see SegmentIO): no page faults on the mapping.
                if staging == nil { staging = WorkBuffer(count: chunkSize) }
                let target = UnsafeMutableRawBufferPointer(start: staging!.pointer, count: count)
                try file.segmentIO.load(chunk * chunkSize, into: target)
                data = UnsafeRawBufferPointer(target)
            } else {
                data = file.input(chunk)
            }
            let crc = CRC32.update(0, data)
            if deflater == nil { deflater = try Codec.makeDeflater() }
            if output == nil { output = WorkBuffer(count: Codec.deflateBound(chunkSize)) }
            let last = chunk == file.chunkCount - 1
            guard let length = try deflater!.compress(data, into: output!.bytes, last: last) else {
                throw EngineError(.system, "compressed chunk of \(segment.key.hex) exceeds its buffer")
            }
            file.lock.lock()
            while file.nextToPlace != chunk && !pool.shouldStop {
                _ = file.lock.wait(until: Date(timeIntervalSinceNow: 0.05))
            }
            guard file.nextToPlace == chunk else {
                file.lock.unlock()
                return false
            }
            let offset = file.writeOffset
            file.writeOffset += UInt64(length)
            file.nextToPlace += 1
            file.chunkCRC[chunk] = crc
            file.chunkRange[chunk] = (offset, length)
            file.lock.broadcast()
            file.lock.unlock()
            try FileIO.writeAll(
                file.fd, UnsafeRawBufferPointer(start: output!.pointer, count: length), at: offset,
                file: file.stagingPath)
        } else {
            if input == nil { input = WorkBuffer(count: Codec.deflateBound(chunkSize)) }
            let offset = chunk * chunkSize
            let crc = try file.segmentIO.write(
                offset, count: count, to: file.fd, at: UInt64(offset), path: file.stagingPath, buffer: input!)
            file.lock.lock()
            file.chunkCRC[chunk] = crc
            file.lock.unlock()
        }
        progress.add(bytes: UInt64(verifying ? count / 2 : count))
        file.lock.lock()
        file.remaining -= 1
        let done = file.remaining == 0
        file.lock.unlock()
        return done
    }

    /// Reads one chunk of a complete file back and checks it against the CRC-32 of the segment bytes.
    func verify(_ file: BackupFileState, chunk: Int, pool: WorkPool) throws(EngineError) {
        file.lock.lock()
        while !file.written && !pool.shouldStop { _ = file.lock.wait(until: Date(timeIntervalSinceNow: 0.05)) }
        let ready = file.written
        file.lock.unlock()
        guard ready else { return }
        let segment = file.segment
        let chunkSize = file.chunkSize
        let length = file.chunkLength(chunk)
        // A descriptor of our own for the read-back: the writer's is closed once the copy is complete.
        let fd = open(file.stagingPath, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)
        guard fd >= 0 else { throw EngineError(.io, "cannot open \(file.stagingPath): \(errnoText())") }
        defer { close(fd) }
        if input == nil { input = WorkBuffer(count: Codec.deflateBound(chunkSize)) }
        let buffer = input!
        let crc: UInt32
        if segment.compressed {
            if chunk == 0 { try BackupRunner.checkFraming(file, fd: fd) }
            if inflater == nil { inflater = try Codec.makeInflater() }
            if check == nil { check = WorkBuffer(count: chunkSize + 4096) }
            let range = file.chunkRange[chunk]
            let got = try FileIO.readFull(
                fd, UnsafeMutableRawBufferPointer(start: buffer.pointer, count: range.length), at: range.offset,
                file: file.stagingPath)
            guard got == range.length else {
                throw EngineError(.verifyFailed, "\(file.stagingPath) is shorter than written")
            }
            let target = check!
            let inflated = try inflater!.inflateChunk(
                UnsafeRawBufferPointer(start: buffer.pointer, count: got), length: length,
                last: chunk == file.chunkCount - 1,
                room: { produced in UnsafeMutableRawBufferPointer(rebasing: target.bytes[produced...]) },
                take: { (_, _) throws(EngineError) in })
            guard let inflatedCRC = inflated else {
                throw EngineError(
                    .verifyFailed, "\(file.stagingPath): chunk \(chunk) does not inflate to the segment bytes")
            }
            crc = inflatedCRC
        } else {
            // Read back in pieces, each checksummed while still in cache.
            var value: UInt32 = 0
            var done = 0
            while done < length {
                let count = min(FileIO.maxWrite, length - done)
                let got = try FileIO.readFull(
                    fd, UnsafeMutableRawBufferPointer(start: buffer.pointer, count: count),
                    at: UInt64(chunk * chunkSize + done), file: file.stagingPath)
                guard got == count else {
                    throw EngineError(.verifyFailed, "\(file.stagingPath) is shorter than written")
                }
                value = CRC32.update(value, UnsafeRawBufferPointer(start: buffer.pointer, count: count))
                done += count
            }
            crc = value
        }
        guard crc == file.chunkCRC[chunk] else {
            throw EngineError(
                .verifyFailed,
                "CRC-32 mismatch in \(file.stagingPath) at chunk \(chunk): the file differs from segment \(segment.key.hex)"
            )
        }
        progress.add(bytes: UInt64(length - length / 2))
        file.stepDone(progress)
    }
}
