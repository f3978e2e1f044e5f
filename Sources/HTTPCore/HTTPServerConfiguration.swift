import HTTP1

/// Where the server listens and the limits it applies. Every field has a default.
public struct HTTPServerConfiguration: Sendable {
    /// The address to bind: `"127.0.0.1"`, `"::1"`, `"0.0.0.0"`, `"::"`. Default: `"127.0.0.1"`.
    public var host: String
    /// The port; 0 picks an ephemeral port (see ``HTTPServer/port``). Default: 8080.
    public var port: Int
    /// Open connections at most. Past it the server stops calling accept, so new connections wait
    /// in the kernel's listen backlog (bounded by ``listenBacklog``) until one closes. Default: 512.
    public var maxConnections: Int
    /// The longest request line, in bytes, before 414. Default: 8,192.
    public var maxRequestLineLength: Int
    /// The largest header section (and trailer section), in bytes, before 431. Default: 32,768.
    public var maxHeaderBytes: Int
    /// The most header fields, before 431. Default: 100.
    public var maxHeaderCount: Int
    /// The largest request body, before 413 (checked on Content-Length before reading). Default: 1 MiB.
    public var maxBodyBytes: Int
    /// The whole request head must arrive within this, counted from its first byte (or from accept for
    /// the first request): an absolute deadline, so drip-feeding does not extend it. Then 408 and close.
    /// Default: 30 s.
    public var headTimeout: Duration
    /// The longest silence while a body is being received. Then 408 and close. Default: 30 s.
    public var bodyTimeout: Duration
    /// How long a keep-alive connection may stay idle between requests; then it is closed quietly.
    /// Default: 60 s.
    public var idleTimeout: Duration
    /// The longest time a response write may make no progress (a client that does not read).
    /// Then the connection is closed. Default: 30 s.
    public var writeTimeout: Duration
    /// Requests served on one connection; the last one is answered with `Connection: close`. Default: 1,000.
    public var maxRequestsPerConnection: Int
    /// The listen backlog passed to listen(2). Default: 128.
    public var listenBacklog: Int

    public init() {
        host = "127.0.0.1"
        port = 8080
        maxConnections = 512
        maxRequestLineLength = 8192
        maxHeaderBytes = 32768
        maxHeaderCount = 100
        maxBodyBytes = 1 << 20
        headTimeout = .seconds(30)
        bodyTimeout = .seconds(30)
        idleTimeout = .seconds(60)
        writeTimeout = .seconds(30)
        maxRequestsPerConnection = 1000
        listenBacklog = 128
    }

    var parserLimits: ParserLimits {
        var limits = ParserLimits()
        limits.maxRequestLineLength = max(16, maxRequestLineLength)
        limits.maxHeaderBytes = max(0, maxHeaderBytes)
        limits.maxHeaderCount = max(0, maxHeaderCount)
        limits.maxBodyBytes = max(0, maxBodyBytes)
        return limits
    }
}

/// How the server reports what it does, and shapes the errors it generates itself.
public struct HTTPServerHooks: Sendable {
    /// Builds the response for errors the server or router generates itself (400, 404, 405, 408, 413,
    /// 414, 417, 431, 501, 505). `code` is a short stable machine code such as "NOT_FOUND",
    /// "METHOD_NOT_ALLOWED", "BODY_TOO_LARGE", "BAD_REQUEST". The server adds Date, Content-Length,
    /// Connection and Allow as needed.
    public var errorResponse: @Sendable (_ status: Int, _ code: String, _ message: String) -> HTTPResponse
    /// Called once per response sent (for metrics and access logs). routePattern is nil when no route
    /// matched. duration runs from the complete request to the response handed to the socket.
    public var onResponse:
        @Sendable (_ method: String, _ routePattern: String?, _ status: Int, _ duration: Duration)
            -> Void

    /// Plain-text error bodies and a no-op observer.
    public init() {
        errorResponse = { status, _, message in
            HTTPResponse(
                status: status, headers: ["Content-Type": "text/plain; charset=utf-8"],
                body: Array((message + "\n").utf8))
        }
        onResponse = { _, _, _, _ in }
    }
}
