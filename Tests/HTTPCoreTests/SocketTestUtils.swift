import Glibc
import HTTP1
import Synchronization
import Testing

@testable import HTTPCore

struct TestFailure: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// A response read off the wire by ``RawClient``.
struct WireResponse {
    var status: Int
    var headers: [(name: String, value: String)]
    var body: [UInt8]

    func header(_ name: String) -> String? {
        headers.first { $0.name.lowercased() == name.lowercased() }?.value
    }

    var closes: Bool { header("Connection")?.lowercased() == "close" }
}

/// A blocking loopback client that speaks raw bytes, with poll-based timeouts.
final class RawClient: @unchecked Sendable {
    let fd: Int32
    private var buffer: [UInt8] = []
    private(set) var sawEOF = false

    init(port: Int, ipv6: Bool = false) throws {
        fd = socket(ipv6 ? AF_INET6 : AF_INET, Int32(SOCK_STREAM.rawValue | SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw TestFailure("socket failed") }
        let result: Int32
        if ipv6 {
            var address = sockaddr_in6()
            address.sin6_family = sa_family_t(AF_INET6)
            address.sin6_port = UInt16(port).bigEndian
            address.sin6_addr = in6addr_loopback
            result = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in6>.size))
                }
            }
        } else {
            var address = sockaddr_in()
            address.sin_family = sa_family_t(AF_INET)
            address.sin_port = UInt16(port).bigEndian
            address.sin_addr.s_addr = inet_addr("127.0.0.1")
            result = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
                }
            }
        }
        guard result == 0 else {
            Glibc.close(fd)
            throw TestFailure("connect failed: errno \(errno)")
        }
    }

    deinit {
        Glibc.close(fd)
    }

    /// Sends everything; returns false when the peer is gone (EPIPE, ECONNRESET).
    @discardableResult
    func send(_ bytes: [UInt8]) -> Bool {
        var offset = 0
        while offset < bytes.count {
            let sent = bytes.withUnsafeBytes {
                Glibc.send(fd, $0.baseAddress! + offset, bytes.count - offset, Int32(MSG_NOSIGNAL))
            }
            if sent <= 0 { return false }
            offset += sent
        }
        return true
    }

    @discardableResult
    func send(_ text: String) -> Bool { send(Array(text.utf8)) }

    func shutdownWrite() { _ = Glibc.shutdown(fd, Int32(SHUT_WR)) }

    /// Sets SO_LINGER 0 so that close sends a RST.
    func resetOnClose() {
        var option = linger(l_onoff: 1, l_linger: 0)
        _ = setsockopt(fd, SOL_SOCKET, SO_LINGER, &option, socklen_t(MemoryLayout<linger>.size))
    }

    /// Reads once into the buffer, waiting at most `timeout` seconds. False on timeout or EOF.
    private func fill(timeout: Double) -> Bool {
        guard !sawEOF else { return false }
        var descriptor = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        guard poll(&descriptor, 1, Int32(timeout * 1000)) > 0 else { return false }
        var chunk = [UInt8](repeating: 0, count: 65536)
        let count = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
        if count <= 0 {
            sawEOF = true
            return false
        }
        buffer.append(contentsOf: chunk[0..<count])
        return true
    }

    /// Reads one response (1xx included), or nil when none came within `timeout` seconds.
    func readResponse(timeout: Double = 10, isHead: Bool = false) -> WireResponse? {
        let deadline = Self.now() + timeout
        while true {
            if let response = takeResponse(isHead: isHead) { return response }
            let left = deadline - Self.now()
            guard left > 0, fill(timeout: left) else { return takeResponse(isHead: isHead) }
        }
    }

    /// True when the server closed the connection (EOF or reset) within `timeout` seconds.
    func waitForClose(timeout: Double = 10) -> Bool {
        let deadline = Self.now() + timeout
        while !sawEOF {
            let left = deadline - Self.now()
            guard left > 0 else { return false }
            _ = fill(timeout: left)
        }
        return true
    }

    /// Whatever bytes arrive within `timeout` seconds (stops early at EOF).
    func readAvailable(timeout: Double) -> [UInt8] {
        let deadline = Self.now() + timeout
        while !sawEOF {
            let left = deadline - Self.now()
            guard left > 0 else { break }
            _ = fill(timeout: left)
        }
        defer { buffer.removeAll() }
        return buffer
    }

    private func takeResponse(isHead: Bool) -> WireResponse? {
        let separator: [UInt8] = [13, 10, 13, 10]
        guard let end = buffer.firstRange(of: separator) else { return nil }
        let head = String(decoding: buffer[..<end.lowerBound], as: UTF8.self)
        var lines = head.split(separator: "\r\n", omittingEmptySubsequences: false)
        let statusLine = lines.removeFirst().split(separator: " ")
        guard statusLine.count >= 2, let status = Int(statusLine[1]) else { return nil }
        let headers = lines.compactMap { line -> (name: String, value: String)? in
            guard let colon = line.firstIndex(of: ":") else { return nil }
            return (String(line[..<colon]), line[line.index(after: colon)...].trimmingCharacters(in: " "))
        }
        let length =
            (isHead || status < 200 || status == 204 || status == 304)
            ? 0 : Int(headers.first { $0.name.lowercased() == "content-length" }?.value ?? "0") ?? 0
        guard buffer.count >= end.upperBound + length else { return nil }
        let body = Array(buffer[end.upperBound..<(end.upperBound + length)])
        buffer.removeFirst(end.upperBound + length)
        return WireResponse(status: status, headers: headers, body: body)
    }

    static func now() -> Double {
        var spec = timespec()
        clock_gettime(CLOCK_MONOTONIC, &spec)
        return Double(spec.tv_sec) + Double(spec.tv_nsec) / 1e9
    }
}

extension String {
    func trimmingCharacters(in set: Character) -> String {
        var text = Substring(self)
        while text.first == set { text.removeFirst() }
        while text.last == set { text.removeLast() }
        return String(text)
    }
}

extension Substring {
    func trimmingCharacters(in set: Character) -> String { String(self).trimmingCharacters(in: set) }
}

/// Counts the responses a server reported through its hook.
final class ResponseLog: Sendable {
    let entries = Mutex<[(method: String, pattern: String?, status: Int)]>([])

    var statuses: [Int] { entries.withLock { $0.map(\.status) } }

    var hooks: HTTPServerHooks {
        var hooks = HTTPServerHooks()
        hooks.onResponse = { method, pattern, status, _ in
            self.entries.withLock { $0.append((method, pattern, status)) }
        }
        return hooks
    }
}

/// The routes every socket test uses.
func testRouter() -> Router {
    var router = Router()
    router.add("GET", "/health") { _ in HTTPResponse(status: 200, body: Array("ok".utf8)) }
    router.add("GET", "/") { _ in HTTPResponse(status: 200, body: Array("root".utf8)) }
    router.add("GET", "/a") { _ in HTTPResponse(status: 200, body: Array("a".utf8)) }
    router.add("GET", "/b") { _ in HTTPResponse(status: 200, body: Array("b".utf8)) }
    router.add("GET", "/x") { _ in HTTPResponse(status: 200, headers: ["X-Kind": "x"], body: Array("xxxx".utf8)) }
    router.add("POST", "/echo") { request in HTTPResponse(status: 200, body: request.body) }
    router.add("GET", "/slow") { request in
        let millis = Int(request.query("ms") ?? "500") ?? 500
        try? await Task.sleep(for: .milliseconds(millis))
        return HTTPResponse(status: 200, body: Array("slow".utf8))
    }
    router.add("GET", "/big") { _ in HTTPResponse(status: 200, body: [UInt8](repeating: 0x61, count: 8 << 20)) }
    router.add("GET", "/v1/jobs/{id}") { request in
        HTTPResponse(status: 200, body: Array("job \(request.pathParameters["id"] ?? "")".utf8))
    }
    return router
}

/// Runs `body` against a fresh server on 127.0.0.1 (or ::1), ephemeral port; always shuts it down.
func withServer(
    configure: (inout HTTPServerConfiguration) -> Void = { _ in }, router: Router = testRouter(),
    hooks: HTTPServerHooks = HTTPServerHooks(), host: String = "127.0.0.1",
    _ body: (HTTPServer) async throws -> Void
) async throws {
    var configuration = HTTPServerConfiguration()
    configuration.host = host
    configuration.port = 0
    configure(&configuration)
    let server = HTTPServer(configuration: configuration, router: router, hooks: hooks)
    try server.start()
    do {
        try await body(server)
    } catch {
        await server.shutdown(gracePeriod: .seconds(1))
        throw error
    }
    await server.shutdown(gracePeriod: .seconds(1))
    #expect(server.openConnections == 0)
    #expect(server.acceptedConnections == server.closedConnections)
}

/// Runs blocking client code off the cooperative pool, so slow reads never starve the server's handlers.
func blocking<T: Sendable>(_ work: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        let thread = BlockingThread {
            continuation.resume(with: Result { try work() })
        }
        thread.start()
    }
}

final class BlockingThread: @unchecked Sendable {
    private let work: () -> Void
    init(_ work: @escaping () -> Void) { self.work = work }

    func start() {
        let box = Unmanaged.passRetained(self)
        var thread = pthread_t()
        let created = pthread_create(
            &thread, nil,
            { raw in
                let box = Unmanaged<BlockingThread>.fromOpaque(raw!).takeRetainedValue()
                box.work()
                return nil
            }, box.toOpaque())
        if created == 0 {
            pthread_detach(thread)
        } else {
            box.release()
            work()
        }
    }
}
