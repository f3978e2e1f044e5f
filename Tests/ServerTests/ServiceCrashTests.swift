import Foundation
import ShmEngine
import ShmSynthetic
import TestSupport
import Testing

@testable import Server

/// Real segments of one namespace on instance 13, listed and read with shmctl / shmat only (an independent
/// reader: nothing of the engine), removed by shmid.
final class ServiceSegments: @unchecked Sendable {
    static let instance = 13
    let nsid: Int
    let name: String
    private(set) var originals: [String: [UInt8]] = [:]

    init(nsid: Int, name: String) throws {
        self.nsid = nsid
        self.name = name
        // 8 x 64 MiB: with one thread the restore runs for a few hundred ms, long enough to be caught running.
        let spec = SyntheticNamespace(
            name: name, nsid: nsid, primaryStages: 8, stageSize: 64 << 20, secondaryStages: 1, dataStages: 1,
            uid: 0, gid: 0, mode: 0o600, seed: UInt64(nsid))
        let created = try TestSegmentMaker.create(instance: Self.instance, spec, clearingLeftovers: true)
        for segment in created { originals[segment.key.hex] = SharedMemoryReader.contents(segment) }
    }

    static func make(nsid: Int, name: String) async throws -> ServiceSegments {
        try await blocking { try ServiceSegments(nsid: nsid, name: name) }
    }

    func live() -> [LiveSegment] { SharedMemoryReader.live(instance: Self.instance, nsid: nsid) }

    /// True when the live segments are exactly the originals' keys, each byte-identical to its original.
    func matchOriginals() -> Bool {
        let segments = live()
        guard Set(segments.map(\.key.hex)) == Set(originals.keys) else { return false }
        return segments.allSatisfy { SharedMemoryReader.contents($0) == originals[$0.key.hex] }
    }

    func removeLive() { TestSegmentMaker.removeAll(instance: Self.instance, nsid: nsid) }
}

/// Runs `command` and returns its exit status.
private func runTool(_ command: String, _ arguments: [String]) throws -> Int32 {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: command)
    process.arguments = arguments
    try process.run()
    process.waitUntilExit()
    return process.terminationStatus
}

extension ShmTests {
    /// The service killed or starved of its state dir around a restore, then restarted: recovery settles the
    /// job on the evidence in shared memory, never on pids nor on the record alone.
    @Suite struct ServiceCrashTests {
        /// `--kill-child`: when a failed test drops the `unshare` process, the service in the namespace dies with it.
        static let unshare = ["/usr/bin/unshare", "--pid", "--fork", "--mount-proc", "--kill-child"]

        /// Instance 13, one thread, compressed backups.
        func writeConfig(_ directory: TemporaryDirectory, namespace: String) throws -> String {
            try ProcessTests().writeConfig(directory, namespace: namespace, instance: 13)
        }

        /// Polls until the job is running with some bytes written (its created segments are journaled by then),
        /// or has ended; returns the last job object.
        func waitUntilWriting(port: Int, _ id: String) async throws -> [String: Any] {
            try await pollJob(port: port, id, every: .milliseconds(2), seconds: 60) { job in
                let state = job["state"] as? String
                let done = ((job["progress"] as? [String: Any])?["bytes-done"] as? NSNumber)?.int64Value ?? 0
                return (state == "running" && done > 0) || (state != "running" && state != "queued")
            }
        }

        /// A backup of the namespace through the service, then the originals removed.
        func backUp(port: Int, _ segments: ServiceSegments) async throws {
            let backup = try await request(port: port, "POST", "/v1/backup", body: #"{"instance":13}"#)
            let id = try #require(backup.json["id"] as? String, "\(backup.text)")
            let job = try await waitForJob(port: port, id)
            try #require(job["state"] as? String == "success", "\(job)")
            segments.removeLive()
            try #require(segments.live().isEmpty)
        }

        func startRestore(port: Int) async throws -> String {
            let restore = try await request(port: port, "POST", "/v1/restore", body: #"{"instance":13,"threads":1}"#)
            return try #require(restore.json["id"] as? String, "\(restore.text)")
        }

        /// SIGKILL to the namespace's init (the service, pid 1 in there): the kernel kills everything in the
        /// namespace; then `unshare` itself ends.
        func killNamespace(_ launcher: AsmtdProcess) async throws {
            let pid = launcher.process.processIdentifier
            let children = try String(contentsOfFile: "/proc/\(pid)/task/\(pid)/children", encoding: .utf8)
            let child = try #require(Int32(children.split(separator: " ").first ?? ""), "unshare has no child")
            kill(child, SIGKILL)
            launcher.signal(SIGKILL)
            #expect(await launcher.waitForExit() != nil)
            // The namespace's init is gone once its /proc entry is (reaped by unshare, or by init when orphaned).
            let deadline = Date().addingTimeInterval(30)
            while FileManager.default.fileExists(atPath: "/proc/\(child)") && Date() < deadline {
                try await Task.sleep(for: .milliseconds(10))
            }
            #expect(!FileManager.default.fileExists(atPath: "/proc/\(child)/exe"), "the service must be dead")
        }

        @Test func aRestoreKilledInItsOwnPIDNamespaceIsRemovedAtRestart() async throws {
            let segments = try await ServiceSegments.make(nsid: 13, name: "crash-pidns")
            defer { segments.removeLive() }
            let directory = try TemporaryDirectory()
            let config = try writeConfig(directory, namespace: "crash-pidns")
            let first = try AsmtdProcess(["-c", config], launcher: Self.unshare)
            let port = try await first.waitForPort()
            try await backUp(port: port, segments)

            let id = try await startRestore(port: port)
            let busy = try await waitUntilWriting(port: port, id)
            #expect(busy["state"] as? String == "running", "the restore must still run when it is killed: \(busy)")
            try await killNamespace(first)
            #expect(!segments.live().isEmpty, "a killed restore leaves segments behind until the restart")
            let record = try String(contentsOfFile: directory.path + "/state/jobs/\(id).json", encoding: .utf8)
            #expect(record.contains("\"running\""), "\(record)")

            // Restarted outside the namespace: the recorded pid means nothing here.
            let second = try AsmtdProcess(["-c", config])
            let port2 = try await second.waitForPort()
            let job = try await request(port: port2, "GET", "/v1/jobs/\(id)").json
            #expect(job["state"] as? String == "failure", "\(job)")
            let error = job["error"] as? [String: Any]
            #expect(error?["code"] as? String == "INTERRUPTED", "\(job)")
            let message = error?["message"] as? String ?? ""
            #expect(message.contains("removed") && !message.contains("removed 0 "), "\(job)")
            #expect(segments.live().isEmpty, "no segment of the namespace survives the restart")

            // The backup is intact and restores again, byte for byte.
            let again = try await startRestore(port: port2)
            let done = try await waitForJob(port: port2, again)
            #expect(done["state"] as? String == "success", "\(done)")
            #expect(segments.matchOriginals(), "the new restore gives back the backed-up bytes")
            second.signal(SIGTERM)
            #expect(await second.waitForExit() == 0)
        }

        @Test func aFinishedRestoreKilledInItsOwnPIDNamespaceStaysSuccess() async throws {
            let segments = try await ServiceSegments.make(nsid: 14, name: "crash-done")
            defer { segments.removeLive() }
            let directory = try TemporaryDirectory()
            let config = try writeConfig(directory, namespace: "crash-done")
            let first = try AsmtdProcess(["-c", config], launcher: Self.unshare)
            let port = try await first.waitForPort()
            try await backUp(port: port, segments)
            let id = try await startRestore(port: port)
            let finished = try await waitForJob(port: port, id)
            #expect(finished["state"] as? String == "success", "\(finished)")
            try await killNamespace(first)

            let second = try AsmtdProcess(["-c", config])
            let port2 = try await second.waitForPort()
            let job = try await request(port: port2, "GET", "/v1/jobs/\(id)").json
            #expect(job["state"] as? String == "success", "\(job)")
            #expect(segments.matchOriginals(), "the restored segments survive the kill and the restart")
            second.signal(SIGTERM)
            #expect(await second.waitForExit() == 0)
        }

        /// The jobs directory turns read-only while the restore runs (after its created segments were journaled):
        /// the final record cannot be written, the API says success, the record on disk says running. A kill and
        /// a restart must keep the committed segments and read `success`.
        @Test func aRestoreWhoseFinalRecordWasNotWrittenSurvivesTheRestart() async throws {
            let segments = try await ServiceSegments.make(nsid: 5, name: "crash-rofs")
            defer { segments.removeLive() }
            let directory = try TemporaryDirectory()
            let config = try writeConfig(directory, namespace: "crash-rofs")
            let jobs = directory.path + "/state/jobs"
            try FileManager.default.createDirectory(
                atPath: jobs, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
            chmod(directory.path + "/state", 0o700)
            try #require(try runTool("/usr/bin/mount", ["--bind", jobs, jobs]) == 0)
            defer { _ = try? runTool("/usr/bin/umount", ["-l", jobs]) }

            let first = try AsmtdProcess(["-c", config])
            let port = try await first.waitForPort()
            try await backUp(port: port, segments)
            let id = try await startRestore(port: port)
            let busy = try await waitUntilWriting(port: port, id)
            try #require(busy["state"] as? String == "running", "the restore must still run: \(busy)")
            // EBUSY while a record is being written: try again.
            var readOnly = false
            for _ in 0..<200 where !readOnly {
                readOnly = try runTool("/usr/bin/mount", ["-o", "remount,ro,bind", jobs]) == 0
            }
            try #require(readOnly)
            let finished = try await waitForJob(port: port, id)
            #expect(finished["state"] as? String == "success", "\(finished)")
            let ready = try await request(port: port, "GET", "/ready")
            #expect(ready.text.contains(id), "/ready names the unsaved record: \(ready.text)")
            first.signal(SIGKILL)
            _ = await first.waitForExit()
            #expect(try runTool("/usr/bin/mount", ["-o", "remount,rw,bind", jobs]) == 0)
            let record = try String(contentsOfFile: jobs + "/\(id).json", encoding: .utf8)
            #expect(record.contains("\"running\""), "the final record was not written: \(record)")

            let second = try AsmtdProcess(["-c", config])
            let port2 = try await second.waitForPort()
            let job = try await request(port: port2, "GET", "/v1/jobs/\(id)").json
            #expect(job["state"] as? String == "success", "\(job)")
            #expect(job["error"] == nil || job["error"] is NSNull, "\(job)")
            #expect(segments.matchOriginals(), "the committed segments survive, byte-identical to the backup")
            second.signal(SIGTERM)
            #expect(await second.waitForExit() == 0)
        }
    }
}
