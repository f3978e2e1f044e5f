import Glibc
import ShmEngine
import ShmSynthetic

/// Synthetic segment sets of the tests: instances 13..15 only, created exclusively, and a clear failure naming the
/// process that holds a key when one exists (another suite on this host, or a leftover).
package enum TestSegmentMaker {
    /// Creates `spec` on `instance`. With `clearingLeftovers`, unattached segments of that instance and nsid that
    /// an exited process or this one created are removed first (an earlier crashed run of the same test); those of
    /// another live process are left alone, and the creation then fails naming it.
    package static func create(
        instance: Int, _ spec: SyntheticNamespace, clearingLeftovers: Bool = false
    ) throws -> [LiveSegment] {
        precondition((13...15).contains(instance), "tests use instances 13..15 only")
        if clearingLeftovers { removeLeftovers(instance: instance, nsid: spec.nsid) }
        do {
            return try SyntheticSegments.create(instance: instance, namespace: spec)
        } catch {
            let held = SharedMemoryReader.live(instance: instance, nsid: spec.nsid)
            guard let first = held.first else { throw error }
            throw TestFailure(
                "\(error): instance \(instance) nsid \(spec.nsid) (\(spec.name)) has \(held.count) segment(s) already;"
                    + " \(first.key.hex) \(SharedMemoryReader.holder(of: first)). Another test run on this host?"
                    + " Run suites that create segments under `flock /tmp/asmtd-shm.lock`.")
        }
    }

    /// ``create(instance:_:clearingLeftovers:)`` off the cooperative pool (filling hundreds of MiB).
    package static func make(
        instance: Int, _ spec: SyntheticNamespace, clearingLeftovers: Bool = false
    ) async throws -> [LiveSegment] {
        try await blocking { try create(instance: instance, spec, clearingLeftovers: clearingLeftovers) }
    }

    /// Removes the unattached segments of `instance` / `nsid` (originals and those a restore created), whoever
    /// created them: the cleanup of a test that owns this nsid.
    package static func removeAll(instance: Int, nsid: Int) {
        for segment in SharedMemoryReader.live(instance: instance, nsid: nsid) where segment.attachCount == 0 {
            shmctl(segment.shmid, IPC_RMID, nil)
        }
    }

    /// Removes the unattached segments of `instance` / `nsid` that an exited process or this one created.
    package static func removeLeftovers(instance: Int, nsid: Int) {
        for segment in SharedMemoryReader.live(instance: instance, nsid: nsid) where segment.attachCount == 0 {
            let creator = segment.creatorPID
            if creator == getpid() || !SharedMemoryReader.isAlive(creator) { shmctl(segment.shmid, IPC_RMID, nil) }
        }
    }
}
