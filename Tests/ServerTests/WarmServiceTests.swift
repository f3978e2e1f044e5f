import Foundation
import ShmSynthetic
import TestSupport
import Testing

@testable import Server
@testable import ShmEngine

/// An asmtd with a short watch interval on instance 13, and segments of its own nsid (28..31), removed by shmid.
final class WarmFixture: @unchecked Sendable {
    static let instance = 13
    let directory: TemporaryDirectory
    let nsid: Int
    let name: String
    var process: AsmtdProcess?
    var port = 0
    var created: [LiveSegment] = []

    init(nsid: Int, name: String) throws {
        precondition((28...31).contains(nsid))
        directory = try TemporaryDirectory()
        self.nsid = nsid
        self.name = name
        TestSegmentMaker.removeLeftovers(instance: Self.instance, nsid: nsid)
    }

    var backupPath: String { directory.path + "/backups" }

    func writeConfig(extra: String = "") throws {
        let yaml = """
            service:
              http: {port: 0}
              state-dir: state
              watch-interval: 100
              shutdown-timeout: 5000
            instances:
              - instance: \(Self.instance)
                backup-path: backups
                namespaces: [\(name)]
                threads: 2
            \(extra)
            """
        try yaml.write(toFile: directory.path + "/asmtd.yml", atomically: true, encoding: .utf8)
    }

    func start(extra: String = "", environment: [String: String] = [:]) async throws {
        try writeConfig(extra: extra)
        process = try AsmtdProcess(["serve", "-c", directory.path + "/asmtd.yml"], environment: environment)
        port = try await process!.waitForPort()
    }

    @discardableResult
    func stop() async -> Int32? {
        process?.signal(SIGTERM)
        let status = await process?.waitForExit()
        process = nil
        return status
    }

    func createSegments() throws {
        let spec = SyntheticNamespace(
            name: name, nsid: nsid, primaryStages: 2, stageSize: 1 << 20, secondaryStages: 1, dataStages: 1, uid: 0,
            gid: 0, mode: 0o600, seed: UInt64(nsid))
        created = try TestSegmentMaker.create(instance: Self.instance, spec)
    }

    func request(_ method: String, _ path: String, body: String? = nil) async throws -> TestResponse {
        try await TestSupport.request(port: port, method, path, body: body)
    }

    /// Backs up (202), waits for success; returns the backup id.
    func backup() async throws -> String {
        let accepted = try await request("POST", "/v1/backup", body: #"{"instance":13}"#)
        #expect(accepted.status == 202, "\(accepted.text)")
        let id = try #require(accepted.json["id"] as? String)
        #expect(try await waitForJob(id)["state"] as? String == "success")
        return id
    }

    func waitForJob(_ id: String) async throws -> [String: Any] {
        try await ServerTests.waitForJob(port: port, id, seconds: 60)
    }

    func backupView(_ id: String) async throws -> [String: Any] {
        try await request("GET", "/v1/backups/\(id)").json
    }

    /// Polls until the backup's freshness is `expected` (or 10 s pass); returns the last value.
    func waitForFreshness(_ id: String, _ expected: String) async throws -> String? {
        let deadline = Date().addingTimeInterval(10)
        while true {
            let freshness = try await backupView(id)["freshness"] as? String
            if freshness == expected || Date() > deadline { return freshness }
            try await Task.sleep(for: .milliseconds(50))
        }
    }

    /// The live segments of this nsid, listed without attaching.
    func live() -> [LiveSegment] {
        SharedMemoryReader.live(instance: Self.instance, nsid: nsid)
    }

    func removeLive() {
        for segment in live() where segment.attachCount == 0 { shmctl(segment.shmid, IPC_RMID, nil) }
    }

    /// Attaches a segment as asd would (and detaches when `keep` is false).
    @discardableResult
    func attach(_ segment: LiveSegment, keep: Bool) -> UnsafeMutableRawPointer? {
        guard let address = shmat(segment.shmid, nil, SHM_RDONLY), address != UnsafeMutableRawPointer(bitPattern: -1)
        else { return nil }
        if !keep {
            shmdt(address)
            return nil
        }
        return address
    }

    deinit {
        if let process, process.process.isRunning {
            kill(process.process.processIdentifier, SIGTERM)
            process.process.waitUntilExit()
        }
        SyntheticSegments.remove(created)
        TestSegmentMaker.removeAll(instance: Self.instance, nsid: nsid)
    }
}

extension ShmTests {
    /// Issue 9 §1 and §2 against a real asmtd and real segments.
    @Suite(.serialized) struct WarmServiceTests {
        @Test func anAttachAfterTheBackupMakesItStaleAndRestoreRefusesIt() async throws {
            let f = try WarmFixture(nsid: 28, name: "warm28")
            try f.createSegments()
            try await f.start()
            let id = try await f.backup()
            #expect(try await f.waitForFreshness(id, "fresh") == "fresh")
            let manifest = try #require(try BackupManifest.load(directory: f.backupPath + "/" + id))
            #expect(manifest.evidence?.segments.count == f.live().count)
            // A listing by asmtd itself attaches the bases: it never makes the backup stale.
            #expect(try await f.request("GET", "/v1/segments?instance=13").status == 200)
            try await Task.sleep(for: .milliseconds(300))
            #expect(try await f.backupView(id)["freshness"] as? String == "fresh")
            // Another process attaches and detaches a stage.
            f.attach(f.live()[1], keep: false)
            #expect(try await f.waitForFreshness(id, "stale") == "stale")
            let evidence = try #require(try await f.backupView(id)["evidence"] as? [String: Any])
            let namespaces = try #require(evidence["namespaces"] as? [[String: Any]])
            #expect((namespaces.first?["reason"] as? String)?.contains(f.live()[1].key.hex) == true)
            f.removeLive()
            let refused = try await f.request("POST", "/v1/restore", body: #"{"instance":13}"#)
            #expect(refused.status == 409)
            #expect(refused.errorCode == "BACKUP_STALE")
            let forced = try await f.request("POST", "/v1/restore", body: #"{"instance":13,"force":true}"#)
            #expect(forced.status == 202, "\(forced.text)")
            let job = try await f.waitForJob(try #require(forced.json["id"] as? String))
            #expect(job["state"] as? String == "success")
            #expect((job["request"] as? [String: Any])?["force"] as? Bool == true)
            #expect((job["warnings"] as? [String])?.first?.hasPrefix("forced:") == true)
            #expect(try await f.backupView(id)["freshness"] as? String == "stale")
            #expect(f.process?.text.contains("forced restore of a stale backup") == true)
            await f.stop()
        }

        @Test func watchedUntilGoneStaysFreshRestoreThenAttachConsumesIt() async throws {
            let f = try WarmFixture(nsid: 29, name: "warm29")
            try f.createSegments()
            try await f.start()
            let id = try await f.backup()
            f.removeLive()
            try await Task.sleep(for: .milliseconds(300))
            #expect(try await f.backupView(id)["freshness"] as? String == "fresh")
            let status = try await f.request("GET", "/v1/instances/13").json
            let ns = try #require((status["namespaces"] as? [[String: Any]])?.first)
            #expect(status["server"] as? String == "absent")
            #expect(ns["warm-restart-ready"] as? Bool == true)
            #expect(ns["backup"] as? String == id)
            #expect(ns["estimated-restore-seconds"] as? Int != nil)
            let accepted = try await f.request("POST", "/v1/restore", body: #"{"instance":13}"#)
            #expect(accepted.status == 202, "\(accepted.text)")
            #expect(
                try await f.waitForJob(try #require(accepted.json["id"] as? String))["state"] as? String == "success")
            try await Task.sleep(for: .milliseconds(300))
            #expect(try await f.backupView(id)["freshness"] as? String == "fresh")
            let stopped = try await f.request("GET", "/v1/instances/13").json
            #expect(stopped["server"] as? String == "stopped")
            // asd starts on the restored segments: the backup is consumed.
            let address = f.attach(f.live()[0], keep: true)
            defer { if let address { shmdt(address) } }
            #expect(try await f.waitForFreshness(id, "stale") == "stale")
            let running = try await f.request("GET", "/v1/instances/13").json
            #expect(running["server"] as? String == "running")
            let runningNS = try #require((running["namespaces"] as? [[String: Any]])?.first)
            #expect(runningNS["warm-restart-ready"] as? Bool == false)
            #expect((runningNS["reasons"] as? [String])?.first?.contains("running") == true)
            let metrics = try await f.request("GET", "/metrics").text
            #expect(metrics.contains("asmtd_warm_restart_ready{aerospike_instance=\"13\",namespace=\"warm29\"} 0"))
            #expect(metrics.contains("asmtd_backup_age_seconds{aerospike_instance=\"13\",namespace=\"warm29\"}"))
            await f.stop()
        }

        @Test func aGapIsJudgedByTheKernelsFields() async throws {
            let f = try WarmFixture(nsid: 30, name: "warm30")
            try f.createSegments()
            try await f.start()
            let first = try await f.backup()
            #expect(await f.stop() == 0)
            // Unchanged while asmtd was stopped: still fresh after the restart.
            try await f.start()
            #expect(try await f.backupView(first)["freshness"] as? String == "fresh")
            // Killed (no clean stop), then the segments are removed: it cannot vouch any more.
            f.process?.signal(SIGKILL)
            _ = await f.process?.waitForExit()
            f.process = nil
            f.removeLive()
            try await f.start()
            #expect(try await f.backupView(first)["freshness"] as? String == "unknown")
            // Unknown is not stale: a restore is accepted, with a warning in the job.
            let accepted = try await f.request("POST", "/v1/restore", body: #"{"instance":13}"#)
            #expect(accepted.status == 202, "\(accepted.text)")
            #expect((accepted.json["warnings"] as? [String])?.first?.contains("unknown") == true)
            #expect(
                try await f.waitForJob(try #require(accepted.json["id"] as? String))["state"] as? String == "success")
            let second = try await f.backup()
            #expect(await f.stop() == 0)
            // Attached and detached while asmtd was stopped: stale at the next start.
            f.attach(f.live()[0], keep: false)
            try await f.start()
            #expect(try await f.backupView(second)["freshness"] as? String == "stale")
            await f.stop()
        }

        @Test func keepRemovesTheOldestButNeverTheNewestFreshOne() async throws {
            let f = try WarmFixture(nsid: 29, name: "keep29")
            try f.createSegments()
            try await f.start(extra: "    keep: 1")
            let first = try await f.backup()
            let second = try await f.backup()
            _ = await f.process?.waitForOutput { $0.contains("backup removed by keep") ? true : nil }
            #expect(f.process?.text.contains("backup removed by keep") == true)
            #expect(FileSystem.list(f.backupPath) == [second])
            #expect(try await f.request("GET", "/v1/backups/\(first)").errorCode == "BACKUP_NOT_FOUND")
            await f.stop()
        }

        @Test func tooLittleSpaceIs507BeforeAnythingIsWritten() async throws {
            let f = try WarmFixture(nsid: 28, name: "space28")
            try f.createSegments()
            try FileManager.default.createDirectory(atPath: f.backupPath, withIntermediateDirectories: true)
            guard mount("tmpfs", f.backupPath, "tmpfs", 0, "size=4m,mode=0700") == 0 else {
                Issue.record("cannot mount a small tmpfs: \(String(cString: strerror(errno)))")
                return
            }
            defer { umount2(f.backupPath, Int32(MNT_DETACH)) }
            try await f.start()
            let dry = try await f.request("POST", "/v1/backup", body: #"{"instance":13,"dry-run":true}"#)
            #expect(dry.status == 507)
            #expect(dry.errorCode == "INSUFFICIENT_STORAGE")
            let refused = try await f.request("POST", "/v1/backup", body: #"{"instance":13}"#)
            #expect(refused.status == 507)
            #expect(FileSystem.list(f.backupPath).isEmpty)
            await f.stop()
        }
    }
}
