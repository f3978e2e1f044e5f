import Dispatch
import Glibc
import Synchronization

/// fsyncs a backup's finished files one at a time, off the worker threads, so that the workers keep compressing
/// while the disk catches up.
final class FileSyncer: Sendable {
    private let queue = DispatchQueue(label: "asmtd.backup.fsync")
    private let group = DispatchGroup()
    private let firstError = Mutex<EngineError?>(nil)

    var error: EngineError? { firstError.withLock { $0 } }

    /// Queues the fsync of a finished file; counts a step of the file done once synced, or fails the pool.
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
                firstError.withLock { if $0 == nil { $0 = failure } }
                pool.fail(failure)
                return
            }
            file.stepDone(progress)
        }
    }

    /// Returns once every queued fsync has run.
    func wait() { group.wait() }
}
