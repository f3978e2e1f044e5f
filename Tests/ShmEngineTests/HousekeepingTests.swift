import Foundation
import Glibc
import ShmSynthetic
import Testing

@testable import ShmEngine

@Suite struct HousekeepingTests {
    /// `asmtd demo remove` relies on this: only marked, unattached segments of that namespace are found.
    @Test func syntheticFindIgnoresForeignAndAttachedSegments() throws {
        let spec = SyntheticNamespace(name: "demo-find", nsid: 15, primaryStages: 2, stageSize: 64 << 10, seed: 15)
        try Fixture.withSegments(instance: 13, spec) { created in
            let foreignKey = SegmentKey(kind: .primaryStage, instance: 13, nsid: 15, stage: 40)
            let foreign = try SharedMemory.create(foreignKey, size: 8192)
            defer { SharedMemory.remove(shmid: foreign) }
            let stage = try #require(created.first { $0.key.kind == .primaryStage })
            let attachment = try SharedMemory.attach(
                shmid: stage.shmid, key: stage.key, size: stage.size, readOnly: true)
            defer { SharedMemory.detach(attachment) }
            let found = try SyntheticSegments.find(instance: 13, namespace: "demo-find")
            #expect(Set(found.map(\.key)) == Set(created.map(\.key)).subtracting([stage.key]))
            #expect(try SyntheticSegments.find(instance: 13, namespace: "demo-none").isEmpty)
        }
    }

    @Test func segmentListingShowsOwnersAndNames() throws {
        let spec = SyntheticNamespace(
            name: "listing", nsid: 16, primaryStages: 1, stageSize: 64 << 10, secondaryStages: 0, dataStages: 1,
            uid: 1234, gid: 2345, mode: 0o640, seed: 16)
        try Fixture.withSegments(instance: 13, spec) { created in
            let listed = try SharedMemory.segments(instance: 13).filter { segment in
                created.contains { $0.shmid == segment.shmid }
            }
            #expect(listed.count == created.count)
            for segment in listed {
                #expect(segment.uid == 1234 && segment.gid == 2345 && segment.mode == 0o640)
                #expect(segment.attachCount == 0 && segment.creatorPID == getpid())
                let named = segment.key.kind == .base || segment.key.kind == .dataStage
                #expect(segment.namespace == (named ? "listing" : nil))
            }
            let all = try SharedMemory.segments(instance: nil)
            #expect(listed.allSatisfy { segment in all.contains { $0.shmid == segment.shmid } })
        }
    }
}
