import HTTP1
import Synchronization
import TestSupport
import Testing

@testable import HTTPCore

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

/// `withServer` with one raw client connected to it, `body` run off the cooperative pool: the preamble of most
/// socket tests.
func withClient(
    configure: (inout HTTPServerConfiguration) -> Void = { _ in }, router: Router = testRouter(),
    hooks: HTTPServerHooks = HTTPServerHooks(), host: String = "127.0.0.1", ipv6: Bool = false,
    _ body: @escaping @Sendable (RawClient) throws -> Void
) async throws {
    try await withServer(configure: configure, router: router, hooks: hooks, host: host) { server in
        let port = server.port
        try await blocking { try body(RawClient(port: port, ipv6: ipv6)) }
    }
}
