import Dispatch
import Glibc
import HTTP1

/// One accepted connection: reads, parses, dispatches one request at a time, writes, times out.
///
/// Every mutable field is confined to `queue`. Readiness comes from the server's `SocketPoller` (one-shot:
/// each event disarms the registration until `updateInterest` arms it again). The fd is closed exactly once,
/// in `close()`, right after its registration is removed.
final class Connection: @unchecked Sendable {
    private enum State {
        case open
        /// Response sent with `Connection: close`; write side shut, draining reads until EOF or timeout.
        case lingering
        case closed
    }

    /// What the response being written answers, for the hooks and the framing.
    private struct Exchange {
        var method: String
        var routePattern: String?
        var isHead: Bool
        var version: HTTPVersion
        var keepAlive: Bool
        var started: ContinuousClock.Instant
    }

    static let lingerTimeout: UInt64 = 2_000_000_000
    static let lingerByteLimit = 1 << 20
    static let readChunk = 16384

    let id: Int
    let fd: Int32
    let remoteAddress: String
    let queue: DispatchQueue
    private let executor: QueueExecutor
    private let core: ServerCore

    private var parser: RequestParser
    private var state = State.open
    private var timer: (any DispatchSourceTimer)?
    /// The events the poller registration is armed for (0: hang-ups and errors only); nil once an event
    /// disarmed it.
    private var armed: UInt32? = 0
    /// The handler of the request in flight; cancelled when the client resets the connection or it closes.
    private var handlerTask: Task<Void, Never>?

    /// A request is being handled or its response written: reading is paused.
    private var inFlight = false
    private var isProcessing = false
    private var pendingWrite: [UInt8] = []
    private var writeOffset = 0
    private var responseQueued = false
    private var closeAfterWrite = false
    private var requestsServed = 0
    private var isShuttingDown = false

    private var headStartedAt: UInt64
    private var awaitingFirstByte = false
    private var lastReadAt: UInt64
    private var idleSince: UInt64
    private var lastWriteProgressAt: UInt64 = 0
    private var lingerStartedAt: UInt64 = 0
    private var lingerBytes = 0

    init(id: Int, fd: Int32, remoteAddress: String, core: ServerCore) {
        self.id = id
        self.fd = fd
        self.remoteAddress = remoteAddress
        self.core = core
        queue = DispatchQueue(label: "HTTPServer.connection", target: core.loops[id % core.loops.count])
        executor = QueueExecutor(queue: queue)
        parser = RequestParser(limits: core.limits)
        let now = Self.now()
        headStartedAt = now
        lastReadAt = now
        idleSince = now
    }

    @inline(__always)
    private static func now() -> UInt64 {
        DispatchTime.now().uptimeNanoseconds
    }

    func start() {
        queue.async { [self] in
            let registered = core.poller.add(UInt64(id), fd: fd, events: SocketPoller.readable) { [self] events in
                queue.async { [self] in onEvents(events) }
            }
            guard registered else {
                state = .closed
                Glibc.close(fd)
                core.connectionClosed(id: id)
                return
            }
            armed = SocketPoller.readable
            let timer = DispatchSource.makeTimerSource(queue: queue)
            timer.schedule(deadline: .now() + core.tick, repeating: core.tick, leeway: core.tick)
            timer.setEventHandler { [self] in onTick() }
            self.timer = timer
            if core.shutdownStarted.load(ordering: .acquiring) {
                isShuttingDown = true
            }
            timer.resume()
        }
    }

    /// Shutdown: idle connections close now; busy ones close after their current response.
    func beginShutdown() {
        queue.async { [self] in
            isShuttingDown = true
            if state == .open && !inFlight && parser.phase == .idle && pendingWrite.isEmpty {
                close()
            }
        }
    }

    func forceClose() {
        queue.async { [self] in close() }
    }

    // MARK: Events

    /// One event of the poller: the registration is disarmed now.
    private func onEvents(_ events: UInt32) {
        guard state != .closed else { return }  // taken off the queue before the registration was removed
        armed = nil
        let failed = events & SocketPoller.failed != 0
        if failed && inFlight {
            // Reset (or an error) while a handler runs: nobody will read its answer.
            close()
            return
        }
        if wantsRead && (events & SocketPoller.readable != 0 || failed) {
            onReadable()
        }
        if state != .closed && wantsWrite && (events & SocketPoller.writable != 0 || failed) {
            flush()
        }
        updateInterest()
    }

    private var wantsRead: Bool { (state == .open && !inFlight) || state == .lingering }
    private var wantsWrite: Bool { state == .open && writeOffset < pendingWrite.count }

    /// Arms the registration for what the connection waits for now; while a handler runs, for a reset only.
    private func updateInterest() {
        guard state != .closed else { return }
        let wanted = (wantsRead ? SocketPoller.readable : 0) | (wantsWrite ? SocketPoller.writable : 0)
        guard wanted != armed else { return }
        armed = wanted
        if !core.poller.arm(UInt64(id), fd: fd, events: wanted) {
            close()
        }
    }

    // MARK: Reading

    private func onReadable() {
        guard state != .closed else { return }
        let count = withUnsafeTemporaryAllocation(byteCount: Self.readChunk, alignment: 16) { buffer -> Int in
            let count = Syscalls.receive(fd, into: buffer)
            if count > 0 && state == .open {
                if awaitingFirstByte {
                    headStartedAt = Self.now()
                    awaitingFirstByte = false
                }
                parser.append(UnsafeRawBufferPointer(rebasing: buffer[0..<count]))
            }
            return count
        }
        if count > 0 {
            switch state {
            case .open:
                lastReadAt = Self.now()
                process()
            case .lingering:
                lingerBytes += count
                if lingerBytes > Self.lingerByteLimit { close() }
            case .closed:
                break
            }
        } else if count == 0 {
            // EOF: a partial request is dropped without a response; the handler is never called.
            close()
        } else if errno != EAGAIN && errno != EWOULDBLOCK {
            close()
        }
    }

    /// Runs the parser until it needs more bytes or a request is in flight.
    private func process() {
        guard !isProcessing else { return }
        isProcessing = true
        defer { isProcessing = false }
        while state == .open && !inFlight {
            switch parser.next() {
            case .needMore:
                updateInterest()
                return
            case .head(let head):
                if head.expectsContinue {
                    expectContinue(head)
                }
            case .request(let head, let body):
                handle(head, body: body)
            case .error(let error):
                sendError(status: error.status, code: error.code, message: error.message, method: nil, close: true)
            }
        }
        updateInterest()
    }

    /// Sends `100 Continue` only when the body is wanted: the route exists and nothing of the body came yet.
    private func expectContinue(_ head: RequestHead) {
        switch core.router.resolve(method: head.method, target: head.target) {
        case .matched:
            if parser.bufferedByteCount == 0 {
                write(ResponseSerializer.continueResponse)
            }
        case .notFound, .methodNotAllowed:
            // Answer at once; the body was not read, so the connection closes.
            respondToRoutingFailure(head, close: true)
        }
    }

    // MARK: Requests

    private func handle(_ head: RequestHead, body: [UInt8]) {
        requestsServed += 1
        let started = ContinuousClock.now
        switch core.router.resolve(method: head.method, target: head.target) {
        case .notFound, .methodNotAllowed:
            respondToRoutingFailure(head, close: false)
        case .matched(let handler, let pattern, let parameters):
            var request = HTTPRequest(head: head, body: body, remoteAddress: remoteAddress)
            request.pathParameters = parameters
            request.routePattern = pattern
            let exchange = Exchange(
                method: head.method, routePattern: pattern, isHead: head.method == "HEAD", version: head.version,
                keepAlive: head.keepAlive, started: started)
            inFlight = true
            // The handler task prefers this connection's queue as its executor, so its synchronous parts
            // and its completion run on the queue without an extra hop; if it ends anywhere else, hop back.
            handlerTask = Task(executorPreference: executor) { [self] in
                let response = await handler(request)
                if DispatchQueue.getSpecific(key: QueueExecutor.key) == ObjectIdentifier(executor) {
                    complete(response, exchange: exchange)
                } else {
                    queue.async { [self] in complete(response, exchange: exchange) }
                }
            }
        }
    }

    private func complete(_ response: HTTPResponse, exchange: Exchange) {
        handlerTask = nil
        guard state == .open else { return }
        send(response, exchange: exchange)
    }

    private func respondToRoutingFailure(_ head: RequestHead, close: Bool) {
        let exchange = Exchange(
            method: head.method, routePattern: nil, isHead: head.method == "HEAD", version: head.version,
            keepAlive: head.keepAlive && !close, started: ContinuousClock.now)
        switch core.router.resolve(method: head.method, target: head.target) {
        case .methodNotAllowed(let allow):
            var response = core.hooks.errorResponse(405, "METHOD_NOT_ALLOWED", "method not allowed")
            response.headers.replaceOrAdd(name: "Allow", value: allow.joined(separator: ", "))
            inFlight = true
            send(response, exchange: exchange)
        default:
            inFlight = true
            send(core.hooks.errorResponse(404, "NOT_FOUND", "no such resource"), exchange: exchange)
        }
    }

    private func sendError(status: Int, code: String, message: String, method: String?, close: Bool) {
        let exchange = Exchange(
            method: method ?? "", routePattern: nil, isHead: false, version: .http11, keepAlive: !close,
            started: ContinuousClock.now)
        inFlight = true
        send(core.hooks.errorResponse(status, code, message), exchange: exchange)
    }

    private func send(_ response: HTTPResponse, exchange: Exchange) {
        let close =
            !exchange.keepAlive || requestsServed >= core.configuration.maxRequestsPerConnection || isShuttingDown
            || core.shutdownStarted.load(ordering: .relaxed)
        var framing = ResponseSerializer.Framing()
        framing.isHead = exchange.isHead
        framing.close = close
        framing.keepAliveHeader = !close && exchange.version == .http10
        let bytes = ResponseSerializer.serialize(response, date: core.dateCache.current(), framing: framing)
        core.hooks.onResponse(
            exchange.method, exchange.routePattern, response.status, ContinuousClock.now - exchange.started)
        closeAfterWrite = close
        responseQueued = true
        write(bytes)
    }

    // MARK: Writing

    private func write(_ bytes: [UInt8]) {
        if pendingWrite.isEmpty {
            pendingWrite = bytes
            writeOffset = 0
            lastWriteProgressAt = Self.now()
        } else {
            pendingWrite.append(contentsOf: bytes)
        }
        flush()
    }

    private func flush() {
        guard state == .open else { return }
        while writeOffset < pendingWrite.count {
            let written = pendingWrite.withUnsafeBytes { bytes in
                Syscalls.send(fd, UnsafeRawBufferPointer(rebasing: bytes[writeOffset...]))
            }
            if written > 0 {
                writeOffset += written
                lastWriteProgressAt = Self.now()
            } else if written < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) {
                updateInterest()
                return
            } else {
                close()
                return
            }
        }
        pendingWrite.removeAll(keepingCapacity: pendingWrite.capacity <= 1 << 16)
        writeOffset = 0
        if responseQueued {
            responseQueued = false
            responseWritten()
        }
    }

    private func responseWritten() {
        inFlight = false
        if closeAfterWrite {
            startLingeringClose()
            return
        }
        let now = Self.now()
        idleSince = now
        if parser.bufferedByteCount > 0 {
            headStartedAt = now
            awaitingFirstByte = false
        } else {
            awaitingFirstByte = true
        }
        if isProcessing {
            return  // the running parse loop picks up the next pipelined request
        }
        process()
    }

    // MARK: Closing

    /// Half-closes and drains the peer briefly so the last response is not lost to a reset (RFC 9112 §9.6).
    private func startLingeringClose() {
        guard state == .open else { return }
        guard shutdown(fd, Int32(SHUT_WR)) == 0 else {
            close()
            return
        }
        state = .lingering
        lingerStartedAt = Self.now()
        updateInterest()
    }

    /// Removes the registration, then closes the fd: nothing watches it any more, so the number may be reused.
    private func close() {
        guard state != .closed else { return }
        state = .closed
        handlerTask?.cancel()
        handlerTask = nil
        timer?.cancel()
        timer = nil
        core.poller.remove(UInt64(id), fd: fd)
        Glibc.close(fd)
        core.connectionClosed(id: id)
    }

    // MARK: Deadlines

    /// Dispatch on Linux does not always report a reset (EPOLLERR without data) to a read source, so
    /// each tick checks the socket: a pending error (ECONNRESET) or EOF means the peer is gone.
    private func peerIsGone() -> Bool {
        var byte: UInt8 = 0
        let peeked = withUnsafeMutableBytes(of: &byte) {
            Syscalls.receive(fd, into: $0, flags: Int32(MSG_PEEK | MSG_DONTWAIT))
        }
        if peeked == 0 { return true }
        return peeked < 0 && errno != EAGAIN && errno != EWOULDBLOCK
    }

    private func onTick() {
        let now = Self.now()
        switch state {
        case .closed:
            return
        case .lingering:
            if now &- lingerStartedAt > Self.lingerTimeout { close() }
        case .open:
            if !pendingWrite.isEmpty {
                if now &- lastWriteProgressAt > core.writeTimeout { close() }
                return
            }
            guard !inFlight else { return }
            if peerIsGone() {
                close()
                return
            }
            switch parser.phase {
            case .idle:
                if requestsServed == 0 {
                    if now &- headStartedAt > core.headTimeout { close() }
                } else if now &- idleSince > core.idleTimeout {
                    close()
                }
            case .head:
                if now &- headStartedAt > core.headTimeout {
                    sendError(
                        status: 408, code: "REQUEST_TIMEOUT", message: "request head not received in time", method: nil,
                        close: true)
                }
            case .body:
                if now &- lastReadAt > core.bodyTimeout {
                    sendError(
                        status: 408, code: "REQUEST_TIMEOUT", message: "request body not received in time", method: nil,
                        close: true)
                }
            }
        }
    }
}

/// A task executor that runs jobs on a serial Dispatch queue, and marks the queue (with its identity,
/// not a reference, to avoid a cycle) so code can tell whether it runs there.
final class QueueExecutor: TaskExecutor, @unchecked Sendable {
    static let key = DispatchSpecificKey<ObjectIdentifier>()

    let queue: DispatchQueue

    init(queue: DispatchQueue) {
        self.queue = queue
        queue.setSpecific(key: Self.key, value: ObjectIdentifier(self))
    }

    func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        queue.async { [self] in
            job.runSynchronously(on: asUnownedTaskExecutor())
        }
    }
}
