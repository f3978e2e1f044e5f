import Glibc
import ShmEngine

/// The exit statuses of every `asmtd` command (sysexits.h), and the one mapping from error codes to them.
/// The API's codes and the engine's share their names, so one table serves the local commands, the
/// client (`asmtd job`) and the service's own start.
enum SysExit: Int32, CaseIterable, Sendable {
    case success = 0
    /// The job (or the operation) failed or was refused for a reason the operator must look at.
    case failure = 1
    /// EX_USAGE: bad arguments, or a request the service refuses as invalid (unknown instance, job, ...).
    case usage = 64
    /// EX_UNAVAILABLE: the service cannot be reached or is shutting down.
    case unavailable = 69
    /// EX_TEMPFAIL: the instance or the backup is busy with another job; try again later.
    case busy = 75
    /// EX_NOPERM: a wrong or missing token, or the system refused (EPERM, EACCES: not root?).
    case noPermission = 77
    /// EX_CONFIG: the configuration file (or the client's token file) is unusable.
    case config = 78
    /// 128 + SIGINT: the job was canceled (Ctrl-C, SIGTERM, or a cancel through the API).
    case canceled = 130

    static let usageCodes: Set<String> = [
        "INVALID_JSON", "INVALID_FIELD", "INVALID_QUERY", "BAD_REQUEST", "INVALID_REQUEST", "NOT_FOUND",
        "METHOD_NOT_ALLOWED", "UNKNOWN_INSTANCE", "UNKNOWN_NAMESPACE", "JOB_NOT_FOUND", "BACKUP_NOT_FOUND",
        "BODY_TOO_LARGE", "URI_TOO_LONG", "HEADERS_TOO_LARGE", "EXPECTATION_FAILED", "NOT_IMPLEMENTED",
        "VERSION_NOT_SUPPORTED", "UNSUPPORTED_MEDIA_TYPE", "USAGE",
    ]
    static let unavailableCodes: Set<String> = ["SHUTTING_DOWN", "UNAVAILABLE", "REQUEST_TIMEOUT"]
    static let busyCodes: Set<String> = ["INSTANCE_BUSY", "BACKUP_BUSY", "BACKUP_IN_USE"]
    static let permissionCodes: Set<String> = ["UNAUTHORIZED", "FORBIDDEN", "NOT_PERMITTED"]
    static let configCodes: Set<String> = ["CONFIG_ERROR"]

    /// The exit status for an error `code` (API or engine). An `IO_ERROR` or `SYSTEM_ERROR` whose message
    /// ends with the text of EPERM or EACCES (how the engine reports errno) is a permission problem (pure).
    static func of(code: String, message: String = "") -> SysExit {
        if usageCodes.contains(code) { return .usage }
        if unavailableCodes.contains(code) { return .unavailable }
        if busyCodes.contains(code) { return .busy }
        if permissionCodes.contains(code) { return .noPermission }
        if configCodes.contains(code) { return .config }
        if code == "CANCELED" { return .canceled }
        if code == "IO_ERROR" || code == "SYSTEM_ERROR", isPermissionDenied(message) { return .noPermission }
        return .failure
    }

    static func of(_ error: EngineError) -> SysExit { of(code: error.code.rawValue, message: error.message) }

    static func of(_ error: APIError) -> SysExit { of(code: error.code.rawValue, message: error.message) }

    static func isPermissionDenied(_ message: String) -> Bool {
        [EPERM, EACCES].contains { message.hasSuffix(": " + String(cString: strerror($0))) }
    }

    /// The table shown by `asmtd --help` and the README.
    static let help = """
        Exit status (sysexits.h):
          0    success
          1    the job failed or was refused (SERVER_RUNNING, VERIFY_FAILED, ...)
          64   usage: bad arguments; unknown command, instance, job, ...
          69   service unavailable: cannot connect, or SHUTTING_DOWN
          75   busy, try again later: INSTANCE_BUSY, BACKUP_BUSY, BACKUP_IN_USE
          77   not permitted: UNAUTHORIZED, or EPERM/EACCES (not root?)
          78   configuration error (serve, validate, an unusable --token-file)
          130  canceled (SIGINT/SIGTERM, or the job was canceled)
        """
}
