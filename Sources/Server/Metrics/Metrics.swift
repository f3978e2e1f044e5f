import Synchronization

/// The service's metrics, rendered as Prometheus text (prefix `asmtd_`).
final class Metrics: Sendable {
    static let jobTypes = ["backup", "restore"]
    static let outcomes = ["success", "failure", "canceled"]
    /// Methods that get their own label value; anything else is "other" (bounded cardinality).
    static let methods: Set<String> = ["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"]

    private struct State {
        var jobs: [String: Double] = [:]  // "type outcome"
        var active: [String: Int] = [:]
        var durations: [String: Histogram] = [:]
        var bytes: [String: Double] = [:]
        var lastSuccess: [String: [Int: Double]] = [:]  // type → instance → seconds
        var requests: [String: [Int: Double]] = [:]  // method → code → count
        var requestDuration = Histogram(bounds: Histogram.requestBounds)
    }

    private let state: Mutex<State>
    let version: String

    init(version: String) {
        self.version = version
        var s = State()
        for type in Self.jobTypes {
            for outcome in Self.outcomes { s.jobs["\(type) \(outcome)"] = 0 }
            s.active[type] = 0
            s.durations[type] = Histogram(bounds: Histogram.jobBounds)
            s.bytes[type] = 0
        }
        state = Mutex(s)
    }

    func jobStarted(type: String) {
        state.withLock { $0.active[type, default: 0] += 1 }
    }

    func jobFinished(type: String, outcome: String, instance: Int, seconds: Double, bytes: UInt64, now: Double) {
        state.withLock { s in
            s.active[type, default: 1] -= 1
            s.jobs["\(type) \(outcome)", default: 0] += 1
            s.durations[type, default: Histogram(bounds: Histogram.jobBounds)].observe(seconds)
            s.bytes[type, default: 0] += Double(bytes)
            if outcome == "success" { s.lastSuccess[type, default: [:]][instance] = now }
        }
    }

    func request(method: String, status: Int, seconds: Double) {
        let method = Self.methods.contains(method) ? method : "other"
        state.withLock { s in
            s.requests[method, default: [:]][status, default: 0] += 1
            s.requestDuration.observe(seconds)
        }
    }

    func render() -> String {
        let s = state.withLock { $0 }
        var out = Exposition()
        out.family("asmtd_jobs_total", "counter", "Jobs finished, by type and outcome.")
        for type in Self.jobTypes {
            for outcome in Self.outcomes {
                out.sample(
                    "asmtd_jobs_total", [("type", type), ("outcome", outcome)], s.jobs["\(type) \(outcome)"] ?? 0)
            }
        }
        out.family("asmtd_jobs_active", "gauge", "Jobs queued or running, by type.")
        for type in Self.jobTypes { out.sample("asmtd_jobs_active", [("type", type)], Double(s.active[type] ?? 0)) }
        out.family("asmtd_job_duration_seconds", "histogram", "Duration of finished jobs, by type.")
        for type in Self.jobTypes {
            out.histogram(
                "asmtd_job_duration_seconds", [("type", type)],
                s.durations[type] ?? Histogram(bounds: Histogram.jobBounds))
        }
        out.family("asmtd_bytes_total", "counter", "Segment bytes copied by finished jobs, by type.")
        for type in Self.jobTypes { out.sample("asmtd_bytes_total", [("type", type)], s.bytes[type] ?? 0) }
        out.family(
            "asmtd_last_success_timestamp_seconds", "gauge",
            "Unix time of the last successful job, by type and instance.")
        for type in Self.jobTypes {
            for (instance, time) in (s.lastSuccess[type] ?? [:]).sorted(by: { $0.key < $1.key }) {
                out.sample("asmtd_last_success_timestamp_seconds", [("type", type), ("instance", "\(instance)")], time)
            }
        }
        out.family("asmtd_http_requests_total", "counter", "HTTP responses sent, by method and status code.")
        for (method, codes) in s.requests.sorted(by: { $0.key < $1.key }) {
            for (code, count) in codes.sorted(by: { $0.key < $1.key }) {
                out.sample("asmtd_http_requests_total", [("method", method), ("code", "\(code)")], count)
            }
        }
        out.family("asmtd_http_request_duration_seconds", "histogram", "Time to answer HTTP requests.")
        out.histogram("asmtd_http_request_duration_seconds", [], s.requestDuration)
        out.family("asmtd_build_info", "gauge", "Always 1; the version label names the build.")
        out.sample("asmtd_build_info", [("version", version)], 1)
        if let p = ProcessStats.read() {
            out.family("process_cpu_seconds_total", "counter", "Total user and system CPU time spent in seconds.")
            out.sample("process_cpu_seconds_total", [], p.cpuSeconds)
            out.family("process_start_time_seconds", "gauge", "Start time of the process since unix epoch in seconds.")
            out.sample("process_start_time_seconds", [], p.startTimeSeconds)
            out.family("process_virtual_memory_bytes", "gauge", "Virtual memory size in bytes.")
            out.sample("process_virtual_memory_bytes", [], p.virtualBytes)
            out.family("process_resident_memory_bytes", "gauge", "Resident memory size in bytes.")
            out.sample("process_resident_memory_bytes", [], p.residentBytes)
        }
        out.family("process_open_fds", "gauge", "Number of open file descriptors.")
        out.sample("process_open_fds", [], Double(ProcessStats.openFileDescriptors()))
        out.family("process_max_fds", "gauge", "Maximum number of open file descriptors.")
        out.sample("process_max_fds", [], ProcessStats.maxFileDescriptors())
        return out.text
    }
}
