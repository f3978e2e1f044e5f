/// A namespace a plan covers.
public struct PlannedNamespace: Sendable, Codable, Equatable {
    public var name: String
    public var nsid: Int

    public init(name: String, nsid: Int) {
        self.name = name
        self.nsid = nsid
    }
}

/// One segment a plan copies, with its file.
public struct PlannedSegment: Sendable, Codable {
    public var key: SegmentKey
    public var kind: SegmentKind
    public var namespace: String
    /// Segment size.
    public var size: UInt64
    /// File name inside the directory.
    public var file: String
    public var compressed: Bool
    public var uid: UInt32
    public var gid: UInt32
    public var mode: UInt32
    /// Restore plans: the file's size.
    public var fileSize: UInt64? = nil
    /// Restore plans: the CRC-32 recorded in the manifest, when there is one.
    public var crc32: UInt32? = nil
    /// Restore plans of compressed files: the chunk index recorded in the manifest, when there is one.
    public var chunks: DeflateChunks? = nil
}

/// What a backup will copy, as `Engine.planBackup` found it (the pre-flight).
public struct BackupPlan: Sendable, Codable {
    public var instance: Int
    public var directory: String
    public var namespaces: [PlannedNamespace]
    public var segments: [PlannedSegment]
    public var totalBytes: UInt64
}

/// What a restore will create, as `Engine.planRestore` found it (the pre-flight).
public struct RestorePlan: Sendable, Codable {
    public var instance: Int
    public var directory: String
    public var namespaces: [PlannedNamespace]
    public var segments: [PlannedSegment]
    public var totalBytes: UInt64
    /// Things the restore does differently from what the files say (e.g. owner or mode from the manifest).
    public var warnings: [String] = []
}
