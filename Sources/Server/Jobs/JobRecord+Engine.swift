import ShmEngine

/// The engine's plans and progress as stored in job records.
extension SegmentRecord {
    init(_ planned: PlannedSegment) {
        self.init(
            key: planned.key.hex, kind: planned.kind.rawValue, namespace: planned.namespace, size: planned.size,
            file: planned.file, compressed: planned.compressed, state: "pending")
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
    /// Applies the live progress of a running or finishing job (nothing until the engine has started it).
    mutating func apply(_ snapshot: ProgressSnapshot) {
        guard snapshot.segmentsTotal > 0 else { return }
        apply(progress: ProgressRecord(snapshot), segmentStates: snapshot.segments.map(\.state.rawValue))
    }
}

extension SegmentKey {
    /// From "0x%08x".
    init?(hex: String) {
        guard hex.hasPrefix("0x"), let value = UInt32(hex.dropFirst(2), radix: 16) else { return nil }
        self.init(rawValue: value)
    }
}
