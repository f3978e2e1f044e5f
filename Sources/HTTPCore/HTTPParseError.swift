/// A request the server refuses before any handler sees it. Every parse error closes the connection
/// after its response, since the framing of whatever follows can no longer be trusted.
struct HTTPParseError: Error, Equatable, Sendable {
    var status: Int
    /// A short stable machine code, passed to ``HTTPServerHooks/errorResponse``.
    var code: String
    var message: String

    static func badRequest(_ message: String) -> HTTPParseError {
        HTTPParseError(status: 400, code: "BAD_REQUEST", message: message)
    }

    static func uriTooLong(_ message: String) -> HTTPParseError {
        HTTPParseError(status: 414, code: "URI_TOO_LONG", message: message)
    }

    static func headersTooLarge(_ message: String) -> HTTPParseError {
        HTTPParseError(status: 431, code: "HEADERS_TOO_LARGE", message: message)
    }

    static func bodyTooLarge(_ message: String) -> HTTPParseError {
        HTTPParseError(status: 413, code: "BODY_TOO_LARGE", message: message)
    }

    static func notImplemented(_ message: String) -> HTTPParseError {
        HTTPParseError(status: 501, code: "NOT_IMPLEMENTED", message: message)
    }

    static func versionNotSupported(_ message: String) -> HTTPParseError {
        HTTPParseError(status: 505, code: "VERSION_NOT_SUPPORTED", message: message)
    }

    static func expectationFailed(_ message: String) -> HTTPParseError {
        HTTPParseError(status: 417, code: "EXPECTATION_FAILED", message: message)
    }
}

/// Byte classes of RFC 9110 §5.6.2 and §5.5.
enum ByteClass {
    /// tchar: ALPHA, DIGIT and ``!#$%&'*+-.^_`|~``.
    static let token: [Bool] = {
        var table = [Bool](repeating: false, count: 256)
        for byte in UInt8(ascii: "a")...UInt8(ascii: "z") { table[Int(byte)] = true }
        for byte in UInt8(ascii: "A")...UInt8(ascii: "Z") { table[Int(byte)] = true }
        for byte in UInt8(ascii: "0")...UInt8(ascii: "9") { table[Int(byte)] = true }
        for byte in "!#$%&'*+-.^_`|~".utf8 { table[Int(byte)] = true }
        return table
    }()

    @inline(__always)
    static func isToken(_ byte: UInt8) -> Bool { token[Int(byte)] }

    /// field-vchar, SP or HTAB: what a field value may hold (obs-text 0x80-0xFF is opaque but allowed).
    @inline(__always)
    static func isFieldContent(_ byte: UInt8) -> Bool {
        byte == 0x09 || (byte >= 0x20 && byte != 0x7F)
    }

    @inline(__always)
    static func isWhitespace(_ byte: UInt8) -> Bool { byte == 0x20 || byte == 0x09 }

    @inline(__always)
    static func hexValue(_ byte: UInt8) -> Int? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return Int(byte - UInt8(ascii: "0"))
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return Int(byte - UInt8(ascii: "a") + 10)
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return Int(byte - UInt8(ascii: "A") + 10)
        default: return nil
        }
    }
}
