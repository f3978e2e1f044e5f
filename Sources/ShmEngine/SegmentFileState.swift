import Foundation
import Glibc

/// One segment and its file while a backup or a restore copies between them, chunk by chunk on the workers of a
/// `WorkPool`; `BackupFileState` and `RestoreFileState` add what each job needs.
///
/// The file is opened and the segment attached by the first worker that reaches one of its chunks, and both are
/// released by the worker that completes its last chunk: at most a few files per worker are open at any time,
/// whatever the number of segments.
///
/// `@unchecked Sendable` because its fields follow a discipline the compiler cannot check:
/// * the runner sets fields before the workers start and reads them after they have joined;
/// * the handles (`fd`, `attachment`, `segmentFD`) are set under `lock` by the worker that opens the file, and every
///   worker goes through that (taking `lock`) before it uses them; the worker that completes the last chunk releases
///   them, when no other worker uses them any more;
/// * the chunk bookkeeping (`remaining`, `chunkCRC`, and what the subclasses say) changes under `lock`;
/// * a field that one worker alone sets without `lock` (a restored base's `commitWord`, its `trace`) is read by the
///   runner only after the workers have joined.
class SegmentFileState: @unchecked Sendable {
    let index: Int
    let segment: PlannedSegment
    /// The file's path in the backup directory (its real name).
    let path: String
    /// Segment bytes per chunk (the last chunk may hold fewer).
    let chunkSize: Int
    let chunkCount: Int
    let lock = NSCondition()
    var fd: Int32 = -1
    var shmid: Int32 = -1
    var attachment: Attachment?
    /// The segment's shmem file (`SharedMemory.openFile`), -1 when the mapping is used.
    var segmentFD: Int32 = -1
    /// Set once a worker has opened the file and attached the segment (or failed to).
    var opened = false
    /// Chunks not yet done.
    var remaining: Int
    /// CRC-32 of each chunk's segment bytes.
    var chunkCRC: [UInt32]

    init(index: Int, segment: PlannedSegment, directory: String, chunkSize: Int, chunkCount: Int) {
        self.index = index
        self.segment = segment
        path = directory + "/" + segment.file
        self.chunkSize = chunkSize
        self.chunkCount = chunkCount
        remaining = chunkCount
        chunkCRC = Array(repeating: 0, count: chunkCount)
    }

    /// Chunks of `chunkSize` bytes that make a segment of `size` bytes.
    static func chunks(size: UInt64, chunkSize: Int) -> Int { Int((size + UInt64(chunkSize) - 1) / UInt64(chunkSize)) }

    /// Segment bytes in chunk `chunk`.
    func chunkLength(_ chunk: Int) -> Int { min(chunkSize, Int(segment.size) - chunk * chunkSize) }

    /// Records a chunk's CRC-32 and counts it done; true when it was the file's last outstanding chunk.
    func chunkDone(_ chunk: Int, crc: UInt32) -> Bool {
        lock.lock()
        defer { lock.unlock() }
        chunkCRC[chunk] = crc
        remaining -= 1
        return remaining == 0
    }

    /// CRC-32 of the whole segment, from the chunks'.
    func combinedCRC() -> UInt32 { CRC32.combine(chunkCRC, chunkSize: chunkSize, totalLength: segment.size) }

    /// Attaches the segment and opens its shmem file when `access` allows it.
    func attach(readOnly: Bool, access: SegmentAccess) throws(EngineError) {
        let attached = try SharedMemory.attach(shmid: shmid, key: segment.key, size: segment.size, readOnly: readOnly)
        attachment = attached
        if access == .automatic {
            segmentFD = SharedMemory.openFile(attached, key: segment.key, writable: !readOnly) ?? -1
        }
    }

    /// Plain copies between this file and its segment (while the segment is attached).
    var segmentIO: SegmentIO { SegmentIO(segmentFD: segmentFD, mapping: attachment!.address, key: segment.key) }

    /// Closes the file and detaches the segment; safe to call more than once.
    func release() {
        if fd >= 0 {
            close(fd)
            fd = -1
        }
        detachSegment()
    }

    /// Detaches the segment as soon as its bytes are copied: unmapping a segment costs about 12 ms per 256 MiB,
    /// which the workers then pay in parallel instead of the caller one segment after another at the end.
    func detachSegment() {
        if segmentFD >= 0 {
            close(segmentFD)
            segmentFD = -1
        }
        if let attachment {
            SharedMemory.detach(attachment)
            self.attachment = nil
        }
    }
}
