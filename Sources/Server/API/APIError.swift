/// An API error: a stable machine code, its HTTP status, and one clear message.
struct APIError: Error, Sendable, Equatable, CustomStringConvertible {
    enum Code: String, Sendable, CaseIterable {
        case invalidJSON = "INVALID_JSON"
        case invalidField = "INVALID_FIELD"
        case invalidQuery = "INVALID_QUERY"
        case unsupportedMediaType = "UNSUPPORTED_MEDIA_TYPE"
        case unauthorized = "UNAUTHORIZED"
        case notFound = "NOT_FOUND"
        case jobNotFound = "JOB_NOT_FOUND"
        case backupNotFound = "BACKUP_NOT_FOUND"
        case instanceBusy = "INSTANCE_BUSY"
        case serverRunning = "SERVER_RUNNING"
        case segmentsExist = "SEGMENTS_EXIST"
        case filesExist = "FILES_EXIST"
        case jobFinished = "JOB_FINISHED"
        case backupInUse = "BACKUP_IN_USE"
        case backupStale = "BACKUP_STALE"
        case insufficientStorage = "INSUFFICIENT_STORAGE"
        case backupBusy = "BACKUP_BUSY"
        case unknownInstance = "UNKNOWN_INSTANCE"
        case unknownNamespace = "UNKNOWN_NAMESPACE"
        case namespaceNotFound = "NAMESPACE_NOT_FOUND"
        case noCompleteBackup = "NO_COMPLETE_BACKUP"
        case backupIncomplete = "BACKUP_INCOMPLETE"
        case uncleanShutdown = "UNCLEAN_SHUTDOWN"
        case invalidSegments = "INVALID_SEGMENTS"
        case invalidBackup = "INVALID_BACKUP"
        case verifyFailed = "VERIFY_FAILED"
        case invalidRequest = "INVALID_REQUEST"
        case canceled = "CANCELED"
        case interrupted = "INTERRUPTED"
        case shuttingDown = "SHUTTING_DOWN"
        case io = "IO_ERROR"
        case system = "SYSTEM_ERROR"
        case internalError = "INTERNAL_ERROR"

        /// The one place codes become HTTP statuses.
        var status: Int {
            switch self {
            case .invalidJSON, .invalidField, .invalidQuery: 400
            case .unauthorized: 401
            case .notFound, .jobNotFound, .backupNotFound: 404
            case .unsupportedMediaType: 415
            case .instanceBusy, .serverRunning, .segmentsExist, .filesExist, .jobFinished, .backupInUse,
                .backupBusy, .backupStale:
                409
            case .unknownInstance, .unknownNamespace, .namespaceNotFound, .noCompleteBackup, .backupIncomplete,
                .uncleanShutdown, .invalidSegments, .invalidBackup, .verifyFailed, .invalidRequest:
                422
            case .canceled, .interrupted, .io, .system, .internalError: 500
            case .shuttingDown: 503
            case .insufficientStorage: 507
            }
        }
    }

    var code: Code
    var message: String
    /// Extra machine-readable facts (e.g. the id of the job holding the instance).
    var details: [String: String] = [:]

    init(_ code: Code, _ message: String, details: [String: String] = [:]) {
        self.code = code
        self.message = message
        self.details = details
    }

    var status: Int { code.status }
    var description: String { "\(code.rawValue): \(message)" }
}
