// A trivial-route server for scripts/bench-http: GET / answers "ok". Not part of the service.
//
//   HTTPBench [port]     port 0 (default) picks one; prints "listening on PORT", stops on SIGINT/SIGTERM.
import Dispatch
import Glibc
import HTTP1
import HTTPCore

var configuration = HTTPServerConfiguration()
configuration.host = "127.0.0.1"
configuration.port = CommandLine.arguments.count > 1 ? Int(CommandLine.arguments[1]) ?? 0 : 0
configuration.maxConnections = 1024
configuration.maxRequestsPerConnection = 1_000_000

let body = Array("ok".utf8)
var router = Router()
router.add("GET", "/") { _ in
    HTTPResponse(status: 200, headers: ["Content-Type": "text/plain"], body: body)
}

let server = HTTPServer(configuration: configuration, router: router)
do {
    try server.start()
} catch {
    print("HTTPBench: \(error)")
    exit(1)
}
print("listening on \(server.port)")
fflush(nil)

signal(SIGINT, SIG_IGN)
signal(SIGTERM, SIG_IGN)
let (stops, stopContinuation) = AsyncStream<Void>.makeStream()
let signalSources = [SIGINT, SIGTERM].map { signalNumber in
    let source = DispatchSource.makeSignalSource(signal: signalNumber, queue: .global())
    source.setEventHandler { @Sendable in stopContinuation.yield() }
    source.resume()
    return source
}
for await _ in stops { break }
await server.shutdown(gracePeriod: .seconds(2))
signalSources.forEach { $0.cancel() }
