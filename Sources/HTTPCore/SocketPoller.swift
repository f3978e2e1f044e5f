import CSyscalls
import Glibc
import Synchronization

/// Readiness of the server's sockets, from a private epoll instance watched by one thread of its own.
///
/// Dispatch read and write sources are not used for sockets: on Linux, libdispatch's epoll backend handles
/// `EPOLLHUP` (which a peer's reset raises) on its manager thread while the source's own queue acknowledges the
/// deletion, and when the manager thread is delayed between the two (a busy machine preempts it) the source is
/// finalized twice and the process dies with SIGILL in `_dispatch_source_refs_finalize_unregistration`, or
/// touches a freed note (SIGSEGV). Here epoll's data is a registration number, never a pointer: an event for a
/// registration already removed finds nothing and is dropped, and the fd is closed right after its removal.
///
/// A registration is either one-shot (`add`, `EPOLLONESHOT`: after an event it stays disarmed until its owner
/// arms it again, so at most one event is in flight; the listener) or edge-triggered (`watch`: armed for
/// reading, writing and hang-ups for good, an event each time the socket becomes readable or writable, and
/// no `epoll_ctl` per request; connections). Either way an event for a removed registration is dropped.
final class SocketPoller: Sendable {
    typealias Handler = @Sendable (_ events: UInt32) -> Void

    static let readable = UInt32(CEPOLL_IN | CEPOLL_RDHUP)
    static let writable = UInt32(CEPOLL_OUT)
    /// The peer shut its write side: after the bytes already queued, reads find EOF.
    static let peerShutWrite = UInt32(CEPOLL_RDHUP)
    /// Always reported, armed or not (until the one-shot event disarms the registration).
    static let failed = UInt32(CEPOLL_HUP | CEPOLL_ERR)
    /// `EPOLLET` (`1u << 31`, which a C enum cannot carry).
    private static let edgeTriggered: UInt32 = 1 << 31

    private static let wakeToken = UInt64.max

    /// Closed in `deinit` only, so that a late `arm` or `remove` never reaches a reused fd number.
    private let epollFD: Int32
    private let wakeFD: Int32
    private let handlers = Mutex<[UInt64: Handler]>([:])
    private let stopping = Atomic<Bool>(false)
    /// Set by `start`, taken by `stop`.
    private let thread = Mutex<pthread_t?>(nil)

    init() throws(HTTPServerError) {
        epollFD = Syscalls.epollCreate()
        guard epollFD >= 0 else { throw HTTPServerError("epoll_create1") }
        wakeFD = Syscalls.eventFD()
        guard wakeFD >= 0 else {
            let error = HTTPServerError("eventfd")
            Syscalls.close(epollFD)
            throw error
        }
        guard
            Syscalls.epollControl(
                epollFD, CEPOLL_CTL_ADD, fd: wakeFD, events: UInt32(CEPOLL_IN), data: Self.wakeToken)
        else {
            let error = HTTPServerError("epoll_ctl")
            Syscalls.close(wakeFD)
            Syscalls.close(epollFD)
            throw error
        }
    }

    deinit {
        Syscalls.close(wakeFD)
        Syscalls.close(epollFD)
    }

    /// Starts the thread that waits for events and calls the handlers (on that thread: they must be quick).
    func start() throws(HTTPServerError) {
        let context = Unmanaged.passRetained(self).toOpaque()
        var created = pthread_t()
        let rc = pthread_create(
            &created, nil,
            { context in
                let poller = Unmanaged<SocketPoller>.fromOpaque(context!).takeRetainedValue()
                poller.run()
                return nil
            }, context)
        guard rc == 0 else {
            Unmanaged<SocketPoller>.fromOpaque(context).release()
            throw HTTPServerError("pthread_create", errno: rc)
        }
        thread.withLock { $0 = created }
    }

    /// Ends the thread and waits for it; handlers are not called afterwards.
    func stop() {
        guard let thread = thread.withLock({ $0.take() }) else { return }
        stopping.store(true, ordering: .releasing)
        Syscalls.wake(eventFD: wakeFD)
        pthread_join(thread, nil)
    }

    /// Watches `fd` as registration `id`, armed for `events`.
    func add(_ id: UInt64, fd: Int32, events: UInt32, handler: @escaping Handler) -> Bool {
        register(id, fd: fd, events: events | UInt32(CEPOLL_ONESHOT), handler: handler)
    }

    /// Watches `fd` as registration `id`, edge-triggered for reading, writing and hang-ups: `handler` is called
    /// each time new bytes arrive, room frees up after a write that did not fit, or the socket fails. The owner
    /// keeps reading (writing) until EAGAIN before it waits for the next event, and never arms it.
    func watch(_ id: UInt64, fd: Int32, handler: @escaping Handler) -> Bool {
        register(id, fd: fd, events: Self.readable | Self.writable | Self.edgeTriggered, handler: handler)
    }

    private func register(_ id: UInt64, fd: Int32, events: UInt32, handler: @escaping Handler) -> Bool {
        handlers.withLock { $0[id] = handler }
        guard Syscalls.epollControl(epollFD, CEPOLL_CTL_ADD, fd: fd, events: events, data: id) else {
            handlers.withLock { _ = $0.removeValue(forKey: id) }
            return false
        }
        return true
    }

    /// Arms registration `id` for `events` (0: only errors and hang-ups, which epoll always reports).
    @discardableResult
    func arm(_ id: UInt64, fd: Int32, events: UInt32) -> Bool {
        Syscalls.epollControl(epollFD, CEPOLL_CTL_MOD, fd: fd, events: events | UInt32(CEPOLL_ONESHOT), data: id)
    }

    /// Stops watching `fd`; its handler is not called after this returns, except for an event already taken
    /// off the queue, which its owner must ignore. The caller may close `fd` right after.
    func remove(_ id: UInt64, fd: Int32) {
        _ = Syscalls.epollControl(epollFD, CEPOLL_CTL_DEL, fd: fd, events: 0, data: 0)
        handlers.withLock { _ = $0.removeValue(forKey: id) }
    }

    private func run() {
        let capacity = 64
        let events = UnsafeMutablePointer<cepoll_event>.allocate(capacity: capacity)
        defer { events.deallocate() }
        while !stopping.load(ordering: .acquiring) {
            let count = Syscalls.epollWait(epollFD, into: events, capacity: capacity)
            if count < 0 { break }  // only EBADF or EINVAL, which would be a bug here
            for index in 0..<count {
                let id = events[index].data
                if id == Self.wakeToken { continue }
                let handler = handlers.withLock { $0[id] }
                handler?(events[index].events)
            }
        }
    }
}
