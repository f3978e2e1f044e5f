import Glibc

/// One worker thread of a restore: fills segments from their files, a chunk or a whole file at a time. Owns its
/// codec and bounded buffers.
final class RestoreWorker {
    /// Input read at a time from a file without a chunk index.
    static let inputSize = 4 << 20
    /// Bytes inflated into the mapping at a time (when the segment's file cannot be opened); twice that is
    /// prefaulted ahead.
    static let window = 16 << 20

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
            input = WorkBuffer(count: Self.inputSize)
        }
        if file.sequential {
            if try inflateWhole(file) {
                file.finish()
                progress.set(file.index, .done)
            }
            return
        }
        let offset = chunk * file.chunkSize
        let length = file.chunkLength(chunk)
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
        guard file.chunkDone(chunk, crc: crc) else { return }
        let total = file.combinedCRC()
        if file.segment.compressed {
            try file.checkCRC(total, headerCRC: file.headerCRC, trailer: file.trailer, verify: verify)
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

    /// Inflates a whole `.dat.gz` file into its segment, reading it in order; checks header, stream end, size,
    /// CRC-32. With the segment's file open, the data goes through `output` and pwrite (see `SegmentIO`), else
    /// straight into the mapping. Returns false when the pool stopped first.
    private func inflateWhole(_ file: RestoreFileState) throws(EngineError) -> Bool {
        let input = self.input!
        let inflater = self.inflater!
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
        let size = Int(segment.size)
        let io = file.segmentIO
        let output = file.segmentFD >= 0 ? self.output : nil
        var prefaulted = 0
        var run = InflateRun(length: size)
        while !run.finished {
            if pool.shouldStop { return false }
            if start == buffered {
                guard try refill() else {
                    throw EngineError(.invalidBackup, "\(path) is truncated: the deflate stream does not end")
                }
            }
            let available = UnsafeRawBufferPointer(start: input.pointer + start, count: buffered - start)
            let step = try run.step(
                inflater, available,
                room: { produced in
                    if let output { return output.bytes }
                    let length = min(Self.window, size - produced)
                    if produced + length > prefaulted {
                        let end = min(size, max(prefaulted, produced) + Self.window * 2)
                        SharedMemory.prefaultForWriting(io.mapping + prefaulted, count: end - prefaulted)
                        prefaulted = end
                    }
                    return UnsafeMutableRawBufferPointer(start: io.mapping + produced, count: length)
                },
                take: { (bytes, produced) throws(EngineError) in
                    if output != nil { try io.store(bytes, at: produced) }
                })
            guard let step else {
                throw EngineError(.invalidBackup, "\(path) holds more data than the \(size) bytes its header states")
            }
            start += step.consumed
            progress.add(bytes: UInt64(step.produced))
            if !run.finished && step.consumed == 0 && step.produced == 0 && start < buffered {
                // No progress with input available: the decoder needs more bytes at once.
                if buffered == input.count && start == 0 {
                    throw EngineError(.invalidBackup, "\(path): deflate stream cannot be decoded")
                }
                guard try refill() else {
                    throw EngineError(.invalidBackup, "\(path) is truncated: the deflate stream does not end")
                }
            }
        }
        guard run.produced == size else {
            throw EngineError(
                .invalidBackup, "\(path) inflates to \(run.produced) bytes, its header states \(size) (truncated data)")
        }
        // The 8-byte trailer must follow (partly held back by the decoder, maybe), and nothing after it.
        let held = run.held
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
        try file.checkCRC(run.crc, headerCRC: header.crc32, trailer: trailer, verify: verify)
        return true
    }
}
