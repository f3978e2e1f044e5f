import Foundation
import Logging
import TestSupport
import Testing

@testable import Server

/// Log lines: typed JSON values, logfmt quoting, what API calls log (pure, then against the real binary).
struct LogLineTests {
    @Test func jsonKeepsNumbersAndBooleansTyped() {
        let line = ServiceLogHandler.format(
            time: 0, level: .info, message: "job finished",
            metadata: [
                "bytes": .typed(UInt64(17_833_984)), "seconds": .typed(LogDecimal(1.25)), "auth": .typed(false),
                "job": "20261122-022500-3f9a1c2b", "instances": .array([.typed(0), .typed(15)]), "n": "42",
                "ratio": .typed(Double.nan),
            ], json: true)
        let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any]
        #expect(line.contains(#""bytes":17833984"#), "\(line)")
        #expect(line.contains(#""seconds":1.250"#))
        #expect(line.contains(#""auth":false"#))
        #expect(line.contains(#""instances":[0,15]"#))
        // Strings stay strings even when they look like numbers; NaN is not a JSON number.
        #expect(line.contains(#""n":"42""#))
        #expect(line.contains(#""ratio":"nan""#))
        #expect(object?["bytes"] as? Int == 17_833_984)
        #expect(object?["job"] as? String == "20261122-022500-3f9a1c2b")
    }

    @Test func plainIsLogfmtQuoted() {
        let line = ServiceLogHandler.format(
            time: 0, level: .warning, message: "job interrupted",
            metadata: [
                "detail": "pid 12 stopped; \"x\" removed", "path": "/a=b", "empty": "", "job": "x", "bytes": .typed(7),
                "tab": "a\tb", "back": #"c:\d"#,
            ], json: false)
        #expect(
            line
                == #"1970-01-01T00:00:00.000Z WARNING job interrupted back="c:\\d" bytes=7 detail="pid 12 stopped; \"x\" removed" empty="" job=x path="/a=b" tab="a\tb""#
                + "\n")
    }

    @Test func aPlainLineIsOneLine() {
        let line = ServiceLogHandler.format(
            time: 0, level: .warning, message: "bad record\nsecond", metadata: ["v": "x\ny"], json: false)
        #expect(line == #"1970-01-01T00:00:00.000Z WARNING bad record\nsecond v="x\ny""# + "\n")
    }

    @Test func logfmtKeysNeverBreakALine() {
        #expect(ServiceLogHandler.logfmtKey("a b=c") == "a_b_c")
        #expect(ServiceLogHandler.logfmtKey("running-jobs") == "running-jobs")
    }

    @Test func refusalsAndMutatingCallsAreLoggedWithTheirCodeAndPeer() throws {
        let refused = try #require(
            RequestLog.entry(
                method: "POST", route: "/v1/backup", peer: "127.0.0.1:5000", status: 409,
                error: APIError(.instanceBusy, "busy"), id: nil, location: nil))
        #expect(refused.level == .info)
        #expect(refused.message == "request refused")
        #expect(refused.metadata["code"] == "INSTANCE_BUSY")
        #expect(refused.metadata["peer"] == "127.0.0.1:5000")
        let read = RequestLog.entry(
            method: "GET", route: "/v1/jobs/{id}", peer: "p", status: 404, error: APIError(.jobNotFound, "no"),
            id: "x", location: nil)
        #expect(read?.level == .info)
        #expect(read?.metadata["id"] == "x")
        let deleted = try #require(
            RequestLog.entry(
                method: "DELETE", route: "/v1/backups/{id}", peer: "[::1]:4", status: 204, error: nil, id: "b",
                location: nil))
        #expect(deleted.message == "request")
        #expect(deleted.metadata["peer"] == "[::1]:4")
        #expect(deleted.metadata["code"] == nil)
        let failed = RequestLog.entry(
            method: "GET", route: "/v1/segments", peer: "p", status: 500, error: APIError(.system, "x"), id: nil,
            location: nil)
        #expect(failed?.level == .error)
        #expect(
            RequestLog.entry(
                method: "GET", route: "/v1/jobs", peer: "p", status: 200, error: nil, id: nil, location: nil) == nil)
    }
}

extension AsmtdProcess {
    /// Waits until the output holds a line containing every one of `parts` (the output pipe is read
    /// asynchronously); returns that line.
    func logLine(containing parts: [String], seconds: Double = 10) async -> String? {
        await waitForOutput(seconds: seconds) { text in
            text.split(separator: "\n").first { line in parts.allSatisfy { line.contains($0) } }.map(String.init)
        }
    }
}

struct ServiceLogTests {
    @Test func refusalsAndDeletesAreLoggedWithCodeAndPeer() async throws {
        let server = try await TestServer(namespaces: ["log-refuse"])
        defer { server.stopNow() }
        let refused = try await server.request("POST", "/v1/backup", body: #"{"instance":3}"#)
        #expect(refused.errorCode == "UNKNOWN_INSTANCE")
        let line = await server.process.logLine(containing: ["INFO request refused", "code=UNKNOWN_INSTANCE"])
        #expect(line?.contains("method=POST") == true, "\(server.process.text)")
        #expect(line?.contains("peer=127.0.0.1:") == true)
        #expect(line?.contains("status=422") == true)
        let deleted = try await server.request("DELETE", "/v1/backups/nope")
        #expect(deleted.errorCode == "BACKUP_NOT_FOUND")
        let delete = await server.process.logLine(containing: ["request refused", "method=DELETE", "id=nope"])
        #expect(delete?.contains("peer=127.0.0.1:") == true, "\(server.process.text)")
        // An unknown route is not a refusal of the API: only the DEBUG access line (off at INFO).
        _ = try await server.request("GET", "/v1/nothing")
        _ = try await server.request("GET", "/v1/jobs/marker")
        _ = await server.process.logLine(containing: ["id=marker"])
        #expect(!server.process.text.contains("status=404 route=-"))
        #expect(!server.process.text.contains("/v1/nothing"))
    }

    @Test func jsonLogsKeepNumbersTyped() async throws {
        let directory = try TemporaryDirectory()
        let yaml = """
            service:
              http: {port: 0}
              logger: {format: JSON}
              state-dir: state
            instances:
              - instance: 14
                backup-path: backups
                namespaces: [log-json]
            """
        try yaml.write(toFile: directory.path + "/asmtd.yml", atomically: true, encoding: .utf8)
        let process = try AsmtdProcess(["serve", "-c", directory.path + "/asmtd.yml"])
        defer {
            process.signal(SIGTERM)
            process.process.waitUntilExit()
        }
        let listening = try #require(await process.logLine(containing: [#""msg":"asmtd listening""#]))
        let object = try #require(try JSONSerialization.jsonObject(with: Data(listening.utf8)) as? [String: Any])
        let port = try #require(object["port"] as? Int, "\(listening)")
        #expect(object["auth"] as? Bool == false)
        #expect(object["instances"] as? [Int] == [14])
        _ = try await request(port: port, "POST", "/v1/backup", body: #"{"instance":14,"threads":-1}"#)
        let refused = try #require(await process.logLine(containing: [#""code":"INVALID_FIELD""#]))
        let fields = try #require(try JSONSerialization.jsonObject(with: Data(refused.utf8)) as? [String: Any])
        #expect(fields["status"] as? Int == 400)
        #expect(fields["level"] as? String == "INFO")
    }
}
