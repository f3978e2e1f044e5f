import ShmEngine

/// The engine's plans and progress as stored in job records.
extension SegmentRecord {
    init(_ planned: PlannedSegment) {
        self.init(
            key: planned.key.hex, kind: planned.kind.rawValue, namespace: planned.namespace, size: planned.size,
            file: planned.file, compressed: planned.compressed, state: .pending)
    }
}

extension ProgressRecord {
    init(_ snapshot: ProgressSnapshot) {
        self.init(
            bytesTotal: snapshot.bytesTotal, bytesDone: snapshot.bytesDone, segmentsTotal: snapshot.segmentsTotal,
            segmentsDone: snapshot.segmentsDone)
    }
}

extension JobRecord {
    /// The record of a job just accepted to run a plan of `segments`.
    static func queued(
        _ id: String, _ type: JobType, _ request: JobRequest, backup: String, path: String,
        segments: [PlannedSegment], totalBytes: UInt64
    ) -> JobRecord {
        JobRecord(
            id: id, type: type, state: .queued, request: request, backup: backup, path: path, created: Time.now(),
            started: nil, finished: nil, pid: nil,
            progress: ProgressRecord(bytesTotal: totalBytes, segmentsTotal: segments.count),
            segments: segments.map(SegmentRecord.init), error: nil)
    }

    /// Applies the live progress of a running or finishing job (nothing until the engine has started it).
    mutating func apply(_ snapshot: ProgressSnapshot) {
        guard snapshot.segmentsTotal > 0 else { return }
        apply(progress: ProgressRecord(snapshot), segmentStates: snapshot.segments.map { SegmentState($0.state) })
    }
}

extension SegmentState {
    init(_ engine: SegmentProgress.State) {
        switch engine {
        case .pending: self = .pending
        case .running: self = .running
        case .done: self = .done
        case .failed: self = .failed
        }
    }
}

extension SegmentKey {
    /// From "0x%08x".
    init?(hex: String) {
        guard hex.hasPrefix("0x"), let value = UInt32(hex.dropFirst(2), radix: 16) else { return nil }
        self.init(rawValue: value)
    }
}
