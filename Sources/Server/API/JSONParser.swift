/// A strict RFC 8259 parser for request bodies (pure). Beyond the grammar it refuses what lenient parsers let
/// through and a client most likely did not mean: duplicate keys (which one wins differs between parsers),
/// trailing commas, leading zeros, raw control characters and lone surrogates in strings, invalid UTF-8, and
/// nesting deeper than `maxDepth`.
struct JSONParser {
    /// Why a body is not acceptable JSON, and where (byte offset).
    struct Failure: Error, Equatable, CustomStringConvertible {
        var message: String
        var offset: Int
        var description: String { "\(message) (at byte \(offset))" }
    }

    static let maxDepth = 64

    private let bytes: [UInt8]
    private var index = 0
    private var depth = 0

    private init(_ bytes: [UInt8]) { self.bytes = bytes }

    /// One JSON value, optionally surrounded by whitespace.
    static func parse(_ bytes: [UInt8]) throws(Failure) -> JSONValue {
        var parser = JSONParser(bytes)
        parser.skipWhitespace()
        let value = try parser.value()
        parser.skipWhitespace()
        if parser.index < bytes.count { throw parser.failure("unexpected data after the JSON value") }
        return value
    }

    private func failure(_ message: String, at offset: Int? = nil) -> Failure {
        Failure(message: message, offset: offset ?? index)
    }

    private var current: UInt8? { index < bytes.count ? bytes[index] : nil }

    private mutating func skipWhitespace() {
        while let c = current, c == 0x20 || c == 0x0a || c == 0x0d || c == 0x09 { index += 1 }
    }

    private func describe(_ c: UInt8?) -> String {
        guard let c else { return "the end of the body" }
        if c >= 0x21 && c < 0x7f { return "'\(Character(Unicode.Scalar(c)))'" }
        return "byte 0x" + String(c, radix: 16)
    }

    private mutating func expect(_ c: UInt8, _ what: String) throws(Failure) {
        guard current == c else { throw failure("expected \(what), found \(describe(current))") }
        index += 1
    }

    private mutating func value() throws(Failure) -> JSONValue {
        guard let c = current else { throw failure("expected a value, found the end of the body") }
        switch c {
        case UInt8(ascii: "{"): return try object()
        case UInt8(ascii: "["): return try array()
        case UInt8(ascii: "\""): return .string(try string())
        case UInt8(ascii: "t"): return try literal("true", .bool(true))
        case UInt8(ascii: "f"): return try literal("false", .bool(false))
        case UInt8(ascii: "n"): return try literal("null", .null)
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return try number()
        default: throw failure("expected a value, found \(describe(c))")
        }
    }

    private mutating func literal(_ word: String, _ value: JSONValue) throws(Failure) -> JSONValue {
        let utf8 = Array(word.utf8)
        guard bytes.count - index >= utf8.count, Array(bytes[index..<index + utf8.count]) == utf8 else {
            throw failure("expected a value, found \(describe(current))")
        }
        index += utf8.count
        return value
    }

    private mutating func nest() throws(Failure) {
        depth += 1
        if depth > Self.maxDepth { throw failure("nesting deeper than \(Self.maxDepth) levels") }
    }

    private mutating func object() throws(Failure) -> JSONValue {
        var fields: [String: JSONValue] = [:]
        try members(closedBy: "}") { (parser) throws(Failure) in
            let keyOffset = parser.index
            guard parser.current == UInt8(ascii: "\"") else {
                throw parser.failure("expected a key in double quotes, found \(parser.describe(parser.current))")
            }
            let key = try parser.string()
            if fields[key] != nil { throw parser.failure("duplicate key \"\(key)\"", at: keyOffset) }
            parser.skipWhitespace()
            try parser.expect(UInt8(ascii: ":"), "':' after the key \"\(key)\"")
            parser.skipWhitespace()
            fields[key] = try parser.value()
        }
        return .object(fields)
    }

    private mutating func array() throws(Failure) -> JSONValue {
        var items: [JSONValue] = []
        try members(closedBy: "]") { (parser) throws(Failure) in items.append(try parser.value()) }
        return .array(items)
    }

    /// The members of an object or array, from its opening bracket to `close`: none, or `member`s separated by
    /// commas (no trailing comma), each read by `member` from its first byte.
    private mutating func members(
        closedBy close: Unicode.Scalar, _ member: (inout JSONParser) throws(Failure) -> Void
    ) throws(Failure) {
        try nest()
        index += 1
        skipWhitespace()
        if current == UInt8(ascii: close) {
            index += 1
            depth -= 1
            return
        }
        while true {
            skipWhitespace()
            if current == UInt8(ascii: close) { throw failure("trailing comma before '\(close)'") }
            try member(&self)
            skipWhitespace()
            if current == UInt8(ascii: ",") {
                index += 1
                continue
            }
            try expect(UInt8(ascii: close), "',' or '\(close)'")
            depth -= 1
            return
        }
    }

    private mutating func digits() -> Int {
        let start = index
        while let c = current, c >= UInt8(ascii: "0"), c <= UInt8(ascii: "9") { index += 1 }
        return index - start
    }

    private mutating func number() throws(Failure) -> JSONValue {
        let start = index
        if current == UInt8(ascii: "-") { index += 1 }
        let integerStart = index
        let integerDigits = digits()
        if integerDigits == 0 { throw failure("expected a digit, found \(describe(current))") }
        if integerDigits > 1 && bytes[integerStart] == UInt8(ascii: "0") {
            throw failure("numbers must not have leading zeros", at: integerStart)
        }
        var integral = true
        if current == UInt8(ascii: ".") {
            integral = false
            index += 1
            if digits() == 0 { throw failure("expected a digit after '.', found \(describe(current))") }
        }
        if current == UInt8(ascii: "e") || current == UInt8(ascii: "E") {
            integral = false
            index += 1
            if current == UInt8(ascii: "+") || current == UInt8(ascii: "-") { index += 1 }
            if digits() == 0 { throw failure("expected a digit in the exponent, found \(describe(current))") }
        }
        let text = String(decoding: bytes[start..<index], as: UTF8.self)
        if integral, let n = Int(text) { return .int(n) }
        guard let d = Double(text), d.isFinite else { throw failure("number \(text) is out of range", at: start) }
        return .double(d)
    }

    private mutating func hex4() throws(Failure) -> UInt32 {
        guard bytes.count - index >= 4 else { throw failure("incomplete \\u escape") }
        var value: UInt32 = 0
        for _ in 0..<4 {
            guard let digit = current.flatMap({ Character(Unicode.Scalar($0)).hexDigitValue }) else {
                throw failure("expected a hex digit in a \\u escape, found \(describe(current))")
            }
            value = value << 4 | UInt32(digit)
            index += 1
        }
        return value
    }

    private mutating func string() throws(Failure) -> String {
        index += 1
        var scalars = String.UnicodeScalarView()
        var runStart = index
        func flush(_ parser: JSONParser, upTo end: Int) throws(Failure) {
            guard runStart < end else { return }
            guard let text = String(validating: parser.bytes[runStart..<end], as: UTF8.self) else {
                throw parser.failure("a string is not valid UTF-8", at: runStart)
            }
            scalars.append(contentsOf: text.unicodeScalars)
        }
        while true {
            guard let c = current else { throw failure("unterminated string") }
            if c == UInt8(ascii: "\"") {
                try flush(self, upTo: index)
                index += 1
                return String(scalars)
            }
            if c < 0x20 {
                throw failure("control character 0x\(String(c, radix: 16)) in a string; escape it")
            }
            guard c == UInt8(ascii: "\\") else {
                index += 1
                continue
            }
            try flush(self, upTo: index)
            let escapeOffset = index
            index += 1
            guard let e = current else { throw failure("unterminated string") }
            index += 1
            switch e {
            case UInt8(ascii: "\""): scalars.append("\"")
            case UInt8(ascii: "\\"): scalars.append("\\")
            case UInt8(ascii: "/"): scalars.append("/")
            case UInt8(ascii: "b"): scalars.append("\u{8}")
            case UInt8(ascii: "f"): scalars.append("\u{c}")
            case UInt8(ascii: "n"): scalars.append("\n")
            case UInt8(ascii: "r"): scalars.append("\r")
            case UInt8(ascii: "t"): scalars.append("\t")
            case UInt8(ascii: "u"):
                var code = try hex4()
                if (0xD800...0xDBFF).contains(code) {
                    guard bytes.count - index >= 6, bytes[index] == UInt8(ascii: "\\"),
                        bytes[index + 1] == UInt8(ascii: "u")
                    else { throw failure("lone surrogate \\u\(String(code, radix: 16))", at: escapeOffset) }
                    index += 2
                    let low = try hex4()
                    guard (0xDC00...0xDFFF).contains(low) else {
                        throw failure("lone surrogate \\u\(String(code, radix: 16))", at: escapeOffset)
                    }
                    code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00)
                } else if (0xDC00...0xDFFF).contains(code) {
                    throw failure("lone surrogate \\u\(String(code, radix: 16))", at: escapeOffset)
                }
                // Every other code point up to 0x10FFFF that is not a surrogate is a scalar.
                scalars.append(Unicode.Scalar(code)!)
            default:
                throw failure("invalid escape \\\(describe(e))", at: escapeOffset)
            }
            runStart = index
        }
    }
}
