import Foundation
import Glibc
import TestSupport
import Testing

@testable import ShmEngine

/// The test-support layer's own promises: an existing key fails with a message naming its holder, the
/// independent reader sees what was created, a latch stays open once fired. Instance 13, nsid 22.
struct TestSupportTests {
    @Test func anExistingSetFailsNamingTheProcessThatHoldsIt() throws {
        let spec = SyntheticNamespace(name: "support-holder", nsid: 22, stageSize: 4096, seed: 22)
        try Fixture.withSegments(instance: 13, spec) { created in
            #expect(
                SharedMemoryReader.live(instance: 13, nsid: 22).map(\.shmid).sorted() == created.map(\.shmid).sorted())
            #expect(SharedMemoryReader.contents(created[0]) == Fixture.contents(created[0]))
            do {
                let again = try TestSegmentMaker.create(instance: 13, spec)
                SyntheticSegments.remove(again)
                Issue.record("a second set with the same keys was created")
            } catch {
                let message = "\(error)"
                #expect(message.contains("SEGMENTS_EXIST"), "\(message)")
                #expect(message.contains("pid \(getpid())"), "\(message)")
                #expect(message.contains("this test process"), "\(message)")
            }
        }
        #expect(SharedMemoryReader.live(instance: 13, nsid: 22).isEmpty)
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
