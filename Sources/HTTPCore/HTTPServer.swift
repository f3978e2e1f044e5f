import Dispatch
import Glibc
import HTTP1
import Synchronization

/// An HTTP/1.1 server on POSIX sockets and Dispatch.
///
/// A `SocketPoller` thread watches the listener and every connection; one serial queue accepts; each
/// connection runs its events, its timer for the next deadline and its handlers' synchronous parts on one of
/// a few serial `loops`, one per core. A connection's policy is its `ConnectionStateMachine`: it reads one
/// request at a time; while its handler runs (as a `Task`), reading stops, so pipelined requests are
/// answered in order and a client cannot push unbounded data. At ``HTTPServerConfiguration/maxConnections``
/// the server stops accepting; new connections wait in the kernel's listen backlog.
public final class HTTPServer: Sendable {
    let core: ServerCore

    public init(configuration: HTTPServerConfiguration, router: Router, hooks: HTTPServerHooks = HTTPServerHooks()) {
        core = ServerCore(configuration: configuration, router: router, hooks: hooks)
    }

    /// Binds and listens.
    ///
    /// - Throws: ``HTTPServerError`` with a clear message (address in use, cannot resolve ...).
    public func start() throws {
        try core.start()
    }

    /// The bound port (after ``start()``), 0 before.
    public var port: Int {
        core.boundPort.load(ordering: .acquiring)
    }

    /// Stops accepting, lets in-flight requests finish within `gracePeriod`, closes idle connections,
    /// then closes whatever is left. Returns when every connection and the listener are closed.
    public func shutdown(gracePeriod: Duration) async {
        await core.shutdown(gracePeriod: gracePeriod)
    }

    /// Open connections right now.
    var openConnections: Int { core.openConnections.load(ordering: .acquiring) }
    /// Connections accepted and closed since start (each fd is closed exactly once).
    var acceptedConnections: Int { core.acceptedCount.load(ordering: .acquiring) }
    var closedConnections: Int { core.closedCount.load(ordering: .acquiring) }
}

/// The shared state of a server.
///
/// `@unchecked Sendable`: the mutable fields below (`listenFD`, `accepting`, `connections`, ...) are read and
/// written on `queue` only; `poller` is set once on `queue` in `start`, before any connection exists, and
/// connections read it on their own queues after `queue` started them; counters are atomics.
final class ServerCore: @unchecked Sendable {
    let configuration: HTTPServerConfiguration
    let router: Router
    let hooks: HTTPServerHooks
    let queue = DispatchQueue(label: "HTTPServer.accept")
    let dateCache = DateCache()
    /// Serial queues, one per core (two at least), each the queue (and handlers' preferred executor) of the
    /// connections assigned to it: at most that many threads do connection work (parsing, writing, a
    /// handler's synchronous parts) at a time. With a queue of its own per connection, Dispatch grew its pool
    /// past 250 threads under 64 busy connections (RSS 16 MB instead of 11; scripts/bench-http).
    let loops: [QueueExecutor] = (0..<max(2, Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))))).map {
        QueueExecutor(queue: DispatchQueue(label: "HTTPServer.loop.\($0)"))
    }
    /// Set by `start`; then read from connection queues.
    private(set) var poller: SocketPoller!
    let boundPort = Atomic<Int>(0)
    let openConnections = Atomic<Int>(0)
    let acceptedCount = Atomic<Int>(0)
    let closedCount = Atomic<Int>(0)
    let listenerOpen = Atomic<Bool>(false)
    /// Set once shutdown begins; read by connections to answer with `Connection: close`.
    let shutdownStarted = Atomic<Bool>(false)

    /// The policy every connection's state machine applies.
    let connectionConfiguration: ConnectionStateMachine.Configuration

    private static let listenerID = UInt64.max - 1
    private var listenFD: Int32 = -1
    /// The listener's registration is armed (not paused at the connection cap or out of descriptors).
    private var accepting = false
    private var backingOff = false
    private var connections: [Int: Connection] = [:]
    private var nextID = 0
    private var isShuttingDown = false
    private var started = false

    init(configuration: HTTPServerConfiguration, router: Router, hooks: HTTPServerHooks) {
        self.configuration = configuration
        self.router = router
        self.hooks = hooks
        // Negative configured timeouts count as zero.
        func nanoseconds(_ duration: Duration) -> UInt64 { UInt64(max(0, duration.nanoseconds)) }
        connectionConfiguration = ConnectionStateMachine.Configuration(
            headTimeout: nanoseconds(configuration.headTimeout), bodyTimeout: nanoseconds(configuration.bodyTimeout),
            idleTimeout: nanoseconds(configuration.idleTimeout), writeTimeout: nanoseconds(configuration.writeTimeout),
            maxRequestsPerConnection: configuration.maxRequestsPerConnection, parserLimits: configuration.parserLimits)
    }

    func start() throws(HTTPServerError) {
        _ = Syscalls.ignoreSIGPIPE
        let result: Result<Void, HTTPServerError> = queue.sync {
            guard !started else { return .failure(HTTPServerError(message: "server already started")) }
            let listener: (fd: Int32, port: Int)
            do {
                listener = try Syscalls.listen(
                    host: configuration.host, port: configuration.port, backlog: configuration.listenBacklog)
            } catch let error as HTTPServerError {
                return .failure(error)
            } catch {
                return .failure(HTTPServerError(message: "\(error)"))
            }
            let poller: SocketPoller
            do {
                poller = try SocketPoller()
                try poller.start()
            } catch let error as HTTPServerError {
                Syscalls.close(listener.fd)
                return .failure(error)
            } catch {
                Syscalls.close(listener.fd)
                return .failure(HTTPServerError(message: "\(error)"))
            }
            let armed = poller.add(Self.listenerID, fd: listener.fd, events: SocketPoller.readable) { [self] _ in
                queue.async { [self] in
                    accepting = false
                    acceptConnections()
                    resumeAcceptingIfPossible()
                }
            }
            guard armed else {
                let error = HTTPServerError("epoll_ctl")
                poller.stop()
                Syscalls.close(listener.fd)
                return .failure(error)
            }
            self.poller = poller
            started = true
            accepting = true
            listenFD = listener.fd
            boundPort.store(listener.port, ordering: .releasing)
            listenerOpen.store(true, ordering: .releasing)
            return .success(())
        }
        try result.get()
    }

    /// Accepts what is pending, up to a batch, without going past the connection cap.
    private func acceptConnections() {
        for _ in 0..<64 {
            guard !isShuttingDown else { return }
            guard connections.count < configuration.maxConnections else { return }
            guard let accepted = Syscalls.accept(listenFD) else {
                switch errno {
                case ECONNABORTED, EPROTO:
                    continue
                case EMFILE, ENFILE, ENOBUFS, ENOMEM:
                    // Out of descriptors or memory: back off instead of spinning on the readable listener.
                    backingOff = true
                    queue.asyncAfter(deadline: .now() + .milliseconds(100)) { [self] in
                        backingOff = false
                        resumeAcceptingIfPossible()
                    }
                    return
                default:
                    return
                }
            }
            let id = nextID
            nextID += 1
            let connection = Connection(id: id, fd: accepted.fd, remoteAddress: accepted.remote, core: self)
            connections[id] = connection
            acceptedCount.add(1, ordering: .relaxed)
            openConnections.add(1, ordering: .releasing)
            connection.start()
        }
    }

    /// Arms the listener again unless it is armed, the server is at its connection cap, backing off after
    /// running out of descriptors, or shutting down.
    private func resumeAcceptingIfPossible() {
        guard started, !accepting, !backingOff, !isShuttingDown, connections.count < configuration.maxConnections
        else { return }
        accepting = true
        poller.arm(Self.listenerID, fd: listenFD, events: SocketPoller.readable)
    }

    /// Called by a connection once its fd is closed.
    func connectionClosed(id: Int) {
        queue.async { [self] in
            guard connections.removeValue(forKey: id) != nil else { return }
            closedCount.add(1, ordering: .relaxed)
            openConnections.subtract(1, ordering: .releasing)
            resumeAcceptingIfPossible()
        }
    }

    func shutdown(gracePeriod: Duration) async {
        let open: [Connection] = queue.sync {
            guard !isShuttingDown else { return [] }
            isShuttingDown = true
            shutdownStarted.store(true, ordering: .releasing)
            if started && listenFD >= 0 {
                poller.remove(Self.listenerID, fd: listenFD)
                Syscalls.close(listenFD)
                listenFD = -1
                listenerOpen.store(false, ordering: .releasing)
            }
            return Array(connections.values)
        }
        for connection in open {
            connection.beginShutdown()
        }
        let clock = ContinuousClock()
        let deadline = clock.now + gracePeriod
        while openConnections.load(ordering: .acquiring) > 0 && clock.now < deadline {
            try? await Task.sleep(for: .milliseconds(10))
        }
        if openConnections.load(ordering: .acquiring) > 0 {
            let remaining: [Connection] = queue.sync { Array(connections.values) }
            for connection in remaining {
                connection.forceClose()
            }
            let hardDeadline = clock.now + .seconds(5)
            while openConnections.load(ordering: .acquiring) > 0 && clock.now < hardDeadline {
                try? await Task.sleep(for: .milliseconds(5))
            }
        }
        // Connections still open past the hard deadline get no events any more; their fds close with them.
        queue.sync { if started { poller.stop() } }
    }

}

extension Duration {
    var nanoseconds: Int64 {
        let (seconds, attoseconds) = components
        let total = seconds.multipliedReportingOverflow(by: 1_000_000_000)
        guard !total.overflow else { return seconds > 0 ? Int64.max : Int64.min }
        return total.partialValue &+ attoseconds / 1_000_000_000
    }
}

/// The `Date` header value, formatted at most once per second.
final class DateCache: Sendable {
    private let cache = Mutex<(second: Int, text: String)>((-1, ""))

    func current() -> String {
        let now = Int(time(nil))
        return cache.withLock { entry in
            if entry.second != now {
                entry = (now, HTTPDate.format(epochSeconds: now))
            }
            return entry.text
        }
    }
}
