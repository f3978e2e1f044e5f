import Foundation
import TestSupport
import Testing

@testable import Server

/// `asmtd job ...`: URL and response parsing, then the binary against a real service.
struct ClientParsingTests {
    @Test func serverURLs() throws {
        #expect(try ServerURL.parse("http://127.0.0.1:8080") == ServerURL(host: "127.0.0.1", port: 8080, prefix: ""))
        #expect(try ServerURL.parse("http://[::1]:9/") == ServerURL(host: "::1", port: 9, prefix: ""))
        #expect(try ServerURL.parse("HTTP://db1/asmtd/") == ServerURL(host: "db1", port: 80, prefix: "/asmtd"))
        #expect(try ServerURL.parse("http://[::1]:9").authority == "[::1]:9")
        for bad in [
            "https://x", "x:80", "http://", "http://h:0", "http://h:99999", "http://h:8a", "http://u@h", "http://[::1",
        ] {
            #expect(throws: ServerURL.Invalid.self, "\(bad)") { try ServerURL.parse(bad) }
        }
        #expect(ServerURL.choose(option: nil, environment: ["ASMTD_SERVER": "http://e:1"]) == "http://e:1")
        #expect(ServerURL.choose(option: "http://o:2", environment: ["ASMTD_SERVER": "http://e:1"]) == "http://o:2")
        #expect(ServerURL.choose(option: nil, environment: [:]) == "http://127.0.0.1:8080")
        #expect(ServerURL.segment("a/b c") == "a%2Fb%20c")
    }

    @Test func responses() {
        let fixed = ClientResponse.parse(Array("HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-A: b\r\n\r\n{}extra".utf8))
        #expect(
            fixed == ClientResponse(status: 200, headers: ["content-length": "2", "x-a": "b"], body: Array("{}".utf8)))
        let chunked = ClientResponse.parse(
            Array(
                "HTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2;x=1\r\nde\r\n0\r\n\r\n".utf8)
        )
        #expect(chunked?.body == Array("abcde".utf8))
        #expect(ClientResponse.parse(Array("HTTP/1.0 204 No Content\r\n\r\n".utf8))?.body == [])
        #expect(ClientResponse.parse(Array("HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nshort".utf8)) == nil)
        #expect(ClientResponse.parse(Array("SSH-2.0-OpenSSH\r\n\r\n".utf8)) == nil)
        #expect(ClientResponse.parse([]) == nil)
    }

    @Test func refusalsKeepTheAPIsCode() {
        let busy = JobClient.refusal(
            ClientResponse(
                status: 409, headers: [:], body: Array(#"{"error":{"code":"INSTANCE_BUSY","message":"m"}}"#.utf8)))
        #expect(busy == ClientError(code: "INSTANCE_BUSY", message: "m", status: 409))
        #expect(busy.exitStatus == .busy)
        let proxy = JobClient.refusal(ClientResponse(status: 502, headers: [:], body: Array("<html>".utf8)))
        #expect(proxy.exitStatus == .unavailable)
    }

    @Test func submissionBodiesLeaveDefaultsToTheService() throws {
        let body = SubmissionBody(instance: 0, namespaces: ["test"], compress: false, dryRun: true)
        let object = try #require(try JSONSerialization.jsonObject(with: Data(body.bytes)) as? [String: Any])
        #expect(object.keys.sorted() == ["compress", "dry-run", "instance", "namespaces"])
        #expect(try BackupSubmission.decode(body.bytes).dryRun)
    }
}

/// A token file readable by root only.
private func tokenFile(_ directory: TemporaryDirectory, _ token: String) throws -> String {
    let path = directory.path + "/client-token"
    try (token + "\n").write(toFile: path, atomically: true, encoding: .utf8)
    return path
}

struct ClientProcessTests {
    @Test func refusalsExitWithTheirStatus() async throws {
        let server = try await TestServer(instance: 15, namespaces: ["cli-client"])
        defer { server.stopNow() }
        let url = "http://127.0.0.1:\(server.port)"
        let list = try await CLIRun.run(["job", "list", "--server", url, "--json"])
        #expect(list.status == 0, "\(list.stderr)")
        #expect((list.json["jobs"] as? [Any])?.isEmpty == true, "\(list.stdout)")
        // ASMTD_SERVER when there is no --server.
        let env = try await CLIRun.run(["job", "show", "nope"], environment: ["ASMTD_SERVER": url])
        #expect(env.status == 64)
        #expect(env.stderr.contains("JOB_NOT_FOUND"), "\(env.stderr)")
        let unknown = try await CLIRun.run(["job", "backup", "--server", url, "--instance", "3", "--wait"])
        #expect(unknown.status == 64)
        #expect(unknown.stderr.contains("UNKNOWN_INSTANCE"))
        let missing = try await CLIRun.run(["job", "backup", "--server", url, "--instance", "15", "--dry-run"])
        #expect(missing.status == 1)
        #expect(missing.stderr.contains("NAMESPACE_NOT_FOUND"))
        let cancel = try await CLIRun.run(["job", "cancel", "--server", url, "nope"])
        #expect(cancel.status == 64)
        let wait = try await CLIRun.run(["job", "wait", "--server", url, "nope"])
        #expect(wait.status == 64)
        let https = try await CLIRun.run(["job", "list", "--server", "https://127.0.0.1:\(server.port)"])
        #expect(https.status == 64)
    }

    @Test func anUnreachableServerIsUnavailable() async throws {
        // A port that was just free: nothing listens there.
        let server = try await TestServer(instance: 15, namespaces: ["cli-gone"])
        let port = server.port
        await server.stop()
        let run = try await CLIRun.run(["job", "list", "--server", "http://127.0.0.1:\(port)"])
        #expect(run.status == 69, "\(run.stderr)")
        #expect(run.stderr.contains("UNAVAILABLE"))
    }

    @Test func tokens() async throws {
        let server = try await TestServer(instance: 15, namespaces: ["cli-token"], token: "s3cret")
        defer { server.stopNow() }
        let url = "http://127.0.0.1:\(server.port)"
        let without = try await CLIRun.run(["job", "list", "--server", url])
        #expect(without.status == 77)
        #expect(without.stderr.contains("UNAUTHORIZED"))
        let directory = try TemporaryDirectory()
        let wrong = try await CLIRun.run(["job", "list", "--server", url, "--token-file", tokenFile(directory, "nope")])
        #expect(wrong.status == 77)
        let right = try await CLIRun.run([
            "job", "list", "--server", url, "--token-file", tokenFile(directory, "s3cret"),
        ])
        #expect(right.status == 0, "\(right.stderr)")
        let unreadable = try await CLIRun.run(["job", "list", "--server", url, "--token-file", "/nonexistent/token"])
        #expect(unreadable.status == 78)
    }
}

extension ShmTests {
    @Suite struct ClientJobTests {
        @Test func backupWaitsAndReportsTheFinalJob() async throws {
            let segments = try await TestSegments.make(instance: 15, nsid: 27, name: "cli-wait")
            defer { segments.cleanUp() }
            let server = try await TestServer(instance: 15, namespaces: ["cli-wait"])
            defer { server.stopNow() }
            let url = "http://127.0.0.1:\(server.port)"
            let dry = try await CLIRun.run([
                "job", "backup", "--server", url, "--instance", "15", "--dry-run", "--json",
            ])
            #expect(dry.status == 0, "\(dry.stderr)")
            #expect(dry.json["dry-run"] as? Bool == true)
            let backup = try await CLIRun.run(
                ["job", "backup", "--server", url, "--instance", "15", "--wait", "--json", "--progress"])
            #expect(backup.status == 0, "\(backup.stderr)")
            #expect(backup.json["state"] as? String == "success", "\(backup.stdout)")
            let id = try #require(backup.json["id"] as? String)
            let progress = try #require(backup.json["progress"] as? [String: Any])
            #expect(progress["percentage-done"] as? Int == 100)
            let show = try await CLIRun.run(["job", "show", "--server", url, id])
            #expect(show.status == 0)
            #expect(show.stdout.hasPrefix("job \(id) success: backup of instance 15"), "\(show.stdout)")
            let waited = try await CLIRun.run(["job", "wait", "--server", url, id, "--json"])
            #expect(waited.status == 0)
            #expect(waited.json["id"] as? String == id)
            let list = try await CLIRun.run(["job", "list", "--server", url, "--state", "success"])
            #expect(list.stdout.contains(id))
            let finished = try await CLIRun.run(["job", "cancel", "--server", url, id])
            #expect(finished.status == 1)
            #expect(finished.stderr.contains("JOB_FINISHED"))
            // The segments are still there: the restore is refused before a job exists.
            let restore = try await CLIRun.run(["job", "restore", "--server", url, "--instance", "15", "--wait"])
            #expect(restore.status == 1)
            #expect(restore.stderr.contains("SEGMENTS_EXIST"), "\(restore.stderr)")
        }

        @Test func busyInstanceAndCancel() async throws {
            let segments = try await TestSegments.make(
                instance: 15,
                nsid: 28, name: "cli-cancel", stages: 8, stageSize: 32 << 20)
            defer { segments.cleanUp() }
            let server = try await TestServer(instance: 15, namespaces: ["cli-cancel"], compress: true)
            defer { server.stopNow() }
            let url = "http://127.0.0.1:\(server.port)"
            let submitted = try await CLIRun.run([
                "job", "backup", "--server", url, "--instance", "15", "--threads", "1",
            ])
            #expect(submitted.status == 0, "\(submitted.stderr)")
            let id = submitted.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
            let busy = try await CLIRun.run(["job", "backup", "--server", url, "--instance", "15"])
            #expect(busy.status == 75, "\(busy.stderr)")
            #expect(busy.stderr.contains("INSTANCE_BUSY"))
            let cancel = try await CLIRun.run(["job", "cancel", "--server", url, id, "--wait", "--json"])
            #expect(cancel.status == 0, "\(cancel.stderr)")
            #expect(cancel.json["state"] as? String == "canceled", "\(cancel.stdout)")
            let wait = try await CLIRun.run(["job", "wait", "--server", url, id])
            #expect(wait.status == 130)
            #expect(wait.stderr.contains("CANCELED"))
        }
    }
}
