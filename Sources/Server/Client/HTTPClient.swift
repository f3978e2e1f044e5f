import Foundation
import Glibc

/// An answer of the service.
struct ClientResponse: Sendable, Equatable {
    var status: Int
    /// Lower-cased names.
    var headers: [String: String]
    var body: [UInt8]

    /// Parses a whole HTTP/1.1 response read to the end of the connection: a body of `Content-Length`
    /// bytes, chunked, or up to the end (pure). Nil when it is not a complete HTTP/1.x response.
    static func parse(_ bytes: [UInt8]) -> ClientResponse? {
        let separator: [UInt8] = [13, 10, 13, 10]
        guard bytes.count >= 4,
            let end = (0...(bytes.count - 4)).first(where: { bytes[$0..<$0 + 4].elementsEqual(separator) })
        else { return nil }
        let lines = String(decoding: bytes[..<end], as: UTF8.self).components(separatedBy: "\r\n")
        let statusLine = lines[0].split(separator: " ", maxSplits: 2)
        guard statusLine.count >= 2, statusLine[0].hasPrefix("HTTP/1."), let status = Int(statusLine[1]),
            (100...599).contains(status)
        else { return nil }
        var headers: [String: String] = [:]
        for line in lines.dropFirst() {
            guard let colon = line.firstIndex(of: ":") else { return nil }
            headers[line[..<colon].lowercased()] = line[line.index(after: colon)...].trimmingWhitespace()
        }
        let rest = Array(bytes[(end + 4)...])
        if headers["transfer-encoding"]?.lowercased().contains("chunked") == true {
            guard let body = dechunk(rest) else { return nil }
            return ClientResponse(status: status, headers: headers, body: body)
        }
        if let lengthText = headers["content-length"] {
            guard let length = Int(lengthText), length >= 0, rest.count >= length else { return nil }
            return ClientResponse(status: status, headers: headers, body: Array(rest[..<length]))
        }
        return ClientResponse(status: status, headers: headers, body: rest)
    }

    static func dechunk(_ bytes: [UInt8]) -> [UInt8]? {
        var body: [UInt8] = []
        var index = 0
        while true {
            guard
                let lineEnd = (index..<max(index, bytes.count - 1)).first(where: {
                    bytes[$0] == 13 && bytes[$0 + 1] == 10
                })
            else { return nil }
            let sizeText = String(decoding: bytes[index..<lineEnd], as: UTF8.self).split(separator: ";").first ?? ""
            guard let size = Int(sizeText.trimmingWhitespace(), radix: 16), size >= 0 else {
                return nil
            }
            index = lineEnd + 2
            if size == 0 { return body }
            guard bytes.count >= index + size + 2 else { return nil }
            body += bytes[index..<index + size]
            index += size + 2
        }
    }
}

/// Why a call did not get an answer from the service: the code is one of the API's names or `UNAVAILABLE`.
struct ClientError: Error, Sendable, Equatable {
    var code: String
    var message: String
    /// The HTTP status, when the service answered.
    var status: Int?

    var exitStatus: SysExit { SysExit.of(code: code, message: message) }
}

/// A small HTTP/1.1 client on POSIX sockets: one request per connection (`Connection: close`), blocking,
/// for the command line (`asmtd job ...`).
struct HTTPClient: Sendable {
    var server: ServerURL
    var token: String?
    /// Seconds a connection attempt may take.
    var connectTimeout = 10

    func send(
        _ method: String, _ path: String, body: [UInt8]? = nil, timeout: Int = 30
    ) throws(ClientError)
        -> ClientResponse
    {
        let fd = try connect()
        defer { close(fd) }
        var receive = timeval(tv_sec: timeout, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &receive, socklen_t(MemoryLayout<timeval>.size))
        var head = "\(method) \(server.prefix)\(path) HTTP/1.1\r\nHost: \(server.authority)\r\n"
        head += "User-Agent: asmtd-client\r\nAccept: application/json\r\nConnection: close\r\n"
        if let token { head += "Authorization: Bearer \(token)\r\n" }
        if let body { head += "Content-Type: application/json\r\nContent-Length: \(body.count)\r\n" }
        let bytes = Array((head + "\r\n").utf8) + (body ?? [])
        var sent = 0
        while sent < bytes.count {
            let n = bytes.withUnsafeBytes {
                Glibc.send(fd, $0.baseAddress! + sent, $0.count - sent, Int32(MSG_NOSIGNAL))
            }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else {
                throw unavailable("cannot send to \(server.authority): \(String(cString: strerror(errno)))")
            }
            sent += n
        }
        var received: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n < 0 && errno == EINTR { continue }
            if n < 0 {
                let reason = errno == EAGAIN ? "no answer within \(timeout) s" : String(cString: strerror(errno))
                throw unavailable("\(server.authority): \(reason)")
            }
            if n == 0 { break }
            received += buffer[0..<n]
        }
        guard let response = ClientResponse.parse(received) else {
            throw unavailable("\(server.authority) did not answer with HTTP (is it asmtd?)")
        }
        return response
    }

    private func unavailable(_ message: String) -> ClientError { ClientError(code: "UNAVAILABLE", message: message) }

    /// Connects to the first address of the host that accepts.
    private func connect() throws(ClientError) -> Int32 {
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var list: UnsafeMutablePointer<addrinfo>?
        let rc = getaddrinfo(server.host, String(server.port), &hints, &list)
        guard rc == 0, let first = list else {
            throw unavailable("cannot resolve \(server.host): \(String(cString: gai_strerror(rc)))")
        }
        defer { freeaddrinfo(list) }
        var lastError = ECONNREFUSED
        var entry: UnsafeMutablePointer<addrinfo>? = first
        while let current = entry {
            entry = current.pointee.ai_next
            let fd = socket(current.pointee.ai_family, current.pointee.ai_socktype | Int32(SOCK_CLOEXEC.rawValue), 0)
            if fd < 0 {
                lastError = errno
                continue
            }
            // On Linux SO_SNDTIMEO bounds connect(2) too.
            var limit = timeval(tv_sec: connectTimeout, tv_usec: 0)
            setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &limit, socklen_t(MemoryLayout<timeval>.size))
            if Glibc.connect(fd, current.pointee.ai_addr, current.pointee.ai_addrlen) == 0 { return fd }
            lastError = errno
            close(fd)
        }
        throw unavailable("cannot connect to \(server.authority): \(String(cString: strerror(lastError)))")
    }
}
