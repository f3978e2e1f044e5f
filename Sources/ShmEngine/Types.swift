import Synchronization

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

public struct PlannedNamespace: Sendable, Codable, Equatable {
    public var name: String
    public var nsid: Int

    package init(name: String, nsid: Int) {
        self.name = name
        self.nsid = nsid
    }
}

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
    /// Restore plans: the file's size. (Addition to the contract.)
    package var fileSize: UInt64? = nil
    /// Restore plans: the CRC-32 recorded in the manifest, when there is one. (Addition to the contract.)
    var crc32: UInt32? = nil
    /// Restore plans of compressed files: the chunk index recorded in the manifest, when there is one.
    var chunks: DeflateChunks? = nil
}

public struct BackupPlan: Sendable, Codable {
    package var instance: Int
    package var directory: String
    public var namespaces: [PlannedNamespace]
    public var segments: [PlannedSegment]
    public var totalBytes: UInt64
}

public struct RestorePlan: Sendable, Codable {
    package var instance: Int
    package var directory: String
    public var namespaces: [PlannedNamespace]
    public var segments: [PlannedSegment]
    public var totalBytes: UInt64
    /// Things the restore does differently from what the files say (e.g. owner or mode from the manifest).
    public var warnings: [String] = []
}

public struct EngineError: Error, Sendable, CustomStringConvertible, Equatable {
    public enum Code: String, Sendable, Codable {
        /// Bad instance, no namespaces, bad threads.
        case invalidRequest = "INVALID_REQUEST"
        /// No base segment / base file with that name.
        case namespaceNotFound = "NAMESPACE_NOT_FOUND"
        /// A segment of the namespace is attached.
        case serverRunning = "SERVER_RUNNING"
        /// Base shutdown status != 1.
        case uncleanShutdown = "UNCLEAN_SHUTDOWN"
        /// Treex missing, stage holes, counts, base version, sizes.
        case invalidSegments = "INVALID_SEGMENTS"
        /// Backup: files of that instance+nsid already in the directory.
        case filesExist = "FILES_EXIST"
        /// Restore: segments of that instance+nsid exist.
        case segmentsExist = "SEGMENTS_EXIST"
        /// Restore: missing/corrupt/truncated files, bad header.
        case invalidBackup = "INVALID_BACKUP"
        /// CRC-32 mismatch.
        case verifyFailed = "VERIFY_FAILED"
        case canceled = "CANCELED"
        /// File system errors (ENOSPC, EACCES, ...).
        case io = "IO_ERROR"
        /// Shm calls refused, out of memory, ...
        case system = "SYSTEM_ERROR"
        /// Another job (this process, another asmtd, the CLI) holds the instance's lock.
        case instanceBusy = "INSTANCE_BUSY"
        /// Another backup holds the backup directory's lock (or a restore reads it).
        case backupBusy = "BACKUP_BUSY"
    }

    public var code: Code
    /// One clear line, names the segment/file.
    public var message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { "\(code.rawValue): \(message)" }
}

/// Progress of one job, readable from any thread while the job runs.
public final class JobProgress: Sendable {
    private let state = Mutex(ProgressSnapshot(bytesTotal: 0, bytesDone: 0, segmentsTotal: 0, segmentsDone: 0))

    public init() {}

    public func snapshot() -> ProgressSnapshot { state.withLock { $0 } }

    func start(_ segments: [(SegmentKey, UInt64)]) {
        state.withLock {
            $0 = ProgressSnapshot(
                bytesTotal: segments.reduce(0) { $0 + $1.1 }, bytesDone: 0, segmentsTotal: segments.count,
                segmentsDone: 0, segments: segments.map { SegmentProgress(key: $0.0, state: .pending) })
        }
    }

    func add(bytes: UInt64) {
        state.withLock { $0.bytesDone = min($0.bytesTotal, $0.bytesDone + bytes) }
    }

    func set(_ index: Int, _ newState: SegmentProgress.State) {
        state.withLock {
            guard $0.segments.indices.contains(index) else { return }
            let old = $0.segments[index].state
            $0.segments[index].state = newState
            if newState == .done && old != .done { $0.segmentsDone += 1 }
        }
    }
}

public struct ProgressSnapshot: Sendable {
    public var bytesTotal: UInt64
    public var bytesDone: UInt64
    public var segmentsTotal: Int
    public var segmentsDone: Int
    /// In plan order.
    package var segments: [SegmentProgress] = []
}

package struct SegmentProgress: Sendable {
    package var key: SegmentKey
    package var state: State

    package enum State: String, Sendable, Codable {
        case pending, running, done, failed
    }
}

/// Cooperative cancellation: the engine checks it between chunks.
public final class CancellationToken: Sendable {
    private let flag = Atomic<Bool>(false)

    public init() {}

    public func cancel() { flag.store(true, ordering: .releasing) }

    public var isCancelled: Bool { flag.load(ordering: .acquiring) }
}
