import ShmEngine

/// What a job is; the stored record of one job (one JSON file in the state dir).
enum JobType: String, Sendable, Codable, CaseIterable {
    case backup, restore
}

enum JobState: String, Sendable, Codable, CaseIterable {
    case queued, running, success, failure, canceled

    var isFinished: Bool { self == .success || self == .failure || self == .canceled }
}

/// The effective request of a job (defaults filled in from the config).
struct JobRequest: Sendable, Codable, Equatable {
    var instance: Int
    var namespaces: [String]
    var compress: Bool?
    var verify: Bool
    var threads: Int
    /// Restores: a stale backup was restored on purpose (`"force": true`).
    var force: Bool? = nil
}

/// Where one segment of a job stands (stored and shown as the raw value).
enum SegmentState: String, Sendable, Codable, CaseIterable {
    case pending, running, done, failed, canceled
}

struct SegmentRecord: Sendable, Codable, Equatable {
    var key: String  // "0x%08x"
    var kind: String
    var namespace: String
    var size: UInt64
    var file: String
    var compressed: Bool
    var state: SegmentState
}

struct ProgressRecord: Sendable, Codable, Equatable {
    var bytesTotal: UInt64 = 0
    var bytesDone: UInt64 = 0
    var segmentsTotal: Int = 0
    var segmentsDone: Int = 0

    enum CodingKeys: String, CodingKey {
        case bytesTotal = "bytes-total", bytesDone = "bytes-done"
        case segmentsTotal = "segments-total", segmentsDone = "segments-done"
    }
}

struct JobErrorRecord: Sendable, Codable, Equatable {
    var code: String
    var message: String
}

struct JobRecord: Sendable, Codable, Equatable {
    var id: String
    var type: JobType
    var state: JobState
    var request: JobRequest
    /// The backup id (a directory name below the instance's backup path).
    var backup: String
    /// The backup directory.
    var path: String
    var created: Double
    var started: Double?
    var finished: Double?
    /// The process that ran the job (information only: recovery does not use it).
    var pid: Int32?
    /// Restores: the segments it created, recorded before any byte was written (crash recovery matches these).
    var createdSegments: [CreatedSegment]? = nil
    var progress: ProgressRecord
    var segments: [SegmentRecord]
    var error: JobErrorRecord?
    /// What the job was warned about when accepted (a forced stale restore, a backup of unknown freshness).
    var warnings: [String]? = nil

    /// Applies a final or intermediate progress picture.
    mutating func apply(progress: ProgressRecord, segmentStates: [SegmentState]) {
        self.progress = progress
        for (index, state) in segmentStates.enumerated() where index < segments.count {
            segments[index].state = state
        }
    }
}

/// Job ids: time-ordered and random enough ("20261122-022500-3f9a1c2b").
enum JobID {
    static func make(now: Double) -> String {
        let random = UInt32.random(in: 0...UInt32.max)
        let hex = String(random, radix: 16)
        return Time.compact(now) + "-" + String(repeating: "0", count: 8 - hex.count) + hex
    }
}
