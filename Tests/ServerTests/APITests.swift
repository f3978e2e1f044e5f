import Foundation
import Testing

@testable import Server

/// The API without shm segments: probes, every error envelope that needs no segments, auth, metrics.
struct APITests {
    @Test func probesAnswer() async throws {
        let server = try await TestServer(namespaces: ["api-probe"])
        defer { server.stopNow() }
        let health = try await server.request("GET", "/health")
        #expect(health.status == 200)
        #expect(health.json["status"] as? String == "ok")
        let ready = try await server.request("GET", "/ready")
        #expect(ready.status == 200, "\(ready.text)")
        #expect(ready.json["status"] as? String == "ready")
        let version = try await server.request("GET", "/version")
        #expect(version.json["name"] as? String == "asmtd")
        #expect(version.json["version"] is String)
    }

    @Test func unknownRoutesAndMethodsGetTheJSONEnvelope() async throws {
        let server = try await TestServer(namespaces: ["api-route"])
        defer { server.stopNow() }
        let missing = try await server.request("GET", "/v1/nothing")
        #expect(missing.status == 404)
        #expect(missing.errorCode == "NOT_FOUND")
        #expect(missing.header("content-type") == "application/json")
        let wrong = try await server.request("PUT", "/v1/jobs")
        #expect(wrong.status == 405)
        #expect(wrong.errorCode == "METHOD_NOT_ALLOWED")
        #expect(wrong.header("allow")?.contains("GET") == true)
    }

    @Test func theBinaryServesOpenAPIYAML() async throws {
        let server = try await TestServer(namespaces: ["api-doc"])
        defer { server.stopNow() }
        let response = try await server.request("GET", "/openapi.yaml")
        #expect(response.status == 200)
        #expect(response.header("content-type") == "application/yaml")
        #expect(response.body == Array(try OpenAPITests.documentText().utf8))
    }

    @Test func bodiesThatAreNotJSONAre415() async throws {
        let server = try await TestServer(namespaces: ["api-media"])
        defer { server.stopNow() }
        let body = #"{"instance":14,"dry-run":true}"#
        for type in ["text/plain", "application/x-www-form-urlencoded"] {
            for path in ["/v1/backup", "/v1/restore", "/v1/jobs/nope/cancel"] {
                let response = try await server.request("POST", path, body: body, headers: ["Content-Type": type])
                #expect(response.status == 415, "\(path) \(type)")
                #expect(response.errorCode == "UNSUPPORTED_MEDIA_TYPE", "\(path) \(type): \(response.text)")
                #expect(response.header("content-type") == "application/json")
            }
        }
        // JSON, with or without parameters, reaches the handler (here: the dry run's refusal, a 422 without segments).
        for type in ["application/json", "application/json; charset=utf-8"] {
            let response = try await server.request("POST", "/v1/backup", body: body, headers: ["Content-Type": type])
            #expect(response.status != 415, "\(type): \(response.text)")
        }
        // No body, no media type needed.
        let cancel = try await server.request("POST", "/v1/jobs/nope/cancel", headers: ["Content-Type": "text/plain"])
        #expect(cancel.errorCode == "JOB_NOT_FOUND")
    }

    @Test func emptyItemsInListFiltersAre400() async throws {
        let server = try await TestServer(namespaces: ["api-filter"])
        defer { server.stopNow() }
        for query in ["type=backup,", "state=,running", "state=running,,failure", "type=", "state="] {
            let response = try await server.request("GET", "/v1/jobs?\(query)")
            #expect(response.status == 400, "\(query)")
            #expect(response.errorCode == "INVALID_QUERY", "\(query)")
        }
        for query in ["type=restore", "type=backup,restore&state=running,!failure"] {
            let response = try await server.request("GET", "/v1/jobs?\(query)")
            #expect(response.status == 200, "\(query): \(response.text)")
        }
    }

    @Test func badBodiesAre400() async throws {
        let server = try await TestServer(namespaces: ["api-bad"])
        defer { server.stopNow() }
        let cases: [(String, String)] = [
            ("{", "INVALID_JSON"), ("", "INVALID_JSON"), (#"{"instance":"14"}"#, "INVALID_FIELD"),
            (#"{"instance":14,"namespace":["a"]}"#, "INVALID_FIELD"),
            (#"{"instance":14,"instance":15}"#, "INVALID_JSON"), (#"{"instance":14,}"#, "INVALID_JSON"),
        ]
        for (body, code) in cases {
            for path in ["/v1/backup", "/v1/restore"] {
                let response = try await server.request("POST", path, body: body)
                #expect(response.status == 400, "\(path) \(body)")
                #expect(response.errorCode == code, "\(path) \(body): \(response.text)")
            }
        }
        let unknown = try await server.request("POST", "/v1/backup", body: #"{"instance":14,"compres":true}"#)
        #expect(
            (unknown.json["error"] as? [String: Any])?["message"] as? String
                == #"unknown field "compres"; did you mean "compress"?"#)
        let query = try await server.request("GET", "/v1/jobs?state=done")
        #expect(query.status == 400)
        #expect(query.errorCode == "INVALID_QUERY")
    }

    @Test func tooLargeBodiesAre413() async throws {
        let server = try await TestServer(namespaces: ["api-large"], maxBody: 64)
        defer { server.stopNow() }
        let body = #"{"instance":14,"namespaces":[""# + String(repeating: "x", count: 100) + #""]}"#
        let response = try await server.request("POST", "/v1/backup", body: body)
        #expect(response.status == 413)
        #expect(response.errorCode != nil)
    }

    @Test func unknownThingsAre404Or422() async throws {
        let server = try await TestServer(namespaces: ["api-unknown"])
        defer { server.stopNow() }
        let job = try await server.request("GET", "/v1/jobs/20260101-000000-00000000")
        #expect(job.status == 404)
        #expect(job.errorCode == "JOB_NOT_FOUND")
        let cancel = try await server.request("POST", "/v1/jobs/nope/cancel")
        #expect(cancel.errorCode == "JOB_NOT_FOUND")
        let backup = try await server.request("GET", "/v1/backups/nope")
        #expect(backup.status == 404)
        #expect(backup.errorCode == "BACKUP_NOT_FOUND")
        let delete = try await server.request("DELETE", "/v1/backups/nope")
        #expect(delete.errorCode == "BACKUP_NOT_FOUND")
        let instance = try await server.request("POST", "/v1/backup", body: #"{"instance":3}"#)
        #expect(instance.status == 422)
        #expect(instance.errorCode == "UNKNOWN_INSTANCE")
        let namespace = try await server.request("POST", "/v1/backup", body: #"{"instance":14,"namespaces":["other"]}"#)
        #expect(namespace.status == 422)
        #expect(namespace.errorCode == "UNKNOWN_NAMESPACE")
        let noBackup = try await server.request("POST", "/v1/restore", body: #"{"instance":14}"#)
        #expect(noBackup.status == 422)
        #expect(noBackup.errorCode == "NO_COMPLETE_BACKUP")
        let namedBackup = try await server.request("POST", "/v1/restore", body: #"{"instance":14,"backup":"nope"}"#)
        #expect(namedBackup.status == 404)
        #expect(namedBackup.errorCode == "BACKUP_NOT_FOUND")
        try FileManager.default.createDirectory(
            atPath: server.backupPath + "/half", withIntermediateDirectories: true)
        let incomplete = try await server.request("POST", "/v1/restore", body: #"{"instance":14,"backup":"half"}"#)
        #expect(incomplete.status == 422)
        #expect(incomplete.errorCode == "BACKUP_INCOMPLETE")
        let listed = try await server.request("GET", "/v1/backups").json["backups"] as? [[String: Any]]
        #expect(listed?.first?["state"] as? String == "incomplete")
        let deleted = try await server.request("DELETE", "/v1/backups/half")
        #expect(deleted.status == 204)
        #expect(!FileManager.default.fileExists(atPath: server.backupPath + "/half"))
    }

    @Test func theTokenGuardsV1Only() async throws {
        let server = try await TestServer(namespaces: ["api-auth"], token: "s3cret-token")
        defer { server.stopNow() }
        let missing = try await server.request("GET", "/v1/jobs")
        #expect(missing.status == 401)
        #expect(missing.errorCode == "UNAUTHORIZED")
        #expect(missing.header("www-authenticate")?.hasPrefix("Bearer") == true)
        let wrong = try await server.request("GET", "/v1/jobs", headers: ["Authorization": "Bearer s3cret-tokem"])
        #expect(wrong.status == 401)
        let short = try await server.request("GET", "/v1/jobs", headers: ["Authorization": "Bearer s3cret"])
        #expect(short.status == 401)
        let right = try await server.request("GET", "/v1/jobs", headers: ["Authorization": "Bearer s3cret-token"])
        #expect(right.status == 200)
        #expect(try await server.request("GET", "/health").status == 200)
        #expect(try await server.request("GET", "/metrics").status == 200)
        #expect(API.bearerMatches("bearer abc", token: "abc"))
        #expect(!API.bearerMatches("Basic abc", token: "abc"))
    }

    @Test func metricsPassPromtool() async throws {
        let server = try await TestServer(namespaces: ["api-metrics"])
        defer { server.stopNow() }
        _ = try await server.request("GET", "/nothing")
        let metrics = try await server.request("GET", "/metrics")
        #expect(metrics.status == 200)
        #expect(metrics.header("content-type") == "text/plain; version=0.0.4; charset=utf-8")
        #expect(metrics.text.contains("asmtd_http_requests_total{method=\"GET\",route=\"unmatched\",code=\"404\"} 1\n"))
        #expect(metrics.text.contains("process_cpu_seconds_total "))
        try Promtool.check(metrics.text)
    }
}

enum Promtool {
    struct Failed: Error, CustomStringConvertible { var description: String }

    /// Runs `promtool check metrics`; missing promtool is a failure under CI=true, else the check is skipped.
    static func check(_ text: String) throws {
        let candidates = ["/usr/bin/promtool", "/usr/local/bin/promtool"]
        guard let tool = candidates.first(where: { FileManager.default.isExecutableFile(atPath: $0) }) else {
            if ProcessInfo.processInfo.environment["CI"] == "true" {
                throw Failed(
                    description: "promtool is missing: scripts/install-deps installs the Debian package prometheus")
            }
            return
        }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: tool)
        process.arguments = ["check", "metrics"]
        let input = Pipe()
        let output = Pipe()
        process.standardInput = input
        process.standardOutput = output
        process.standardError = output
        try process.run()
        input.fileHandleForWriting.write(Data(text.utf8))
        try input.fileHandleForWriting.close()
        let report = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        if process.terminationStatus != 0 { throw Failed(description: "promtool: \(report)") }
    }
}
