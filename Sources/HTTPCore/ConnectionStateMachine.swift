import HTTP1

/// The policy of one HTTP/1.1 connection as a value: the I/O shell (`Connection`) feeds it events and
/// performs the actions it asks for. It does no I/O and reads no clock: every event that needs the time is
/// given `now`, nanoseconds on a monotonic clock.
///
/// The shell calls an event method (`received`, `handlerFinished`, `wrote`, ...), then calls
/// ``nextAction(now:)`` and performs each action until it gets ``Action/wait(_:until:)`` (arm the socket for
/// that interest and a timer for that deadline, then wait for the next event) or ``Action/close(cancellingHandler:)``.
///
/// One request at a time: while a request is handled or its response written, parsing stops, so pipelined
/// requests are answered in order and a client cannot push unbounded data.
struct ConnectionStateMachine {
    struct Configuration {
        /// The whole head must arrive within this, counted from its first byte (from accept for the first
        /// request): an absolute deadline. Then 408 and close.
        var headTimeout: UInt64
        /// The longest silence while a body is received. Then 408 and close.
        var bodyTimeout: UInt64
        /// The longest idle time between requests on a kept-alive connection. Then a quiet close.
        var idleTimeout: UInt64
        /// The longest time a pending write may make no progress. Then close.
        var writeTimeout: UInt64
        /// After a response with `Connection: close`, how long the peer's remaining bytes are drained.
        var lingerTimeout: UInt64 = 2_000_000_000
        /// ... and how many bytes at most.
        var lingerByteLimit = 1 << 20
        var maxRequestsPerConnection: Int
        var parserLimits: ParserLimits
    }

    /// What the socket registration should be armed for.
    struct Interest: OptionSet, Equatable {
        let rawValue: UInt8
        static let read = Interest(rawValue: 1)
        static let write = Interest(rawValue: 2)
        // `[]`: neither, only errors and hang-ups (a reset while a handler runs).
    }

    /// What a response answers, for the hooks (`onResponse`) and the duration.
    struct Exchange: Equatable {
        var method: String
        var routePattern: String?
        /// When the request was complete (or the error found), on the machine's clock.
        var started: UInt64
    }

    enum Output {
        /// `100 Continue`.
        case continueResponse
        /// A final response, to serialize with `framing`.
        case response(HTTPResponse, ResponseSerializer.Framing, Exchange)
    }

    enum Action {
        /// Queue these bytes and write what the socket takes; then report with ``wrote(now:finished:)``.
        case write(Output)
        /// Run the handler; report its response with ``handlerFinished(_:now:)``.
        case startHandler(HTTPRequest, HTTPHandler)
        /// Shut the write side (the last response is out) and keep reading to drain the peer.
        case halfClose
        /// Cancel the handler when one runs, remove the registration, close the fd. Nothing follows.
        case close(cancellingHandler: Bool)
        /// Arm the socket for `interest`, the timer for `deadline` (none: no timer), and wait for an event.
        case wait(Interest, until: UInt64?)
    }

    private enum State: Equatable {
        case open
        /// Response with `Connection: close` sent, write side shut: reading until EOF, the byte limit or the
        /// deadline.
        case lingering(since: UInt64, bytes: Int)
        case closed
    }

    /// The request being served, from the complete request to its response written.
    private enum Serving {
        /// No request: parsing.
        case none
        /// Its handler runs.
        case handling(Exchange, HTTPVersion, keepAlive: Bool, isHead: Bool)
        /// Its response is queued for writing; `close`: then half-close.
        case writing(close: Bool)
    }

    let configuration: Configuration
    let router: Router
    /// The peer, for ``HTTPRequest/remoteAddress``.
    let remoteAddress: String
    let errorResponse: @Sendable (_ status: Int, _ code: String, _ message: String) -> HTTPResponse

    private var parser: RequestParser
    private var state = State.open
    private var serving = Serving.none
    /// An action an event decided on, returned first by `nextAction`.
    private var pending: Action?
    /// Bytes are queued in the shell that the socket has not taken yet.
    private var writePending = false
    private var lastWriteProgressAt: UInt64 = 0
    private(set) var requestsServed = 0
    private(set) var isDraining = false

    private var headStartedAt: UInt64
    private var awaitingFirstByte = false
    private var lastReadAt: UInt64
    private var idleSince: UInt64

    init(
        configuration: Configuration, router: Router, remoteAddress: String,
        errorResponse: @escaping @Sendable (_ status: Int, _ code: String, _ message: String) -> HTTPResponse,
        now: UInt64
    ) {
        self.configuration = configuration
        self.router = router
        self.remoteAddress = remoteAddress
        self.errorResponse = errorResponse
        parser = RequestParser(limits: configuration.parserLimits)
        headStartedAt = now
        lastReadAt = now
        idleSince = now
    }

    var isClosed: Bool { state == .closed }

    // MARK: Events

    /// Bytes read from the socket.
    mutating func received(_ bytes: UnsafeRawBufferPointer, now: UInt64) {
        switch state {
        case .open:
            if awaitingFirstByte {
                headStartedAt = now
                awaitingFirstByte = false
            }
            lastReadAt = now
            parser.append(bytes)
        case .lingering(let since, let count):
            let total = count + bytes.count
            if total > configuration.lingerByteLimit {
                closeNow()
            } else {
                state = .lingering(since: since, bytes: total)
            }
        case .closed:
            break
        }
    }

    /// [UInt8] convenience for ``received(_:now:)``.
    mutating func received(_ bytes: [UInt8], now: UInt64) {
        bytes.withUnsafeBytes { received($0, now: now) }
    }

    /// The peer closed its side (EOF). A partial request is dropped without a response.
    mutating func peerClosed() {
        closeNow()
    }

    /// A read or write failed (a reset): nobody will read an answer; a running handler is cancelled.
    mutating func peerFailed() {
        closeNow()
    }

    /// The socket reported an error or a hang-up. While a request is served (reading paused), the client
    /// is gone: close, cancelling the handler. Otherwise the shell's next read finds out what happened.
    mutating func socketFailed() {
        if case .none = serving { return }
        closeNow()
    }

    /// The handler's response.
    mutating func handlerFinished(_ response: HTTPResponse, now: UInt64) {
        guard state == .open, case .handling(let exchange, let version, let keepAlive, let isHead) = serving else {
            return
        }
        pending = respond(
            response, exchange: exchange, version: version, keepAlive: keepAlive, isHead: isHead, now: now)
    }

    /// The shell wrote bytes: `finished` when nothing queued is left.
    mutating func wrote(now: UInt64, finished: Bool) {
        guard state == .open else { return }
        lastWriteProgressAt = now
        guard finished else { return }
        writePending = false
        guard case .writing(let close) = serving else { return }
        serving = .none
        if close {
            pending = .halfClose
            state = .lingering(since: now, bytes: 0)
            return
        }
        idleSince = now
        if parser.bufferedByteCount > 0 {
            headStartedAt = now
            awaitingFirstByte = false
        } else {
            awaitingFirstByte = true
        }
    }

    /// The timer fired: acts on the deadlines that passed.
    mutating func timerFired(now: UInt64) {
        switch state {
        case .closed:
            return
        case .lingering(let since, _):
            if now &- since >= configuration.lingerTimeout { closeNow() }
        case .open:
            if writePending {
                if now &- lastWriteProgressAt >= configuration.writeTimeout { closeNow() }
                return
            }
            guard case .none = serving, pending == nil else { return }
            switch parser.phase {
            case .idle:
                // Nothing of a request yet: the first request has the head deadline from accept; later ones
                // the idle deadline from the last response.
                if requestsServed == 0 {
                    if now &- headStartedAt >= configuration.headTimeout { closeNow() }
                } else if now &- idleSince >= configuration.idleTimeout {
                    closeNow()
                }
            case .head, .body:
                // The head's deadline is absolute; the body's counts from the last read.
                let (since, limit, part) =
                    parser.phase == .head
                    ? (headStartedAt, configuration.headTimeout, "head")
                    : (lastReadAt, configuration.bodyTimeout, "body")
                if now &- since >= limit {
                    pending = respondWithError(
                        HTTPParseError(
                            status: 408, code: "REQUEST_TIMEOUT", message: "request \(part) not received in time"),
                        now: now)
                }
            }
        }
    }

    /// The server is shutting down: an idle connection closes now; a busy one answers its current request
    /// with `Connection: close`.
    mutating func drain() {
        guard !isDraining else { return }
        isDraining = true
        if state == .open, case .none = serving, pending == nil, !writePending, parser.phase == .idle {
            closeNow()
        }
    }

    // MARK: Actions

    /// The next thing to do; `.wait` or `.close` when there is nothing more until the next event.
    mutating func nextAction(now: UInt64) -> Action {
        if let action = pending {
            pending = nil
            return action
        }
        switch state {
        case .closed:
            return .close(cancellingHandler: false)
        case .lingering(let since, _):
            return .wait(.read, until: since &+ configuration.lingerTimeout)
        case .open:
            break
        }
        switch serving {
        case .handling:
            return writePending ? .wait(.write, until: writeDeadline) : .wait([], until: nil)
        case .writing:
            return .wait(.write, until: writeDeadline)
        case .none:
            break
        }
        switch parser.next() {
        case .needMore:
            return .wait(writePending ? [.read, .write] : .read, until: readDeadline)
        case .head(let head):
            // A body is announced with `Expect: 100-continue`: invite it only when the route exists and
            // nothing of it came yet; answer a missing route at once and close, since the body was not read.
            guard head.expectsContinue else { return nextAction(now: now) }
            switch router.resolve(method: head.method, target: head.target) {
            case .matched:
                if parser.bufferedByteCount == 0 {
                    beginWrite(now: now)
                    return .write(.continueResponse)
                }
                return nextAction(now: now)
            case .notFound, .methodNotAllowed:
                return respondToRoutingFailure(head, close: true, now: now)
            }
        case .request(let head, let body):
            requestsServed += 1
            switch router.resolve(method: head.method, target: head.target) {
            case .notFound, .methodNotAllowed:
                return respondToRoutingFailure(head, close: false, now: now)
            case .matched(let handler, let pattern, let parameters):
                var request = HTTPRequest(head: head, body: body, remoteAddress: remoteAddress)
                request.pathParameters = parameters
                request.routePattern = pattern
                let exchange = Exchange(method: head.method, routePattern: pattern, started: now)
                serving = .handling(exchange, head.version, keepAlive: head.keepAlive, isHead: head.method == "HEAD")
                return .startHandler(request, handler)
            }
        case .error(let error):
            return respondWithError(error, now: now)
        }
    }

    // MARK: Deadlines

    private var writeDeadline: UInt64 { lastWriteProgressAt &+ configuration.writeTimeout }

    /// When the timer must look at the connection while it reads.
    private var readDeadline: UInt64 {
        if writePending { return writeDeadline }
        switch parser.phase {
        case .idle:
            if requestsServed > 0 { return idleSince &+ configuration.idleTimeout }
            return headStartedAt &+ configuration.headTimeout
        case .head:
            return headStartedAt &+ configuration.headTimeout
        case .body:
            return lastReadAt &+ configuration.bodyTimeout
        }
    }

    // MARK: Responses

    private mutating func respondToRoutingFailure(_ head: RequestHead, close: Bool, now: UInt64) -> Action {
        let exchange = Exchange(method: head.method, routePattern: nil, started: now)
        let response: HTTPResponse
        switch router.resolve(method: head.method, target: head.target) {
        case .methodNotAllowed(let allow):
            var notAllowed = errorResponse(405, "METHOD_NOT_ALLOWED", "method not allowed")
            notAllowed.headers.replaceOrAdd(name: "Allow", value: allow.joined(separator: ", "))
            response = notAllowed
        default:
            response = errorResponse(404, "NOT_FOUND", "no such resource")
        }
        return respond(
            response, exchange: exchange, version: head.version, keepAlive: head.keepAlive && !close,
            isHead: head.method == "HEAD", now: now)
    }

    /// An error found by the server (bad request, timeout): answered, then the connection closes.
    private mutating func respondWithError(_ error: HTTPParseError, now: UInt64) -> Action {
        respond(
            errorResponse(error.status, error.code, error.message),
            exchange: Exchange(method: "", routePattern: nil, started: now), version: .http11, keepAlive: false,
            isHead: false, now: now)
    }

    private mutating func respond(
        _ response: HTTPResponse, exchange: Exchange, version: HTTPVersion, keepAlive: Bool, isHead: Bool,
        now: UInt64
    ) -> Action {
        let close = !keepAlive || requestsServed >= configuration.maxRequestsPerConnection || isDraining
        var framing = ResponseSerializer.Framing()
        framing.isHead = isHead
        framing.close = close
        framing.keepAliveHeader = !close && version == .http10
        serving = .writing(close: close)
        beginWrite(now: now)
        return .write(.response(response, framing, exchange))
    }

    /// The write deadline counts from the first byte queued after the socket took everything.
    private mutating func beginWrite(now: UInt64) {
        if !writePending { lastWriteProgressAt = now }
        writePending = true
    }

    private mutating func closeNow() {
        guard state != .closed else { return }
        let handling: Bool
        if case .handling = serving { handling = true } else { handling = false }
        state = .closed
        serving = .none
        pending = .close(cancellingHandler: handling)
    }
}
