import CSyscalls
import Glibc

/// An error from the socket layer, carrying errno and what was being done.
public struct HTTPServerError: Error, Sendable, CustomStringConvertible {
    public var message: String
    public var errno: Int32

    init(_ operation: String, errno: Int32 = Glibc.errno) {
        self.errno = errno
        message = "\(operation): \(String(cString: strerror(errno)))"
    }

    init(message: String) {
        self.message = message
        errno = 0
    }

    public var description: String { message }
}

/// Every socket, epoll and eventfd call of the server, and the only place that retries a call interrupted by
/// a signal (EINTR, in `retryingEINTR`). `close` is never retried: on Linux the fd is released even when
/// close reports EINTR, and a retry could close a number another thread was just given.
enum Syscalls {
    /// Calls `call` again while it fails with EINTR; otherwise returns its result, errno set as it left it.
    @inline(__always)
    static func retryingEINTR<Result: BinaryInteger>(_ call: () -> Result) -> Result {
        while true {
            let result = call()
            if result >= 0 || errno != EINTR { return result }
        }
    }

    /// `recv`; -1 with errno on failure (never EINTR).
    static func receive(_ fd: Int32, into buffer: UnsafeMutableRawBufferPointer, flags: Int32 = 0) -> Int {
        retryingEINTR { recv(fd, buffer.baseAddress, buffer.count, flags) }
    }

    /// `send` without SIGPIPE; -1 with errno on failure (never EINTR).
    static func send(_ fd: Int32, _ bytes: UnsafeRawBufferPointer) -> Int {
        retryingEINTR { Glibc.send(fd, bytes.baseAddress, bytes.count, Int32(MSG_NOSIGNAL)) }
    }

    /// `shutdown(fd, SHUT_WR)`: the peer reads EOF after the bytes already sent. false with errno on failure.
    static func shutdownWrite(_ fd: Int32) -> Bool {
        shutdown(fd, Int32(SHUT_WR)) == 0
    }

    /// `close`, exactly once per fd, result ignored (the fd is gone either way).
    static func close(_ fd: Int32) {
        _ = Glibc.close(fd)
    }

    // MARK: epoll

    /// `epoll_create1(EPOLL_CLOEXEC)`; -1 with errno on failure.
    static func epollCreate() -> Int32 { cepoll_create() }

    /// `eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)`; -1 with errno on failure.
    static func eventFD() -> Int32 { cepoll_eventfd() }

    /// Adds one to an eventfd's counter, which makes it readable.
    static func wake(eventFD fd: Int32) {
        var one: UInt64 = 1
        _ = retryingEINTR { Glibc.write(fd, &one, MemoryLayout<UInt64>.size) }
    }

    /// `epoll_ctl` with `data` as the event's u64 (`events` is ignored for CEPOLL_CTL_DEL); false with errno.
    static func epollControl(_ epollFD: Int32, _ operation: Int, fd: Int32, events: UInt32, data: UInt64) -> Bool {
        cepoll_ctl(epollFD, Int32(operation), fd, events, data) == 0
    }

    /// `epoll_wait` without a timeout into `events` (64 at most); -1 with errno on failure (never EINTR).
    static func epollWait(_ epollFD: Int32, into events: UnsafeMutablePointer<cepoll_event>, capacity: Int) -> Int {
        Int(retryingEINTR { cepoll_wait(epollFD, events, Int32(capacity), -1) })
    }

    static let ignoreSIGPIPE: Void = {
        _ = Glibc.signal(SIGPIPE, SIG_IGN)
    }()

    /// Creates, configures, binds and listens; returns the fd and the bound port.
    /// The corresponding C functions are `getaddrinfo`, `socket`, `setsockopt`, `bind` and `listen`.
    static func listen(host: String, port: Int, backlog: Int) throws(HTTPServerError) -> (fd: Int32, port: Int) {
        var hints = addrinfo()
        hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV
        hints.ai_family = AF_UNSPEC
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var result: UnsafeMutablePointer<addrinfo>?
        let bare = host.hasPrefix("[") && host.hasSuffix("]") ? String(host.dropFirst().dropLast()) : host
        let status = getaddrinfo(bare, String(port), &hints, &result)
        guard status == 0, let info = result else {
            throw HTTPServerError(
                message: "cannot resolve listen address \(host): \(String(cString: gai_strerror(status)))")
        }
        defer { freeaddrinfo(result) }
        let fd = socket(
            info.pointee.ai_family, Int32(SOCK_STREAM.rawValue | SOCK_NONBLOCK.rawValue | SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw HTTPServerError("socket") }
        var one: Int32 = 1
        _ = setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        guard bind(fd, info.pointee.ai_addr, info.pointee.ai_addrlen) == 0 else {
            let error = HTTPServerError("cannot bind \(host):\(port)")
            close(fd)
            throw error
        }
        guard Glibc.listen(fd, Int32(clamping: max(1, backlog))) == 0 else {
            let error = HTTPServerError("cannot listen on \(host):\(port)")
            close(fd)
            throw error
        }
        var storage = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let named = withUnsafeMutablePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        guard named == 0 else {
            let error = HTTPServerError("getsockname")
            close(fd)
            throw error
        }
        return (fd, address(of: storage).port)
    }

    /// Accepts one connection, born non-blocking and close-on-exec (`accept4`), with TCP_NODELAY set.
    /// nil with errno on failure (never EINTR).
    static func accept(_ listener: Int32) -> (fd: Int32, remote: String)? {
        var storage = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let fd = withUnsafeMutablePointer(to: &storage) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { address in
                retryingEINTR { csys_accept_nonblocking(listener, address, &length) }
            }
        }
        guard fd >= 0 else { return nil }
        // Small responses leave at once; failure only costs latency.
        var one: Int32 = 1
        _ = setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
        let address = address(of: storage)
        let remote =
            storage.ss_family == sa_family_t(AF_INET6)
            ? "[\(address.host)]:\(address.port)" : "\(address.host):\(address.port)"
        return (fd, remote)
    }

    static func address(of storage: sockaddr_storage) -> (host: String, port: Int) {
        var storage = storage
        return withUnsafePointer(to: &storage) { pointer in
            if pointer.pointee.ss_family == sa_family_t(AF_INET6) {
                let address = pointer.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { $0.pointee }
                return (numericHost(AF_INET6, address.sin6_addr), Int(UInt16(bigEndian: address.sin6_port)))
            }
            let address = pointer.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { $0.pointee }
            return (numericHost(AF_INET, address.sin_addr), Int(UInt16(bigEndian: address.sin_port)))
        }
    }

    /// `inet_ntop` of an `in_addr` or an `in6_addr`.
    private static func numericHost<Address>(_ family: Int32, _ address: Address) -> String {
        var text = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN) + 1)
        withUnsafeBytes(of: address) { _ = inet_ntop(family, $0.baseAddress, &text, socklen_t(text.count)) }
        return text.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
    }
}
