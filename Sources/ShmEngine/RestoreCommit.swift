import Glibc

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
        guard now.nattch == 0, let left = file.trace, now.trace == left, left.lpid == getpid() else {
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
