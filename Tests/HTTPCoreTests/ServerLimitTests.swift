import Glibc
import HTTP1
import Synchronization
import TestSupport
import Testing

@testable import HTTPCore

/// Timeouts, the connection cap, shutdown and resources. Timeouts are short; margins are generous.
struct ServerLimitTests {
    @Test func headTimeoutAnswers408AndCloses() async throws {
        try await withClient(configure: { $0.headTimeout = .milliseconds(300) }) { client in
            client.send("GET / HTTP/1.1\r\nHost: h\r\n")
            let response = try #require(client.readResponse())
            #expect(response.status == 408)
            #expect(response.closes)
            #expect(client.waitForClose())
        }
    }

    @Test func slowlorisIsCutOffAtTheAbsoluteHeadDeadline() async throws {
        try await withClient(configure: { $0.headTimeout = .milliseconds(800) }) { client in
            let drip = Array("GET / HTTP/1.1\r\nHost: h\r\nX-Drip: ".utf8) + [UInt8](repeating: 0x61, count: 400)
            var sent = 0
            // One byte every 50 ms: each byte arrives well within any inactivity timer, but the whole
            // head would take 20 s; the absolute deadline must cut it.
            while sent < drip.count && client.readAvailable(timeout: 0.05).isEmpty && !client.sawEOF {
                guard client.send([drip[sent]]) else { break }
                sent += 1
            }
            #expect(sent < drip.count, "the drip was never cut off")
            #expect(client.waitForClose())
        }
    }

    @Test func idleKeepAliveConnectionIsClosedQuietly() async throws {
        try await withClient(configure: { $0.idleTimeout = .milliseconds(300) }) { (client) throws in
            client.send("GET /a HTTP/1.1\r\nHost: h\r\n\r\n")
            #expect(try #require(client.readResponse()).status == 200)
            #expect(client.waitForClose())
            #expect(client.readAvailable(timeout: 0.05).isEmpty)
        }
    }

    @Test func connectionThatSendsNothingIsClosedAtTheHeadDeadline() async throws {
        try await withClient(configure: { $0.headTimeout = .milliseconds(300) }) { client in
            #expect(client.waitForClose())
        }
    }

    @Test func stalledBodyGets408() async throws {
        try await withClient(configure: { $0.bodyTimeout = .milliseconds(300) }) { client in
            client.send("POST /echo HTTP/1.1\r\nHost: h\r\nContent-Length: 100\r\n\r\n0123456789")
            let response = try #require(client.readResponse())
            #expect(response.status == 408)
            #expect(client.waitForClose())
        }
    }

    @Test func truncatedBodyThenCloseNeverReachesTheHandler() async throws {
        let calls = Atomic<Int>(0)
        var router = testRouter()
        router.add("POST", "/count") { _ in
            calls.add(1, ordering: .relaxed)
            return HTTPResponse(status: 200)
        }
        try await withServer(router: router) { server in
            let port = server.port
            try await blocking {
                let client = try RawClient(port: port)
                client.send("POST /count HTTP/1.1\r\nHost: h\r\nContent-Length: 100\r\n\r\n0123456789")
                client.shutdownWrite()
                #expect(client.waitForClose())
                #expect(client.readAvailable(timeout: 0.05).isEmpty)
            }
            try await waitUntil { server.openConnections == 0 }
        }
        #expect(calls.load(ordering: .relaxed) == 0)
    }

    @Test func slowHandlerDoesNotBlockOtherConnections() async throws {
        try await withServer { server in
            let port = server.port
            try await blocking {
                let slow = try RawClient(port: port)
                slow.send("GET /slow?ms=6000 HTTP/1.1\r\nHost: h\r\n\r\n")
                let fast = try RawClient(port: port)
                fast.send("GET /a HTTP/1.1\r\nHost: h\r\n\r\n")
                #expect(try #require(fast.readResponse()).status == 200)
                #expect(slow.readResponse(timeout: 0.01) == nil, "the slow response came first")
                #expect(try #require(slow.readResponse()).status == 200)
            }
        }
    }

    @Test func connectionCapLeavesExtraConnectionsInTheBacklog() async throws {
        try await withServer(configure: { $0.maxConnections = 2 }) { server in
            let port = server.port
            try await blocking {
                let first = try RawClient(port: port)
                let second = try RawClient(port: port)
                for client in [first, second] {
                    client.send("GET /a HTTP/1.1\r\nHost: h\r\n\r\n")
                    #expect(try #require(client.readResponse()).status == 200)
                }
                let third = try RawClient(port: port)
                third.send("GET /b HTTP/1.1\r\nHost: h\r\n\r\n")
                #expect(third.readResponse(timeout: 0.5) == nil, "served past the cap")
                // The existing connections keep being served.
                second.send("GET /a HTTP/1.1\r\nHost: h\r\n\r\n")
                #expect(try #require(second.readResponse()).status == 200)
                first.send("GET /a HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
                #expect(try #require(first.readResponse()).status == 200)
                let late = try #require(third.readResponse(), "the waiting connection was never served")
                #expect(late.body == Array("b".utf8))
            }
        }
    }

    @Test func slowReaderIsClosedAtTheWriteTimeout() async throws {
        try await withServer(configure: { $0.writeTimeout = .milliseconds(300) }) { server in
            let port = server.port
            let client = try RawClient(port: port)
            var size: Int32 = 4096
            _ = setsockopt(client.fd, SOL_SOCKET, SO_RCVBUF, &size, socklen_t(MemoryLayout<Int32>.size))
            client.send("GET /big HTTP/1.1\r\nHost: h\r\n\r\n")
            try await waitUntil { server.acceptedConnections == 1 && server.openConnections == 0 }
            withExtendedLifetime(client) {}
        }
    }

    /// A started server (not shut down: the test does that) whose `GET /in-flight` fires `handlerStarted`, then
    /// takes `milliseconds`: shutdown can start while it is in flight however loaded the machine.
    func serverWithInFlightRoute(milliseconds: Int) throws -> (HTTPServer, handlerStarted: Latch) {
        var configuration = HTTPServerConfiguration()
        configuration.port = 0
        let handlerStarted = Latch()
        var router = testRouter()
        router.add("GET", "/in-flight") { _ in
            handlerStarted.fire()
            try? await Task.sleep(for: .milliseconds(milliseconds))
            return HTTPResponse(status: 200, body: Array("slow".utf8))
        }
        let server = HTTPServer(configuration: configuration, router: router)
        try server.start()
        return (server, handlerStarted)
    }

    @Test func gracefulShutdownLetsInFlightRequestsFinishAndClosesIdleOnes() async throws {
        let (server, handlerStarted) = try serverWithInFlightRoute(milliseconds: 1500)
        let port = server.port
        let idle = try RawClient(port: port)
        idle.send("GET /a HTTP/1.1\r\nHost: h\r\n\r\n")
        #expect(idle.readResponse()?.status == 200)
        let busy = try RawClient(port: port)
        busy.send("GET /in-flight HTTP/1.1\r\nHost: h\r\n\r\n")
        try await handlerStarted.wait(timeout: .seconds(15), "the in-flight handler")
        let clock = ContinuousClock()
        let started = clock.now
        async let response = blocking { busy.readResponse() }
        await server.shutdown(gracePeriod: .seconds(20))
        let elapsed = clock.now - started
        let answered = await response
        #expect(answered?.status == 200)
        #expect(answered?.closes == true)
        #expect(elapsed < .seconds(15))
        #expect(idle.waitForClose())
        #expect(busy.waitForClose())
        #expect(server.openConnections == 0)
        #expect((try? RawClient(port: port)) == nil, "still accepting after shutdown")
    }

    @Test func shutdownGivesUpOnHandlersPastTheGracePeriod() async throws {
        let (server, handlerStarted) = try serverWithInFlightRoute(milliseconds: 30000)
        let busy = try RawClient(port: server.port)
        busy.send("GET /in-flight HTTP/1.1\r\nHost: h\r\n\r\n")
        try await handlerStarted.wait(timeout: .seconds(15), "the in-flight handler")
        let clock = ContinuousClock()
        let started = clock.now
        await server.shutdown(gracePeriod: .milliseconds(300))
        #expect(clock.now - started < .seconds(20))
        #expect(busy.waitForClose())
        #expect(server.openConnections == 0)
        #expect(server.acceptedConnections == server.closedConnections)
    }

    @Test func handlerIsCancelledWhenItsClientResets() async throws {
        let started = Latch()
        let (ended, endedSignal) = AsyncStream.makeStream(of: Bool.self)
        var router = Router()
        router.add("GET", "/wait") { _ in
            started.fire()
            // Bounded: without the cancellation the test fails after 10 s instead of hanging.
            for _ in 0..<1000 where !Task.isCancelled {
                try? await Task.sleep(for: .milliseconds(10))
            }
            endedSignal.yield(Task.isCancelled)
            return HTTPResponse(status: 200)
        }
        try await withServer(router: router) { server in
            do {
                let client = try RawClient(port: server.port)
                client.send("GET /wait HTTP/1.1\r\nHost: h\r\n\r\n")
                try await started.wait(timeout: .seconds(15), "the /wait handler")
                client.resetOnClose()
            }  // the client is closed here: a reset
            var endedEvents = ended.makeAsyncIterator()
            let cancelled = await endedEvents.next()
            #expect(cancelled == true)
            try await waitUntil { server.openConnections == 0 }
        }
    }

    @Test(.enabled(if: hasIPv6Loopback(), "no IPv6 loopback on this machine"))
    func servesOverIPv6LoopbackWhenAvailable() async throws {
        let seen = Mutex<String>("")
        var router = Router()
        router.add("GET", "/peer") { request in
            seen.withLock { $0 = request.remoteAddress }
            return HTTPResponse(status: 200)
        }
        try await withClient(router: router, host: "::1", ipv6: true) { (client) throws in
            client.send("GET /peer HTTP/1.1\r\nHost: [::1]\r\n\r\n")
            #expect(try #require(client.readResponse()).status == 200)
        }
        #expect(seen.withLock { $0 }.hasPrefix("[::1]:"))
    }

    @Test func startOnAPortInUseThrowsAClearError() async throws {
        try await withServer { server in
            var configuration = HTTPServerConfiguration()
            configuration.port = server.port
            let second = HTTPServer(configuration: configuration, router: Router())
            #expect {
                try second.start()
            } throws: { error in
                "\(error)".contains("in use")
            }
        }
    }

    @Test func resetsAndBadClientsLeakNoDescriptor() async throws {
        let before = openDescriptorCount()
        try await withServer(configure: { $0.headTimeout = .seconds(2) }) { server in
            let port = server.port
            try await blocking {
                for round in 0..<40 {
                    let client = try RawClient(port: port)
                    switch round % 5 {
                    case 0:
                        client.send("GET /a HTTP/1.1\r\nHost: h\r\n\r\n")
                        _ = client.readResponse()
                    case 1:
                        client.send("GET / HTTP/1.1\r\nHost: a b\r\n\r\n")
                        _ = client.readResponse()
                    case 2:
                        client.send("POST /echo HTTP/1.1\r\nHost: h\r\nContent-Length: 50\r\n\r\nabc")
                        client.resetOnClose()
                    case 3:
                        // Reset in the middle of a large response.
                        client.send("GET /big HTTP/1.1\r\nHost: h\r\n\r\n")
                        _ = client.readAvailable(timeout: 0.02)
                        client.resetOnClose()
                    default:
                        client.send("GET /a HTT")
                    }
                }
            }
            // The last client may still sit in the listen backlog when the first 39 are closed.
            try await waitUntil { server.acceptedConnections == 40 && server.openConnections == 0 }
            #expect(server.closedConnections == 40)
        }
        // Other suites run in parallel and open descriptors too: allow slack, and wait for them to settle.
        let settled = (try? await waitUntil(timeout: .seconds(10)) { openDescriptorCount() <= before + 32 }) != nil
        #expect(settled, "descriptors before \(before), after \(openDescriptorCount())")
    }
}

func openDescriptorCount() -> Int {
    guard let directory = opendir("/proc/self/fd") else { return -1 }
    defer { closedir(directory) }
    var count = 0
    while readdir(directory) != nil { count += 1 }
    return count - 3  // ".", ".." and the directory's own descriptor
}

/// An IPv6 socket can bind ::1 here.
func hasIPv6Loopback() -> Bool {
    let probe = socket(AF_INET6, Int32(SOCK_STREAM.rawValue), 0)
    guard probe >= 0 else { return false }
    defer { Glibc.close(probe) }
    var address = sockaddr_in6()
    address.sin6_family = sa_family_t(AF_INET6)
    address.sin6_addr = in6addr_loopback
    let bound = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
            bind(probe, $0, socklen_t(MemoryLayout<sockaddr_in6>.size))
        }
    }
    return bound == 0
}
