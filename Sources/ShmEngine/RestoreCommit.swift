import CISAL
import Glibc
import Synchronization

/// The end of a restore: the check that nobody else attached a created segment, and the commit.
enum RestoreCommit {
    /// The base's version and shutdown-status words: zero until the commit writes them.
    static let wordSize = 8

    /// The segment must still be ours and unattached since our own last detach: the same shmid under its key, no
    /// attachment, and the last attach/detach ours with the times it left (any other shmat or shmdt changes them).
    static func checkUntouched(_ file: RestoreFileState) throws(EngineError) {
        let key = file.segment.key
        guard SharedMemory.lookup(key) == file.shmid, let now = SharedMemory.stat(shmid: file.shmid),
            now.key == key.rawValue
        else {
            throw EngineError(
                .serverRunning, "segment \(key.hex) (shmid \(file.shmid)) was removed or replaced during the restore")
        }
        guard now.nattch == 0, let left = file.trace, SegmentTrace(now) == left, left.lpid == getpid() else {
            throw EngineError(
                .serverRunning,
                "segment \(key.hex) was attached by another process (pid \(now.lpid), \(now.nattch) attachment(s) now) "
                    + "during the restore: a server may be starting; nothing was committed")
        }
    }

    /// The last write of a namespace's restore: the base's first 8 bytes from the file.
    static func commit(_ file: RestoreFileState) throws(EngineError) {
        let key = file.segment.key
        guard file.commitWord.count == wordSize else {
            throw EngineError(.system, "base segment \(key.hex): its first bytes were never read")
        }
        let attached = try SharedMemory.attach(shmid: file.shmid, key: key, size: file.segment.size, readOnly: false)
        file.commitWord.withUnsafeBytes { word in
            attached.address.copyMemory(from: word.baseAddress!, byteCount: wordSize)
        }
        SharedMemory.detach(attached)
    }
}

/// What a segment's last attach or detach left in its status: pid and times.
struct SegmentTrace: Equatable, Sendable {
    var lpid: Int32
    var atime: Int64
    var dtime: Int64

    init(_ info: cisal_shm_info) {
        lpid = info.lpid
        atime = info.atime
        dtime = info.dtime
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

/// Segments this process is restoring, by shmid. A segment listing in this process does not attach them (that
/// would count as a foreign attach at the commit check) and reports them as uncommitted.
enum RestoreRegistry {
    private static let restoring = Mutex<[Int32: String]>([:])

    static func register(_ shmid: Int32, namespace: String) {
        restoring.withLock { $0[shmid] = namespace }
    }

    static func unregister(_ shmids: [Int32]) {
        restoring.withLock { map in for shmid in shmids { map[shmid] = nil } }
    }

    /// The namespace of a segment being restored here, nil for any other segment.
    static func namespace(of shmid: Int32) -> String? { restoring.withLock { $0[shmid] } }
}
