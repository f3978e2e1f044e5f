import ShmEngine
import Synchronization

/// The service's metrics, rendered as Prometheus text (prefix `asmtd_`).
///
/// The Aerospike instance is the label `aerospike_instance`: Prometheus itself gives every scraped series an
/// `instance` label (the target), which a label of ours named `instance` would collide with.
final class Metrics: Sendable {
    static let jobTypes = ["backup", "restore"]
    static let outcomes = ["success", "failure", "canceled"]
    /// Methods that get their own label value; anything else is "other" (bounded cardinality).
    static let methods: Set<String> = ["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"]
    /// The route label of a request no route matched (its raw path would be unbounded).
    static let unmatchedRoute = "unmatched"

    private struct Running: Sendable {
        var type: String
        var instance: Int
        var progress: JobProgress
    }

    private struct State {
        var jobs: [String: Double] = [:]  // "type outcome"
        var active: [String: Int] = [:]
        var durations: [String: Histogram] = [:]
        /// Bytes of finished jobs; the running jobs' bytes are added when rendering, so the counter moves as
        /// bytes move and never goes back when a job ends.
        var bytes: [String: Double] = [:]
        var running: [String: Running] = [:]  // job id →
        var lastSuccess: [String: [Int: Double]] = [:]  // type → instance → seconds
        var lastFailure: [String: [Int: Double]] = [:]
        var requests: [String: [String: [Int: Double]]] = [:]  // method → route → code → count
        var requestDurations: [String: Histogram] = [:]  // route →
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

    /// The last success and failure of each type and instance from the job records (at start-up), so that a
    /// stale-backup or failed-job alert keeps its data across a restart or a reboot.
    func seed(from records: [JobRecord]) {
        state.withLock { s in
            for record in records {
                guard let finished = record.finished else { continue }
                let type = record.type.rawValue
                let instance = record.request.instance
                switch record.state {
                case .success:
                    s.lastSuccess[type, default: [:]][instance] = max(
                        s.lastSuccess[type]?[instance] ?? finished, finished)
                case .failure:
                    s.lastFailure[type, default: [:]][instance] = max(
                        s.lastFailure[type]?[instance] ?? finished, finished)
                default:
                    break
                }
            }
        }
    }

    /// A job was accepted (queued).
    func jobStarted(type: String) {
        state.withLock { $0.active[type, default: 0] += 1 }
    }

    /// A job runs: its progress is read at every scrape (bytes moved, progress ratio) until it finishes.
    func jobRunning(id: String, type: String, instance: Int, progress: JobProgress) {
        state.withLock { $0.running[id] = Running(type: type, instance: instance, progress: progress) }
    }

    func jobFinished(
        id: String, type: String, outcome: String, instance: Int, seconds: Double, bytes: UInt64, now: Double
    ) {
        state.withLock { s in
            s.running[id] = nil
            s.active[type, default: 1] -= 1
            s.jobs["\(type) \(outcome)", default: 0] += 1
            s.durations[type, default: Histogram(bounds: Histogram.jobBounds)].observe(seconds)
            s.bytes[type, default: 0] += Double(bytes)
            if outcome == "success" { s.lastSuccess[type, default: [:]][instance] = now }
            if outcome == "failure" { s.lastFailure[type, default: [:]][instance] = now }
        }
    }

    /// `route` is the matched route pattern (never the raw path), nil when no route matched.
    func request(method: String, route: String?, status: Int, seconds: Double) {
        let method = Self.methods.contains(method) ? method : "other"
        let route = route ?? Self.unmatchedRoute
        state.withLock { s in
            s.requests[method, default: [:]][route, default: [:]][status, default: 0] += 1
            s.requestDurations[route, default: Histogram(bounds: Histogram.requestBounds)].observe(seconds)
        }
    }

    /// `inventory` and `ready` are read by the caller at scrape time (directory listings, the readiness checks).
    func render(inventory: BackupInventory? = nil, ready: Bool? = nil) -> String {
        let s = state.withLock { $0 }
        var live: [(type: String, instance: Int, done: Double, total: Double)] = []
        for job in s.running.values {
            let snapshot = job.progress.snapshot()
            live.append((job.type, job.instance, Double(snapshot.bytesDone), Double(snapshot.bytesTotal)))
        }
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
        out.family(
            "asmtd_job_progress_ratio", "gauge",
            "Share of its bytes a running job has copied (0..1), by type and Aerospike instance; absent when idle.")
        for job in live.sorted(by: { ($0.type, $0.instance) < ($1.type, $1.instance) }) {
            out.sample(
                "asmtd_job_progress_ratio", [("type", job.type), ("aerospike_instance", "\(job.instance)")],
                job.total > 0 ? min(1, job.done / job.total) : 0)
        }
        out.family("asmtd_job_duration_seconds", "histogram", "Duration of finished jobs, by type.")
        for type in Self.jobTypes {
            out.histogram(
                "asmtd_job_duration_seconds", [("type", type)],
                s.durations[type] ?? Histogram(bounds: Histogram.jobBounds))
        }
        out.family("asmtd_bytes_total", "counter", "Segment bytes copied, counted as they move, by type.")
        for type in Self.jobTypes {
            let moving = live.filter { $0.type == type }.reduce(0) { $0 + $1.done }
            out.sample("asmtd_bytes_total", [("type", type)], (s.bytes[type] ?? 0) + moving)
        }
        lastTimes(&out, "asmtd_last_success_timestamp_seconds", "successful", s.lastSuccess)
        lastTimes(&out, "asmtd_last_failure_timestamp_seconds", "failed", s.lastFailure)
        if let inventory { backups(&out, inventory) }
        out.family(
            "asmtd_http_requests_total", "counter", "HTTP responses sent, by method, route pattern and status code.")
        for (method, routes) in s.requests.sorted(by: { $0.key < $1.key }) {
            for (route, codes) in routes.sorted(by: { $0.key < $1.key }) {
                for (code, count) in codes.sorted(by: { $0.key < $1.key }) {
                    out.sample(
                        "asmtd_http_requests_total", [("method", method), ("route", route), ("code", "\(code)")],
                        count)
                }
            }
        }
        out.family("asmtd_http_request_duration_seconds", "histogram", "Time to answer HTTP requests, by route.")
        for (route, histogram) in s.requestDurations.sorted(by: { $0.key < $1.key }) {
            out.histogram("asmtd_http_request_duration_seconds", [("route", route)], histogram)
        }
        if let ready {
            out.family("asmtd_ready", "gauge", "1 when every check of GET /ready passes (asmtd takes jobs), else 0.")
            out.sample("asmtd_ready", [], ready ? 1 : 0)
        }
        out.family("asmtd_build_info", "gauge", "Always 1; the version label names the build.")
        out.sample("asmtd_build_info", [("version", version)], 1)
        processMetrics(&out)
        return out.text
    }

    private func lastTimes(_ out: inout Exposition, _ name: String, _ what: String, _ times: [String: [Int: Double]]) {
        out.family(
            name, "gauge",
            "Unix time of the last \(what) job, by type and Aerospike instance (kept across restarts).")
        for type in Self.jobTypes {
            for (instance, time) in (times[type] ?? [:]).sorted(by: { $0.key < $1.key }) {
                out.sample(name, [("type", type), ("aerospike_instance", "\(instance)")], time)
            }
        }
    }

    private func backups(_ out: inout Exposition, _ inventory: BackupInventory) {
        out.family(
            "asmtd_backups", "gauge",
            "Backup directories by Aerospike instance and state (complete: has its manifest).")
        for (instance, states) in inventory.counts.sorted(by: { $0.key < $1.key }) {
            for state in BackupInventory.states {
                out.sample(
                    "asmtd_backups", [("aerospike_instance", "\(instance)"), ("state", state)],
                    Double(states[state] ?? 0))
            }
        }
        out.family(
            "asmtd_backup_newest_complete_timestamp_seconds", "gauge",
            "Unix time of the newest complete backup, by Aerospike instance; absent when it has none.")
        for (instance, time) in inventory.newestComplete.sorted(by: { $0.key < $1.key }) {
            out.sample("asmtd_backup_newest_complete_timestamp_seconds", [("aerospike_instance", "\(instance)")], time)
        }
    }

    private func processMetrics(_ out: inout Exposition) {
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
    }
}
