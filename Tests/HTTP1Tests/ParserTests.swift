import HTTPVectors
import Testing

@testable import HTTP1

struct ParserTests {
    @Test("valid requests parse the same fed whole or one byte at a time", arguments: validVectors)
    func validRequest(_ vector: Vector) {
        let (outcome, differing) = parseAllSplits(vector.raw, limits: vector.limits)
        #expect(differing.isEmpty, "split sizes that differ from whole: \(differing)")
        #expect(outcome.error == nil)
        #expect(outcome.requests.count == vector.requests)
        if let last = outcome.requests.last {
            #expect(last.keepAlive == vector.keepAlive)
        }
    }

    @Test("checklist inputs are refused with their status, fed whole or one byte at a time", arguments: badVectors)
    func badRequest(_ vector: Vector) {
        let (outcome, differing) = parseAllSplits(vector.raw, limits: vector.limits)
        #expect(differing.isEmpty, "split sizes that differ from whole: \(differing)")
        #expect(outcome.error?.status == vector.status)
        #expect(outcome.requests.count == vector.requests)
    }

    @Test("checklist inputs pipelined after a valid request give that request, then the refusal", arguments: badVectors)
    func badRequestAfterAValidOne(_ vector: Vector) {
        let raw = "GET /first HTTP/1.1\r\nHost: h\r\n\r\n".bytes + vector.raw
        let (outcome, differing) = parseAllSplits(raw, limits: vector.limits)
        #expect(differing.isEmpty, "split sizes that differ from whole: \(differing)")
        #expect(outcome.error?.status == vector.status)
        #expect(outcome.requests.count == vector.requests + 1)
        #expect(outcome.requests.first?.path == "/first")
    }

    @Test func chunkedBodyIsDecodedAndTrailersDropped() {
        let raw = post("Transfer-Encoding: chunked\r\n", "5;a=b\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n")
        var parser = RequestParser()
        parser.append(raw.bytes)
        guard case .head(let head) = parser.next() else {
            Issue.record("no head event")
            return
        }
        #expect(head.framing == .chunked)
        guard case .request(let request, let body) = parser.next() else {
            Issue.record("no request")
            return
        }
        #expect(body == "hello world".bytes)
        #expect(request.headers["X-Trailer"] == nil)
        #expect(parser.phase == .idle)
    }

    @Test func absoluteFormAuthorityReplacesHost() {
        var parser = RequestParser()
        parser.append("GET http://a.example:81/x%2Fy?q=a+b&r=%C3%A9 HTTP/1.1\r\nHost: other\r\n\r\n".bytes)
        guard case .request(let head, _) = parser.next() else {
            Issue.record("no request")
            return
        }
        #expect(head.headers["host"] == "a.example:81")
        #expect(head.path == "/x/y")
        #expect(head.queryItems.map(\.name) == ["q", "r"])
        #expect(head.queryItems.map(\.value) == ["a b", "é"])
    }

    @Test func expectContinueIsReportedOnlyWithABody() {
        var parser = RequestParser()
        parser.append(post("Expect: 100-Continue\r\nContent-Length: 3\r\n", "").bytes)
        guard case .head(let head) = parser.next() else {
            Issue.record("no head event")
            return
        }
        #expect(head.expectsContinue)
        #expect(parser.phase == .body)
        parser.append("abc".bytes)
        guard case .request(_, let body) = parser.next() else {
            Issue.record("no request")
            return
        }
        #expect(body == "abc".bytes)
    }

    @Test func phaseFollowsTheRequest() {
        var parser = RequestParser()
        #expect(parser.phase == .idle)
        parser.append("GE".bytes)
        #expect(parser.next().isNeedMore)
        #expect(parser.phase == .head)
        parser.append("T / HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\n\r\n".bytes)
        _ = parser.next()
        #expect(parser.phase == .body)
        parser.append("ok".bytes)
        _ = parser.next()
        #expect(parser.phase == .idle)
    }

    @Test("every byte value in a field name is refused unless it is a tchar", arguments: 0...255)
    func fieldNameBytes(_ value: Int) {
        let byte = UInt8(value)
        guard byte != UInt8(ascii: ":") else { return }
        let raw = [UInt8]("GET / HTTP/1.1\r\nHost: h\r\nX".utf8) + [byte] + Array("Y: 1\r\n\r\n".utf8)
        let outcome = parse(raw)
        if ByteClass.isToken(byte) {
            #expect(outcome.error == nil)
            #expect(outcome.requests.count == 1)
        } else {
            #expect(outcome.error?.status == 400)
        }
    }

    @Test("every byte value in a field value is accepted only when it is field content", arguments: 0...255)
    func fieldValueBytes(_ value: Int) {
        let byte = UInt8(value)
        let raw = [UInt8]("GET / HTTP/1.1\r\nHost: h\r\nX: a".utf8) + [byte] + Array("b\r\n\r\n".utf8)
        let outcome = parse(raw)
        let allowed = byte == 0x09 || (byte >= 0x20 && byte != 0x7F)
        if allowed {
            #expect(outcome.error == nil)
        } else {
            #expect(outcome.error?.status == 400)
        }
    }

    @Test func validVectorsConcatenatedGiveEveryRequest() {
        let keepAliveVectors = validVectors.filter { $0.keepAlive && $0.requests > 0 && $0.row != 62 }
        let raw = keepAliveVectors.flatMap(\.raw)
        let whole = parse(raw)
        #expect(whole.error == nil)
        #expect(whole.requests.count == keepAliveVectors.map(\.requests).reduce(0, +))
        #expect(parse(raw, chunk: 1) == whole)
    }

    @Test func bufferStaysBoundedOverManyRequests() {
        var parser = RequestParser()
        for _ in 0..<10000 {
            parser.append("GET / HTTP/1.1\r\nHost: h\r\n\r\n".bytes)
            guard case .request = parser.next() else {
                Issue.record("no request")
                return
            }
        }
        #expect(parser.bufferedByteCount == 0)
    }
}

extension ParserEvent {
    var isNeedMore: Bool {
        if case .needMore = self { return true }
        return false
    }
}
