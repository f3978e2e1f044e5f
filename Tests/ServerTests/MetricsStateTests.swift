import Testing

@testable import Server
@testable import ShmEngine

struct MetricsStateTests {
    static func record(_ id: String, _ type: JobType, _ state: JobState, instance: Int, finished: Double?) -> JobRecord
    {
        JobRecord(
            id: id, type: type, state: state,
            request: JobRequest(instance: instance, namespaces: ["x"], compress: false, verify: true, threads: 0),
            backup: id, path: "/nowhere", created: 1, started: 1, finished: finished, pid: nil,
            progress: ProgressRecord(), segments: [], error: nil)
    }

    @Test func lastSuccessAndFailureComeBackFromTheRecords() {
        let m = Metrics(version: "t")
        m.seed(from: [
            Self.record("a", .backup, .success, instance: 0, finished: 100),
            Self.record("b", .backup, .success, instance: 0, finished: 300),
            Self.record("c", .backup, .success, instance: 0, finished: 200),
            Self.record("d", .backup, .failure, instance: 0, finished: 250),
            Self.record("e", .restore, .failure, instance: 2, finished: 50),
            Self.record("f", .restore, .canceled, instance: 2, finished: 60),
            Self.record("g", .backup, .running, instance: 1, finished: nil),
        ])
        let text = m.render()
        #expect(
            text.contains(#"asmtd_last_success_timestamp_seconds{type="backup",aerospike_instance="0"} 300"# + "\n"))
        #expect(
            text.contains(#"asmtd_last_failure_timestamp_seconds{type="backup",aerospike_instance="0"} 250"# + "\n"))
        #expect(
            text.contains(#"asmtd_last_failure_timestamp_seconds{type="restore",aerospike_instance="2"} 50"# + "\n"))
        #expect(!text.contains(#"asmtd_last_success_timestamp_seconds{type="restore""#))
        #expect(!text.contains(#"aerospike_instance="1""#))
        #expect(!text.contains(#",instance=""#) && !text.contains(#"{instance=""#))
    }

    @Test func runningJobsShowProgressAndBytesAsTheyMove() {
        let m = Metrics(version: "t")
        let progress = JobProgress()
        m.jobStarted(type: "backup")
        m.jobRunning(id: "j", type: "backup", instance: 4, progress: progress)
        #expect(m.render().contains(#"asmtd_job_progress_ratio{type="backup",aerospike_instance="4"} 0"# + "\n"))
        progress.start([(SegmentKey(kind: .base, instance: 4, nsid: 1), 4000)])
        progress.add(bytes: 1000)
        var text = m.render()
        #expect(text.contains(#"asmtd_job_progress_ratio{type="backup",aerospike_instance="4"} 0.25"# + "\n"))
        #expect(text.contains(#"asmtd_bytes_total{type="backup"} 1000"# + "\n"))
        progress.add(bytes: 3000)
        #expect(m.render().contains(#"asmtd_bytes_total{type="backup"} 4000"# + "\n"))
        m.jobFinished(id: "j", type: "backup", outcome: "failure", instance: 4, seconds: 1, bytes: 4000, now: 77)
        text = m.render()
        #expect(!text.contains("asmtd_job_progress_ratio{"))
        #expect(text.contains(#"asmtd_bytes_total{type="backup"} 4000"# + "\n"))
        #expect(text.contains(#"asmtd_last_failure_timestamp_seconds{type="backup",aerospike_instance="4"} 77"# + "\n"))
    }

    @Test func backupInventoryByInstanceAndState() {
        let inventory = BackupInventory(
            instances: [0, 3],
            backups: [
                (0, "complete", "2026-11-22T02:25:00.000Z"), (0, "complete", "2026-11-22T04:25:00.500Z"),
                (0, "incomplete", ""), (0, "invalid", ""), (7, "complete", "2026-11-22T05:00:00Z"),
            ])
        let text = Metrics(version: "t").render(inventory: inventory)
        #expect(text.contains(#"asmtd_backups{aerospike_instance="0",state="complete"} 2"# + "\n"))
        #expect(text.contains(#"asmtd_backups{aerospike_instance="0",state="incomplete"} 1"# + "\n"))
        #expect(text.contains(#"asmtd_backups{aerospike_instance="3",state="complete"} 0"# + "\n"))
        #expect(!text.contains(#"aerospike_instance="7""#))
        #expect(
            text.contains(
                #"asmtd_backup_newest_complete_timestamp_seconds{aerospike_instance="0"} 1795321500.5"# + "\n"))
        #expect(!text.contains(#"asmtd_backup_newest_complete_timestamp_seconds{aerospike_instance="3"}"#))
    }

    @Test func httpMetricsCarryTheRoutePattern() {
        let m = Metrics(version: "t")
        m.request(method: "GET", route: "/v1/jobs/{id}", status: 404, seconds: 0.002)
        m.request(method: "GET", route: "/v1/jobs/{id}", status: 404, seconds: 0.002)
        m.request(method: "GET", route: nil, status: 404, seconds: 0.002)
        let text = m.render()
        #expect(text.contains(#"asmtd_http_requests_total{method="GET",route="/v1/jobs/{id}",code="404"} 2"# + "\n"))
        #expect(text.contains(#"asmtd_http_requests_total{method="GET",route="unmatched",code="404"} 1"# + "\n"))
        #expect(text.contains(#"asmtd_http_request_duration_seconds_count{route="/v1/jobs/{id}"} 2"# + "\n"))
    }

    @Test func rfc3339RoundTrips() {
        for seconds in [0.0, 951_782_400.25, 1_795_847_100.5, 4_107_542_399.999, -86_400] {
            #expect(Time.parseRFC3339(Time.rfc3339(seconds)) == seconds)
        }
        #expect(Time.parseRFC3339("2026-11-22T02:25:00+00:00") == 1_795_314_300)
        for bad in [
            "", "2026-11-22", "2026-11-22T02:25:00", "2026-13-22T02:25:00Z", "2026-11-22T02:25:00.Z",
            "2026-11-22T02:25:00+01:00", "2026-11-22 02:25:00Z",
        ] {
            #expect(Time.parseRFC3339(bad) == nil, "\(bad)")
        }
    }
}
