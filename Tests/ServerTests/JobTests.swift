import Foundation
import ShmEngine
import TestSupport
import Testing

@testable import Server

/// End to end over real HTTP with real segments (instance 14, nsids 1..16, one nsid per test).
extension ShmTests {
    @Suite struct JobTests {
        func submit(_ server: TestServer, _ path: String, _ body: String) async throws -> String {
            let response = try await server.request("POST", path, body: body)
            #expect(response.status == 202, "\(path): \(response.text)")
            let id = try #require(response.json["id"] as? String)
            #expect(response.header("location") == "/v1/jobs/\(id)")
            return id
        }

        func sample(_ metrics: String, _ line: String) -> Double? {
            for row in metrics.split(separator: "\n") where row.hasPrefix(line + " ") {
                return Double(row.dropFirst(line.count + 1))
            }
            return nil
        }

        @Test func backupThenRestoreGivesBackTheSameBytesAndOwners() async throws {
            let segments = try await TestSegments.make(
                nsid: 1, name: "srv-roundtrip", uid: 1234, gid: 5678, mode: 0o640)
            defer { segments.cleanUp() }
            let server = try await TestServer(namespaces: ["srv-roundtrip"], compress: true)
            defer { server.stopNow() }
            let original = try segments.live()
            let originalBytes = original.map(SharedMemoryReader.contents)
            #expect(original.count == 7)

            let before = try await server.request("GET", "/metrics").text
            #expect(sample(before, #"asmtd_jobs_total{type="backup",outcome="success"}"#) == 0)

            let backupJob = try await submit(server, "/v1/backup", #"{"instance":14}"#)
            let backup = try await server.waitForJob(backupJob)
            #expect(backup["state"] as? String == "success", "\(backup)")
            #expect(backup["type"] as? String == "backup")
            #expect((backup["progress"] as? [String: Any])?["percentage-done"] as? Int == 100)
            let planned = try #require(backup["segments"] as? [[String: Any]])
            #expect(planned.count == 7)
            #expect(planned.allSatisfy { $0["state"] as? String == "done" })
            let backupID = try #require(backup["backup"] as? String)

            let listed = try await server.request("GET", "/v1/backups/\(backupID)").json
            #expect(listed["state"] as? String == "complete")
            #expect(listed["namespaces"] as? [String] == ["srv-roundtrip"])

            segments.removeOriginals()
            #expect(try segments.live().isEmpty)

            let restoreJob = try await submit(server, "/v1/restore", #"{"instance":14,"namespaces":["srv-roundtrip"]}"#)
            let restore = try await server.waitForJob(restoreJob)
            #expect(restore["state"] as? String == "success", "\(restore)")
            #expect(restore["backup"] as? String == backupID)

            let restored = try segments.live()
            #expect(restored.map(\.key) == original.map(\.key))
            #expect(restored.map(SharedMemoryReader.contents) == originalBytes)
            for segment in restored {
                #expect(segment.uid == 1234 && segment.gid == 5678 && segment.mode == 0o640, "\(segment.key.hex)")
                #expect(segment.size == original.first { $0.key == segment.key }?.size)
            }

            let after = try await server.request("GET", "/metrics").text
            #expect(sample(after, #"asmtd_jobs_total{type="backup",outcome="success"}"#) == 1)
            #expect(sample(after, #"asmtd_jobs_total{type="restore",outcome="success"}"#) == 1)
            #expect(sample(after, #"asmtd_jobs_active{type="restore"}"#) == 0)
            #expect((sample(after, #"asmtd_bytes_total{type="backup"}"#) ?? 0) > 0)
            #expect(sample(after, #"asmtd_job_duration_seconds_count{type="restore"}"#) == 1)
            #expect(
                sample(after, #"asmtd_last_success_timestamp_seconds{type="backup",aerospike_instance="14"}"#) != nil)
            #expect(sample(after, #"asmtd_backups{aerospike_instance="14",state="complete"}"#) == 1)
            #expect(sample(after, #"asmtd_backup_newest_complete_timestamp_seconds{aerospike_instance="14"}"#) != nil)
            #expect(!after.contains("asmtd_job_progress_ratio{"))
            try Promtool.check(after)

            let jobs = try await server.request("GET", "/v1/jobs?type=restore&state=success,!failure&limit=5").json
            #expect((jobs["jobs"] as? [[String: Any]])?.map { $0["id"] as? String } == [restoreJob])
        }

        @Test func refusalsComeBackBeforeTheJobStarts() async throws {
            let segments = try await TestSegments.make(nsid: 2, name: "srv-refuse")
            defer { segments.cleanUp() }
            let server = try await TestServer(namespaces: ["srv-refuse", "srv-absent"])
            defer { server.stopNow() }
            let absent = try await server.request(
                "POST", "/v1/backup", body: #"{"instance":14,"namespaces":["srv-absent"]}"#)
            #expect(absent.status == 422)
            #expect(absent.errorCode == "NAMESPACE_NOT_FOUND")

            let unknown = try await server.request(
                "POST", "/v1/backup", body: #"{"instance":14,"namespaces":["nope"]}"#)
            #expect(unknown.errorCode == "UNKNOWN_NAMESPACE")
            // A dry run plans and writes nothing.
            let dry = try await server.request(
                "POST", "/v1/backup", body: #"{"instance":14,"namespaces":["srv-refuse"],"dry-run":true}"#)
            #expect(dry.status == 200, "\(dry.text)")
            #expect((dry.json["segments"] as? [Any])?.count == 7)
            #expect(dry.json["dry-run"] as? Bool == true)
            #expect((dry.json["total-bytes"] as? Int ?? 0) > 0)
            #expect(FileSystem.list(server.backupPath).isEmpty)

            // The "server" still attached to a segment: 409.
            let base = try #require(try segments.live().first { $0.key.kind == .base })
            let address = try #require(shmat(base.shmid, nil, SHM_RDONLY))
            let attached = try await server.request(
                "POST", "/v1/backup", body: #"{"instance":14,"namespaces":["srv-refuse"]}"#)
            shmdt(address)
            #expect(attached.status == 409, "\(attached.text)")
            #expect(attached.errorCode == "SERVER_RUNNING")

            let id = try await submit(server, "/v1/backup", #"{"instance":14,"namespaces":["srv-refuse"]}"#)
            #expect(try await server.waitForJob(id)["state"] as? String == "success")
            // Segments still there: a restore would overwrite them.
            let present = try await server.request(
                "POST", "/v1/restore", body: #"{"instance":14,"namespaces":["srv-refuse"]}"#)
            #expect(present.status == 409, "\(present.text)")
            #expect(present.errorCode == "SEGMENTS_EXIST")
            // A finished job cannot be canceled.
            let cancel = try await server.request("POST", "/v1/jobs/\(id)/cancel")
            #expect(cancel.status == 409)
            #expect(cancel.errorCode == "JOB_FINISHED")
            // A restore dry run of a backup that lacks the namespace... and the job list.
            let restoreDry = try await server.request(
                "POST", "/v1/restore",
                body: #"{"instance":14,"namespaces":["srv-refuse"],"backup":"\#(id)","dry-run":true}"#)
            #expect(restoreDry.errorCode == "SEGMENTS_EXIST")
            let deleted = try await server.request("DELETE", "/v1/backups/\(id)")
            #expect(deleted.status == 204)
        }

        @Test func oneJobPerInstanceCancelAndBackupInUse() async throws {
            let segments = try await TestSegments.make(nsid: 3, name: "srv-busy", stages: 8, stageSize: 32 << 20)
            defer { segments.cleanUp() }
            let server = try await TestServer(namespaces: ["srv-busy"], compress: true)
            defer { server.stopNow() }
            let id = try await submit(server, "/v1/backup", #"{"instance":14,"threads":1}"#)
            let second = try await server.request("POST", "/v1/backup", body: #"{"instance":14}"#)
            #expect(second.status == 409)
            #expect(second.errorCode == "INSTANCE_BUSY")
            #expect(((second.json["error"] as? [String: Any])?["details"] as? [String: String])?["job"] == id)
            let inUse = try await server.request("DELETE", "/v1/backups/\(id)")
            #expect(inUse.status == 409)
            #expect(inUse.errorCode == "BACKUP_IN_USE")
            let cancel = try await server.request("POST", "/v1/jobs/\(id)/cancel")
            #expect(cancel.status == 202)
            let listing = try await server.request("GET", "/v1/segments?instance=14")
            #expect(listing.status == 200)
            let job = try await server.waitForJob(id)
            #expect(job["state"] as? String == "canceled", "\(job)")
            #expect((job["error"] as? [String: Any])?["code"] as? String == "CANCELED")
            // The user's cancel is not an error: INFO, with who asked.
            let finished = await server.process.logLine(containing: ["job finished", "outcome=canceled"])
            #expect(finished?.contains(" INFO job finished") == true, "\(server.process.text)")
            let asked = await server.process.logLine(containing: ["INFO request", "route=/v1/jobs/{id}/cancel"])
            #expect(asked?.contains("peer=127.0.0.1:") == true && asked?.contains("status=202") == true)
            // Nothing half-done is left: no backup directory.
            #expect(FileSystem.list(server.backupPath).isEmpty)
            let metrics = try await server.request("GET", "/metrics").text
            #expect(sample(metrics, #"asmtd_jobs_total{type="backup",outcome="canceled"}"#) == 1)
            // The instance is free again.
            let dry = try await server.request("POST", "/v1/backup", body: #"{"instance":14,"dry-run":true}"#)
            #expect(dry.status == 200)
        }

        @Test func startupRecoveryMarksInterruptedJobsAndRemovesTheirOutput() async throws {
            let segments = try await TestSegments.make(nsid: 4, name: "srv-recover")
            defer { segments.cleanUp() }
            let directory = try TemporaryDirectory()
            let store = JobStore(stateDirectory: directory.path + "/state")
            try store.prepare()
            let backupPath = directory.path + "/backups"
            try FileSystem.createDirectories(backupPath + "/20260101-000000-00000001")
            #expect(
                FileManager.default.createFile(
                    atPath: backupPath + "/20260101-000000-00000001/ae0e4000.dat", contents: Data([1])))
            let request = JobRequest(
                instance: 14, namespaces: ["srv-recover"], compress: false, verify: true, threads: 0)
            let backup = JobRecord(
                id: "20260101-000000-00000001", type: .backup, state: .running, request: request,
                backup: "20260101-000000-00000001", path: backupPath + "/20260101-000000-00000001", created: 1,
                started: 2,
                finished: nil, pid: 99999, progress: ProgressRecord(), segments: [], error: nil)
            // A restore that created the segments and had not committed (base version word 0): recovery must
            // remove exactly those, whatever pid the record holds.
            let live = try segments.live()
            let base = try #require(live.first { $0.key.kind == .base })
            let address = try #require(shmat(base.shmid, nil, 0))
            address.storeBytes(of: UInt64(0), as: UInt64.self)
            shmdt(address)
            let created = live.map { segment in
                var info = shmid_ds()
                shmctl(segment.shmid, IPC_STAT, &info)
                return CreatedSegment(key: segment.key.hex, shmid: segment.shmid, ctime: Int64(info.shm_ctime))
            }
            var restore = JobRecord(
                id: "20260101-000000-00000002", type: .restore, state: .running, request: request,
                backup: "x", path: backupPath + "/x", created: 3, started: 4, finished: nil, pid: 99999,
                progress: ProgressRecord(),
                segments: try segments.live().map {
                    SegmentRecord(
                        key: $0.key.hex, kind: $0.key.kind.rawValue, namespace: "srv-recover", size: $0.size, file: "",
                        compressed: false, state: .done)
                }, error: nil)
            restore.createdSegments = created
            try store.save(backup)
            try store.save(restore)

            let config = Config.inProcess(
                stateDir: directory.path + "/state", instance: 14, backupPath: backupPath, namespaces: ["srv-recover"])
            let service = Service(config: config, logger: .init(label: "test"))
            try service.start()
            defer { Task { await service.shutdown() } }
            let recoveredBackup = try #require(service.jobs.job(backup.id))
            #expect(recoveredBackup.state == .failure)
            #expect(recoveredBackup.error?.code == "INTERRUPTED")
            #expect(FileSystem.kind(backup.path) == .missing)
            let recoveredRestore = try #require(service.jobs.job(restore.id))
            #expect(recoveredRestore.error?.code == "INTERRUPTED")
            #expect(try segments.live().isEmpty)
            // The interrupted jobs' ends reach the metrics through start-up recovery (Metrics.seed).
            let metrics = service.metrics.render()
            #expect(metrics.contains(#"asmtd_last_failure_timestamp_seconds{type="backup",aerospike_instance="14"} "#))
            #expect(metrics.contains(#"asmtd_last_failure_timestamp_seconds{type="restore",aerospike_instance="14"} "#))
            // And on disk too.
            let reloaded = store.loadAll().records
            #expect(reloaded.allSatisfy { $0.state == .failure })
        }
    }
}
