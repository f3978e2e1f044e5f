/// A backup of an instance's namespaces into a directory, as a caller asks for it.
public struct BackupRequest: Sendable {
    package var instance: Int
    package var namespaces: [String]
    /// The backup directory itself; created 0700 when missing (one level).
    package var directory: String
    package var compress: Bool
    package var verify: Bool
    /// 0 = one per core.
    package var threads: Int
    /// Tests set `.mapping` to exercise the path used where the segment's file cannot be opened.
    var segmentAccess = SegmentAccess.automatic

    public init(
        instance: Int, namespaces: [String], directory: String, compress: Bool = false, verify: Bool = true,
        threads: Int = 0
    ) {
        self.instance = instance
        self.namespaces = namespaces
        self.directory = directory
        self.compress = compress
        self.verify = verify
        self.threads = threads
    }
}

/// A restore of an instance's namespaces from a backup directory, as a caller asks for it.
public struct RestoreRequest: Sendable {
    package var instance: Int
    package var namespaces: [String]
    package var directory: String
    package var verify: Bool
    package var threads: Int
    /// Called once, after every segment is created and before any byte is written, with what is needed to find
    /// exactly those segments again (`Engine.recoverRestore`). A throw aborts the restore (its segments are removed).
    package var onCreated: (@Sendable ([CreatedSegment]) throws(EngineError) -> Void)?
    /// Tests set `.mapping` to exercise the path used where the segment's file cannot be opened.
    var segmentAccess = SegmentAccess.automatic
    /// Tests: called once every segment is filled and detached, before owner, mode and the commit.
    var afterFill: (@Sendable () -> Void)?

    public init(instance: Int, namespaces: [String], directory: String, verify: Bool = true, threads: Int = 0) {
        self.instance = instance
        self.namespaces = namespaces
        self.directory = directory
        self.verify = verify
        self.threads = threads
    }
}
