/// Limits applied by the parser; the server (HTTPCore) takes them from its `HTTPServerConfiguration`.
package struct ParserLimits: Sendable {
    package var maxRequestLineLength = 8192
    package var maxHeaderBytes = 32768
    package var maxHeaderCount = 100
    package var maxBodyBytes = 1 << 20
    /// The longest chunk-size line, extensions included.
    package var maxChunkLineLength = 4096
    /// Leading empty lines tolerated before a request line (RFC 9112 §2.2).
    package var maxLeadingEmptyLines = 8

    package init() {}
}

/// How the body of a request is delimited (RFC 9112 §6.3).
package enum BodyFraming: Equatable, Sendable {
    case none
    case length(Int)
    case chunked
}

/// A parsed request head: request line plus the header section, already validated.
package struct RequestHead: Sendable {
    package var method: String
    package var target: String
    package var path: String
    package var queryItems: [(name: String, value: String)]
    package var version: HTTPVersion
    package var headers: HTTPHeaders
    /// False when the client asked to close (or HTTP/1.0 without keep-alive).
    package var keepAlive: Bool
    /// `Expect: 100-continue` on an HTTP/1.1 request.
    package var expectsContinue: Bool
    package var framing: BodyFraming
}

/// What the parser has to say after being fed.
package enum ParserEvent: Sendable {
    /// The bytes so far do not complete anything.
    case needMore
    /// A head whose body has yet to arrive (only emitted when there is a body).
    case head(RequestHead)
    /// A complete request.
    case request(RequestHead, body: [UInt8])
    /// A refused request; the connection must answer and close.
    case error(HTTPParseError)
}

/// An incremental, pure HTTP/1.1 request parser (RFC 9112), strict by design.
///
/// Feed bytes in any split with ``append(_:)``, then call ``next()`` until it returns `.needMore`.
/// Rules chosen where the RFC leaves a choice: lines must end in CRLF (bare LF and bare CR are
/// refused, in the head and in chunk lines alike); single SP between request-line elements;
/// obs-fold refused; `Content-Length: 5, 5` accepted as 5; Content-Length with Transfer-Encoding
/// refused; a transfer coding whose last member is not `chunked` is 400, an unknown coding before a
/// final `chunked` is 501; trailers are checked for syntax and size, then dropped.
package struct RequestParser: Sendable {
    package enum Phase: Equatable {
        /// Between requests: no byte of the next request yet.
        case idle
        /// Reading a request head.
        case head
        /// Reading a body.
        case body
    }

    /// The lines of a request, each with its own length limit.
    private enum LineKind {
        case requestLine, header, chunkSize, trailer
    }

    private enum State: Equatable {
        case requestLine
        case headers
        case fixedBody
        case chunkSize
        case chunkData
        case chunkDataEnd
        case trailers
        case failed
    }

    /// Methods of RFC 9110, PATCH and QUERY (the safe method with a body): one a route does not take gets 405 with
    /// `Allow`; any other is 501.
    static let knownMethods: Set<String> = [
        "GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE", "CONNECT", "QUERY",
    ]

    package var limits: ParserLimits

    private var buffer: [UInt8] = []
    private var start = 0
    private var scan = 0
    private var state = State.requestLine
    private var failure: HTTPParseError?
    private var leadingEmptyLines = 0
    private var method = ""
    private var targetBytes: [UInt8] = []
    private var version = HTTPVersion.http11
    private var fields: [(name: String, value: String)] = []
    private var headerBytes = 0
    private var head: RequestHead?
    private var body: [UInt8] = []
    private var remaining = 0

    package init(limits: ParserLimits = ParserLimits()) {
        self.limits = limits
    }

    /// Where the parser stands, for the connection's timeouts.
    package var phase: Phase {
        switch state {
        case .requestLine:
            return start == buffer.count && leadingEmptyLines == 0 ? .idle : .head
        case .headers, .failed:
            return .head
        case .fixedBody, .chunkSize, .chunkData, .chunkDataEnd, .trailers:
            return .body
        }
    }

    /// Bytes received and not yet consumed.
    package var bufferedByteCount: Int { buffer.count - start }

    package mutating func append(_ bytes: UnsafeRawBufferPointer) {
        buffer.append(contentsOf: bytes)
    }

    package mutating func append(_ bytes: some Sequence<UInt8>) {
        buffer.append(contentsOf: bytes)
    }

    /// Parses as far as the buffered bytes allow and reports the next event.
    package mutating func next() -> ParserEvent {
        if let failure { return .error(failure) }
        let event: ParserEvent
        do {
            event = try step()
        } catch {
            state = .failed
            failure = error
            return .error(error)
        }
        compact()
        return event
    }

    private mutating func compact() {
        if start == buffer.count {
            buffer.removeAll(keepingCapacity: buffer.capacity <= 1 << 16)
            start = 0
            scan = 0
        } else if start > 4096 && start * 2 > buffer.count {
            buffer.removeFirst(start)
            scan -= start
            start = 0
        }
    }

    private mutating func step() throws(HTTPParseError) -> ParserEvent {
        while true {
            switch state {
            case .failed:
                return .needMore
            case .requestLine:
                guard let range = try nextLine(.requestLine) else { return .needMore }
                if range.isEmpty {
                    leadingEmptyLines += 1
                    guard leadingEmptyLines <= limits.maxLeadingEmptyLines else {
                        throw .badRequest("too many empty lines before the request line")
                    }
                    continue
                }
                try parseRequestLine(range)
                state = .headers
            case .headers:
                guard let range = try nextLine(.header) else { return .needMore }
                if range.isEmpty {
                    let parsed = try finishHead()
                    switch parsed.framing {
                    case .none:
                        reset()
                        return .request(parsed, body: [])
                    case .length(let length):
                        head = parsed
                        remaining = length
                        state = .fixedBody
                        body.reserveCapacity(length)
                    case .chunked:
                        head = parsed
                        state = .chunkSize
                    }
                    return .head(parsed)
                }
                headerBytes += range.count + 2
                guard fields.count < limits.maxHeaderCount else {
                    throw .headersTooLarge("more than \(limits.maxHeaderCount) header fields")
                }
                fields.append(try parseField(range))
            case .fixedBody:
                guard takeBody() else { return .needMore }
                return completeRequest()
            case .chunkSize:
                guard let range = try nextLine(.chunkSize) else { return .needMore }
                let size = try parseChunkSize(range)
                if size == 0 {
                    state = .trailers
                    headerBytes = 0
                } else {
                    guard size <= limits.maxBodyBytes - body.count else {
                        throw .bodyTooLarge("chunked body larger than \(limits.maxBodyBytes) bytes")
                    }
                    remaining = size
                    state = .chunkData
                }
            case .chunkData:
                guard takeBody() else { return .needMore }
                state = .chunkDataEnd
            case .chunkDataEnd:
                guard buffer.count - start >= 2 else {
                    if buffer.count - start == 1 && buffer[start] != 0x0D {
                        throw .badRequest("chunk data not followed by CRLF")
                    }
                    return .needMore
                }
                guard buffer[start] == 0x0D && buffer[start + 1] == 0x0A else {
                    throw .badRequest("chunk data not followed by CRLF")
                }
                start += 2
                scan = start
                state = .chunkSize
            case .trailers:
                guard let range = try nextLine(.trailer) else { return .needMore }
                if range.isEmpty { return completeRequest() }
                headerBytes += range.count + 2
                _ = try parseField(range)
            }
        }
    }

    /// Moves up to `remaining` buffered bytes into the body; true once all `remaining` bytes have arrived.
    private mutating func takeBody() -> Bool {
        let take = min(remaining, buffer.count - start)
        if take > 0 {
            body.append(contentsOf: buffer[start..<(start + take)])
            start += take
            scan = start
            remaining -= take
        }
        return remaining == 0
    }

    private mutating func completeRequest() -> ParserEvent {
        let finished = head!
        let finishedBody = body
        reset()
        return .request(finished, body: finishedBody)
    }

    private mutating func reset() {
        state = .requestLine
        leadingEmptyLines = 0
        method = ""
        targetBytes = []
        fields = []
        headerBytes = 0
        head = nil
        body = []
        remaining = 0
    }

    /// Finds the next CRLF-terminated line of `kind` from `start` and consumes it (CRLF included); nil while
    /// incomplete. Throws when no line ends within the kind's limit, and 400 on a bare CR or LF.
    ///
    /// Only the first `limit + 2` bytes of the line are ever examined, so the verdict (line, too long,
    /// bare CR/LF) does not depend on how the bytes were split.
    private mutating func nextLine(_ kind: LineKind) throws(HTTPParseError) -> Range<Int>? {
        let limit: Int
        switch kind {
        case .requestLine: limit = limits.maxRequestLineLength
        case .header, .trailer: limit = limits.maxHeaderBytes - headerBytes
        case .chunkSize: limit = limits.maxChunkLineLength
        }
        let count = buffer.count
        let lineStart = start
        let window = lineStart + max(0, limit) + 2
        let scanEnd = min(count, window)
        var index = scan
        var found: Result<Range<Int>, HTTPParseError>?
        buffer.withUnsafeBufferPointer { bytes in
            while index < scanEnd {
                let byte = bytes[index]
                if byte == 0x0A {
                    if index == lineStart || bytes[index - 1] != 0x0D {
                        found = .failure(.badRequest("bare LF line ending"))
                    } else {
                        found = .success(lineStart..<(index - 1))
                    }
                    return
                }
                if byte == 0x0D {
                    guard index + 1 < scanEnd else { return }
                    if bytes[index + 1] != 0x0A {
                        found = .failure(.badRequest("bare CR"))
                        return
                    }
                }
                index += 1
            }
        }
        scan = index
        switch found {
        case .success(let range):
            start = index + 1
            scan = start
            return range
        case .failure(let error):
            throw error
        case .none:
            if count >= window { throw tooLong(kind) }
            return nil
        }
    }

    private func tooLong(_ kind: LineKind) -> HTTPParseError {
        switch kind {
        case .requestLine: .uriTooLong("request line longer than \(limits.maxRequestLineLength) bytes")
        case .header: .headersTooLarge("header section larger than \(limits.maxHeaderBytes) bytes")
        case .trailer: .headersTooLarge("trailer section larger than \(limits.maxHeaderBytes) bytes")
        case .chunkSize: .badRequest("chunk-size line longer than \(limits.maxChunkLineLength) bytes")
        }
    }

    private mutating func parseRequestLine(_ range: Range<Int>) throws(HTTPParseError) {
        let line = buffer[range]
        let parts = line.split(separator: 0x20, maxSplits: 3, omittingEmptySubsequences: false)
        guard parts.count == 3, !parts[0].isEmpty, !parts[1].isEmpty else {
            throw .badRequest("malformed request line")
        }
        for byte in parts[0] where !ByteClass.isToken(byte) {
            throw .badRequest("invalid method")
        }
        let versionBytes = Array(parts[2])
        let prefix = Array("HTTP/".utf8)
        guard versionBytes.count == 8, versionBytes.starts(with: prefix), versionBytes[6] == UInt8(ascii: "."),
            let major = decimalDigit(versionBytes[5]), let minor = decimalDigit(versionBytes[7])
        else {
            throw .badRequest("malformed HTTP version")
        }
        guard major == 1 else { throw .versionNotSupported("only HTTP/1.0 and HTTP/1.1 are supported") }
        version = minor == 0 ? .http10 : .http11
        method = String(decoding: parts[0], as: UTF8.self)
        guard Self.knownMethods.contains(method) else { throw .notImplemented("method not implemented") }
        targetBytes = Array(parts[1])
    }

    private func decimalDigit(_ byte: UInt8) -> Int? {
        byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9") ? Int(byte - UInt8(ascii: "0")) : nil
    }

    private func parseField(_ range: Range<Int>) throws(HTTPParseError) -> (name: String, value: String) {
        var nameEnd = range.lowerBound
        var valueStart = range.lowerBound
        var valueEnd = range.upperBound
        try buffer.withUnsafeBufferPointer { (bytes) throws(HTTPParseError) in
            if ByteClass.isWhitespace(bytes[range.lowerBound]) {
                throw .badRequest("obs-fold or whitespace before a field name")
            }
            while nameEnd < range.upperBound && bytes[nameEnd] != UInt8(ascii: ":") {
                guard ByteClass.isToken(bytes[nameEnd]) else { throw .badRequest("invalid byte in field name") }
                nameEnd += 1
            }
            guard nameEnd < range.upperBound else { throw .badRequest("field line without a colon") }
            guard nameEnd > range.lowerBound else { throw .badRequest("empty field name") }
            valueStart = nameEnd + 1
            while valueStart < valueEnd && ByteClass.isWhitespace(bytes[valueStart]) { valueStart += 1 }
            while valueEnd > valueStart && ByteClass.isWhitespace(bytes[valueEnd - 1]) { valueEnd -= 1 }
            for index in valueStart..<valueEnd where !ByteClass.isFieldContent(bytes[index]) {
                throw .badRequest("invalid byte in field value")
            }
        }
        return (
            name: String(decoding: buffer[range.lowerBound..<nameEnd], as: UTF8.self),
            value: String(decoding: buffer[valueStart..<valueEnd], as: UTF8.self)
        )
    }

    private func parseChunkSize(_ range: Range<Int>) throws(HTTPParseError) -> Int {
        var size = 0
        var index = range.lowerBound
        while index < range.upperBound, let digit = ByteClass.hexValue(buffer[index]) {
            // At most 15 hex digits (60 bits): the value can never overflow, whatever the body limit.
            guard index - range.lowerBound < 15 else { throw .badRequest("chunk size too large") }
            size = size << 4 | digit
            guard size <= limits.maxBodyBytes else {
                throw .bodyTooLarge("chunked body larger than \(limits.maxBodyBytes) bytes")
            }
            index += 1
        }
        guard index > range.lowerBound else { throw .badRequest("invalid chunk size") }
        while index < range.upperBound && ByteClass.isWhitespace(buffer[index]) { index += 1 }
        if index < range.upperBound {
            guard buffer[index] == UInt8(ascii: ";") else { throw .badRequest("invalid chunk size") }
            for position in index..<range.upperBound where !ByteClass.isFieldContent(buffer[position]) {
                throw .badRequest("invalid byte in chunk extension")
            }
        }
        return size
    }

    /// Checks the header section as a whole and decides the framing (RFC 9112 §3.2, §6, §9.3).
    private mutating func finishHead() throws(HTTPParseError) -> RequestHead {
        var headers = HTTPHeaders()
        headers.fields = fields
        let target = try RequestTarget.parse(targetBytes, method: method)

        let hosts = headers.values(for: "Host")
        if version == .http11 && hosts.count != 1 {
            throw .badRequest(hosts.isEmpty ? "missing Host header" : "more than one Host header")
        }
        if hosts.count > 1 { throw .badRequest("more than one Host header") }
        if let host = hosts.first, !RequestTarget.isValidAuthority(host.utf8) {
            throw .badRequest("invalid Host header")
        }
        if let authority = target.authority {
            headers.replaceOrAdd(name: "Host", value: authority)
        }

        let framing = try decideFraming(headers)

        var hasClose = false
        var hasKeepAlive = false
        for value in headers.values(for: "Connection") {
            for token in value.split(separator: ",") {
                let option = token.trimmingWhitespace().lowercased()
                if option == "close" { hasClose = true }
                if option == "keep-alive" { hasKeepAlive = true }
            }
        }
        let keepAlive = !hasClose && (version == .http11 || hasKeepAlive)

        var expectsContinue = false
        let expectations = headers.values(for: "Expect")
        if version == .http11 && !expectations.isEmpty {
            guard expectations.count == 1, expectations[0].lowercased() == "100-continue" else {
                throw .expectationFailed("only the 100-continue expectation is supported")
            }
            expectsContinue = framing != .none && framing != .length(0)
        }

        return RequestHead(
            method: method, target: String(decoding: targetBytes, as: UTF8.self), path: target.path,
            queryItems: target.queryItems, version: version, headers: headers, keepAlive: keepAlive,
            expectsContinue: expectsContinue, framing: framing)
    }

    private func decideFraming(_ headers: HTTPHeaders) throws(HTTPParseError) -> BodyFraming {
        let transferEncodings = headers.values(for: "Transfer-Encoding")
        let contentLengths = headers.values(for: "Content-Length")
        if !transferEncodings.isEmpty {
            guard version == .http11 else { throw .badRequest("Transfer-Encoding in an HTTP/1.0 request") }
            guard contentLengths.isEmpty else { throw .badRequest("both Content-Length and Transfer-Encoding") }
            let codings = transferEncodings.joined(separator: ",").split(
                separator: ",", omittingEmptySubsequences: false
            ).map { $0.trimmingWhitespace().lowercased() }
            guard codings.last == "chunked" else {
                throw .badRequest("Transfer-Encoding does not end in chunked")
            }
            for coding in codings.dropLast() {
                if coding == "chunked" || coding.isEmpty { throw .badRequest("invalid Transfer-Encoding list") }
            }
            guard codings.count == 1 else { throw .notImplemented("unsupported transfer coding") }
            return .chunked
        }
        guard !contentLengths.isEmpty else { return .none }
        var length: Int?
        for value in contentLengths {
            for member in value.split(separator: ",", omittingEmptySubsequences: false) {
                let digits = member.trimmingWhitespace()
                guard !digits.isEmpty, digits.utf8.count <= 18,
                    digits.utf8.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }),
                    let parsed = Int(digits)
                else { throw .badRequest("invalid Content-Length") }
                if let length, length != parsed { throw .badRequest("conflicting Content-Length values") }
                length = parsed
            }
        }
        guard let length else { throw .badRequest("invalid Content-Length") }
        guard length <= limits.maxBodyBytes else {
            throw .bodyTooLarge("body larger than \(limits.maxBodyBytes) bytes")
        }
        return length == 0 ? .none : .length(length)
    }
}

extension StringProtocol {
    /// The string without leading and trailing SP and HTAB (OWS).
    func trimmingWhitespace() -> String {
        let bytes = Array(utf8)
        guard let first = bytes.firstIndex(where: { !ByteClass.isWhitespace($0) }),
            let last = bytes.lastIndex(where: { !ByteClass.isWhitespace($0) })
        else { return "" }
        return String(decoding: bytes[first...last], as: UTF8.self)
    }
}
