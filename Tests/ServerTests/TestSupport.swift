import Foundation
import Logging
import ShmEngine
import ShmSynthetic
import TestSupport
import Testing

@testable import Server

/// A real `asmtd` subprocess on an ephemeral loopback port, with its own config, state dir and backup path.
///
/// A subprocess rather than an in-process server: the test process's cooperative thread pool (two threads
/// here) is shared with every other suite, and synchronous tests elsewhere would starve the handlers.
final class TestServer: @unchecked Sendable {
    let directory: TemporaryDirectory
    let process: AsmtdProcess
    let port: Int
    var backupPath: String { directory.path + "/backups" }
    var stateDir: String { directory.path + "/state" }

    init(
        instance: Int = 14, namespaces: [String], token: String? = nil, shutdownTimeoutMs: Int = 5000,
        maxBody: Int = 1 << 20, compress: Bool = false
    ) async throws {
        directory = try TemporaryDirectory()
        var auth = ""
        if let token {
            let file = directory.path + "/token"
            try token.write(toFile: file, atomically: true, encoding: .utf8)
            chmod(file, 0o600)
            auth = "  auth: {token-file: token}\n"
        }
        let names = namespaces.joined(separator: ", ")
        let yaml = """
            service:
              http: {port: 0, max-body: \(maxBody)}
            \(auth)  state-dir: state
              runtime-dir: run
              shutdown-timeout: \(shutdownTimeoutMs)
            instances:
              - instance: \(instance)
                backup-path: backups
                namespaces: [\(names)]
                threads: 2
                compress: \(compress)
            """
        try yaml.write(toFile: directory.path + "/asmtd.yml", atomically: true, encoding: .utf8)
        process = try AsmtdProcess(["serve", "-c", directory.path + "/asmtd.yml"])
        port = try await process.waitForPort()
    }

    func request(
        _ method: String, _ path: String, body: String? = nil, headers: [String: String] = [:]
    ) async throws -> TestResponse {
        try await TestSupport.request(port: port, method, path, body: body, headers: headers)
    }

    func waitForJob(_ id: String, seconds: Double = 120) async throws -> [String: Any] {
        try await ServerTests.waitForJob(port: port, id, seconds: seconds)
    }

    /// SIGTERM and wait (blocking; for `defer`, which cannot await): the running job is finished or
    /// canceled and cleaned up before the test removes its segments.
    func stopNow() {
        process.signal(SIGTERM)
        process.process.waitUntilExit()
    }

    /// SIGTERM, then the exit status.
    @discardableResult
    func stop() async -> Int32? {
        process.signal(SIGTERM)
        return await process.waitForExit()
    }
}

/// Real shm segments for a test: one namespace of its own nsid and name on instance 14 (or 15 for the client and
/// long-poll tests, nsids 24..28), removed by shmid; leftovers of an earlier crashed run first.
final class TestSegments: @unchecked Sendable {
    let instance: Int
    let nsid: Int
    let name: String
    private(set) var created: [LiveSegment]

    private init(instance: Int, spec: SyntheticNamespace, created: [LiveSegment]) {
        self.instance = instance
        self.nsid = spec.nsid
        self.name = spec.name
        self.created = created
    }

    /// Created off the cooperative pool: filling hundreds of MiB must not hold one of its threads.
    static func make(
        instance: Int = 14, nsid: Int, name: String, stages: Int = 2, stageSize: Int = 1 << 20, uid: UInt32 = 0,
        gid: UInt32 = 0, mode: UInt32 = 0o600
    ) async throws -> TestSegments {
        precondition(instance == 14 ? (1...16).contains(nsid) : instance == 15 && (24...28).contains(nsid))
        let spec = SyntheticNamespace(
            name: name, nsid: nsid, primaryStages: stages, stageSize: stageSize, secondaryStages: 1, dataStages: 1,
            uid: uid, gid: gid, mode: mode, seed: UInt64(nsid))
        let created = try await TestSegmentMaker.make(instance: instance, spec, clearingLeftovers: true)
        return TestSegments(instance: instance, spec: spec, created: created)
    }

    /// The live segments of this test's nsid (the originals or the restored ones), listed without attaching
    /// them, so that the attach counts seen by jobs stay undisturbed.
    func live() throws -> [LiveSegment] { SharedMemoryReader.live(instance: instance, nsid: nsid) }

    func removeOriginals() {
        SyntheticSegments.remove(created)
        created = []
    }

    /// Removes every segment of this nsid (originals and those a restore created).
    func cleanUp() {
        SyntheticSegments.remove(created)
        TestSegmentMaker.removeAll(instance: instance, nsid: nsid)
    }
}

/// Polls a job of the service on `port` (every `interval`) until `done` holds for it or `seconds` pass; returns
/// the last job object. The API has no push for these states, so this is the one bounded poll of the job tests.
func pollJob(
    port: Int, _ id: String, every interval: Duration, seconds: Double, until done: ([String: Any]) -> Bool
) async throws -> [String: Any] {
    let deadline = ContinuousClock.now + .seconds(seconds)
    while true {
        let job = try await request(port: port, "GET", "/v1/jobs/\(id)").json
        if done(job) || ContinuousClock.now > deadline { return job }
        try await Task.sleep(for: interval)
    }
}

/// Polls a job until it ends (or `seconds` pass); returns the last job object.
func waitForJob(port: Int, _ id: String, seconds: Double = 120) async throws -> [String: Any] {
    try await pollJob(port: port, id, every: .milliseconds(20), seconds: seconds) { job in
        ["success", "failure", "canceled"].contains(job["state"] as? String ?? "")
    }
}

/// Polls a job until it leaves `queued` (running, or already ended); returns the last job object.
func waitUntilStarted(port: Int, _ id: String) async throws -> [String: Any] {
    try await pollJob(port: port, id, every: .milliseconds(1), seconds: 60) { $0["state"] as? String != "queued" }
}

/// Every test that plans or runs jobs on instance 14 runs one at a time: their segments are hundreds of MiB
/// and the machine has two cores shared with the other suites.
@Suite(.serialized) struct ShmTests {}

extension Config {
    /// One instance and a state directory, built in code, for a service or queue run inside the test process
    /// (port 0: the kernel picks a free one when the service starts).
    static func inProcess(stateDir: String, instance: Int, backupPath: String, namespaces: [String]) -> Config {
        var settings = ServiceSettings()
        settings.port = 0
        settings.stateDir = stateDir
        return Config(
            file: "", service: settings,
            instances: [InstanceConfig(instance: instance, backupPath: backupPath, namespaces: namespaces)],
            authToken: nil)
    }
}
