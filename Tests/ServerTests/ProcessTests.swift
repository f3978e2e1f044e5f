import Foundation
import ShmEngine
import TestSupport
import Testing

@testable import Server

/// The real `asmtd` binary as a subprocess: exit codes, SIGTERM, and SIGKILL in the middle of a job.
final class AsmtdProcess: @unchecked Sendable {
    static var binary: String {
        let beside = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
            .appendingPathComponent("asmtd").path
        if FileManager.default.isExecutableFile(atPath: beside) { return beside }
        return URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent(".build/debug/asmtd").path
    }

    let process = Process()
    private let exited = Latch()
    private let output = Pipe()
    private let lock = NSLock()
    private var log = ""
    /// Fired (and replaced) when output arrives or the process exits.
    private var changed = Latch()

    /// `environment` is added to this process's; `launcher` (an absolute path and its arguments, for example
    /// `unshare --pid --fork`) runs it under that command.
    init(_ arguments: [String], environment: [String: String] = [:], launcher: [String] = []) throws {
        if let command = launcher.first {
            process.executableURL = URL(fileURLWithPath: command)
            process.arguments = launcher.dropFirst() + [Self.binary] + arguments
        } else {
            process.executableURL = URL(fileURLWithPath: Self.binary)
            process.arguments = arguments
        }
        if !environment.isEmpty {
            process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        }
        process.standardOutput = output
        process.standardError = output
        output.fileHandleForReading.readabilityHandler = { [weak self] handle in
            let data = handle.availableData
            guard let self, !data.isEmpty else { return }
            let change = self.lock.withLock { () -> Latch in
                self.log += String(decoding: data, as: UTF8.self)
                return self.nextChange()
            }
            change.fire()
        }
        process.terminationHandler = { [weak self] _ in
            guard let self else { return }
            self.exited.fire()
            self.lock.withLock { self.nextChange() }.fire()
        }
        try process.run()
    }

    var text: String { lock.withLock { log } }

    /// The signal of the change in progress, replaced by a fresh one (under `lock`).
    private func nextChange() -> Latch {
        let current = changed
        changed = Latch()
        return current
    }

    /// Waits for output that `match` finds something in (checked again each time output arrives); nil after
    /// `seconds`, or once the process has exited without it.
    func waitForOutput<T>(seconds: Double = 10, _ match: (String) -> T?) async -> T? {
        let deadline = ContinuousClock.now + .seconds(seconds)
        while true {
            let (output, change) = lock.withLock { (log, changed) }
            if let found = match(output) { return found }
            let left = deadline - ContinuousClock.now
            guard left > .zero, process.isRunning || !exited.hasFired else { return nil }
            try? await change.wait(timeout: left, "output of asmtd")
        }
    }

    /// The port from the "asmtd listening ... port=N" line.
    func waitForPort(seconds: Double = 30) async throws -> Int {
        let port = await waitForOutput(seconds: seconds) { text in
            text.range(of: "port=").flatMap { Int(text[$0.upperBound...].prefix { $0.isNumber }) }
        }
        guard let port else { throw TestFailure("no port=N line within \(seconds) s: \(text)") }
        return port
    }

    /// The exit status (or the number of the signal that ended it), or nil when it still runs after `seconds`.
    func waitForExit(seconds: Double = 60) async -> Int32? {
        guard (try? await exited.wait(timeout: .seconds(seconds), "the exit of asmtd")) != nil else { return nil }
        // The handler may run a moment before Foundation publishes the status.
        try? await waitUntil(timeout: .seconds(5), "the exit status") { !process.isRunning }
        return process.isRunning ? nil : process.terminationStatus
    }

    /// The number of the signal that ended it; nil when it exited by itself or still runs after `seconds`.
    func waitForSignal(seconds: Double = 60) async -> Int32? {
        let status = await waitForExit(seconds: seconds)
        return process.terminationReason == .uncaughtSignal ? status : nil
    }

    func signal(_ number: Int32) {
        if process.isRunning { kill(process.processIdentifier, number) }
    }

    deinit {
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
    }
}

extension ShmTests {
    @Suite struct ProcessTests {
        func writeConfig(
            _ directory: TemporaryDirectory, namespace: String, extra: String = "", instance: Int = 14,
            compress: Bool = true
        ) throws -> String {
            let file = directory.path + "/asmtd.yml"
            let yaml = """
                service:
                  http: {port: 0}
                  state-dir: state
                  runtime-dir: run
                  shutdown-timeout: 10000
                \(extra)
                instances:
                  - instance: \(instance)
                    backup-path: backups
                    namespaces: [\(namespace)]
                    threads: 1
                    compress: \(compress)
                """
            try yaml.write(toFile: file, atomically: true, encoding: .utf8)
            return file
        }

        @Test func aBadConfigExits78WithEveryError() async throws {
            let directory = try TemporaryDirectory()
            let file = directory.path + "/bad.yml"
            try "service:\n  htp: {}\ninstances:\n  - {instance: 99}\n".write(
                toFile: file, atomically: true, encoding: .utf8)
            let validate = try AsmtdProcess(["validate", "-c", file])
            #expect(await validate.waitForExit() == 78)
            #expect(
                validate.text.contains("bad.yml:2: service.htp: unknown key; did you mean \"http\"?"),
                "\(validate.text)")
            #expect(validate.text.contains("instances[0].instance"))
            #expect(validate.text.contains("instances[0].backup-path: is required"))
            let serve = try AsmtdProcess(["-c", file])
            #expect(await serve.waitForExit() == 78)
            let good = try writeConfig(directory, namespace: "srv-validate")
            let valid = try AsmtdProcess(["validate", "-c", good])
            #expect(await valid.waitForExit() == 0)
        }

        @Test func aTokenFileOthersCanReadOrWriteExits78() async throws {
            let directory = try TemporaryDirectory()
            let token = directory.path + "/token"
            #expect(FileManager.default.createFile(atPath: token, contents: Data("s3cret\n".utf8)))
            chmod(token, 0o620)
            let file = try writeConfig(directory, namespace: "srv-token", extra: "  auth: {token-file: token}")
            let serve = try AsmtdProcess(["-c", file])
            #expect(await serve.waitForExit() == 78)
            #expect(
                serve.text.contains(
                    "service.auth.token-file: \(token) has mode 0620; a token file must be 0600 or 0400"),
                "\(serve.text)")
            chmod(token, 0o600)
            let valid = try AsmtdProcess(["validate", "-c", file])
            #expect(await valid.waitForExit() == 0, "\(valid.text)")
        }

        @Test func sigtermStopsCleanly() async throws {
            let directory = try TemporaryDirectory()
            let server = try AsmtdProcess(["-c", try writeConfig(directory, namespace: "srv-term")])
            let port = try await server.waitForPort()
            #expect(try await request(port: port, "GET", "/health").status == 200)
            let twin = try AsmtdProcess(["-c", try writeConfig(directory, namespace: "srv-term")])
            #expect(await twin.waitForExit() == 1)
            #expect(twin.text.contains("another asmtd is running on this state dir"), "\(twin.text)")
            server.signal(SIGTERM)
            #expect(await server.waitForExit() == 0)
            #expect(server.text.contains("stopped"))
        }

        @Test func aBackupKilledMidwayIsInterruptedAndLeavesNoDirectory() async throws {
            // One thread and 512 MiB: the job runs for a few hundred ms, long enough to be caught running.
            let segments = try await TestSegments.make(nsid: 5, name: "srv-kill-backup", stages: 8, stageSize: 64 << 20)
            defer { segments.cleanUp() }
            let directory = try TemporaryDirectory()
            let config = try writeConfig(directory, namespace: "srv-kill-backup")
            let first = try AsmtdProcess(["-c", config])
            let port = try await first.waitForPort()
            let submitted = try await request(
                port: port, "POST", "/v1/backup", body: #"{"instance":14,"threads":1}"#)
            let id = try #require(submitted.json["id"] as? String, "\(submitted.text)")
            let busy = try await waitUntilStarted(port: port, id)
            #expect(busy["state"] as? String == "running", "the backup must still run when it is killed: \(busy)")
            first.signal(SIGKILL)
            #expect(await first.waitForSignal() == SIGKILL, "\(first.text)")

            let record = try String(contentsOfFile: directory.path + "/state/jobs/\(id).json", encoding: .utf8)
            #expect(record.contains("\"running\""))

            let second = try AsmtdProcess(["-c", config])
            let port2 = try await second.waitForPort()
            let job = try await request(port: port2, "GET", "/v1/jobs/\(id)").json
            #expect(job["state"] as? String == "failure", "\(job)")
            #expect((job["error"] as? [String: Any])?["code"] as? String == "INTERRUPTED")
            #expect(!FileManager.default.fileExists(atPath: directory.path + "/backups/\(id)"))
            let backups = try await request(port: port2, "GET", "/v1/backups").json["backups"] as? [Any]
            #expect(backups?.isEmpty == true)
            second.signal(SIGTERM)
            #expect(await second.waitForExit() == 0)
        }

        @Test func aRestoreKilledMidwayLeavesNoSegments() async throws {
            // One thread and 512 MiB: the restore runs for a few hundred ms, long enough to be caught running.
            let segments = try await TestSegments.make(
                nsid: 6, name: "srv-kill-restore", stages: 8, stageSize: 64 << 20)
            defer { segments.cleanUp() }
            let directory = try TemporaryDirectory()
            let config = try writeConfig(directory, namespace: "srv-kill-restore")
            let first = try AsmtdProcess(["-c", config])
            let port = try await first.waitForPort()
            let backup = try await request(port: port, "POST", "/v1/backup", body: #"{"instance":14}"#)
            let backupJob = try #require(backup.json["id"] as? String, "\(backup.text)")
            let state = try await waitForJob(port: port, backupJob)["state"] as? String
            #expect(state == "success")
            segments.removeOriginals()

            let restore = try await request(port: port, "POST", "/v1/restore", body: #"{"instance":14,"threads":1}"#)
            let id = try #require(restore.json["id"] as? String, "\(restore.text)")
            // Kill it once it has created segments, while it still runs.
            var running = false
            let deadline = Date().addingTimeInterval(60)
            while Date() < deadline {
                let job = try await request(port: port, "GET", "/v1/jobs/\(id)").json
                running = job["state"] as? String == "running"
                if !running && job["state"] as? String != "queued" { break }
                if running, !(try segments.live().isEmpty) {
                    first.signal(SIGKILL)
                    break
                }
                try await Task.sleep(for: .milliseconds(2))
            }
            #expect(running, "the restore must still run when it is killed")
            first.signal(SIGKILL)
            _ = await first.waitForExit()
            #expect(!(try segments.live().isEmpty), "a killed restore leaves segments behind until the restart")

            let second = try AsmtdProcess(["-c", config])
            let port2 = try await second.waitForPort()
            let job = try await request(port: port2, "GET", "/v1/jobs/\(id)").json
            #expect(job["state"] as? String == "failure", "\(job)")
            #expect((job["error"] as? [String: Any])?["code"] as? String == "INTERRUPTED")
            #expect(try segments.live().isEmpty, "no half-restored index survives the restart")
            // The backup itself is intact and can be restored again.
            let again = try await request(port: port2, "POST", "/v1/restore", body: #"{"instance":14}"#)
            #expect(again.status == 202, "\(again.text)")
            second.signal(SIGTERM)
            #expect(await second.waitForExit() == 0)
        }

        @Test func sigtermDuringAJobRefusesNewJobsThenFinishesOrCancelsIt() async throws {
            let segments = try await TestSegments.make(nsid: 7, name: "srv-term-job", stages: 8, stageSize: 64 << 20)
            defer { segments.cleanUp() }
            // shutdown-timeout 60 s: the job finishes; 0: canceled at once; 60 s but a second SIGTERM: canceled.
            for (timeout, signals) in [(60000, 1), (0, 1), (60000, 2)] {
                let server = try await TestServer(
                    namespaces: ["srv-term-job"], shutdownTimeoutMs: timeout, compress: true)
                defer { server.stopNow() }
                let response = try await server.request("POST", "/v1/backup", body: #"{"instance":14,"threads":1}"#)
                let id = try #require(response.json["id"] as? String, "\(response.text)")
                let busy = try await waitUntilStarted(port: server.port, id)
                #expect(busy["state"] as? String == "running", "\(busy)")
                server.process.signal(SIGTERM)
                if signals == 1 && timeout > 0 {
                    // Once the signal is handled /ready says so; then new jobs get 503.
                    for _ in 0..<500 where try await server.request("GET", "/ready").status != 503 {
                        try await Task.sleep(for: .milliseconds(2))
                    }
                    let refused = try await server.request("POST", "/v1/restore", body: #"{"instance":14}"#)
                    #expect(refused.status == 503, "\(refused.text)")
                    #expect(refused.errorCode == "SHUTTING_DOWN")
                    #expect(try await server.request("GET", "/ready").status == 503)
                }
                if signals == 2 {
                    for _ in 0..<500 where try await server.request("GET", "/ready").status != 503 {
                        try await Task.sleep(for: .milliseconds(2))
                    }
                    server.process.signal(SIGTERM)
                }
                #expect(await server.process.waitForExit() == 0)
                let data = try Data(contentsOf: URL(fileURLWithPath: server.stateDir + "/jobs/\(id).json"))
                let record = try JSONDecoder().decode(JobRecord.self, from: data)
                if timeout > 0 && signals == 1 {
                    #expect(record.state == .success, "finished within shutdown-timeout")
                    #expect(FileSystem.kind(server.backupPath + "/\(id)/asmtd-manifest.json") == .file)
                } else {
                    #expect(record.state == .canceled, "canceled at once (timeout \(timeout), \(signals) signals)")
                    #expect(FileSystem.kind(server.backupPath + "/\(id)") == .missing)
                }
            }
        }
    }
}
