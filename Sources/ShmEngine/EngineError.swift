/// Why an engine call failed: a code (the service maps it to an HTTP status) and one line naming the segment or file.
public struct EngineError: Error, Sendable, CustomStringConvertible, Equatable {
    public enum Code: String, Sendable, Codable {
        /// Bad instance, no namespaces, bad threads.
        case invalidRequest = "INVALID_REQUEST"
        /// No base segment / base file with that name.
        case namespaceNotFound = "NAMESPACE_NOT_FOUND"
        /// A segment of the namespace is attached.
        case serverRunning = "SERVER_RUNNING"
        /// Base shutdown status != 1.
        case uncleanShutdown = "UNCLEAN_SHUTDOWN"
        /// Treex missing, stage holes, counts, base version, sizes.
        case invalidSegments = "INVALID_SEGMENTS"
        /// Backup: files of that instance+nsid already in the directory.
        case filesExist = "FILES_EXIST"
        /// Restore: segments of that instance+nsid exist.
        case segmentsExist = "SEGMENTS_EXIST"
        /// Restore: missing/corrupt/truncated files, bad header.
        case invalidBackup = "INVALID_BACKUP"
        /// CRC-32 mismatch.
        case verifyFailed = "VERIFY_FAILED"
        case canceled = "CANCELED"
        /// File system errors (ENOSPC, EACCES, ...).
        case io = "IO_ERROR"
        /// Shm calls refused, out of memory, ...
        case system = "SYSTEM_ERROR"
        /// Another job (this process, another asmtd, the CLI) holds the instance's lock.
        case instanceBusy = "INSTANCE_BUSY"
        /// Another backup holds the backup directory's lock (or a restore reads it).
        case backupBusy = "BACKUP_BUSY"
    }

    public var code: Code
    /// One clear line, names the segment/file.
    public var message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { "\(code.rawValue): \(message)" }
}
