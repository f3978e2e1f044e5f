import HTTP1
import Testing

@testable import HTTPCore

/// The connection's policy without sockets: events in, actions out, the clock in the test's hands.
struct ConnectionStateMachineTests {
    static let second: UInt64 = 1_000_000_000
    static let start: UInt64 = 1_000 * second

    /// What the machine asked to write, reduced to what the tests look at.
    struct Written: Equatable {
        var status: Int
        var close: Bool
        var keepAliveHeader = false
        var isHead = false
        var code: String?
        var allow: String?
    }

    /// A shell in memory: performs the actions the way `Connection` does and records them.
    struct Shell {
        var machine: ConnectionStateMachine
        var now = ConnectionStateMachineTests.start
        /// The socket takes every byte at once; false: it takes nothing (a client that does not read).
        var socketTakesAll = true
        var continues = 0
        var written: [Written] = []
        var exchanges: [ConnectionStateMachine.Exchange] = []
        var started: [HTTPRequest] = []
        var halfClosed = false
        var closed: (cancellingHandler: Bool, at: UInt64)?
        var waiting: (interest: ConnectionStateMachine.Interest, deadline: UInt64?)?

        init(maxRequests: Int = 1000) {
            var router = Router()
            router.add("GET", "/") { _ in HTTPResponse(status: 200) }
            router.add("GET", "/items/{id}") { _ in HTTPResponse(status: 200) }
            router.add("POST", "/upload") { _ in HTTPResponse(status: 201) }
            let configuration = ConnectionStateMachine.Configuration(
                headTimeout: 10 * second, bodyTimeout: 5 * second, idleTimeout: 60 * second,
                writeTimeout: 30 * second, lingerTimeout: 2 * second, lingerByteLimit: 100,
                maxRequestsPerConnection: maxRequests, parserLimits: ParserLimits())
            machine = ConnectionStateMachine(
                configuration: configuration, router: router, remoteAddress: "127.0.0.1:5000",
                errorResponse: { status, code, _ in HTTPResponse(status: status, headers: ["X-Code": code]) },
                now: ConnectionStateMachineTests.start)
            settle()
        }

        /// Performs actions until the machine waits or closes.
        mutating func settle() {
            while closed == nil {
                switch machine.nextAction(now: now) {
                case .write(.continueResponse):
                    continues += 1
                    wrote()
                case .write(.response(let response, let framing, let exchange)):
                    written.append(
                        Written(
                            status: response.status, close: framing.close, keepAliveHeader: framing.keepAliveHeader,
                            isHead: framing.isHead, code: response.headers["X-Code"], allow: response.headers["Allow"]))
                    exchanges.append(exchange)
                    wrote()
                case .startHandler(let request, _):
                    started.append(request)
                case .halfClose:
                    halfClosed = true
                case .close(let cancellingHandler):
                    closed = (cancellingHandler, now)
                case .wait(let interest, let deadline):
                    waiting = (interest, deadline)
                    return
                }
            }
        }

        private mutating func wrote() {
            if socketTakesAll { machine.wrote(now: now, finished: true) }
        }

        mutating func send(_ text: String) {
            machine.received(Array(text.utf8), now: now)
            settle()
        }

        mutating func finish(_ status: Int = 200) {
            machine.handlerFinished(HTTPResponse(status: status), now: now)
            settle()
        }

        /// Moves the clock and fires the timer.
        mutating func advance(_ nanoseconds: UInt64) {
            now += nanoseconds
            machine.timerFired(now: now)
            settle()
        }

        var isReading: Bool { waiting?.interest.contains(.read) == true && closed == nil }
    }

    static let get = "GET / HTTP/1.1\r\nHost: h\r\n\r\n"

    // MARK: Keep-alive and pipelining

    @Test func aFreshConnectionReadsWithTheHeadDeadlineFromAccept() {
        let shell = Shell()
        #expect(shell.waiting?.interest == .read)
        #expect(shell.waiting?.deadline == Self.start + 10 * Self.second)
    }

    @Test func keepAliveServesRequestAfterRequest() {
        var shell = Shell()
        for round in 1...3 {
            shell.send(Self.get)
            #expect(shell.started.count == round)
            #expect(shell.waiting?.interest == [], "reading stops while the handler runs")
            #expect(shell.waiting?.deadline == nil)
            shell.now += Self.second
            shell.finish()
            #expect(shell.written.count == round)
            #expect(shell.written.last?.close == false)
            #expect(shell.waiting?.interest == .read)
            #expect(shell.waiting?.deadline == shell.now + 60 * Self.second, "idle deadline from the response")
        }
        #expect(shell.closed == nil)
        #expect(shell.machine.requestsServed == 3)
    }

    @Test func theRequestCarriesRouteAndPeer() throws {
        var shell = Shell()
        shell.send("GET /items/42?x=1 HTTP/1.1\r\nHost: h\r\n\r\n")
        let request = try #require(shell.started.first)
        #expect(request.pathParameters == ["id": "42"])
        #expect(request.routePattern == "/items/{id}")
        #expect(request.remoteAddress == "127.0.0.1:5000")
        #expect(request.query("x") == "1")
        shell.now += 3 * Self.second
        shell.finish()
        #expect(shell.exchanges.first?.routePattern == "/items/{id}")
        #expect(shell.exchanges.first?.method == "GET")
        #expect(shell.exchanges.first.map { shell.now - $0.started } == 3 * Self.second)
    }

    @Test func pipelinedRequestsAreServedOneAtATimeInOrder() {
        var shell = Shell()
        shell.send(
            "GET /items/1 HTTP/1.1\r\nHost: h\r\n\r\nGET /items/2 HTTP/1.1\r\nHost: h\r\n\r\nGET /items/3 HTTP/1.1\r\nHost: h\r\n\r\n"
        )
        #expect(shell.started.map(\.path) == ["/items/1"])
        #expect(shell.waiting?.interest == [])
        shell.finish()
        #expect(shell.started.map(\.path) == ["/items/1", "/items/2"])
        shell.finish()
        shell.finish()
        #expect(shell.started.map(\.path) == ["/items/1", "/items/2", "/items/3"])
        #expect(shell.written.map(\.status) == [200, 200, 200])
        #expect(shell.isReading)
    }

    @Test func theLastRequestAllowedOnAConnectionIsAnsweredWithCloseAndLaterOnesAreNotServed() {
        var shell = Shell(maxRequests: 2)
        shell.send(Self.get + Self.get + Self.get)
        shell.finish()
        #expect(shell.written.last?.close == false)
        shell.finish()
        #expect(shell.written.last?.close == true)
        #expect(shell.started.count == 2)
        #expect(shell.halfClosed)
        #expect(shell.waiting?.interest == .read, "lingering: draining the peer")
        #expect(shell.waiting?.deadline == shell.now + 2 * Self.second)
    }

    @Test func connectionCloseIsHonouredAndLaterBytesAreNotParsed() {
        var shell = Shell()
        shell.send("GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
        shell.finish()
        #expect(shell.written == [Written(status: 200, close: true)])
        #expect(shell.halfClosed)
        shell.send(Self.get)
        #expect(shell.started.count == 1)
        #expect(shell.closed == nil)
        shell.machine.peerClosed()
        shell.settle()
        #expect(shell.closed?.cancellingHandler == false)
    }

    @Test func lingeringEndsAtItsDeadlineOrByteLimit() {
        var timed = Shell()
        timed.send("GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
        timed.finish()
        timed.advance(2 * Self.second - 1)
        #expect(timed.closed == nil)
        timed.advance(1)
        #expect(timed.closed != nil)

        var flooded = Shell()
        flooded.send("GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
        flooded.finish()
        flooded.send(String(repeating: "x", count: 100))
        #expect(flooded.closed == nil)
        flooded.send("x")
        #expect(flooded.closed != nil)
    }

    @Test func http10ClosesUnlessItAsksForKeepAlive() {
        var plain = Shell()
        plain.send("GET / HTTP/1.0\r\n\r\n")
        plain.finish()
        #expect(plain.written == [Written(status: 200, close: true)])
        #expect(plain.halfClosed)

        var kept = Shell()
        kept.send("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        kept.finish()
        #expect(kept.written == [Written(status: 200, close: false, keepAliveHeader: true)])
        #expect(!kept.halfClosed)
        #expect(kept.isReading)
    }

    @Test func headIsFramedAsHead() {
        var shell = Shell()
        shell.send("HEAD / HTTP/1.1\r\nHost: h\r\n\r\n")
        #expect(shell.started.first?.method == "HEAD")
        shell.finish()
        #expect(shell.written == [Written(status: 200, close: false, isHead: true)])
    }

    // MARK: Timeouts

    @Test func aConnectionThatSendsNothingClosesQuietlyAtTheHeadDeadline() {
        var shell = Shell()
        shell.advance(10 * Self.second - 1)
        #expect(shell.closed == nil)
        shell.advance(1)
        #expect(shell.closed?.cancellingHandler == false)
        #expect(shell.written.isEmpty)
    }

    @Test func theHeadDeadlineIsAbsoluteSoDripFeedingDoesNotExtendIt() {
        var shell = Shell()
        shell.now += Self.second
        shell.send("G")
        for byte in "ET / HTTP/1.1\r\nHost: h\r\n" {
            shell.now += Self.second / 2
            shell.send(String(byte))
            if shell.now - Self.start >= 9 * Self.second { break }
        }
        // The first request's head is due 10 s after accept, however its bytes trickle in.
        #expect(shell.waiting?.deadline == Self.start + 10 * Self.second)
        #expect(shell.written.isEmpty)
        shell.advance(Self.start + 10 * Self.second - shell.now)
        #expect(shell.written == [Written(status: 408, close: true, code: "REQUEST_TIMEOUT")])
        #expect(shell.halfClosed)
        #expect(shell.started.isEmpty)
    }

    @Test func theNextHeadDeadlineCountsFromItsFirstByteNotFromTheLastResponse() {
        var shell = Shell()
        shell.send(Self.get)
        shell.finish()
        shell.now += 30 * Self.second
        shell.send("GET / HT")
        #expect(shell.waiting?.deadline == shell.now + 10 * Self.second)
        shell.advance(10 * Self.second - 1)
        #expect(shell.written.count == 1)
        shell.advance(1)
        #expect(shell.written.last == Written(status: 408, close: true, code: "REQUEST_TIMEOUT"))
    }

    @Test func anIdleKeptAliveConnectionClosesQuietlyAtTheIdleDeadline() {
        var shell = Shell()
        shell.send(Self.get)
        shell.finish()
        shell.advance(10 * Self.second)
        #expect(shell.closed == nil, "the head timeout does not apply between requests")
        shell.advance(50 * Self.second - 1)
        #expect(shell.closed == nil)
        shell.advance(1)
        #expect(shell.closed != nil)
        #expect(shell.written.count == 1, "no response to an idle close")
    }

    @Test func aStalledBodyGets408AndEachReadExtendsItsDeadline() {
        var shell = Shell()
        shell.send("POST /upload HTTP/1.1\r\nHost: h\r\nContent-Length: 10\r\n\r\nabc")
        #expect(shell.waiting?.deadline == shell.now + 5 * Self.second)
        shell.advance(4 * Self.second)
        shell.send("de")
        #expect(shell.waiting?.deadline == shell.now + 5 * Self.second)
        shell.advance(5 * Self.second - 1)
        #expect(shell.written.isEmpty)
        shell.advance(1)
        #expect(shell.written == [Written(status: 408, close: true, code: "REQUEST_TIMEOUT")])
        #expect(shell.started.isEmpty, "an incomplete body never reaches the handler")
    }

    @Test func aHandlerMayTakeLongerThanEveryReadTimeout() {
        var shell = Shell()
        shell.send(Self.get)
        shell.advance(120 * Self.second)
        #expect(shell.closed == nil)
        shell.finish()
        #expect(shell.written == [Written(status: 200, close: false)])
    }

    @Test func aClientThatDoesNotReadIsClosedAtTheWriteTimeoutAndProgressExtendsIt() {
        var shell = Shell()
        shell.socketTakesAll = false
        shell.send(Self.get)
        shell.finish()
        #expect(shell.waiting?.interest == .write)
        #expect(shell.waiting?.deadline == shell.now + 30 * Self.second)
        shell.now += 20 * Self.second
        shell.machine.wrote(now: shell.now, finished: false)
        shell.settle()
        #expect(shell.waiting?.deadline == shell.now + 30 * Self.second)
        shell.advance(30 * Self.second - 1)
        #expect(shell.closed == nil)
        shell.advance(1)
        #expect(shell.closed?.cancellingHandler == false)
    }

    @Test func aResponseWrittenLaterLetsTheConnectionReadAgain() {
        var shell = Shell()
        shell.socketTakesAll = false
        shell.send(Self.get + Self.get)
        shell.finish()
        #expect(shell.started.count == 1, "no second request while the first response is pending")
        shell.machine.wrote(now: shell.now, finished: true)
        shell.settle()
        #expect(shell.started.count == 2)
    }

    // MARK: The client goes away

    @Test func aResetWhileTheHandlerRunsCancelsItAndCloses() {
        var shell = Shell()
        shell.send(Self.get)
        shell.machine.socketFailed()
        shell.settle()
        #expect(shell.closed?.cancellingHandler == true)
        shell.finish()
        #expect(shell.written.isEmpty, "a late response is dropped")
    }

    @Test func aHangUpWhileReadingIsLeftToTheNextRead() {
        var shell = Shell()
        shell.machine.socketFailed()
        shell.settle()
        #expect(shell.closed == nil)
        shell.machine.peerFailed()
        shell.settle()
        #expect(shell.closed?.cancellingHandler == false)
    }

    @Test func eofInTheMiddleOfARequestClosesWithoutAResponse() {
        var shell = Shell()
        shell.send("POST /upload HTTP/1.1\r\nHost: h\r\nContent-Length: 10\r\n\r\nabc")
        shell.machine.peerClosed()
        shell.settle()
        #expect(shell.closed != nil)
        #expect(shell.written.isEmpty)
        #expect(shell.started.isEmpty)
    }

    // MARK: Errors

    @Test func aBadRequestIsAnswered400ThenClosed() {
        var shell = Shell()
        shell.send("GET / HTTP/1.1\r\n\r\n")  // no Host
        #expect(shell.written == [Written(status: 400, close: true, code: "BAD_REQUEST")])
        #expect(shell.halfClosed)
        #expect(shell.started.isEmpty)
    }

    @Test func aBadRequestAfterAGoodOneIsAnsweredAfterIt() {
        var shell = Shell()
        shell.send(Self.get + "GET / HTTP/1.1\r\n\r\n")
        #expect(shell.written.isEmpty)
        shell.finish()
        #expect(shell.written.map(\.status) == [200, 400])
        #expect(shell.written.map(\.close) == [false, true])
    }

    @Test func unknownPathIs404AndWrongMethodIs405WithAllowBothKeepingTheConnection() {
        var shell = Shell()
        shell.send("GET /nowhere HTTP/1.1\r\nHost: h\r\n\r\n")
        shell.send("DELETE /upload HTTP/1.1\r\nHost: h\r\n\r\n")
        #expect(
            shell.written == [
                Written(status: 404, close: false, code: "NOT_FOUND"),
                Written(status: 405, close: false, code: "METHOD_NOT_ALLOWED", allow: "POST"),
            ])
        #expect(shell.exchanges.map(\.routePattern) == [nil, nil])
        #expect(shell.started.isEmpty)
        #expect(shell.isReading)
    }

    // MARK: Expect: 100-continue

    @Test func expectContinueInvitesTheBodyOnAKnownRoute() {
        var shell = Shell()
        shell.send("POST /upload HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\n")
        #expect(shell.continues == 1)
        #expect(shell.started.isEmpty)
        shell.send("abc")
        #expect(shell.started.first?.body == Array("abc".utf8))
    }

    @Test func expectContinueIsNotSentWhenTheBodyIsAlreadyThere() {
        var shell = Shell()
        shell.send("POST /upload HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\nabc")
        #expect(shell.continues == 0)
        #expect(shell.started.count == 1)
    }

    @Test func expectContinueOnAnUnknownRouteIsRefusedAndTheBodyNeverRead() {
        var shell = Shell()
        shell.send("POST /nowhere HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\n")
        #expect(shell.continues == 0)
        #expect(shell.written == [Written(status: 404, close: true, code: "NOT_FOUND")])
        #expect(shell.halfClosed)
    }

    // MARK: Draining

    @Test func drainingClosesAnIdleConnectionAtOnce() {
        var shell = Shell()
        shell.send(Self.get)
        shell.finish()
        shell.machine.drain()
        shell.settle()
        #expect(shell.closed?.cancellingHandler == false)
    }

    @Test func drainingLetsTheRunningRequestFinishWithClose() {
        var shell = Shell()
        shell.send(Self.get + Self.get)
        shell.machine.drain()
        shell.settle()
        #expect(shell.closed == nil)
        shell.finish()
        #expect(shell.written == [Written(status: 200, close: true)])
        #expect(shell.started.count == 1, "the pipelined request is not served")
        #expect(shell.halfClosed)
    }

    @Test func drainingLetsAHalfReceivedRequestArriveAndBeAnsweredWithClose() {
        var shell = Shell()
        shell.send("GET / HTTP/1.1\r\n")
        shell.machine.drain()
        shell.settle()
        #expect(shell.closed == nil)
        shell.send("Host: h\r\n\r\n")
        shell.finish()
        #expect(shell.written == [Written(status: 200, close: true)])
    }
}
