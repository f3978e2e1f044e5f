/// The request-target of RFC 9112 §3.2, split into a decoded path and query.
struct RequestTarget: Equatable {
    var path: String
    var queryItems: [(name: String, value: String)]
    /// The authority of an absolute-form target; it replaces Host (RFC 9112 §3.2.2).
    var authority: String?

    static func == (lhs: RequestTarget, rhs: RequestTarget) -> Bool {
        lhs.path == rhs.path && lhs.authority == rhs.authority
            && lhs.queryItems.map { [$0.name, $0.value] } == rhs.queryItems.map { [$0.name, $0.value] }
    }

    /// Parses a raw target: origin-form (`/p?q`), absolute-form (`http://h/p?q`), or `*` for OPTIONS.
    ///
    /// Only visible ASCII is allowed, no fragment, valid percent-encoding, no encoded NUL, and the
    /// decoded path must be UTF-8.
    static func parse(_ bytes: [UInt8], method: String) throws(HTTPParseError) -> RequestTarget {
        guard !bytes.isEmpty else { throw .badRequest("empty request-target") }
        for byte in bytes where byte < 0x21 || byte > 0x7E || byte == UInt8(ascii: "#") {
            throw .badRequest("invalid byte in request-target")
        }
        if bytes == [UInt8(ascii: "*")] {
            guard method == "OPTIONS" else { throw .badRequest("asterisk-form is only for OPTIONS") }
            return RequestTarget(path: "*", queryItems: [], authority: nil)
        }
        var rest = bytes[...]
        var authority: String?
        if bytes.first != UInt8(ascii: "/") {
            let lower = bytes.prefix(8).map(asciiLower)
            let schemeLength: Int
            if lower.starts(with: Array("http://".utf8)) {
                schemeLength = 7
            } else if lower.starts(with: Array("https://".utf8)) {
                schemeLength = 8
            } else {
                throw .badRequest("request-target must be origin-form or absolute-form")
            }
            let afterScheme = bytes[schemeLength...]
            let end =
                afterScheme.firstIndex { $0 == UInt8(ascii: "/") || $0 == UInt8(ascii: "?") } ?? bytes.endIndex
            let host = bytes[schemeLength..<end]
            guard !host.isEmpty, isValidAuthority(host) else { throw .badRequest("invalid authority in target") }
            authority = String(decoding: host, as: UTF8.self)
            rest = bytes[end...]
        }
        let queryStart = rest.firstIndex(of: UInt8(ascii: "?"))
        let rawPath = rest[rest.startIndex..<(queryStart ?? rest.endIndex)]
        var path = "/"
        if !rawPath.isEmpty {
            guard rawPath.first == UInt8(ascii: "/") else { throw .badRequest("path must start with /") }
            guard let decoded = percentDecode(rawPath, plusIsSpace: false) else {
                throw .badRequest("invalid percent-encoding in path")
            }
            path = decoded
        }
        var items: [(name: String, value: String)] = []
        if let queryStart {
            guard let parsed = parseQuery(rest[(queryStart + 1)...]) else {
                throw .badRequest("invalid percent-encoding in query")
            }
            items = parsed
        }
        return RequestTarget(path: path, queryItems: items, authority: authority)
    }

    /// Parses `a=1&b=x%20y&c` into items; nil when an item has invalid percent-encoding.
    static func parseQuery(_ bytes: ArraySlice<UInt8>) -> [(name: String, value: String)]? {
        var items: [(name: String, value: String)] = []
        for piece in bytes.split(separator: UInt8(ascii: "&"), omittingEmptySubsequences: true) {
            let equals = piece.firstIndex(of: UInt8(ascii: "="))
            let rawName = piece[piece.startIndex..<(equals ?? piece.endIndex)]
            let rawValue = equals.map { piece[($0 + 1)...] } ?? []
            guard let name = percentDecode(rawName, plusIsSpace: true),
                let value = percentDecode(rawValue, plusIsSpace: true)
            else { return nil }
            items.append((name: name, value: value))
        }
        return items
    }

    /// Decodes `%XX` escapes (and `+` when asked); nil on a bad escape, an encoded NUL or invalid UTF-8.
    static func percentDecode(_ bytes: ArraySlice<UInt8>, plusIsSpace: Bool) -> String? {
        var output: [UInt8] = []
        output.reserveCapacity(bytes.count)
        var index = bytes.startIndex
        while index < bytes.endIndex {
            let byte = bytes[index]
            if byte == UInt8(ascii: "%") {
                guard index + 2 < bytes.endIndex,
                    let high = ByteClass.hexValue(bytes[index + 1]), let low = ByteClass.hexValue(bytes[index + 2])
                else { return nil }
                let decoded = UInt8(high << 4 | low)
                guard decoded != 0 else { return nil }
                output.append(decoded)
                index += 3
            } else if byte == UInt8(ascii: "+") && plusIsSpace {
                output.append(0x20)
                index += 1
            } else {
                output.append(byte)
                index += 1
            }
        }
        return String(validating: output, as: UTF8.self)
    }

    /// uri-host [ ":" port ]: unreserved, pct-encoded, sub-delims, ":" and the brackets of an IP literal.
    static func isValidAuthority(_ bytes: some Collection<UInt8>) -> Bool {
        for byte in bytes {
            switch byte {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
                UInt8(ascii: "0")...UInt8(ascii: "9"):
                continue
            default:
                guard "-._~!$&'()*+,;=:[]%".utf8.contains(byte) else { return false }
            }
        }
        return true
    }
}
