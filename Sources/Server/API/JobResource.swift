/// The job object as the API shows it (kebab-case, RFC 3339 times, progress figures).
struct JobResource: Sendable, Codable {
    struct Progress: Sendable, Codable {
        var bytesTotal, bytesDone: UInt64
        var segmentsTotal, segmentsDone: Int
        var percentageDone: Int
        var bytesPerSecond: Double
        /// The end, once known (the finish time of a finished job).
        @Nullable var estimatedEndTime: String?

        enum CodingKeys: String, CodingKey {
            case bytesTotal = "bytes-total", bytesDone = "bytes-done", segmentsTotal = "segments-total"
            case segmentsDone = "segments-done", percentageDone = "percentage-done"
            case bytesPerSecond = "bytes-per-second", estimatedEndTime = "estimated-end-time"
        }
    }

    var id: String
    var type: JobType
    var state: JobState
    var instance: Int
    var namespaces: [String]
    var request: JobRequest
    var backup: String
    var path: String
    var created: String
    @Nullable var started: String?
    @Nullable var finished: String?
    var progress: Progress
    var segments: [SegmentRecord]
    var error: JobErrorRecord?
    var warnings: [String]?
    var links: [String: String]

    /// Builds the view of a record at time `now` (pure).
    init(_ record: JobRecord, now: Double) {
        id = record.id
        type = record.type
        state = record.state
        instance = record.request.instance
        namespaces = record.request.namespaces
        request = record.request
        backup = record.backup
        path = record.path
        created = Time.rfc3339(record.created)
        started = record.started.map(Time.rfc3339)
        finished = record.finished.map(Time.rfc3339)
        segments = record.segments
        error = record.error
        warnings = record.warnings
        links = ["self": "/v1/jobs/\(record.id)"]
        progress = Self.progress(record, now: now)
    }

    static func progress(_ record: JobRecord, now: Double) -> Progress {
        let p = record.progress
        let fraction =
            p.bytesTotal > 0 ? Double(p.bytesDone) / Double(p.bytesTotal) : (record.state == .success ? 1 : 0)
        var percentage = Int((fraction * 100).rounded(.down))
        percentage = min(100, max(0, percentage))
        var rate = 0.0
        var eta: String?
        if let started = record.started {
            let end = record.finished ?? now
            let elapsed = max(end - started, 0.001)
            rate = (Double(p.bytesDone) / elapsed).rounded()
            if record.state.isFinished {
                eta = record.finished.map(Time.rfc3339)
            } else if fraction >= 0.01 {
                eta = Time.rfc3339(started + (now - started) / fraction)
            }
        }
        return Progress(
            bytesTotal: p.bytesTotal, bytesDone: p.bytesDone, segmentsTotal: p.segmentsTotal,
            segmentsDone: p.segmentsDone, percentageDone: percentage, bytesPerSecond: rate, estimatedEndTime: eta)
    }
}
