import Glibc

/// A live System V segment with an Aerospike key.
package struct LiveSegment: Sendable, Codable {
    package var key: SegmentKey
    package var shmid: Int32
    package var size: UInt64
    package var attachCount: Int
    package var uid: UInt32
    package var gid: UInt32
    /// Permission bits (& 0o777).
    package var mode: UInt32
    package var creatorPID: Int32
    /// From the base (offset 1024) and data stages (offset 12); nil for other kinds or when unreadable.
    package var namespace: String?
    /// The base of its instance and nsid is missing or has version word 0: not usable by asd, an unfinished
    /// restore's segment (see README, "How a restore commits").
    package var uncommitted = false

    package init(
        key: SegmentKey, shmid: Int32, size: UInt64, attachCount: Int, uid: UInt32, gid: UInt32, mode: UInt32,
        creatorPID: Int32, namespace: String? = nil
    ) {
        self.key = key
        self.shmid = shmid
        self.size = size
        self.attachCount = attachCount
        self.uid = uid
        self.gid = gid
        self.mode = mode
        self.creatorPID = creatorPID
        self.namespace = namespace
    }
}

/// A live segment plus the facts read from its first bytes.
struct ScannedSegment: Sendable {
    var live: LiveSegment
    var facts: SegmentFacts
    /// Why the first bytes could not be read (the facts are then empty).
    var unreadable: String? = nil
}

extension SharedMemory {
    /// SHM_INFO / SHM_STAT walk; tolerant of segments vanishing during the walk. nil = all instances.
    package static func segments(instance: Int?) throws(EngineError) -> [LiveSegment] {
        try scan(instance: instance).map(\.live)
    }

    static func scan(instance: Int?) throws(EngineError) -> [ScannedSegment] {
        let highest = maxIndex()
        guard highest >= 0 else { throw EngineError(.system, "shmctl(SHM_INFO) failed: \(errnoText())") }
        var result: [ScannedSegment] = []
        for index in 0...highest {
            guard let info = stat(index: Int32(index)) else { continue }  // unused slot, or removed meanwhile
            guard let key = SegmentKey(rawValue: info.key) else { continue }
            if let instance, key.instance != instance { continue }
            var live = LiveSegment(
                key: key, shmid: info.shmid, size: info.size, attachCount: Int(info.nattch), uid: info.uid,
                gid: info.gid, mode: info.mode & 0o777, creatorPID: info.cpid)
            var facts = SegmentFacts()
            var unreadable: String?
            let length = SegmentFacts.prefixLength(kind: key.kind)
            if let restoring = RestoreRegistry.namespace(of: info.shmid) {
                // Being restored here: not attached (the commit check would take that for a server).
                facts.namespace = key.kind == .base || key.kind == .dataStage ? restoring : nil
                live.namespace = facts.namespace
            } else if length > 0 {
                if let prefix = ListingCache.prefixForListing(shmid: info.shmid, size: info.size, length: length) {
                    facts = SegmentFacts.read(kind: key.kind, prefix: prefix)
                    live.namespace = facts.namespace
                } else {
                    let code = errno
                    guard stat(shmid: info.shmid) != nil else { continue }  // vanished during the walk
                    unreadable = "cannot attach segment \(key.hex) to read its header: \(errnoText(code))"
                }
            }
            result.append(ScannedSegment(live: live, facts: facts, unreadable: unreadable))
        }
        for index in result.indices where result[index].live.attachCount > 0 {
            guard let settled = settledAttachCount(shmid: result[index].live.shmid, atMost: 0) else { continue }
            result[index].live.attachCount = settled
        }
        return Leftovers.markUncommitted(result).sorted { $0.live.key < $1.live.key }
    }
}
