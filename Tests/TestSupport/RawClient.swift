import Foundation
import Glibc

/// A response read off the wire by ``RawClient``.
package struct TestResponse: Sendable {
    package var status: Int
    package var headers: [(name: String, value: String)]
    package var body: [UInt8]

    /// The first header of that name (any case).
    package func header(_ name: String) -> String? {
        headers.first { $0.name.lowercased() == name.lowercased() }?.value
    }

    package var closes: Bool { header("Connection")?.lowercased() == "close" }

    package var text: String { String(decoding: body, as: UTF8.self) }

    package var json: [String: Any] {
        (try? JSONSerialization.jsonObject(with: Data(body)) as? [String: Any]) ?? [:]
    }

    package var errorCode: String? { (json["error"] as? [String: Any])?["code"] as? String }

    /// Status line and headers of `head` (the bytes before the blank line); nil when it is no response head.
    static func parseHead(_ head: ArraySlice<UInt8>) -> (status: Int, headers: [(name: String, value: String)])? {
        var lines = String(decoding: head, as: UTF8.self).split(separator: "\r\n", omittingEmptySubsequences: false)
        let statusLine = lines.removeFirst().split(separator: " ")
        guard statusLine.count >= 2, let status = Int(statusLine[1]) else { return nil }
        let headers = lines.compactMap { line -> (name: String, value: String)? in
            guard let colon = line.firstIndex(of: ":") else { return nil }
            return (String(line[..<colon]), String(trimmingSpaces(line[line.index(after: colon)...])))
        }
        return (status, headers)
    }

    private static func trimmingSpaces(_ text: Substring) -> Substring {
        var text = text
        while text.first == " " || text.first == "\t" { text.removeFirst() }
        while text.last == " " || text.last == "\t" { text.removeLast() }
        return text
    }
}

/// A blocking loopback client that speaks raw bytes, with poll-based timeouts. The one HTTP client of the tests:
/// independent of the server's code, so a server bug cannot hide behind the same bug in the client.
package final class RawClient: @unchecked Sendable {
    package let fd: Int32
    private var buffer: [UInt8] = []
    package private(set) var sawEOF = false

    package init(port: Int, ipv6: Bool = false) throws {
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
    package func send(_ bytes: [UInt8]) -> Bool {
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
    package func send(_ text: String) -> Bool { send(Array(text.utf8)) }

    package func shutdownWrite() { _ = Glibc.shutdown(fd, Int32(SHUT_WR)) }

    /// Sets SO_LINGER 0 so that close sends a RST.
    package func resetOnClose() {
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
    package func readResponse(timeout: Double = 10, isHead: Bool = false) -> TestResponse? {
        let deadline = Self.now() + timeout
        while true {
            if let response = takeResponse(isHead: isHead) { return response }
            let left = deadline - Self.now()
            guard left > 0, fill(timeout: left) else { return takeResponse(isHead: isHead) }
        }
    }

    /// True when the server closed the connection (EOF or reset) within `timeout` seconds.
    package func waitForClose(timeout: Double = 10) -> Bool {
        let deadline = Self.now() + timeout
        while !sawEOF {
            let left = deadline - Self.now()
            guard left > 0 else { return false }
            _ = fill(timeout: left)
        }
        return true
    }

    /// Whatever bytes arrive within `timeout` seconds (stops early at EOF).
    package func readAvailable(timeout: Double) -> [UInt8] {
        let deadline = Self.now() + timeout
        while !sawEOF {
            let left = deadline - Self.now()
            guard left > 0 else { break }
            _ = fill(timeout: left)
        }
        defer { buffer.removeAll() }
        return buffer
    }

    private func takeResponse(isHead: Bool) -> TestResponse? {
        let separator: [UInt8] = [13, 10, 13, 10]
        guard let end = buffer.firstRange(of: separator),
            let (status, headers) = TestResponse.parseHead(buffer[..<end.lowerBound])
        else { return nil }
        let length =
            (isHead || status < 200 || status == 204 || status == 304)
            ? 0 : Int(headers.first { $0.name.lowercased() == "content-length" }?.value ?? "0") ?? 0
        guard buffer.count >= end.upperBound + length else { return nil }
        let body = Array(buffer[end.upperBound..<(end.upperBound + length)])
        buffer.removeFirst(end.upperBound + length)
        return TestResponse(status: status, headers: headers, body: body)
    }

    static func now() -> Double {
        var spec = timespec()
        clock_gettime(CLOCK_MONOTONIC, &spec)
        return Double(spec.tv_sec) + Double(spec.tv_nsec) / 1e9
    }

    /// One request on a fresh connection with `Connection: close`; the response is everything up to the
    /// server's close (at most `timeout` seconds), its body whatever follows the head. Blocking.
    package static func request(
        port: Int, _ method: String, _ path: String, body: String? = nil, headers: [String: String] = [:],
        timeout: Double = 120
    ) throws -> TestResponse {
        let client = try RawClient(port: port)
        var head = "\(method) \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
        for (name, value) in headers { head += "\(name): \(value)\r\n" }
        let payload = Array((body ?? "").utf8)
        if body != nil || method == "POST" { head += "Content-Length: \(payload.count)\r\n" }
        guard client.send(Array((head + "\r\n").utf8) + payload) else {
            throw TestFailure("send failed: errno \(errno)")
        }
        let received = client.readAvailable(timeout: timeout)
        let separator: [UInt8] = [13, 10, 13, 10]
        guard let end = received.firstRange(of: separator),
            let (status, headers) = TestResponse.parseHead(received[..<end.lowerBound])
        else { throw TestFailure("no response head in \(received.count) bytes for \(method) \(path)") }
        return TestResponse(status: status, headers: headers, body: Array(received[end.upperBound...]))
    }
}

/// ``RawClient/request(port:_:_:body:headers:timeout:)`` off the cooperative pool.
package func request(
    port: Int, _ method: String, _ path: String, body: String? = nil, headers: [String: String] = [:]
) async throws -> TestResponse {
    try await blocking { try RawClient.request(port: port, method, path, body: body, headers: headers) }
}
