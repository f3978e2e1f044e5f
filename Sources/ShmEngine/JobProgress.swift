import Synchronization

/// Progress of one job, readable from any thread while the job runs.
public final class JobProgress: Sendable {
    private let state = Mutex(ProgressSnapshot(bytesTotal: 0, bytesDone: 0, segmentsTotal: 0, segmentsDone: 0))

    public init() {}

    public func snapshot() -> ProgressSnapshot { state.withLock { $0 } }

    func start(_ segments: [(SegmentKey, UInt64)]) {
        state.withLock {
            $0 = ProgressSnapshot(
                bytesTotal: segments.reduce(0) { $0 + $1.1 }, bytesDone: 0, segmentsTotal: segments.count,
                segmentsDone: 0, segments: segments.map { SegmentProgress(key: $0.0, state: .pending) })
        }
    }

    func add(bytes: UInt64) {
        state.withLock { $0.bytesDone = min($0.bytesTotal, $0.bytesDone + bytes) }
    }

    func set(_ index: Int, _ newState: SegmentProgress.State) {
        state.withLock {
            guard $0.segments.indices.contains(index) else { return }
            let old = $0.segments[index].state
            $0.segments[index].state = newState
            if newState == .done && old != .done { $0.segmentsDone += 1 }
        }
    }
}

public struct ProgressSnapshot: Sendable {
    public var bytesTotal: UInt64
    public var bytesDone: UInt64
    public var segmentsTotal: Int
    public var segmentsDone: Int
    /// In plan order.
    package var segments: [SegmentProgress] = []
}

package struct SegmentProgress: Sendable {
    package var key: SegmentKey
    package var state: State

    package enum State: String, Sendable, Codable {
        case pending, running, done, failed
    }
}
