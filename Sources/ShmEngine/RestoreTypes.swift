/// A segment a restore created, as recorded before any byte is written: enough to recognise exactly that segment
/// later (crash recovery, cleanup) without relying on process ids.
package struct CreatedSegment: Codable, Sendable, Equatable {
    /// "0x%08x".
    package var key: String
    package var shmid: Int32
    /// The segment's change time (seconds since the epoch) right after its creation.
    package var ctime: Int64

    package init(key: String, shmid: Int32, ctime: Int64) {
        self.key = key
        self.shmid = shmid
        self.ctime = ctime
    }
}

/// What `Engine.recoverRestore` found and did.
package enum RestoreRecovery: Sendable, Equatable {
    /// Every created segment is there, the base is committed and every CRC-32 matches the backup: the restore
    /// finished. Owner, group and mode were set as recorded where they differed.
    case committed
    /// The restore had not committed: the matching unattached segments were removed (`keys`); `stuck` are those
    /// still attached, left in place.
    case removed(keys: [SegmentKey], stuck: [SegmentKey])
    /// The base is committed but the segments cannot be shown to be the backup's (changed since, incomplete, or
    /// the backup cannot be read): committed work is never destroyed, so nothing was touched.
    case kept(reason: String)
}

/// A segment that is asmtd's uncommitted leftover, or another segment `Engine.cleanup` looked at.
package struct LeftoverSegment: Codable, Sendable, Equatable {
    package var key: SegmentKey
    package var shmid: Int32
    package var size: UInt64
    package var attachCount: Int
    /// From the base (or data stage) when it could be read.
    package var namespace: String?
    /// True when the base of its instance and nsid is missing or has version word 0.
    package var uncommitted: Bool

    package init(
        key: SegmentKey, shmid: Int32, size: UInt64, attachCount: Int, namespace: String?, uncommitted: Bool
    ) {
        self.key = key
        self.shmid = shmid
        self.size = size
        self.attachCount = attachCount
        self.namespace = namespace
        self.uncommitted = uncommitted
    }
}

/// What `Engine.cleanup` removed and what it refused to touch.
package struct CleanupReport: Codable, Sendable, Equatable {
    package struct Refusal: Codable, Sendable, Equatable {
        package var key: SegmentKey
        package var shmid: Int32
        package var reason: String
    }

    package var removed: [LeftoverSegment] = []
    package var refused: [Refusal] = []
    /// Staging files (`*.partial`) removed from backup directories.
    package var removedFiles: [String] = []
    /// Failures that left something in place (a segment that could not be removed, an unreadable directory).
    package var errors: [String] = []

    package init() {}
}
