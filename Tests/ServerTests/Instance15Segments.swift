import Dispatch
import Foundation
import ShmEngine
import ShmSynthetic

@testable import Server

/// Real segments on instance 15 for the client and long-poll tests: nsids 24..28 only (instance 14 belongs
/// to the other service tests), removed by shmid, leftovers of a crashed earlier run first.
final class Instance15Segments: @unchecked Sendable {
    static let instance = 15
    let nsid: Int
    let name: String

    private init(nsid: Int, name: String, stages: Int, stageSize: Int) throws {
        precondition((24...28).contains(nsid))
        self.nsid = nsid
        self.name = name
        Self.removeAll(nsid: nsid)
        let spec = SyntheticNamespace(
            name: name, nsid: nsid, primaryStages: stages, stageSize: stageSize, secondaryStages: 1, dataStages: 1,
            seed: UInt64(nsid))
        _ = try SyntheticSegments.create(instance: Self.instance, namespace: spec)
    }

    /// Filled on a Dispatch thread, off the cooperative pool.
    static func make(
        nsid: Int, name: String, stages: Int = 2, stageSize: Int = 1 << 20
    ) async throws
        -> Instance15Segments
    {
        try await withCheckedThrowingContinuation { continuation in
            DispatchQueue.global().async {
                continuation.resume(
                    with: Result {
                        try Instance15Segments(nsid: nsid, name: name, stages: stages, stageSize: stageSize)
                    })
            }
        }
    }

    func cleanUp() { Self.removeAll(nsid: nsid) }

    static func removeAll(nsid: Int) {
        let left = TestSegments.walk().filter { $0.key.instance == instance && $0.key.nsid == nsid }
        for segment in left where segment.attachCount == 0 { shmctl(segment.shmid, IPC_RMID, nil) }
    }
}
