import Glibc
import Synchronization

/// An advisory `flock` on a backup directory's own descriptor (opened `O_DIRECTORY | O_NOFOLLOW`).
///
/// A backup holds it exclusively for its whole run, so one directory has one writer; a restore holds it shared, so
/// that no backup writes or cleans the directory it reads. The lock ends when the descriptor is closed: at
/// `release()`, when the object goes away, or when the process dies (a kill never leaves a stale lock).
final class DirectoryLock: Sendable {
    let path: String
    private let descriptor: Atomic<Int32>

    private init(path: String, fd: Int32) {
        self.path = path
        descriptor = Atomic(fd)
    }

    deinit { release() }

    /// The backup's lock: refused with `.backupBusy` while another backup or a restore holds the directory.
    static func exclusive(_ path: String) throws(EngineError) -> DirectoryLock {
        try lock(path, operation: LOCK_EX, holders: "another backup writes into it or a restore reads it")
    }

    /// A restore's lock: refused with `.backupBusy` while a backup writes into the directory.
    static func shared(_ path: String) throws(EngineError) -> DirectoryLock {
        try lock(path, operation: LOCK_SH, holders: "a backup writes into it")
    }

    /// Closes the descriptor once, which ends the lock; later calls do nothing.
    func release() {
        let fd = descriptor.exchange(-1, ordering: .acquiringAndReleasing)
        if fd >= 0 { close(fd) }
    }

    private static func lock(_ path: String, operation: Int32, holders: String) throws(EngineError) -> DirectoryLock {
        let fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        guard fd >= 0 else {
            let code = errno
            if code == ENOTDIR || code == ELOOP {
                throw EngineError(.io, "\(path) is not a directory (symbolic links are not followed)")
            }
            throw EngineError(.io, "cannot open directory \(path): \(errnoText(code))")
        }
        while flock(fd, operation | LOCK_NB) != 0 {
            let code = errno
            if code == EINTR { continue }
            close(fd)
            if code == EWOULDBLOCK { throw EngineError(.backupBusy, "backup directory \(path) is busy: \(holders)") }
            throw EngineError(.io, "cannot lock directory \(path): \(errnoText(code))")
        }
        return DirectoryLock(path: path, fd: fd)
    }
}
