import Foundation
import Glibc
import Synchronization

/// One job per Aerospike instance across every asmtd process on the host (CLI jobs and the service).
///
/// An exclusive `flock` on `<runtime-dir>/instance-<N>.lock`. The runtime directory comes from the caller, else from
/// `ASMTD_RUNTIME_DIR`, else `/run/asmtd` (wiped at reboot, like the segments); it is created 0700, the lock file
/// 0600. The holder writes its pid and a description into the file after locking, so that a refusal can name it.
/// The file is never removed (removing a lock file races with a process about to lock it); the lock ends when the
/// descriptor is closed, by `release()` or by the process's death.
package final class InstanceLock: Sendable {
    package static let defaultRuntimeDirectory = "/run/asmtd"

    package let instance: Int
    package let path: String
    private let descriptor: Atomic<Int32>

    private init(instance: Int, path: String, fd: Int32) {
        self.instance = instance
        self.path = path
        descriptor = Atomic(fd)
    }

    deinit { release() }

    /// The runtime directory: `explicit`, else `ASMTD_RUNTIME_DIR`, else `/run/asmtd`.
    package static func runtimeDirectory(_ explicit: String? = nil) -> String {
        if let explicit, !explicit.isEmpty { return explicit }
        if let value = getenv("ASMTD_RUNTIME_DIR").map({ String(cString: $0) }), !value.isEmpty { return value }
        return defaultRuntimeDirectory
    }

    /// Takes the instance's lock or throws `.instanceBusy` naming the holder. `holder` describes this job
    /// (for example "asmtd backup" or "asmtd service job 1f2e").
    package static func acquire(
        instance: Int, runtimeDirectory: String? = nil, holder: String
    ) throws(EngineError) -> InstanceLock {
        guard (0...15).contains(instance) else {
            throw EngineError(.invalidRequest, "instance \(instance) is out of range 0..15")
        }
        let directory = Self.runtimeDirectory(runtimeDirectory)
        if mkdir(directory, 0o700) != 0 && errno != EEXIST {
            throw EngineError(.io, "cannot create runtime directory \(directory): \(errnoText())")
        }
        let path = directory + "/instance-\(instance).lock"
        let fd = open(path, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw EngineError(.io, "cannot open lock file \(path): \(errnoText())") }
        while flock(fd, LOCK_EX | LOCK_NB) != 0 {
            let code = errno
            if code == EINTR { continue }
            defer { close(fd) }
            if code == EWOULDBLOCK {
                let text = (try? FileIO.read(fd, count: 512, at: 0, file: path)).map {
                    String(decoding: $0, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
                }
                let who = text.flatMap { $0.isEmpty ? nil : " (held by \($0))" } ?? ""
                throw EngineError(.instanceBusy, "instance \(instance) is busy with another job\(who)")
            }
            throw EngineError(.io, "cannot lock \(path): \(errnoText(code))")
        }
        let note = Array("pid \(getpid()): \(holder)\n".utf8)
        // Best effort: the description only improves the refusal message of others.
        if ftruncate(fd, 0) == 0 { try? FileIO.writeAll(fd, bytes: note, at: 0, file: path) }
        return InstanceLock(instance: instance, path: path, fd: fd)
    }

    /// Ends the lock (once; later calls do nothing).
    package func release() {
        let fd = descriptor.exchange(-1, ordering: .acquiringAndReleasing)
        if fd >= 0 { close(fd) }
    }
}
