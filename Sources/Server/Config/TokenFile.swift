import Glibc

/// The bearer token file (`service.auth.token-file`): a regular file, mode 0600 or 0400, owned by root or by
/// the user the service runs as, holding one word. Anything laxer lets another local user read or replace
/// the token, so it is a configuration error, never a warning.
enum TokenFile {
    /// Why a file with these attributes may not hold the token; nil when it may (pure).
    static func problem(_ path: String, mode: mode_t, owner: uid_t, serviceUser: uid_t) -> String? {
        if mode & S_IFMT != S_IFREG { return "\(path) is not a regular file" }
        let permissions = mode & 0o7777
        if permissions != 0o600 && permissions != 0o400 {
            return "\(path) has mode 0\(String(permissions, radix: 8)); a token file must be 0600 or 0400 "
                + "(no group or other permissions): chmod 600 \(path)"
        }
        if owner != 0 && owner != serviceUser {
            return "\(path) is owned by uid \(owner); a token file must be owned by root or by the service's "
                + "user (uid \(serviceUser))"
        }
        return nil
    }

    /// The token, or why it cannot be used. The checks apply to the opened file (fstat), so that the file
    /// checked is the file read.
    static func read(_ path: String, serviceUser: uid_t = geteuid()) -> Result<String, TokenFileError> {
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK)
        guard fd >= 0 else {
            return .failure(TokenFileError(message: "cannot open the token file \(path): \(errnoText())"))
        }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else {
            return .failure(TokenFileError(message: "cannot stat the token file \(path): \(errnoText())"))
        }
        if let problem = problem(path, mode: st.st_mode, owner: st.st_uid, serviceUser: serviceUser) {
            return .failure(TokenFileError(message: problem))
        }
        var bytes = [UInt8](repeating: 0, count: 4097)
        var count = 0
        while count < bytes.count {
            let n = bytes.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress! + count, $0.count - count) }
            if n < 0 && errno == EINTR { continue }
            if n < 0 {
                return .failure(TokenFileError(message: "cannot read the token file \(path): \(errnoText())"))
            }
            if n == 0 { break }
            count += n
        }
        if count > 4096 { return .failure(TokenFileError(message: "\(path) is larger than 4096 bytes")) }
        let token = String(decoding: bytes[0..<count], as: UTF8.self).trimmingWhitespace()
        if token.isEmpty { return .failure(TokenFileError(message: "\(path) is empty")) }
        if token.contains(where: { $0.isWhitespace }) {
            return .failure(TokenFileError(message: "the token in \(path) must be one word"))
        }
        return .success(token)
    }

    private static func errnoText() -> String { String(cString: strerror(errno)) }
}

struct TokenFileError: Error, Sendable, Equatable {
    var message: String
}
