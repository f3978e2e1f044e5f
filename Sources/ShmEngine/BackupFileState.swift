import Foundation
import Glibc

/// One file being written by a backup, and the checks that its segment was not used meanwhile (see
/// `SegmentFileState` for who touches which field when).
///
/// The file is written under its staging name (`<key>.dat.partial`, `<key>.dat.gz.partial`) and gets its real name
/// only when the whole backup is published (`BackupPublisher`).
final class BackupFileState: SegmentFileState, @unchecked Sendable {
    /// The name the file is written under until the backup is published.
    let stagingPath: String
    /// The segment as found when the run started; checked again before publishing.
    var planned = SegmentStamp()
    /// The segment right after our own attach, then right after our own detach.
    var attached = SegmentStamp()
    var detached: SegmentStamp?
    /// The staging file was created (and so is ours to remove).
    var created = false
    /// Compressed files: the next chunk to take its place in the file, where it goes, and where each chunk went.
    var nextToPlace = 0
    var writeOffset: UInt64
    var chunkRange: [(offset: UInt64, length: Int)]
    /// The whole file's CRC-32 and size, once written.
    var crc: UInt32 = 0
    var fileSize: UInt64 = 0
    /// RFC 3339 UTC: when its first chunk was taken and when the copy was complete.
    var started = ""
    var finished = ""
    /// All data, header and trailer written (not necessarily synced).
    var written = false
    /// fsync plus verify chunks still to do before the segment counts as done.
    var pendingSteps = 1

    init(index: Int, segment: PlannedSegment, directory: String, chunkSize: Int) {
        let chunkCount = Self.chunks(size: segment.size, chunkSize: chunkSize)
        writeOffset = segment.compressed ? UInt64(DeflateChunks.dataStart) : 0
        chunkRange = Array(repeating: (0, 0), count: chunkCount)
        stagingPath = directory + "/" + segment.file + BackupStaging.suffix
        super.init(index: index, segment: segment, directory: directory, chunkSize: chunkSize, chunkCount: chunkCount)
    }

    /// Counts one finished step; marks the segment done in `progress` after the last one.
    func stepDone(_ progress: JobProgress) {
        lock.lock()
        pendingSteps -= 1
        let done = pendingSteps == 0
        lock.unlock()
        if done { progress.set(index, .done) }
    }

    /// Re-checks the segment before anything is written, and records what the publish check compares with.
    func stamp(listing: ListingCache.Registration) throws(EngineError) {
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
        self.shmid = shmid
        planned = settled.stamp
    }

    /// Attaches the segment and creates the staging file, once, by the first worker that reaches this file.
    func open(access: SegmentAccess) throws(EngineError) {
        lock.lock()
        defer { lock.unlock() }
        guard !opened else {
            if fd < 0 { throw EngineError(.system, "\(stagingPath) could not be opened") }
            return
        }
        opened = true
        try prepare(access: access)
    }

    /// Attaches the segment read-only after re-checking it, and creates the staging file exclusively (under `lock`).
    private func prepare(access: SegmentAccess) throws(EngineError) {
        guard let info = SharedMemory.stat(shmid: shmid), info.ctime == planned.ctime, info.key == segment.key.rawValue
        else {
            throw EngineError(.invalidSegments, "segment \(segment.key.hex) changed since the backup started")
        }
        guard SharedMemory.settledAttachCount(shmid: shmid, atMost: 0) == 0 else {
            throw EngineError(.serverRunning, "segment \(segment.key.hex) is attached: the server is running")
        }
        try attach(readOnly: true, access: access)
        guard let after = SharedMemory.stat(shmid: shmid) else {
            throw EngineError(.invalidSegments, "segment \(segment.key.hex) disappeared")
        }
        attached = after.stamp
        let fd = Glibc.open(stagingPath, O_CREAT | O_EXCL | O_RDWR | O_NOFOLLOW | O_CLOEXEC, 0o600)
        guard fd >= 0 else {
            let code = errno
            if code == EEXIST { throw EngineError(.filesExist, "file \(stagingPath) already exists") }
            throw EngineError(.io, "cannot create \(stagingPath): \(errnoText(code))")
        }
        self.fd = fd
        created = true
        if !segment.compressed {
            let rc = posix_fallocate(fd, 0, off_t(segment.size))
            if rc != 0 && rc != EOPNOTSUPP && rc != ENOSYS && rc != EINVAL {
                throw EngineError(.io, "cannot allocate \(segment.size) bytes for \(stagingPath): \(errnoText(rc))")
            }
        }
    }

    /// After the last chunk: header and trailer, owner and mode from the segment; detaches, checks nobody attached
    /// meanwhile, closes.
    func finish() throws(EngineError) {
        lock.lock()
        let crc = combinedCRC()
        let end = writeOffset
        self.crc = crc
        lock.unlock()
        var fileSize = segment.size
        if segment.compressed {
            let trailer = GzipFraming.trailer(crc32: crc, size: segment.size)
            try FileIO.writeAll(fd, bytes: trailer, at: end, file: stagingPath)
            try FileIO.writeAll(fd, bytes: expectedHead, at: 0, file: stagingPath)
            fileSize = end + UInt64(trailer.count)
        }
        guard fchown(fd, segment.uid, segment.gid) == 0 else {
            throw EngineError(.io, "cannot set the owner of \(stagingPath): \(errnoText())")
        }
        guard fchmod(fd, mode_t(segment.mode & 0o777)) == 0 else {
            throw EngineError(.io, "cannot set the mode of \(stagingPath): \(errnoText())")
        }
        // Every chunk is copied: detach, then nobody else may have attached meanwhile.
        detachSegment()
        if let count = SharedMemory.settledAttachCount(shmid: shmid, atMost: 0), count > 0 {
            throw EngineError(
                .serverRunning, "segment \(segment.key.hex) was attached by another process during the backup")
        }
        guard let info = SharedMemory.stat(shmid: shmid) else {
            throw EngineError(.invalidSegments, "segment \(segment.key.hex) disappeared during the backup")
        }
        let detached = info.stamp
        guard detached.trace.lpid == getpid(), detached.trace.atime == attached.trace.atime,
            detached.ctime == planned.ctime
        else {
            throw EngineError(
                .serverRunning, "segment \(segment.key.hex) was attached by another process during the backup")
        }
        release()
        lock.lock()
        self.detached = detached
        self.fileSize = fileSize
        finished = rfc3339()
        written = true
        lock.broadcast()
        lock.unlock()
    }

    /// A compressed file's ASMT and gzip headers, once `crc` is known.
    var expectedHead: [UInt8] { ASMTHeader(segmentSize: segment.size, crc32: crc).encoded() + GzipFraming.header }

    /// The end-of-backup attach check: since our own detach, nobody attached the segment, changed it or replaced
    /// it (same shmid, no attachment, same change time, last attach or detach still ours at the same times).
    func checkUntouched() throws(EngineError) {
        let key = segment.key
        guard let detached else {
            throw EngineError(.system, "segment \(key.hex) was not copied")
        }
        guard let now = SegmentStamp.read(key), now.shmid == planned.shmid else {
            throw EngineError(.invalidSegments, "segment \(key.hex) was removed or replaced during the backup")
        }
        guard now.nattch == 0, now == detached else {
            throw EngineError(
                .serverRunning,
                "segment \(key.hex) was attached after it was copied (\(now.nattch) attachment(s), "
                    + "last by pid \(now.trace.lpid)): the server is running; nothing was published")
        }
    }

    /// What the manifest records of this file, once it is written.
    var manifestEntry: ManifestSegment {
        ManifestSegment(
            key: segment.key, kind: segment.kind, namespace: segment.namespace, file: segment.file, size: segment.size,
            compressed: segment.compressed, fileSize: fileSize, crc32: crc, uid: segment.uid, gid: segment.gid,
            mode: segment.mode, started: started, finished: finished,
            chunks: segment.compressed
                ? DeflateChunks(size: chunkSize, lengths: chunkRange.map(\.length), crc32: chunkCRC) : nil)
    }
}
