/// A namespace a plan covers.
public struct PlannedNamespace: Sendable, Codable, Equatable {
    public var name: String
    public var nsid: Int

    package init(name: String, nsid: Int) {
        self.name = name
        self.nsid = nsid
    }
}

/// One segment a plan copies, with its file.
public struct PlannedSegment: Sendable, Codable {
    public var key: SegmentKey
    package var kind: SegmentKind
    public var namespace: String
    /// Segment size.
    public var size: UInt64
    /// File name inside the directory.
    public var file: String
    public var compressed: Bool
    package var uid: UInt32
    package var gid: UInt32
    package var mode: UInt32
    /// Restore plans: the file's size.
    package var fileSize: UInt64? = nil
    /// Restore plans: the CRC-32 recorded in the manifest, when there is one.
    var crc32: UInt32? = nil
    /// Restore plans of compressed files: the chunk index recorded in the manifest, when there is one.
    var chunks: DeflateChunks? = nil
}

/// What a backup will copy, as `Engine.planBackup` found it (the pre-flight).
public struct BackupPlan: Sendable, Codable {
    package var instance: Int
    package var directory: String
    public var namespaces: [PlannedNamespace]
    public var segments: [PlannedSegment]
    public var totalBytes: UInt64
}

/// What a restore will create, as `Engine.planRestore` found it (the pre-flight).
public struct RestorePlan: Sendable, Codable {
    package var instance: Int
    package var directory: String
    public var namespaces: [PlannedNamespace]
    public var segments: [PlannedSegment]
    public var totalBytes: UInt64
    /// Things the restore does differently from what the files say (e.g. owner or mode from the manifest).
    public var warnings: [String] = []
}
