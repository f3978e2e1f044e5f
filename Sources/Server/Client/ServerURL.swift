/// Where the client finds the service: `http://host[:port][/prefix]` (pure parsing; no TLS).
struct ServerURL: Sendable, Equatable {
    var host: String
    var port: Int
    /// A path prefix without a trailing `/` ("" for none), for a service behind a proxy path.
    var prefix: String

    static let defaultURL = "http://127.0.0.1:8080"

    /// `--server`, else `ASMTD_SERVER`, else the default.
    static func choose(option: String?, environment: [String: String]) -> String {
        if let option, !option.isEmpty { return option }
        if let value = environment["ASMTD_SERVER"], !value.isEmpty { return value }
        return defaultURL
    }

    struct Invalid: Error, Equatable {
        var message: String
    }

    static func parse(_ text: String) throws(Invalid) -> ServerURL {
        let lower = text.lowercased()
        if lower.hasPrefix("https://") {
            throw Invalid(
                message: "\(text): https is not supported; use http:// (behind a TLS proxy, its local address)")
        }
        guard lower.hasPrefix("http://") else {
            throw Invalid(message: "\(text): the server URL must start with http://")
        }
        var rest = Substring(text.dropFirst("http://".count))
        var prefix = ""
        if let slash = rest.firstIndex(of: "/") {
            prefix = String(rest[slash...])
            rest = rest[..<slash]
        }
        while prefix.hasSuffix("/") { prefix.removeLast() }
        if prefix.contains("?") || prefix.contains("#") || prefix.contains(" ") {
            throw Invalid(message: "\(text): the server URL takes no query, fragment or spaces")
        }
        if rest.contains("@") {
            throw Invalid(message: "\(text): credentials in the URL are not supported; use --token-file")
        }
        var host: Substring
        var portText: Substring?
        if rest.hasPrefix("[") {
            guard let close = rest.firstIndex(of: "]") else {
                throw Invalid(message: "\(text): unclosed [ in the host")
            }
            host = rest[rest.index(after: rest.startIndex)..<close]
            let after = rest[rest.index(after: close)...]
            if !after.isEmpty {
                guard after.hasPrefix(":") else { throw Invalid(message: "\(text): bad text after the IPv6 address") }
                portText = after.dropFirst()
            }
        } else if let colon = rest.lastIndex(of: ":") {
            host = rest[..<colon]
            portText = rest[rest.index(after: colon)...]
        } else {
            host = rest
        }
        guard !host.isEmpty else { throw Invalid(message: "\(text): the server URL has no host") }
        var port = 80
        if let portText {
            guard let value = Int(portText), (1...65535).contains(value), portText.allSatisfy(\.isNumber) else {
                throw Invalid(message: "\(text): the port must be a number in 1..65535")
            }
            port = value
        }
        return ServerURL(host: String(host), port: port, prefix: prefix)
    }

    /// The Host header's value.
    var authority: String { (host.contains(":") ? "[\(host)]" : host) + (port == 80 ? "" : ":\(port)") }

    /// Percent-encodes one path segment (a job id typed by a user).
    static func segment(_ text: String) -> String {
        var out = ""
        for byte in text.utf8 {
            let unreserved =
                (byte >= 0x30 && byte <= 0x39) || (byte >= 0x41 && byte <= 0x5A) || (byte >= 0x61 && byte <= 0x7A)
                || byte == 0x2D || byte == 0x2E || byte == 0x5F || byte == 0x7E
            if unreserved {
                out.unicodeScalars.append(Unicode.Scalar(byte))
            } else {
                let hex = String(byte, radix: 16, uppercase: true)
                out += "%" + (hex.count == 1 ? "0" + hex : hex)
            }
        }
        return out
    }
}
