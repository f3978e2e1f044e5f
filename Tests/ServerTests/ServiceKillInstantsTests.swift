import Foundation
import ShmEngine
import ShmSynthetic
import TestSupport
import Testing

@testable import Server

/// A namespace of about 200 MiB on instance 13 (six primary stages of 32 MiB and a data stage), with a copy of
/// every segment's bytes taken at creation, read with shmat only.
private func killInstantsSegments(name: String, nsid: Int) async throws -> (CrashSegments, [String: [UInt8]]) {
    let spec = SyntheticNamespace(
        name: name, nsid: nsid, primaryStages: 6, stageSize: 32 << 20, secondaryStages: 0, dataStages: 1,
        seed: UInt64(60 + nsid))
    let segments = try await CrashSegments(instance: 13, spec)
    var originals: [String: [UInt8]] = [:]
    for segment in segments.created { originals[segment.key.hex] = SharedMemoryReader.contents(segment) }
    return (segments, originals)
}

/// The live segments of instance 13 `nsid`.
private func liveSegments(nsid: Int) -> [LiveSegment] {
    SharedMemoryReader.live(instance: 13, nsid: nsid)
}

/// `instants` delays spread evenly from 0 to 1.5 times `duration`.
private func spread(_ duration: Duration, _ instants: Int) -> [Duration] {
    (0..<instants).map { duration * (1.5 * Double($0) / Double(instants - 1)) }
}

extension ShmTests {
    /// The service SIGKILLed at many instants over a job (restore: instance 13 nsid 15, backup: nsid 16), then
    /// restarted: each job ends either complete or interrupted with nothing left half done.
    @Suite struct ServiceKillInstantsTests {
        /// Instance 13, one thread.
        func writeConfig(_ directory: TemporaryDirectory, namespace: String, compress: Bool) throws -> String {
            try ProcessTests().writeConfig(directory, namespace: namespace, instance: 13, compress: compress)
        }

        func job(port: Int, _ id: String) async throws -> [String: Any] {
            try await request(port: port, "GET", "/v1/jobs/\(id)").json
        }

        func waitForEnd(port: Int, _ id: String) async throws -> [String: Any] {
            try await waitForJob(port: port, id)
        }

        func submit(port: Int, _ path: String) async throws -> String {
            let body = path == "/v1/restore" ? #"{"instance":13,"threads":1}"# : #"{"instance":13}"#
            let response = try await request(port: port, "POST", path, body: body)
            return try #require(response.json["id"] as? String, "\(response.text)")
        }

        /// Runs one job to its end, unkilled: returns its duration from `running` to its end.
        func measure(port: Int, _ path: String) async throws -> (Duration, [String: Any]) {
            let id = try await submit(port: port, path)
            let running = try await waitUntilStarted(port: port, id)
            try #require(running["state"] as? String == "running", "\(running)")
            let start = ContinuousClock.now
            let done = try await waitForEnd(port: port, id)
            return (ContinuousClock.now - start, done)
        }

        /// For each of `instants` delays spread over 0..1.5 × `duration`: submits a job, waits until it runs,
        /// sleeps the delay, SIGKILLs the service and starts it again, then hands the delay and the job as the
        /// restarted service reports it to `check`. `service` and `port` end as the last restarted service's.
        func killAtInstants(
            _ instants: Int, over duration: Duration, service: inout AsmtdProcess, port: inout Int, config: String,
            _ path: String, check: (Duration, [String: Any]) throws -> Void
        ) async throws {
            for delay in spread(duration, instants) {
                let id = try await submit(port: port, path)
                let running = try await waitUntilStarted(port: port, id)
                try #require(
                    running["state"] as? String == "running", "the job must run before the kill: \(running)")
                try await Task.sleep(for: delay)
                service.signal(SIGKILL)
                #expect(await service.waitForExit() != nil, "the killed service must end")
                service = try AsmtdProcess(["-c", config])
                port = try await service.waitForPort()
                try check(delay, try await job(port: port, id))
            }
        }

        @Test func aRestoreKilledAtManyInstantsEndsRestoredOrRemoved() async throws {
            let (segments, originals) = try await killInstantsSegments(name: "kill-restore", nsid: 15)
            defer { TestSegmentMaker.removeAll(instance: 13, nsid: 15) }
            let directory = try TemporaryDirectory()
            let config = try writeConfig(directory, namespace: "kill-restore", compress: true)
            var service = try AsmtdProcess(["-c", config])
            var port = try await service.waitForPort()
            let (backupTime, backup) = try await measure(port: port, "/v1/backup")
            try #require(backup["state"] as? String == "success", "\(backup)")
            segments.remove()
            try #require(liveSegments(nsid: 15).isEmpty)

            func matchesOriginals() -> Bool {
                let live = liveSegments(nsid: 15)
                guard Set(live.map(\.key.hex)) == Set(originals.keys) else { return false }
                return live.allSatisfy { SharedMemoryReader.contents($0) == originals[$0.key.hex] }
            }
            let (duration, unkilled) = try await measure(port: port, "/v1/restore")
            try #require(unkilled["state"] as? String == "success", "\(unkilled)")
            try #require(matchesOriginals(), "the unkilled restore gives back the backed-up bytes")
            TestSegmentMaker.removeAll(instance: 13, nsid: 15)

            var restored = 0
            var removed = 0
            try await killAtInstants(
                12, over: duration, service: &service, port: &port, config: config, "/v1/restore"
            ) { delay, job in
                let state = job["state"] as? String
                let code = (job["error"] as? [String: Any])?["code"] as? String
                if state == "success" {
                    restored += 1
                    #expect(matchesOriginals(), "killed after \(delay): success but the segments differ")
                } else if state == "failure" && code == "INTERRUPTED" {
                    removed += 1
                    #expect(liveSegments(nsid: 15).isEmpty, "killed after \(delay): interrupted but segments left")
                } else {
                    Issue.record("killed after \(delay): neither restored nor interrupted: \(job)")
                }
                TestSegmentMaker.removeAll(instance: 13, nsid: 15)
            }
            print(
                "service restore kill test: backup \(backupTime), restore \(duration), 12 instants,"
                    + " \(restored) restored, \(removed) interrupted")
            #expect(restored > 0, "some kill must come after the restore committed")
            #expect(removed > 0, "some kill must interrupt the restore")
            service.signal(SIGTERM)
            #expect(await service.waitForExit() == 0)
        }

        @Test func aBackupKilledAtManyInstantsEndsCompleteOrWithNothingRestorable() async throws {
            let (segments, _) = try await killInstantsSegments(name: "kill-backup", nsid: 16)
            defer { segments.remove() }
            let directory = try TemporaryDirectory()
            // Plain files: the reader below compares them with the segments byte for byte.
            let config = try writeConfig(directory, namespace: "kill-backup", compress: false)
            var service = try AsmtdProcess(["-c", config])
            var port = try await service.waitForPort()
            let (duration, unkilled) = try await measure(port: port, "/v1/backup")
            try #require(unkilled["state"] as? String == "success", "\(unkilled)")
            let unkilledID = try #require(unkilled["backup"] as? String)
            try #require(checkAfterKill(directory.path + "/backups/" + unkilledID, segments, instant: "unkilled"))
            try FileManager.default.removeItem(atPath: directory.path + "/backups/" + unkilledID)

            var complete = 0
            var interrupted = 0
            try await killAtInstants(
                8, over: duration, service: &service, port: &port, config: config, "/v1/backup"
            ) { delay, job in
                let backupID = try #require(job["backup"] as? String, "\(job)")
                let path = directory.path + "/backups/" + backupID
                let published = checkAfterKill(path, segments, instant: "killed after \(delay)")
                let state = job["state"] as? String
                let code = (job["error"] as? [String: Any])?["code"] as? String
                if published {
                    complete += 1
                    #expect(state == "success", "killed after \(delay): a complete backup but \(job)")
                    let manifest = try BackupManifest.load(directory: path)
                    #expect(manifest != nil, "killed after \(delay): a complete backup has its manifest")
                } else {
                    interrupted += 1
                    #expect(
                        state == "failure" && code == "INTERRUPTED", "killed after \(delay): no backup but \(job)")
                }
                if FileManager.default.fileExists(atPath: path) { try FileManager.default.removeItem(atPath: path) }
            }
            print(
                "service backup kill test: backup \(duration), 8 instants, \(complete) complete,"
                    + " \(interrupted) interrupted")
            #expect(complete > 0, "some kill must come after the backup was published")
            #expect(interrupted > 0, "some kill must interrupt the backup")
            service.signal(SIGTERM)
            #expect(await service.waitForExit() == 0)
        }
    }
}
