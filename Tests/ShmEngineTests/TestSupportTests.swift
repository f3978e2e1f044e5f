import Foundation
import Glibc
import ShmSynthetic
import TestSupport
import Testing

@testable import ShmEngine

/// The test-support layer's own promises: an existing key fails with a message naming its holder, the
/// independent reader sees what was created, a latch stays open once fired. Instance 15, nsid 20 (instance 13's
/// nsids belong to the engine tests; ServerTests use 1..5 and 24..28 on 15).
struct TestSupportTests {
    @Test func anExistingSetFailsNamingTheProcessThatHoldsIt() throws {
        let spec = SyntheticNamespace(name: "support-holder", nsid: 20, stageSize: 4096, seed: 20)
        let created = try TestSegmentMaker.create(instance: 15, spec)
        defer { SyntheticSegments.remove(created) }
        #expect(SharedMemoryReader.live(instance: 15, nsid: 20).map(\.shmid).sorted() == created.map(\.shmid).sorted())
        let base = try #require(created.first { $0.key.kind == .base })
        #expect(
            SharedMemoryReader.contents(base)
                == SharedMemory.readPrefix(shmid: base.shmid, size: base.size, length: Int(base.size)))
        do {
            let again = try TestSegmentMaker.create(instance: 15, spec)
            SyntheticSegments.remove(again)
            Issue.record("a second set with the same keys was created")
        } catch {
            let message = "\(error)"
            #expect(message.contains("SEGMENTS_EXIST"), "\(message)")
            #expect(message.contains("pid \(getpid())"), "\(message)")
            #expect(message.contains("this test process"), "\(message)")
        }
    }

    @Test func aLatchOpensEveryWaitOnceFiredAndBoundsTheOthers() async throws {
        let latch = Latch()
        await #expect(throws: TestFailure.self) { try await latch.wait(timeout: .milliseconds(50)) }
        async let waiting: Void = latch.wait(timeout: .seconds(15))
        latch.fire()
        try await waiting
        try await latch.wait(timeout: .milliseconds(50))
        #expect(latch.hasFired)
    }
}
