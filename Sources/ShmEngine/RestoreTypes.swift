/// A segment a restore created, as recorded before any byte is written: enough to recognise exactly that segment
/// later (crash recovery, cleanup) without relying on process ids.
public struct CreatedSegment: Codable, Sendable, Equatable {
    /// "0x%08x".
    public var key: String
    public var shmid: Int32
    /// The segment's change time (seconds since the epoch) right after its creation.
    public var ctime: Int64

    public init(key: String, shmid: Int32, ctime: Int64) {
        self.key = key
        self.shmid = shmid
        self.ctime = ctime
    }
}

/// What `Engine.recoverRestore` found and did.
public enum RestoreRecovery: Sendable, Equatable {
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
public struct LeftoverSegment: Codable, Sendable, Equatable {
    public var key: SegmentKey
    public var shmid: Int32
    public var size: UInt64
    public var attachCount: Int
    /// From the base (or data stage) when it could be read.
    public var namespace: String?
    /// True when the base of its instance and nsid is missing or has version word 0.
    public var uncommitted: Bool

    public init(
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
public struct CleanupReport: Codable, Sendable, Equatable {
    public struct Refusal: Codable, Sendable, Equatable {
        public var key: SegmentKey
        public var shmid: Int32
        public var reason: String
    }

    public var removed: [LeftoverSegment] = []
    public var refused: [Refusal] = []
    /// Staging files (`*.partial`) removed from backup directories.
    public var removedFiles: [String] = []
    /// Failures that left something in place (a segment that could not be removed, an unreadable directory).
    public var errors: [String] = []

    public init() {}
}
