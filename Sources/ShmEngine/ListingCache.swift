import Glibc
import Synchronization

/// The leading bytes of segments that a job of this process must find unattached by anyone else at its end.
///
/// A segment listing attaches base, meta and data segments for a moment to read their names; an attach by this
/// process after the job's own detach would fail the job's final attach check (it cannot tell it from a server's).
/// While registered, `SharedMemory.scan` takes those bytes from here instead of attaching.
enum ListingCache {
    private static let prefixes = Mutex<[Int32: [UInt8]]>([:])

    /// The leading bytes of a segment for a listing: the registered ones, else read through a brief attach. The
    /// look-up and the attach happen under the table's lock, and a job registers its segments under the same lock,
    /// so a listing of this process never attaches a registered segment, not even one registered meanwhile (the
    /// registration waits until the listing has detached, before the job copies and records its own detach).
    static func prefixForListing(shmid: Int32, size: UInt64, length: Int) -> [UInt8]? {
        prefixes.withLock { table in
            table[shmid] ?? SharedMemory.readPrefix(shmid: shmid, size: size, length: length)
        }
    }

    /// The segments one job registered; `end()` unregisters them.
    final class Registration {
        private var shmids: [Int32] = []

        /// Reads and registers the prefix of a segment (nothing for kinds without one).
        func add(shmid: Int32, key: SegmentKey, size: UInt64) throws(EngineError) {
            let length = SegmentFacts.prefixLength(kind: key.kind)
            guard length > 0 else { return }
            let prefix: [UInt8]? = ListingCache.prefixes.withLock { table in
                guard let prefix = SharedMemory.readPrefix(shmid: shmid, size: size, length: length) else { return nil }
                table[shmid] = prefix
                return prefix
            }
            guard prefix != nil else {
                throw EngineError(.system, "cannot attach segment \(key.hex) to read its header: \(errnoText())")
            }
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
