import Testing

@testable import HTTP1

struct RouterTests {
    func router() -> Router {
        var router = Router()
        router.add("GET", "/health") { _ in HTTPResponse(status: 200) }
        router.add("GET", "/v1/jobs") { _ in HTTPResponse(status: 200) }
        router.add("POST", "/v1/jobs") { _ in HTTPResponse(status: 202) }
        router.add("GET", "/v1/jobs/{id}") { _ in HTTPResponse(status: 200) }
        router.add("DELETE", "/v1/jobs/{id}") { _ in HTTPResponse(status: 204) }
        router.add("GET", "/v1/backups/{name}/files/{file}") { _ in HTTPResponse(status: 200) }
        return router
    }

    func matched(_ method: String, _ target: String) -> (pattern: String, parameters: [String: String])? {
        if case .matched(_, let pattern, let parameters) = router().resolve(method: method, target: target) {
            return (pattern, parameters)
        }
        return nil
    }

    @Test func listsRoutesInOrder() {
        #expect(router().routes.map(\.pattern).first == "/health")
        #expect(router().routes.count == 6)
    }

    @Test func matchesLiteralsAndParameters() {
        #expect(matched("GET", "/health")?.pattern == "/health")
        #expect(matched("GET", "/v1/jobs/42")?.parameters == ["id": "42"])
        #expect(matched("GET", "/v1/jobs/42?verbose=1")?.pattern == "/v1/jobs/{id}")
        #expect(
            matched("GET", "/v1/backups/nightly/files/0x1.dat")?.parameters == ["name": "nightly", "file": "0x1.dat"])
    }

    @Test func parametersArePercentDecodedPerSegment() {
        #expect(matched("GET", "/v1/jobs/a%2Fb")?.parameters == ["id": "a/b"])
        #expect(matched("GET", "/v1/jobs/caf%C3%A9")?.parameters == ["id": "café"])
    }

    @Test func unknownPathsAreNotFound() {
        for target in ["/", "/healthz", "/health/", "/v1/jobs/", "/v1/jobs/1/x", "/v1/jobs//"] {
            guard case .notFound = router().resolve(method: "GET", target: target) else {
                Issue.record("\(target) should be 404")
                continue
            }
        }
    }

    @Test func wrongMethodGivesAllowWithHeadForGet() {
        guard case .methodNotAllowed(let allow) = router().resolve(method: "PUT", target: "/v1/jobs/7") else {
            Issue.record("expected 405")
            return
        }
        #expect(allow == ["GET", "HEAD", "DELETE"])
        guard case .methodNotAllowed(let postOnly) = router().resolve(method: "DELETE", target: "/health") else {
            Issue.record("expected 405")
            return
        }
        #expect(postOnly == ["GET", "HEAD"])
    }

    @Test func headFallsBackToGet() {
        #expect(matched("HEAD", "/v1/jobs/9")?.pattern == "/v1/jobs/{id}")
    }

    @Test func addingTheSameRouteReplacesIt() {
        var router = router()
        router.add("GET", "/health") { _ in HTTPResponse(status: 503) }
        #expect(router.routes.count == 6)
    }

    @Test func queryItemsAreDecoded() {
        let request = HTTPRequest(target: "/v1/jobs?state=running&name=a+b%26c&empty=&flag&x=%E2%9C%93")
        #expect(request.path == "/v1/jobs")
        #expect(request.query("state") == "running")
        #expect(request.query("name") == "a b&c")
        #expect(request.query("empty") == "")
        #expect(request.query("flag") == "")
        #expect(request.query("x") == "✓")
        #expect(request.query("missing") == nil)
    }

    @Test func pathIsDecodedButPlusIsKept() {
        #expect(HTTPRequest(target: "/a%20b+c").path == "/a b+c")
    }
}

struct SerializerTests {
    @Test func serverOwnsFramingHeadersAndStripsInjection() {
        var headers = HTTPHeaders()
        headers.add(name: "Content-Length", value: "999")
        headers.add(name: "X-Evil", value: "a\r\nSet-Cookie: x")
        headers.add(name: "Bad Name", value: "v")
        let bytes = ResponseSerializer.serialize(
            HTTPResponse(status: 200, headers: headers, body: Array("hi".utf8)),
            date: "Sun, 06 Nov 1994 08:49:37 GMT", framing: .init(close: true))
        let text = String(decoding: bytes, as: UTF8.self)
        #expect(
            text == "HTTP/1.1 200 OK\r\nX-Evil: a  Set-Cookie: x\r\nDate: Sun, 06 Nov 1994 08:49:37 GMT\r\n"
                + "Content-Length: 2\r\nConnection: close\r\n\r\nhi")
    }

    @Test func headKeepsContentLengthWithoutBody() {
        let bytes = ResponseSerializer.serialize(
            HTTPResponse(status: 200, body: Array("hello".utf8)), date: "D", framing: .init(isHead: true))
        #expect(String(decoding: bytes, as: UTF8.self) == "HTTP/1.1 200 OK\r\nDate: D\r\nContent-Length: 5\r\n\r\n")
    }

    @Test func noContentHasNoContentLength() {
        let bytes = ResponseSerializer.serialize(
            HTTPResponse(status: 204, body: Array("x".utf8)), date: "D", framing: .init())
        #expect(String(decoding: bytes, as: UTF8.self) == "HTTP/1.1 204 No Content\r\nDate: D\r\n\r\n")
    }

    @Test func imfFixdate() {
        #expect(HTTPDate.format(epochSeconds: 784_111_777) == "Sun, 06 Nov 1994 08:49:37 GMT")
        #expect(HTTPDate.format(epochSeconds: 0) == "Thu, 01 Jan 1970 00:00:00 GMT")
        #expect(HTTPDate.format(epochSeconds: 951_825_600) == "Tue, 29 Feb 2000 12:00:00 GMT")
        #expect(HTTPDate.format(epochSeconds: 1_795_305_600) == "Sun, 22 Nov 2026 00:00:00 GMT")
    }

    @Test func headersAreCaseInsensitiveAndOrdered() {
        var headers: HTTPHeaders = ["A": "1", "b": "2"]
        headers.add(name: "a", value: "3")
        #expect(headers["a"] == "1")
        #expect(headers.values(for: "A") == ["1", "3"])
        headers.replaceOrAdd(name: "A", value: "9")
        #expect(headers.values(for: "a") == ["9"])
        #expect(headers.map(\.name) == ["A", "b"])
    }
}
