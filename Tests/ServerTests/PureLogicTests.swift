import Foundation
import TestSupport
import Testing

@testable import Server

struct RequestDecodingTests {
    func bytes(_ s: String) -> [UInt8] { Array(s.utf8) }

    @Test func backupRequestWithEveryField() throws {
        let r = try BackupSubmission.decode(
            bytes(#"{"instance":0,"namespaces":["test"],"compress":true,"verify":false,"threads":2,"dry-run":true}"#))
        #expect(
            r
                == BackupSubmission(
                    instance: 0, namespaces: ["test"], verify: false, threads: 2, dryRun: true,
                    options: BackupOptions(compress: true)))
    }

    @Test func onlyInstanceIsRequired() throws {
        let r = try RestoreSubmission.decode(bytes(#"{"instance": 7}"#))
        #expect(
            r == RestoreSubmission(instance: 7, options: RestoreOptions()))
    }

    @Test(arguments: [
        ("", "INVALID_JSON"),
        ("{", "INVALID_JSON"),
        ("[1]", "INVALID_JSON"),
        (#"{"namespaces":["a"]}"#, "INVALID_FIELD"),
        (#"{"instance":"0"}"#, "INVALID_FIELD"),
        (#"{"instance":true}"#, "INVALID_FIELD"),
        (#"{"instance":1.5}"#, "INVALID_FIELD"),
        (#"{"instance":16}"#, "INVALID_FIELD"),
        (#"{"instance":0,"compress":1}"#, "INVALID_FIELD"),
        (#"{"instance":0,"compres":true}"#, "INVALID_FIELD"),
        (#"{"instance":0,"namespaces":"test"}"#, "INVALID_FIELD"),
        (#"{"instance":0,"namespaces":[1]}"#, "INVALID_FIELD"),
        (#"{"instance":0,"namespaces":[]}"#, "INVALID_FIELD"),
        (#"{"instance":0,"namespaces":["a","a"]}"#, "INVALID_FIELD"),
        (#"{"instance":0,"threads":-1}"#, "INVALID_FIELD"),
        (#"{"instance":0,"dry-run":"true"}"#, "INVALID_FIELD"),
    ])
    func badBackupBodiesAre400(body: String, code: String) {
        do {
            _ = try BackupSubmission.decode(bytes(body))
            Issue.record("accepted \(body)")
        } catch {
            #expect(error.code.rawValue == code)
            #expect(error.status == 400)
        }
    }

    @Test func unknownFieldsGetASuggestion() {
        do {
            _ = try BackupSubmission.decode(bytes(#"{"instance":0,"dryrun":true}"#))
            Issue.record("accepted an unknown field")
        } catch {
            #expect(error.message == #"unknown field "dryrun"; did you mean "dry-run"?"#)
        }
    }

    @Test func restoreRequestWithEveryField() throws {
        let r = try RestoreSubmission.decode(
            bytes(
                #"{"instance":3,"namespaces":["a"],"backup":"b-1","verify":true,"threads":4,"dry-run":true,"force":true}"#
            ))
        #expect(
            r
                == RestoreSubmission(
                    instance: 3, namespaces: ["a"], verify: true, threads: 4, dryRun: true,
                    options: RestoreOptions(backup: "b-1", force: true)))
    }

    /// Each job type knows its own fields only: `compress` is not a restore's, `backup` and `force` not a backup's.
    @Test func theOtherTypesFieldsAreUnknown() {
        expectUnknownField { () throws(APIError) in
            _ = try RestoreSubmission.decode(bytes(#"{"instance":0,"compress":true}"#))
        }
        expectUnknownField { () throws(APIError) in
            _ = try BackupSubmission.decode(bytes(#"{"instance":0,"backup":"b-1"}"#))
        }
        expectUnknownField { () throws(APIError) in
            _ = try BackupSubmission.decode(bytes(#"{"instance":0,"force":true}"#))
        }
    }

    func expectUnknownField(_ decode: () throws(APIError) -> Void, sourceLocation: SourceLocation = #_sourceLocation) {
        do {
            try decode()
            Issue.record("accepted a field of the other job type", sourceLocation: sourceLocation)
        } catch {
            #expect(error.code == .invalidField, sourceLocation: sourceLocation)
            #expect(error.message.hasPrefix("unknown field"), "\(error.message)", sourceLocation: sourceLocation)
        }
    }

    @Test func restoreBackupIdMustBeAName() {
        #expect(throws: APIError.self) { try RestoreSubmission.decode(bytes(#"{"instance":0,"backup":"../x"}"#)) }
    }

    @Test func everyCodeHasAStatus() {
        for code in APIError.Code.allCases {
            #expect([400, 401, 404, 409, 415, 422, 500, 503, 507].contains(code.status))
        }
        #expect(APIError.Code.instanceBusy.status == 409)
        #expect(APIError.Code.noCompleteBackup.status == 422)
        #expect(APIError.Code.shuttingDown.status == 503)
    }
}

struct TimeTests {
    @Test func rfc3339() {
        #expect(Time.rfc3339(0) == "1970-01-01T00:00:00.000Z")
        #expect(Time.rfc3339(1_795_314_300.25) == "2026-11-22T02:25:00.250Z")
        #expect(Time.rfc3339(951_782_400) == "2000-02-29T00:00:00.000Z")
        #expect(Time.compact(1_795_314_300.25) == "20261122-022500")
    }

    @Test func jobIdsSortByTime() {
        let a = JobID.make(now: 1_795_314_300)
        let b = JobID.make(now: 1_795_314_301)
        #expect(a < b)
        #expect(Paths.isSafeName(a))
        #expect(a.count == 24)
    }
}

struct ProgressTests {
    func record(_ state: JobState, done: UInt64, total: UInt64, started: Double?, finished: Double? = nil) -> JobRecord
    {
        JobRecord(
            id: "j", type: .backup, state: state,
            request: JobRequest(instance: 0, namespaces: ["a"], compress: false, verify: true, threads: 0),
            backup: "b", path: "/p", created: 0, started: started, finished: finished, pid: 1,
            progress: ProgressRecord(bytesTotal: total, bytesDone: done, segmentsTotal: 4, segmentsDone: 1),
            segments: [], error: nil)
    }

    @Test func estimateAppearsOnlyFromOnePercent() {
        let early = JobResource.progress(record(.running, done: 5, total: 1000, started: 100), now: 110)
        #expect(early.estimatedEndTime == nil)
        #expect(early.percentageDone == 0)
        let half = JobResource.progress(record(.running, done: 500, total: 1000, started: 100), now: 110)
        #expect(half.percentageDone == 50)
        #expect(half.estimatedEndTime == Time.rfc3339(120))
        #expect(half.bytesPerSecond == 50)
    }

    @Test func finishedJobsReportTheirEnd() {
        let done = JobResource.progress(
            record(.success, done: 1000, total: 1000, started: 100, finished: 104), now: 500)
        #expect(done.percentageDone == 100)
        #expect(done.bytesPerSecond == 250)
        #expect(done.estimatedEndTime == Time.rfc3339(104))
    }

    @Test func theJobObjectHasEveryDocumentedField() throws {
        let data = try JSONEncoder().encode(JobResource(record(.queued, done: 0, total: 0, started: nil), now: 0))
        let object = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        for key in [
            "id", "type", "state", "instance", "namespaces", "request", "backup", "path", "created", "started",
            "finished", "progress", "segments", "links",
        ] {
            #expect(object.keys.contains(key), "\(key)")
        }
        let progress = try #require(object["progress"] as? [String: Any])
        #expect(
            progress.keys.sorted() == [
                "bytes-done", "bytes-per-second", "bytes-total", "estimated-end-time", "percentage-done",
                "segments-done",
                "segments-total",
            ])
    }
}

struct MetricsTests {
    @Test func histogramIsCumulative() {
        var h = Histogram(bounds: [1, 2, 5])
        h.observe(0.5)
        h.observe(1.5)
        h.observe(10)
        var out = Exposition()
        out.histogram("x", [("type", "a")], h)
        #expect(
            out.text == """
                x_bucket{type="a",le="1"} 1
                x_bucket{type="a",le="2"} 2
                x_bucket{type="a",le="5"} 2
                x_bucket{type="a",le="+Inf"} 3
                x_sum{type="a"} 12
                x_count{type="a"} 3

                """)
    }

    @Test func labelValuesAreEscaped() {
        var out = Exposition()
        out.sample("m", [("l", "a\"b\\c\nd")], 0.5)
        #expect(out.text == "m{l=\"a\\\"b\\\\c\\nd\"} 0.5\n")
    }

    @Test func jobsAreCounted() {
        let m = Metrics(version: "1.2.3")
        #expect(m.render().contains("asmtd_jobs_total{type=\"backup\",outcome=\"success\"} 0\n"))
        m.jobStarted(type: "backup")
        #expect(m.render().contains("asmtd_jobs_active{type=\"backup\"} 1\n"))
        m.jobFinished(id: "j", type: "backup", outcome: "success", instance: 3, seconds: 0.2, bytes: 4096, now: 1000)
        m.request(method: "BREW", route: nil, status: 404, seconds: 0.001)
        let text = m.render()
        #expect(text.contains("asmtd_jobs_total{type=\"backup\",outcome=\"success\"} 1\n"))
        #expect(text.contains("asmtd_jobs_active{type=\"backup\"} 0\n"))
        #expect(text.contains("asmtd_bytes_total{type=\"backup\"} 4096\n"))
        #expect(text.contains("asmtd_last_success_timestamp_seconds{type=\"backup\",aerospike_instance=\"3\"} 1000\n"))
        #expect(text.contains("asmtd_job_duration_seconds_bucket{type=\"backup\",le=\"0.25\"} 1\n"))
        #expect(text.contains("asmtd_http_requests_total{method=\"other\",route=\"unmatched\",code=\"404\"} 1\n"))
        #expect(text.contains("asmtd_build_info{version=\"1.2.3\"} 1\n"))
        #expect(text.contains("process_resident_memory_bytes "))
    }

    @Test func procStatParsing() {
        let stat = "1234 (a b) c) S 1 2 3 4 5 6 7 8 9 10 300 200 0 0 20 0 4 0 5000 104857600 2560 rest"
        let p = ProcessStats.parse(stat: stat, bootTime: 1000, ticksPerSecond: 100, pageSize: 4096)
        #expect(
            p
                == ProcessStats(
                    cpuSeconds: 5, startTimeSeconds: 1050, virtualBytes: 104_857_600, residentBytes: 10_485_760))
        #expect(ProcessStats.bootTime(procStat: "cpu 1 2\nbtime 1700000000\nprocesses 5\n") == 1_700_000_000)
    }
}

struct LogFormatTests {
    @Test func plainAndJSONLines() {
        let plain = ServiceLogHandler.format(
            time: 0, level: .info, message: "job started", metadata: ["job": "x"], json: false)
        #expect(plain == "1970-01-01T00:00:00.000Z INFO job started job=x\n")
        let json = ServiceLogHandler.format(time: 0, level: .error, message: "a \"b\"\n", metadata: [:], json: true)
        #expect(json == "{\"time\":\"1970-01-01T00:00:00.000Z\",\"level\":\"ERROR\",\"msg\":\"a \\\"b\\\"\\n\"}\n")
    }
}

struct JobStoreTests {
    @Test func stateFilterIncludesAndExcludes() throws {
        let filter = try StateFilter.parse("running,success,!success")
        #expect(filter.matches(.running))
        #expect(!filter.matches(.success))
        #expect(!filter.matches(.failure))
        #expect(try StateFilter.parse("!failure").matches(.queued))
        #expect(try StateFilter.parse(nil).matches(.canceled))
        #expect(throws: APIError.self) { try StateFilter.parse("done") }
    }

    @Test func recordsRoundTripAtomicallyAndStaleTemporariesGo() throws {
        let directory = try TemporaryDirectory()
        let store = JobStore(stateDirectory: directory.path)
        try store.prepare()
        let record = JobRecord(
            id: "20261122-000000-0000000a", type: .restore, state: .running,
            request: JobRequest(instance: 2, namespaces: ["a", "b"], compress: nil, verify: true, threads: 3),
            backup: "b1", path: "/x/b1", created: 1.5, started: 2.5, finished: nil, pid: 4242,
            progress: ProgressRecord(bytesTotal: 10, bytesDone: 5, segmentsTotal: 2, segmentsDone: 1),
            segments: [
                SegmentRecord(
                    key: "0xae021000", kind: "pi-base", namespace: "a", size: 4096, file: "ae021000.dat",
                    compressed: false, state: .done)
            ], error: nil)
        try store.save(record)
        #expect(FileManager.default.createFile(atPath: store.directory + "/x.json.tmp-1-2", contents: Data("{".utf8)))
        #expect(FileManager.default.createFile(atPath: store.directory + "/broken.json", contents: Data("{".utf8)))
        let (records, warnings) = store.loadAll()
        #expect(records == [record])
        #expect(warnings.count == 1)
        #expect(!FileManager.default.fileExists(atPath: store.directory + "/x.json.tmp-1-2"))
        var mode = stat()
        stat(store.path(of: record.id), &mode)
        #expect(mode.st_mode & 0o777 == 0o600)
    }
}

struct RetentionTests {
    @Test func onlyTheNewestFinishedRecordsAreKept() throws {
        let directory = try TemporaryDirectory()
        var settings = ServiceSettings()
        settings.stateDir = directory.path
        settings.jobsKept = 2
        let config = Config(
            file: "", service: settings,
            instances: [InstanceConfig(instance: 14, backupPath: directory.path + "/b", namespaces: ["x"])],
            authToken: nil)
        let store = JobStore(stateDirectory: directory.path)
        try store.prepare()
        for index in 1...4 {
            try store.save(
                JobRecord(
                    id: "20260101-00000\(index)-00000000", type: .backup, state: .success,
                    request: JobRequest(instance: 14, namespaces: ["x"], compress: false, verify: true, threads: 0),
                    backup: "b\(index)", path: "/nowhere", created: Double(index), started: nil, finished: nil,
                    pid: nil, progress: ProgressRecord(), segments: [], error: nil))
        }
        let manager = JobQueue(config: config, metrics: Metrics(version: "t"), logger: .init(label: "t"))
        try manager.recover()
        #expect(manager.jobs(limit: 10) { _ in true }.map(\.backup) == ["b4", "b3"])
        #expect(store.loadAll().records.map(\.backup).sorted() == ["b3", "b4"])
    }
}
