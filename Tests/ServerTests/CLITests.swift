import Foundation
import ShmEngine
import TestSupport
import Testing

@testable import Server

/// One run of the `asmtd` binary: its exit status, stdout and stderr apart.
struct CLIRun: Sendable {
    var status: Int32
    var stdout: String
    var stderr: String

    var json: [String: Any] {
        (try? JSONSerialization.jsonObject(with: Data(stdout.utf8)) as? [String: Any]) ?? [:]
    }

    /// Runs `asmtd arguments` to its end off the cooperative pool (as `user`, through runuser, when given).
    static func run(
        _ arguments: [String], environment: [String: String]? = nil, user: String? = nil,
        binary: String = AsmtdProcess.binary
    ) async throws
        -> CLIRun
    {
        try await blocking {
            let process = Process()
            if let user {
                process.executableURL = URL(fileURLWithPath: "/usr/sbin/runuser")
                process.arguments = ["-u", user, "--", binary] + arguments
            } else {
                process.executableURL = URL(fileURLWithPath: binary)
                process.arguments = arguments
            }
            if let environment { process.environment = environment }
            let out = Pipe()
            let err = Pipe()
            process.standardOutput = out
            process.standardError = err
            process.standardInput = FileHandle.nullDevice
            try process.run()
            // Read both pipes to their end before waiting, so that a large output cannot block it.
            let errBox = DataBox()
            let group = DispatchGroup()
            DispatchQueue.global().async(group: group) {
                errBox.data = err.fileHandleForReading.readDataToEndOfFile()
            }
            let outData = out.fileHandleForReading.readDataToEndOfFile()
            group.wait()
            let errData = errBox.data
            process.waitUntilExit()
            return CLIRun(
                status: process.terminationStatus, stdout: String(decoding: outData, as: UTF8.self),
                stderr: String(decoding: errData, as: UTF8.self))
        }
    }
}

/// Written by one thread, read after a DispatchGroup wait.
private final class DataBox: @unchecked Sendable {
    var data = Data()
}

struct ExitStatusTests {
    @Test func errorCodesMapToSysexits() {
        let cases: [(String, SysExit)] = [
            ("INSTANCE_BUSY", .busy), ("BACKUP_BUSY", .busy), ("BACKUP_IN_USE", .busy), ("UNAUTHORIZED", .noPermission),
            ("SHUTTING_DOWN", .unavailable), ("UNAVAILABLE", .unavailable), ("INVALID_FIELD", .usage),
            ("UNKNOWN_INSTANCE", .usage), ("JOB_NOT_FOUND", .usage), ("SERVER_RUNNING", .failure),
            ("VERIFY_FAILED", .failure), ("INTERRUPTED", .failure), ("CANCELED", .canceled), ("CONFIG_ERROR", .config),
            ("IO_ERROR", .failure), ("SOMETHING_NEW", .failure),
        ]
        for (code, status) in cases { #expect(SysExit.of(code: code) == status, "\(code)") }
        #expect(
            SysExit.of(code: "SYSTEM_ERROR", message: "cannot attach segment 0x1: Permission denied") == .noPermission)
        #expect(
            SysExit.of(code: "IO_ERROR", message: "cannot set the owner of /x: Operation not permitted")
                == .noPermission)
        #expect(SysExit.of(code: "IO_ERROR", message: "cannot write /x: No space left on device") == .failure)
        #expect(SysExit.of(EngineError(.segmentsExist, "x")) == .failure)
        #expect(SysExit.of(APIError(.instanceBusy, "x")) == .busy)
        #expect(SysExit.of(EngineError(.invalidRequest, "x")) == .usage)
    }

    @Test func theHelpTableListsEveryStatus() {
        for status in SysExit.allCases {
            #expect(SysExit.help.contains("\n  \(status.rawValue) "), "\(status)")
        }
    }

    @Test func anUnknownFirstWordIsNamed() {
        let known = ["serve", "backup", "help"]
        #expect(CommandLineCheck.unknownCommand(["frobnicate"], known: known)?.contains("'frobnicate'") == true)
        #expect(CommandLineCheck.unknownCommand(["backpu"], known: known)?.contains("did you mean 'backup'") == true)
        #expect(CommandLineCheck.unknownCommand(["-c", "x.yml"], known: known) == nil)
        #expect(CommandLineCheck.unknownCommand(["backup", "--x"], known: known) == nil)
        #expect(CommandLineCheck.unknownCommand([], known: known) == nil)
    }
}

struct ProgressLineTests {
    @Test func etaFromTheFractionDone() {
        #expect(ProgressLine.eta(done: 0, total: 100, elapsed: 5) == nil)
        #expect(ProgressLine.eta(done: 0, total: 0, elapsed: 5) == nil)
        #expect(ProgressLine.eta(done: 25, total: 100, elapsed: 10) == 30)
        #expect(ProgressLine.eta(done: 100, total: 100, elapsed: 10) == 0)
        #expect(ProgressLine.eta(done: 5, total: 1000, elapsed: 10) == nil)  // under 1 %
    }

    @Test func clockAndLine() {
        #expect(ProgressLine.clock(7) == "0:07")
        #expect(ProgressLine.clock(750) == "12:30")
        #expect(ProgressLine.clock(3723) == "1:02:03")
        let line = ProgressLine.render(
            label: "backup", bytesDone: 512 << 20, bytesTotal: 1 << 30, segmentsDone: 3, segmentsTotal: 8,
            bytesPerSecond: 850e6, etaSeconds: 62)
        #expect(line == "backup  50.0% 512.0 MiB / 1.0 GiB, 3/8 segments, 850 MB/s, ETA 1:02")
        let early = ProgressLine.render(
            label: "restore", bytesDone: 0, bytesTotal: 10, segmentsDone: 0, segmentsTotal: 1, bytesPerSecond: 0,
            etaSeconds: nil)
        #expect(early.hasSuffix("ETA -"))
    }
}

struct LocalJobReportTests {
    @Test func aLocalRunIsReportedAsTheAPIsJobObject() throws {
        // The engine keeps PlannedSegment's memberwise init internal; its Codable form builds one.
        let key = try JSONEncoder().encode(#require(SegmentKey(rawValue: 0xae01_1000)))
        let segmentJSON = """
            {"key":\(String(decoding: key, as: UTF8.self)),"kind":"pi-base","namespace":"test","size":4096,\
            "file":"ae011000.dat","compressed":false,"uid":0,"gid":0,"mode":384}
            """
        let segment = try JSONDecoder().decode(PlannedSegment.self, from: Data(segmentJSON.utf8))
        let run = LocalJobReport.Run(
            type: .backup,
            request: JobRequest(instance: 1, namespaces: ["test"], compress: false, verify: true, threads: 0),
            directory: "/b/x1", segments: [segment], started: 1000)
        let failed = LocalJobReport.resource(
            run, progress: JobProgress().snapshot(),
            finished: 1002, error: EngineError(.io, "disk full"))
        let data = try #require(JSONOutput.encode(failed))
        let object = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        #expect(object["state"] as? String == "failure")
        #expect(object["backup"] as? String == "x1")
        #expect((object["error"] as? [String: Any])?["code"] as? String == "IO_ERROR")
        let progress = try #require(object["progress"] as? [String: Any])
        #expect(progress["bytes-total"] as? Int == 4096)
        #expect(progress["percentage-done"] as? Int == 0)
        #expect((object["segments"] as? [[String: Any]])?.first?["state"] as? String == "failed")
        #expect((object["links"] as? [String: Any])?.isEmpty == true)
        #expect(object["started"] as? String == "1970-01-01T00:16:40.000Z")
    }
}

/// The binary itself: version, usage errors, exit statuses, `--json` with the API's field names.
struct CLIProcessTests {
    @Test func versionAndUsageErrors() async throws {
        let version = try await CLIRun.run(["--version"])
        #expect(version.status == 0)
        #expect(version.stdout == Engine.version + "\n")
        let unknown = try await CLIRun.run(["frobnicate"])
        #expect(unknown.status == 64)
        #expect(unknown.stderr.contains("unknown command 'frobnicate'"), "\(unknown.stderr)")
        let badOption = try await CLIRun.run(["segments", "--nope"])
        #expect(badOption.status == 64)
        let range = try await CLIRun.run(["segments", "--instance", "99", "--json"])
        #expect(range.status == 64)
        #expect(range.stderr.contains("INVALID_REQUEST"))
        let config = try await CLIRun.run(["validate", "-c", "/nonexistent/asmtd.yml"])
        #expect(config.status == 78)
        let help = try await CLIRun.run(["--help"])
        #expect(help.stdout.contains("75   busy"))
    }
}

extension ShmTests {
    @Suite struct LocalCLITests {
        @Test func backupRestoreAnalyzeAndSegmentsSpeakTheAPIsJSON() async throws {
            let segments = try await TestSegments.make(instance: 15, nsid: 25, name: "cli-local")
            defer { segments.cleanUp() }
            let directory = try TemporaryDirectory()
            let path = directory.path + "/b"
            let common = ["--instance", "15", "--namespace", "cli-local", "--path", path]

            let listed = try await CLIRun.run(["segments", "--instance", "15", "--json"])
            #expect(listed.status == 0)
            let mine = (listed.json["segments"] as? [[String: Any]] ?? []).filter { $0["nsid"] as? Int == 25 }
            #expect(mine.count == 7, "\(listed.stdout)")
            #expect(mine.first?["mode"] as? String == "0600")
            #expect(mine.first?["attached"] as? Int == 0)
            #expect(mine.first?["creator-pid"] is Int)
            #expect(!listed.stdout.contains("attachCount"))

            let analyzed = try await CLIRun.run(["analyze"] + common + ["--json"])
            #expect(analyzed.status == 0, "\(analyzed.stderr)")
            #expect(analyzed.json["dry-run"] as? Bool == true)
            #expect(analyzed.json["total-bytes"] is Int)
            #expect((analyzed.json["segments"] as? [[String: Any]])?.first?["mode"] as? String == "0600")

            let backup = try await CLIRun.run(["backup"] + common + ["--json", "--progress"])
            #expect(backup.status == 0, "\(backup.stderr)")
            #expect(backup.json["state"] as? String == "success", "\(backup.stdout)")
            #expect(backup.json["type"] as? String == "backup")
            let progress = try #require(backup.json["progress"] as? [String: Any])
            #expect(progress["bytes-done"] as? Int == progress["bytes-total"] as? Int)
            #expect(progress["segments-done"] as? Int == 7)

            // The files exist now: a second backup is refused (exit 1), nothing on stdout.
            let again = try await CLIRun.run(["backup"] + common + ["--json"])
            #expect(again.status == 1)
            #expect(again.stderr.contains("FILES_EXIST"), "\(again.stderr)")
            #expect(again.stdout.isEmpty)

            // A restore over live segments is refused; after they go, it succeeds.
            let over = try await CLIRun.run(["restore"] + common)
            #expect(over.status == 1)
            #expect(over.stderr.contains("SEGMENTS_EXIST"))
            segments.cleanUp()
            let restore = try await CLIRun.run(["restore"] + common + ["--json"])
            #expect(restore.status == 0, "\(restore.stderr)")
            #expect(restore.json["state"] as? String == "success")
            #expect(
                (restore.json["segments"] as? [[String: Any]])?.allSatisfy { $0["state"] as? String == "done" } == true)
        }

        @Test func notRootIsNotPermitted() async throws {
            // A copy nobody can run: the checkout may lie below a directory only root may enter (mktemp -d's 0700).
            let directory = try TemporaryDirectory()
            let binary = directory.path + "/asmtd"
            try FileManager.default.copyItem(atPath: AsmtdProcess.binary, toPath: binary)
            try #require(chmod(directory.path, 0o755) == 0 && chmod(binary, 0o755) == 0)
            for command in ["analyze", "backup", "restore"] {
                let run = try await CLIRun.run(
                    [command, "--instance", "15", "--namespace", "cli-noperm", "--path", "/tmp/none"], user: "nobody",
                    binary: binary)
                #expect(run.status == 77, "\(command): \(run.status) \(run.stderr)")
                #expect(run.stderr.contains("must run as root"))
            }
        }
    }
}
