import Glibc
import Synchronization

/// The leading bytes of segments that a job of this process must find unattached by anyone else at its end.
///
/// A segment listing attaches base, meta and data segments for a moment to read their names; an attach by this
/// process after the job's own detach would fail the job's final attach check (it cannot tell it from a server's).
/// While registered, `SharedMemory.scan` takes those bytes from here instead of attaching.
enum ListingCache {
    private static let prefixes = Mutex<[Int32: [UInt8]]>([:])

    static func prefix(shmid: Int32) -> [UInt8]? { prefixes.withLock { $0[shmid] } }

    /// The segments one job registered; `end()` unregisters them.
    final class Registration {
        private var shmids: [Int32] = []

        /// Reads and registers the prefix of a segment (nothing for kinds without one).
        func add(shmid: Int32, key: SegmentKey, size: UInt64) throws(EngineError) {
            let length = SegmentFacts.prefixLength(kind: key.kind)
            guard length > 0 else { return }
            guard let prefix = SharedMemory.readPrefix(shmid: shmid, size: size, length: length) else {
                throw EngineError(.system, "cannot attach segment \(key.hex) to read its header: \(errnoText())")
            }
            ListingCache.prefixes.withLock { $0[shmid] = prefix }
            shmids.append(shmid)
        }

        func end() {
            let ids = shmids
            shmids = []
            ListingCache.prefixes.withLock { table in
                for id in ids { table[id] = nil }
            }
        }
    }
}
