import Glibc
import HTTP1
import HTTPVectors
import TestSupport
import Testing

@testable import HTTPCore

extension Vector {
    /// The server configuration equivalent to this vector's parser limits.
    func apply(to configuration: inout HTTPServerConfiguration) {
        configuration.maxHeaderBytes = limits.maxHeaderBytes
        configuration.maxBodyBytes = limits.maxBodyBytes
        configuration.maxRequestLineLength = limits.maxRequestLineLength
        configuration.maxHeaderCount = limits.maxHeaderCount
    }
}

struct ServerTests {
    @Test("checklist inputs get their status with Connection: close, then the server closes", arguments: badVectors)
    func badRequestOverTheWire(_ vector: Vector) async throws {
        try await withClient(configure: vector.apply) { client in
            client.send(vector.raw)
            for _ in 0..<vector.requests {
                let first = try #require(client.readResponse())
                #expect(first.status == 200)
            }
            let response = try #require(client.readResponse(), "no response for \(vector.label)")
            #expect(response.status == vector.status)
            #expect(response.closes)
            #expect(response.header("Date") != nil)
            #expect(response.header("Content-Length") != nil)
            #expect(client.waitForClose())
        }
    }

    @Test("valid inputs are answered, keeping or closing the connection as asked", arguments: validVectors)
    func validRequestOverTheWire(_ vector: Vector) async throws {
        guard vector.requests > 0 else { return }
        try await withClient(configure: vector.apply) { client in
            client.send(vector.raw)
            for index in 0..<vector.requests {
                let isHead = vector.raw.starts(with: Array("HEAD".utf8))
                let response = try #require(client.readResponse(isHead: isHead), "no response for \(vector.label)")
                // No 100 Continue here: the body came with the head (row 54) or the request is 1.0 (row 57).
                #expect(response.status == 200)
                if index == vector.requests - 1 {
                    #expect(response.closes == !vector.keepAlive)
                }
            }
            if vector.keepAlive {
                #expect(client.readAvailable(timeout: 0.2).isEmpty)
                #expect(!client.sawEOF)
            } else {
                #expect(client.waitForClose())
            }
        }
    }

    @Test func keepAliveServesManyRequestsOnOneConnection() async throws {
        try await withClient { client in
            for index in 0..<50 {
                client.send("GET /v1/jobs/\(index) HTTP/1.1\r\nHost: h\r\n\r\n")
                let response = try #require(client.readResponse())
                #expect(response.status == 200)
                #expect(response.body == Array("job \(index)".utf8))
                #expect(!response.closes)
            }
        }
    }

    @Test func pipelinedRequestsAreAnsweredInOrder() async throws {
        try await withClient { client in
            var raw = ""
            for path in ["/slow?ms=200", "/a", "/nope", "/b", "/slow?ms=50", "/x"] {
                raw += "GET \(path) HTTP/1.1\r\nHost: h\r\n\r\n"
            }
            client.send(raw)
            var bodies: [String] = []
            for _ in 0..<6 {
                let response = try #require(client.readResponse())
                bodies.append(response.status == 404 ? "404" : String(decoding: response.body, as: UTF8.self))
            }
            #expect(bodies == ["slow", "a", "404", "b", "slow", "xxxx"])
        }
    }

    @Test func headHasTheHeadersOfGetAndNoBody() async throws {
        try await withClient { client in
            client.send("HEAD /x HTTP/1.1\r\nHost: h\r\n\r\nGET /x HTTP/1.1\r\nHost: h\r\n\r\n")
            let head = try #require(client.readResponse(isHead: true))
            #expect(head.status == 200)
            #expect(head.header("Content-Length") == "4")
            #expect(head.header("X-Kind") == "x")
            #expect(head.body.isEmpty)
            let get = try #require(client.readResponse())
            #expect(get.status == 200)
            #expect(get.body == Array("xxxx".utf8))
        }
    }

    @Test func unknownPathIs404AndWrongMethodIs405WithAllow() async throws {
        let log = ResponseLog()
        try await withClient(hooks: log.hooks) { client in
            client.send("GET /nothing HTTP/1.1\r\nHost: h\r\n\r\n")
            let missing = try #require(client.readResponse())
            #expect(missing.status == 404)
            #expect(!missing.closes)
            client.send("DELETE /health HTTP/1.1\r\nHost: h\r\n\r\n")
            let wrong = try #require(client.readResponse())
            #expect(wrong.status == 405)
            #expect(wrong.header("Allow") == "GET, HEAD")
            #expect(!wrong.closes)
            for method in ["TRACE", "CONNECT", "QUERY"] {
                client.send("\(method) /health HTTP/1.1\r\nHost: h\r\n\r\n")
                let known = try #require(client.readResponse())
                #expect(known.status == 405)
                #expect(known.header("Allow") == "GET, HEAD")
                #expect(!known.closes)
            }
            client.send("GET /health HTTP/1.1\r\nHost: h\r\n\r\n")
            #expect(try #require(client.readResponse()).status == 200)
        }
        #expect(log.statuses == [404, 405, 405, 405, 405, 200])
        #expect(log.entries.withLock { $0.map(\.pattern) } == [nil, nil, nil, nil, nil, "/health"])
    }

    @Test func errorResponsesGoThroughTheHook() async throws {
        var hooks = HTTPServerHooks()
        hooks.errorResponse = { status, code, _ in
            HTTPResponse(status: status, headers: ["Content-Type": "application/json"], body: Array(code.utf8))
        }
        try await withClient(hooks: hooks) { client in
            client.send("GET /nothing HTTP/1.1\r\nHost: h\r\n\r\n")
            let missing = try #require(client.readResponse())
            #expect(String(decoding: missing.body, as: UTF8.self) == "NOT_FOUND")
            #expect(missing.header("Content-Type") == "application/json")
            client.send("POST /echo HTTP/1.1\r\nHost: h\r\nContent-Length: 99999999\r\n\r\n")
            let tooLarge = try #require(client.readResponse())
            #expect(tooLarge.status == 413)
            #expect(String(decoding: tooLarge.body, as: UTF8.self) == "BODY_TOO_LARGE")
        }
    }

    @Test func expectContinueIsAnsweredBeforeTheBody() async throws {
        try await withClient { client in
            client.send("POST /echo HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n")
            let interim = try #require(client.readResponse())
            #expect(interim.status == 100)
            client.send("hello")
            let final = try #require(client.readResponse())
            #expect(final.status == 200)
            #expect(final.body == Array("hello".utf8))
            // A body above the cap is refused at once, without 100.
            client.send("POST /echo HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 9999999\r\n\r\n")
            let refused = try #require(client.readResponse())
            #expect(refused.status == 413)
            #expect(client.waitForClose())
        }
    }

    @Test func expectContinueOnAnUnknownRouteIsRefusedWithoutReadingTheBody() async throws {
        try await withClient { client in
            client.send("POST /nothing HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n")
            let response = try #require(client.readResponse())
            #expect(response.status == 404)
            #expect(response.closes)
            #expect(client.waitForClose())
        }
    }

    @Test func connectionCloseIsHonouredAndLaterBytesIgnored() async throws {
        let log = ResponseLog()
        try await withClient(hooks: log.hooks) { client in
            client.send("GET /a HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\nGET /b HTTP/1.1\r\nHost: h\r\n\r\n")
            let response = try #require(client.readResponse())
            #expect(response.body == Array("a".utf8))
            #expect(response.closes)
            #expect(client.waitForClose())
            #expect(client.readResponse(timeout: 0.1) == nil)
        }
        #expect(log.statuses == [200])
    }

    @Test func requestCapPerConnectionClosesTheLastResponse() async throws {
        try await withClient(configure: { $0.maxRequestsPerConnection = 3 }) { client in
            for index in 1...3 {
                client.send("GET /a HTTP/1.1\r\nHost: h\r\n\r\n")
                let response = try #require(client.readResponse())
                #expect(response.closes == (index == 3))
            }
            #expect(client.waitForClose())
        }
    }

    @Test func halfCloseAfterARequestStillGetsTheResponse() async throws {
        try await withClient { client in
            client.send("GET /slow?ms=100 HTTP/1.1\r\nHost: h\r\n\r\n")
            client.shutdownWrite()
            let response = try #require(client.readResponse())
            #expect(response.status == 200)
            #expect(client.waitForClose())
        }
    }

    @Test func onlyEmptyLinesThenEOFClosesQuietly() async throws {
        try await withClient { client in
            client.send("\r\n\r\n")
            client.shutdownWrite()
            #expect(client.waitForClose())
            #expect(client.readAvailable(timeout: 0.1).isEmpty)
        }
    }

    @Test func everyResponseCarriesDateAndContentLength() async throws {
        try await withClient { client in
            for path in ["/a", "/nothing"] {
                client.send("GET \(path) HTTP/1.1\r\nHost: h\r\n\r\n")
                let response = try #require(client.readResponse())
                let date = try #require(response.header("Date"))
                #expect(date.hasSuffix(" GMT"))
                #expect(date.utf8.count == 29)
                #expect(response.header("Content-Length") != nil)
            }
        }
    }

    @Test func largeResponsesAreWrittenWholeThenTheConnectionIsReused() async throws {
        try await withClient { client in
            client.send("GET /big HTTP/1.1\r\nHost: h\r\n\r\nGET /a HTTP/1.1\r\nHost: h\r\n\r\n")
            let big = try #require(client.readResponse(timeout: 30))
            #expect(big.body.count == 8 << 20)
            #expect(big.body.allSatisfy { $0 == 0x61 })
            #expect(try #require(client.readResponse()).body == Array("a".utf8))
        }
    }

    @Test func http10KeepAliveIsHonoured() async throws {
        try await withClient { client in
            client.send("GET /a HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
            let response = try #require(client.readResponse())
            #expect(response.header("Connection")?.lowercased() == "keep-alive")
            client.send("GET /a HTTP/1.0\r\n\r\n")
            let last = try #require(client.readResponse())
            #expect(last.closes)
            #expect(client.waitForClose())
        }
    }
}
