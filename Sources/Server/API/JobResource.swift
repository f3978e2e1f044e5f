/// The job object as the API shows it (kebab-case, RFC 3339 times, progress figures).
struct JobResource: Sendable, Codable {
    struct Progress: Sendable, Codable {
        var bytesTotal: UInt64
        var bytesDone: UInt64
        var segmentsTotal: Int
        var segmentsDone: Int
        var percentageDone: Int
        var bytesPerSecond: Double
        var estimatedEndTime: String?

        enum CodingKeys: String, CodingKey {
            case bytesTotal = "bytes-total", bytesDone = "bytes-done", segmentsTotal = "segments-total"
            case segmentsDone = "segments-done", percentageDone = "percentage-done"
            case bytesPerSecond = "bytes-per-second", estimatedEndTime = "estimated-end-time"
        }

        func encode(to encoder: any Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(bytesTotal, forKey: .bytesTotal)
            try c.encode(bytesDone, forKey: .bytesDone)
            try c.encode(segmentsTotal, forKey: .segmentsTotal)
            try c.encode(segmentsDone, forKey: .segmentsDone)
            try c.encode(percentageDone, forKey: .percentageDone)
            try c.encode(bytesPerSecond, forKey: .bytesPerSecond)
            try c.encode(estimatedEndTime, forKey: .estimatedEndTime)  // null until known
        }
    }

    struct Request: Sendable, Codable {
        var instance: Int
        var namespaces: [String]
        var compress: Bool?
        var verify: Bool
        var threads: Int
        var force: Bool?
    }

    var id: String
    var type: String
    var state: String
    var instance: Int
    var namespaces: [String]
    var request: Request
    var backup: String
    var path: String
    var created: String
    var started: String?
    var finished: String?
    var progress: Progress
    var segments: [SegmentRecord]
    var error: JobErrorRecord?
    var warnings: [String]?
    var links: [String: String]

    enum CodingKeys: String, CodingKey {
        case id, type, state, instance, namespaces, request, backup, path, created, started, finished, progress
        case segments, error, warnings, links
    }

    func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(id, forKey: .id)
        try c.encode(type, forKey: .type)
        try c.encode(state, forKey: .state)
        try c.encode(instance, forKey: .instance)
        try c.encode(namespaces, forKey: .namespaces)
        try c.encode(request, forKey: .request)
        try c.encode(backup, forKey: .backup)
        try c.encode(path, forKey: .path)
        try c.encode(created, forKey: .created)
        try c.encode(started, forKey: .started)
        try c.encode(finished, forKey: .finished)
        try c.encode(progress, forKey: .progress)
        try c.encode(segments, forKey: .segments)
        try c.encodeIfPresent(error, forKey: .error)
        try c.encodeIfPresent(warnings, forKey: .warnings)
        try c.encode(links, forKey: .links)
    }

    /// Builds the view of a record at time `now` (pure).
    init(_ record: JobRecord, now: Double) {
        id = record.id
        type = record.type.rawValue
        state = record.state.rawValue
        instance = record.request.instance
        namespaces = record.request.namespaces
        request = Request(
            instance: record.request.instance, namespaces: record.request.namespaces,
            compress: record.request.compress, verify: record.request.verify, threads: record.request.threads,
            force: record.request.force)
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
