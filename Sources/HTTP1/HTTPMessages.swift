/// The HTTP versions the server speaks. A request in `HTTP/1.x` with x > 1 is treated as 1.1.
public enum HTTPVersion: Sendable {
    case http10, http11
}

/// A complete request, as handed to a handler.
public struct HTTPRequest: Sendable {
    /// The method, case-sensitive (`GET`, `POST`, ...).
    public var method: String
    /// The raw request-target, as sent on the request line.
    public var target: String
    /// The percent-decoded path, without the query.
    public var path: String
    /// The query items, percent-decoded, with `+` read as a space, in order.
    public var queryItems: [(name: String, value: String)]
    /// The parameters taken from the matched route pattern (`{id}` gives `"id"`).
    public var pathParameters: [String: String]
    /// The pattern of the route that matched, e.g. `/v1/jobs/{id}`; nil before routing.
    public var routePattern: String?
    public var headers: HTTPHeaders
    /// The whole body (chunked bodies already decoded).
    public var body: [UInt8]
    public var version: HTTPVersion
    /// The peer address, `"127.0.0.1:51234"` or `"[::1]:51234"`.
    public var remoteAddress: String

    /// Builds a request from its parts; the path and query are taken from `target` (for tests and tools).
    public init(
        method: String = "GET", target: String = "/", headers: HTTPHeaders = HTTPHeaders(), body: [UInt8] = [],
        version: HTTPVersion = .http11, remoteAddress: String = ""
    ) {
        self.method = method
        self.target = target
        if let parsed = try? RequestTarget.parse(Array(target.utf8), method: method) {
            path = parsed.path
            queryItems = parsed.queryItems
        } else {
            path = target
            queryItems = []
        }
        pathParameters = [:]
        routePattern = nil
        self.headers = headers
        self.body = body
        self.version = version
        self.remoteAddress = remoteAddress
    }

    package init(head: RequestHead, body: [UInt8], remoteAddress: String) {
        method = head.method
        target = head.target
        path = head.path
        queryItems = head.queryItems
        pathParameters = [:]
        routePattern = nil
        headers = head.headers
        self.body = body
        version = head.version
        self.remoteAddress = remoteAddress
    }

    /// The first value of the query item `name`, or nil.
    public func query(_ name: String) -> String? {
        queryItems.first { $0.name == name }?.value
    }
}

/// A response built by a handler. The server adds `Date`, `Content-Length` and `Connection`.
public struct HTTPResponse: Sendable {
    public var status: Int
    public var headers: HTTPHeaders
    public var body: [UInt8]

    public init(status: Int, headers: HTTPHeaders = HTTPHeaders(), body: [UInt8] = []) {
        self.status = status
        self.headers = headers
        self.body = body
    }
}

/// A request handler. It may await long work; it never blocks the server's accept or read paths,
/// but it must not block a thread of the cooperative pool either (run blocking work elsewhere).
public typealias HTTPHandler = @Sendable (HTTPRequest) async -> HTTPResponse
