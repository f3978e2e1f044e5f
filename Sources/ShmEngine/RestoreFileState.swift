import Glibc

/// One segment being filled by a restore from its file (see `SegmentFileState` for who touches which field when).
final class RestoreFileState: SegmentFileState, @unchecked Sendable {
    /// Compressed files with a chunk index: the file offset of each chunk's deflate data.
    let chunkOffsets: [UInt64]
    /// Compressed files with a chunk index: the CRC-32 in the ASMT header and the gzip trailer, read at the check.
    var headerCRC: UInt32 = 0
    var trailer: [UInt8] = []
    /// The file as checked before any segment was created; a worker opening it later must find the same file.
    var identity: FileIdentity?
    /// Base only: the file's first 8 bytes (version, shutdown status), held back until the commit.
    var commitWord: [UInt8] = []
    /// The segment as our own last detach left it: another attach changes it.
    var trace: SegmentTrace?

    init(index: Int, segment: PlannedSegment, directory: String, chunkSize: Int) {
        let size: Int
        let count: Int
        if let chunks = segment.chunks {
            size = chunks.size
            count = chunks.lengths.count
            chunkOffsets = chunks.offsets
        } else {
            size = chunkSize
            // A compressed file without a chunk index (asmt wrote it) is one sequential item.
            count = segment.compressed ? 1 : Self.chunks(size: segment.size, chunkSize: chunkSize)
            chunkOffsets = []
        }
        super.init(index: index, segment: segment, directory: directory, chunkSize: size, chunkCount: count)
    }

    /// One item that inflates the whole file in order (no chunk index).
    var sequential: Bool { segment.compressed && segment.chunks == nil }

    /// Checks the file before any segment exists: a regular file (no symlink), the planned size, and for a
    /// compressed file with a chunk index the headers that index assumes. Closes it again: workers open files as
    /// they reach them, so that a namespace of thousands of segments needs only a few descriptors at a time.
    func check() throws(EngineError) {
        let fd = try Self.openChecked(path, identity: nil)
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0, let expected = segment.fileSize, UInt64(st.st_size) == expected else {
            throw EngineError(.invalidBackup, "\(path) changed since planning")
        }
        identity = FileIdentity(st)
        if segment.compressed && !sequential {
            // The chunk index assumes the headers asmtd writes; the trailer is checked once all chunks are in.
            let head = try FileIO.read(fd, count: DeflateChunks.dataStart, at: 0, file: path)
            guard case .success(let header) = ASMTHeader.decode(Array(head.prefix(ASMTHeader.size))),
                header.segmentSize == segment.size, Array(head.dropFirst(ASMTHeader.size)) == GzipFraming.header
            else {
                throw EngineError(.invalidBackup, "\(path): the headers do not match the manifest's chunk index")
            }
            headerCRC = header.crc32
            trailer = try FileIO.read(
                fd, count: GzipFraming.trailerSize, at: expected - UInt64(GzipFraming.trailerSize), file: path)
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

    /// Opens the file and attaches the segment the first time a worker reaches one of its chunks.
    func openIfNeeded(access: SegmentAccess) throws(EngineError) {
        lock.lock()
        defer { lock.unlock() }
        guard !opened else { return }
        opened = true
        fd = try Self.openChecked(path, identity: identity)
        try attach(readOnly: false, access: access)
    }

    /// The whole file's CRC-32 against the gzip trailer (always), the ASMT header and the manifest (with verify).
    func checkCRC(_ crc: UInt32, headerCRC: UInt32, trailer: [UInt8], verify: Bool) throws(EngineError) {
        guard trailer == GzipFraming.trailer(crc32: crc, size: segment.size) else {
            throw EngineError(
                .verifyFailed, "\(path): gzip trailer does not match the inflated data (CRC-32 \(hex32(crc)))")
        }
        if verify {
            if headerCRC != crc {
                throw EngineError(
                    .verifyFailed, "\(path): header CRC-32 \(hex32(headerCRC)) differs from the data \(hex32(crc))")
            }
            if let expected = segment.crc32, expected != crc {
                throw EngineError(
                    .verifyFailed, "\(path): CRC-32 \(hex32(crc)) differs from the manifest \(hex32(expected))")
            }
        }
    }

    /// Closes the file, detaches the segment and notes how the detach left it.
    func finish() {
        release()
        trace = SharedMemory.stat(shmid: shmid)?.trace
    }
}

/// Device and inode of a file: the same file when both match.
struct FileIdentity: Equatable, Sendable {
    var device: UInt64
    var inode: UInt64

    init(_ st: stat) {
        device = UInt64(st.st_dev)
        inode = UInt64(st.st_ino)
    }
}
