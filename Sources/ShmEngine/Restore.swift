import CISAL
import Foundation
import Glibc

/// One segment being filled by a restore. Mutable fields are guarded by `lock` while workers run.
final class RestoreFileState: FileAndSegment, @unchecked Sendable {
    let index: Int
    let segment: PlannedSegment
    let path: String
    let chunkSize: Int
    let chunkCount: Int
    /// Compressed files with a chunk index: the file offset of each chunk's deflate data.
    let chunkOffsets: [UInt64]
    let lock = NSLock()
    var fd: Int32 = -1
    var shmid: Int32 = -1
    var attachment: Attachment?
    var segmentFD: Int32 = -1
    var remaining: Int
    var chunkCRC: [UInt32]
    /// Compressed files with a chunk index: the CRC-32 in the ASMT header and the gzip trailer, read at the check.
    var headerCRC: UInt32 = 0
    var trailer: [UInt8] = []
    /// The file as checked before any segment was created; a worker opening it later must find the same file.
    var identity: FileIdentity?
    /// Set once a worker opened the file and attached the segment (they are released when its last chunk is done).
    var opened = false
    /// Base only: the file's first 8 bytes (version, shutdown status), held back until the commit.
    var commitWord: [UInt8] = []
    /// The segment as our own last detach left it: another attach changes it.
    var trace: SegmentTrace?

    init(index: Int, segment: PlannedSegment, directory: String, chunkSize: Int) {
        self.index = index
        self.segment = segment
        path = directory + "/" + segment.file
        if let chunks = segment.chunks {
            self.chunkSize = chunks.size
            chunkCount = chunks.lengths.count
            chunkOffsets = chunks.offsets
        } else {
            self.chunkSize = chunkSize
            // A compressed file without a chunk index (asmt wrote it) is one sequential item.
            chunkCount = segment.compressed ? 1 : Int((segment.size + UInt64(chunkSize) - 1) / UInt64(chunkSize))
            chunkOffsets = []
        }
        remaining = chunkCount
        chunkCRC = Array(repeating: 0, count: chunkCount)
    }

    /// One item that inflates the whole file in order (no chunk index).
    var sequential: Bool { segment.compressed && segment.chunks == nil }

    /// Opens the file and attaches the segment the first time a worker reaches one of its chunks.
    func openIfNeeded(access: SegmentAccess) throws(EngineError) {
        lock.lock()
        defer { lock.unlock() }
        guard !opened else { return }
        opened = true
        fd = try RestoreRunner.openChecked(path, identity: identity)
        try attach(shmid: shmid, readOnly: false, access: access)
    }

    /// Closes the file, detaches the segment and notes how the detach left it.
    func finish() {
        release()
        trace = SharedMemory.stat(shmid: shmid).map(SegmentTrace.init)
    }
}

enum RestoreRunner {
    static let chunkSize = 16 << 20
    static let inputSize = 4 << 20
    static let window = 16 << 20

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
            for file in files { try check(file) }
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

    /// Checks a file before any segment exists: a regular file (no symlink), the planned size, and for a compressed
    /// file with a chunk index the headers that index assumes. Closes it again: workers open files as they reach
    /// them, so that a namespace of thousands of segments needs only a few descriptors at a time.
    static func check(_ file: RestoreFileState) throws(EngineError) {
        let segment = file.segment
        let fd = try openChecked(file.path, identity: nil)
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0, let expected = segment.fileSize, UInt64(st.st_size) == expected else {
            throw EngineError(.invalidBackup, "\(file.path) changed since planning")
        }
        file.identity = FileIdentity(st)
        if segment.compressed && !file.sequential {
            // The chunk index assumes the headers asmtd writes; the trailer is checked once all chunks are in.
            let head = try FileIO.read(fd, count: DeflateChunks.dataStart, at: 0, file: file.path)
            guard case .success(let header) = ASMTHeader.decode(Array(head.prefix(ASMTHeader.size))),
                header.segmentSize == segment.size, Array(head.dropFirst(ASMTHeader.size)) == GzipFraming.header
            else {
                throw EngineError(.invalidBackup, "\(file.path): the headers do not match the manifest's chunk index")
            }
            file.headerCRC = header.crc32
            file.trailer = try FileIO.read(
                fd, count: GzipFraming.trailerSize, at: expected - UInt64(GzipFraming.trailerSize), file: file.path)
        }
    }

    /// Opens a backup file read-only without following a symlink; with `identity`, it must be the same file.
    static func openChecked(_ path: String, identity: FileIdentity?) throws(EngineError) -> Int32 {
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)
        guard fd >= 0 else {
            let code = errno
            if code == ELOOP { throw EngineError(.invalidBackup, "\(path) is a symbolic link") }
            throw EngineError(.invalidBackup, "cannot open \(path): \(errnoText(code))")
        }
        var st = stat()
        guard fstat(fd, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG,
            identity == nil || identity == FileIdentity(st)
        else {
            close(fd)
            throw EngineError(.invalidBackup, "\(path) changed since planning")
        }
        return fd
    }

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

    /// The whole file's CRC-32 against the gzip trailer (always), the ASMT header and the manifest (with verify).
    static func checkCRC(
        _ file: RestoreFileState, crc: UInt32, headerCRC: UInt32, trailer: [UInt8], verify: Bool
    ) throws(EngineError) {
        let path = file.path
        guard trailer == GzipFraming.trailer(crc32: crc, size: file.segment.size) else {
            throw EngineError(
                .verifyFailed, "\(path): gzip trailer does not match the inflated data (CRC-32 \(hex32(crc)))")
        }
        if verify {
            if headerCRC != crc {
                throw EngineError(
                    .verifyFailed, "\(path): header CRC-32 \(hex32(headerCRC)) differs from the data \(hex32(crc))")
            }
            if let expected = file.segment.crc32, expected != crc {
                throw EngineError(
                    .verifyFailed, "\(path): CRC-32 \(hex32(crc)) differs from the manifest \(hex32(expected))")
            }
        }
    }

    /// Inflates one `.dat.gz` file into its segment; checks header, stream end, size, CRC. With the segment's
    /// file open, the data goes through `output` and pwrite (see `SegmentIO`), else straight into the mapping.
    static func inflate(
        _ file: RestoreFileState, inflater: any StreamInflater, input: WorkBuffer, output: WorkBuffer?, verify: Bool,
        pool: WorkPool, progress: JobProgress
    ) throws(EngineError) -> Bool {
        let segment = file.segment
        let path = file.path
        let fileSize = segment.fileSize ?? 0
        let headBytes = try FileIO.read(file.fd, count: ASMTHeader.size, at: 0, file: path)
        guard case .success(let header) = ASMTHeader.decode(headBytes), header.segmentSize == segment.size else {
            throw EngineError(.invalidBackup, "\(path): ASMT header changed since planning")
        }
        var fileOffset = UInt64(ASMTHeader.size)
        var buffered = 0  // bytes of input.pointer[start..<buffered] not yet consumed
        var start = 0
        func refill() throws(EngineError) -> Bool {
            if start > 0 {
                memmove(input.pointer, input.pointer + start, buffered - start)
                buffered -= start
                start = 0
            }
            guard buffered < input.count else { return true }
            let got = try FileIO.readFull(
                file.fd, UnsafeMutableRawBufferPointer(start: input.pointer + buffered, count: input.count - buffered),
                at: fileOffset, file: path)
            fileOffset += UInt64(got)
            buffered += got
            return got > 0
        }
        _ = try refill()
        let headerBytes = Array(UnsafeRawBufferPointer(start: input.pointer, count: min(buffered, 64 * 1024)))
        switch GzipFraming.parseHeader(headerBytes) {
        case .ok(let length): start = length
        case .needMore: throw EngineError(.invalidBackup, "\(path): truncated gzip header")
        case .invalid(let why): throw EngineError(.invalidBackup, "\(path): \(why)")
        }
        inflater.reset()
        let base = file.attachment!.address
        let size = Int(segment.size)
        var produced = 0
        var prefaulted = 0
        var crc: UInt32 = 0
        var finished = false
        var scratch = [UInt8](repeating: 0, count: 64)
        var held: [UInt8] = []
        while !finished {
            if pool.shouldStop { return false }
            if start == buffered {
                guard try refill() else {
                    throw EngineError(.invalidBackup, "\(path) is truncated: the deflate stream does not end")
                }
            }
            let available = UnsafeRawBufferPointer(start: input.pointer + start, count: buffered - start)
            let result: InflateStep
            if produced < size, let output, file.segmentFD >= 0 {
                let target = UnsafeMutableRawBufferPointer(
                    start: output.pointer, count: min(output.count, size - produced))
                result = try inflater.inflate(available, into: target)
                let bytes = UnsafeRawBufferPointer(start: output.pointer, count: result.produced)
                try file.segmentIO.store(bytes, at: produced)
                crc = CRC32.update(crc, bytes)
            } else if produced < size {
                let length = min(window, size - produced)
                if produced + length > prefaulted {
                    let end = min(size, max(prefaulted, produced) + window * 2)
                    cisal_prefault_write(base + prefaulted, UInt64(end - prefaulted))
                    prefaulted = end
                }
                let target = UnsafeMutableRawBufferPointer(start: base + produced, count: length)
                result = try inflater.inflate(available, into: target)
                crc = CRC32.update(crc, UnsafeRawBufferPointer(start: base + produced, count: result.produced))
            } else {
                let inflated: Result<InflateStep, EngineError> =
                    scratch.withUnsafeMutableBytes { raw in
                        Result { () throws(EngineError) in try inflater.inflate(available, into: raw) }
                    }
                result = try inflated.get()
                if result.produced > 0 {
                    throw EngineError(
                        .invalidBackup, "\(path) holds more data than the \(size) bytes its header states")
                }
            }
            start += result.consumed
            produced += result.produced
            progress.add(bytes: UInt64(result.produced))
            finished = result.finished
            held = result.held
            if !finished && result.consumed == 0 && result.produced == 0 && start < buffered {
                // No progress with input available: the decoder needs more bytes at once.
                if buffered == input.count && start == 0 {
                    throw EngineError(.invalidBackup, "\(path): deflate stream cannot be decoded")
                }
                guard try refill() else {
                    throw EngineError(.invalidBackup, "\(path) is truncated: the deflate stream does not end")
                }
            }
        }
        guard produced == size else {
            throw EngineError(
                .invalidBackup, "\(path) inflates to \(produced) bytes, its header states \(size) (truncated data)")
        }
        // The 8-byte trailer must follow (partly held back by the decoder, maybe), and nothing after it.
        let needed = GzipFraming.trailerSize - min(held.count, GzipFraming.trailerSize)
        while buffered - start < needed {
            guard try refill() else { throw EngineError(.invalidBackup, "\(path) is truncated: gzip trailer missing") }
        }
        let trailer = held + Array(UnsafeRawBufferPointer(start: input.pointer + start, count: needed))
        guard held.count <= GzipFraming.trailerSize else {
            throw EngineError(.invalidBackup, "\(path) has bytes after the gzip member")
        }
        let end = fileOffset - UInt64(buffered - start - needed)
        guard end == fileSize else {
            throw EngineError(.invalidBackup, "\(path) has \(fileSize - end) bytes after the gzip member")
        }
        try checkCRC(file, crc: crc, headerCRC: header.crc32, trailer: trailer, verify: verify)
        return true
    }
}

/// Per-thread state of a restore worker: codec and bounded buffers.
final class RestoreWorker {
    private let verify: Bool
    private let access: SegmentAccess
    private let pool: WorkPool
    private let progress: JobProgress
    private var inflater: (any StreamInflater)?
    /// Plain pieces, and the input of a sequential inflate.
    private var input: WorkBuffer?
    /// Inflated bytes on their way into the segment's file.
    private var output: WorkBuffer?
    /// One chunk's deflate data.
    private var packed: WorkBuffer?

    init(verify: Bool, access: SegmentAccess, pool: WorkPool, progress: JobProgress) {
        self.verify = verify
        self.access = access
        self.pool = pool
        self.progress = progress
    }

    /// Restores chunk `chunk` of `file` (the whole file when it is sequential); the worker that completes a file
    /// checks its CRC-32, closes the file and detaches its segment.
    func restore(_ file: RestoreFileState, chunk: Int) throws(EngineError) {
        try file.openIfNeeded(access: access)
        if chunk == 0 { progress.set(file.index, .running) }
        if file.segment.compressed {
            if inflater == nil { inflater = try Codec.makeInflater() }
            if file.segmentFD >= 0 && output == nil { output = WorkBuffer(count: FileIO.maxWrite) }
        }
        // Plain pieces and a sequential inflate's input; a chunk's deflate data goes into `packed`.
        if input == nil && (file.sequential || !file.segment.compressed) {
            input = WorkBuffer(count: RestoreRunner.inputSize)
        }
        if file.sequential {
            if try RestoreRunner.inflate(
                file, inflater: inflater!, input: input!, output: output, verify: verify, pool: pool,
                progress: progress)
            {
                file.finish()
                progress.set(file.index, .done)
            }
            return
        }
        let offset = chunk * file.chunkSize
        let length = min(file.chunkSize, Int(file.segment.size) - offset)
        let crc: UInt32
        if file.segment.compressed {
            crc = try inflate(file, chunk: chunk, offset: offset, length: length)
        } else if offset == 0 && file.segment.kind == .base {
            // The base's first 8 bytes stay zero until the commit; the CRC-32 covers the file's bytes.
            let word = try FileIO.read(file.fd, count: RestoreCommit.wordSize, at: 0, file: file.path)
            guard word.count == RestoreCommit.wordSize else {
                throw EngineError(.invalidBackup, "\(file.path) is shorter than planned")
            }
            file.commitWord = word
            let skip = RestoreCommit.wordSize
            crc = try file.segmentIO.read(
                skip, count: length - skip, from: file.fd, at: UInt64(skip), path: file.path, buffer: input!,
                checksum: verify && file.segment.crc32 != nil, initial: CRC32.checksum(word))
        } else {
            // A plain file has nothing to check its CRC against except the manifest.
            crc = try file.segmentIO.read(
                offset, count: length, from: file.fd, at: UInt64(offset), path: file.path, buffer: input!,
                checksum: verify && file.segment.crc32 != nil)
        }
        progress.add(bytes: UInt64(length))
        file.lock.lock()
        file.chunkCRC[chunk] = crc
        file.remaining -= 1
        let done = file.remaining == 0
        file.lock.unlock()
        guard done else { return }
        let total = CRC32.combine(file.chunkCRC, chunkSize: file.chunkSize, totalLength: file.segment.size)
        if file.segment.compressed {
            try RestoreRunner.checkCRC(
                file, crc: total, headerCRC: file.headerCRC, trailer: file.trailer, verify: verify)
        } else if verify, let expected = file.segment.crc32, expected != total {
            throw EngineError(
                .verifyFailed,
                "CRC-32 of segment \(file.segment.key.hex) is \(hex32(total)), "
                    + "the manifest records \(hex32(expected)) for \(file.path)")
        }
        file.finish()
        progress.set(file.index, .done)
    }

    /// Inflates one chunk of a file with a chunk index into segment bytes `offset..<offset + length`: the chunk's
    /// deflate data must yield exactly those bytes, be used up, and end the stream only in the last chunk.
    /// Returns the chunk's CRC-32, checked against the manifest's.
    private func inflate(_ file: RestoreFileState, chunk: Int, offset: Int, length: Int) throws(EngineError) -> UInt32 {
        let path = file.path
        let chunks = file.segment.chunks!
        let packedLength = chunks.lengths[chunk]
        if packed == nil || packed!.count < packedLength {
            packed = WorkBuffer(count: max(packedLength, Codec.deflateBound(file.chunkSize)))
        }
        let source = packed!
        let got = try FileIO.readFull(
            file.fd, UnsafeMutableRawBufferPointer(start: source.pointer, count: packedLength),
            at: file.chunkOffsets[chunk], file: path)
        guard got == packedLength else { throw EngineError(.invalidBackup, "\(path) is shorter than its chunk index") }
        let io = file.segmentIO
        let toFile = file.segmentFD >= 0
        let inflated = try inflater!.inflateChunk(
            UnsafeRawBufferPointer(start: source.pointer, count: packedLength), length: length,
            last: chunk == file.chunkCount - 1,
            room: { produced in
                toFile
                    ? output!.bytes
                    : UnsafeMutableRawBufferPointer(start: io.mapping + offset + produced, count: length - produced)
            },
            take: { (bytes, produced) throws(EngineError) in if toFile { try io.store(bytes, at: offset + produced) } })
        guard let crc = inflated else {
            throw EngineError(
                .invalidBackup,
                "\(path): chunk \(chunk) does not inflate to its \(length) bytes at the place the chunk index gives")
        }
        guard crc == chunks.crc32[chunk] else {
            throw EngineError(
                .verifyFailed,
                "\(path): CRC-32 of chunk \(chunk) is \(hex32(crc)), the manifest records \(hex32(chunks.crc32[chunk]))"
            )
        }
        return crc
    }
}

func hex32(_ value: UInt32) -> String {
    let digits = String(value, radix: 16)
    return "0x" + String(repeating: "0", count: 8 - digits.count) + digits
}
