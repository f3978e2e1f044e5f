/// A request the server refuses before any handler sees it. Every parse error closes the connection
/// after its response, since the framing of whatever follows can no longer be trusted.
package struct HTTPParseError: Error, Equatable, Sendable {
    package var status: Int
    /// A short stable machine code, passed to `HTTPServerHooks.errorResponse`.
    package var code: String
    package var message: String

    package init(status: Int, code: String, message: String) {
        (self.status, self.code, self.message) = (status, code, message)
    }

    private init(_ status: Int, _ code: String, _ message: String) {
        self.init(status: status, code: code, message: message)
    }

    static func badRequest(_ message: String) -> Self { Self(400, "BAD_REQUEST", message) }
    static func uriTooLong(_ message: String) -> Self { Self(414, "URI_TOO_LONG", message) }
    static func headersTooLarge(_ message: String) -> Self { Self(431, "HEADERS_TOO_LARGE", message) }
    static func bodyTooLarge(_ message: String) -> Self { Self(413, "BODY_TOO_LARGE", message) }
    static func notImplemented(_ message: String) -> Self { Self(501, "NOT_IMPLEMENTED", message) }
    static func versionNotSupported(_ message: String) -> Self { Self(505, "VERSION_NOT_SUPPORTED", message) }
    static func expectationFailed(_ message: String) -> Self { Self(417, "EXPECTATION_FAILED", message) }
}
