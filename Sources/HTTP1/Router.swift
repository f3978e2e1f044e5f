/// Routes requests by method and path pattern.
///
/// A pattern is a path whose segments are literals or `{name}` parameters: `/v1/jobs/{id}`.
/// Matching is per segment on the raw path, each segment percent-decoded on its own (so `%2F`
/// stays inside one parameter). A HEAD request is served by the GET handler when no HEAD route
/// exists; the server then sends the headers only. A path that matches no pattern is 404; a path
/// that matches with another method is 405 with `Allow`.
public struct Router: Sendable {
    enum Segment: Sendable, Equatable {
        case literal(String)
        case parameter(String)
    }

    struct Route: Sendable {
        var method: String
        var pattern: String
        var segments: [Segment]
        var handler: HTTPHandler
    }

    /// What the router decided for one request.
    package enum Resolution {
        case matched(handler: HTTPHandler, pattern: String, parameters: [String: String])
        case methodNotAllowed(allow: [String])
        case notFound
    }

    private(set) var table: [Route] = []

    public init() {}

    /// Adds a route. A later route with the same method and pattern replaces the earlier one.
    public mutating func add(_ method: String, _ pattern: String, _ handler: @escaping HTTPHandler) {
        let route = Route(method: method, pattern: pattern, segments: Self.segments(of: pattern), handler: handler)
        if let index = table.firstIndex(where: { $0.method == method && $0.pattern == pattern }) {
            table[index] = route
        } else {
            table.append(route)
        }
    }

    /// The routes, in the order they were added.
    package var routes: [(method: String, pattern: String)] {
        table.map { (method: $0.method, pattern: $0.pattern) }
    }

    static func segments(of pattern: String) -> [Segment] {
        pattern.split(separator: "/", omittingEmptySubsequences: false).dropFirst().map { part in
            if part.hasPrefix("{") && part.hasSuffix("}") && part.count >= 2 {
                return .parameter(String(part.dropFirst().dropLast()))
            }
            return .literal(String(part))
        }
    }

    /// Finds the handler for `method` on the raw (still percent-encoded) path of `target`.
    package func resolve(method: String, target: String) -> Resolution {
        guard let pathSegments = Self.decodedSegments(of: target) else { return .notFound }
        var allowed: [String] = []
        var headFallback: Route?
        var headFallbackParameters: [String: String] = [:]
        for route in table {
            guard let parameters = Self.match(route.segments, pathSegments) else { continue }
            if route.method == method {
                return .matched(handler: route.handler, pattern: route.pattern, parameters: parameters)
            }
            if method == "HEAD" && route.method == "GET" && headFallback == nil {
                headFallback = route
                headFallbackParameters = parameters
            }
            if !allowed.contains(route.method) { allowed.append(route.method) }
            if route.method == "GET" && !allowed.contains("HEAD") { allowed.append("HEAD") }
        }
        if let headFallback {
            return .matched(
                handler: headFallback.handler, pattern: headFallback.pattern, parameters: headFallbackParameters)
        }
        return allowed.isEmpty ? .notFound : .methodNotAllowed(allow: allowed)
    }

    private static func match(_ pattern: [Segment], _ path: [String]) -> [String: String]? {
        guard pattern.count == path.count else { return nil }
        var parameters: [String: String] = [:]
        for (segment, value) in zip(pattern, path) {
            switch segment {
            case .literal(let literal):
                guard literal == value else { return nil }
            case .parameter(let name):
                guard !value.isEmpty else { return nil }
                parameters[name] = value
            }
        }
        return parameters
    }

    /// The percent-decoded segments of the path of a raw target (origin-form or absolute-form).
    static func decodedSegments(of target: String) -> [String]? {
        var bytes = Array(target.utf8)[...]
        if bytes.first != UInt8(ascii: "/") {
            guard let scheme = bytes.firstRange(of: Array("://".utf8)) else { return nil }
            let afterAuthority = bytes[scheme.upperBound...].firstIndex {
                $0 == UInt8(ascii: "/") || $0 == UInt8(ascii: "?")
            }
            guard let afterAuthority, bytes[afterAuthority] == UInt8(ascii: "/") else { return [""] }
            bytes = bytes[afterAuthority...]
        }
        if let query = bytes.firstIndex(of: UInt8(ascii: "?")) {
            bytes = bytes[..<query]
        }
        var segments: [String] = []
        for part in bytes.split(separator: UInt8(ascii: "/"), omittingEmptySubsequences: false).dropFirst() {
            guard let decoded = RequestTarget.percentDecode(part, plusIsSpace: false) else { return nil }
            segments.append(decoded)
        }
        return segments
    }
}
