import Glibc

/// What the kernel says about one segment, read without attaching it (`/proc/sysvipc/shm`): the evidence
/// that tells whether a process used the segment. Reading it changes none of these fields; `shmat` sets
/// `atime` and `lpid`, `shmdt` sets `dtime` and `lpid`, `IPC_SET` sets `ctime`. Pids are as the reader's PID
/// namespace sees them (0 when invisible); times are Unix seconds (0 = never).
package struct SegmentEvidence: Sendable, Codable, Equatable, Hashable {
    package var key: SegmentKey
    package var shmid: Int32
    package var size: UInt64
    package var nattch: Int
    package var cpid: Int32
    package var lpid: Int32
    package var atime: Int64
    package var dtime: Int64
    package var ctime: Int64

    package init(
        key: SegmentKey, shmid: Int32, size: UInt64, nattch: Int, cpid: Int32, lpid: Int32, atime: Int64,
        dtime: Int64, ctime: Int64
    ) {
        self.key = key
        self.shmid = shmid
        self.size = size
        self.nattch = nattch
        self.cpid = cpid
        self.lpid = lpid
        self.atime = atime
        self.dtime = dtime
        self.ctime = ctime
    }

    /// The same segment object (not a new one under the same key).
    package func sameSegment(as other: SegmentEvidence) -> Bool {
        key == other.key && shmid == other.shmid && ctime == other.ctime
    }
}

/// The evidence recorded at the end of a backup: the segments as they were, when and in which boot. Stored in
/// the manifest (an optional field; asmt ignores the manifest) and in the service's state.
package struct FreshnessEvidence: Sendable, Codable, Equatable {
    /// `/proc/sys/kernel/random/boot_id` when observed.
    package var bootID: String
    /// Unix seconds.
    package var observed: Int64
    /// The process that took the backup (its own attaches show as `lpid`).
    package var pid: Int32
    package var segments: [SegmentEvidence]

    package init(bootID: String, observed: Int64, pid: Int32, segments: [SegmentEvidence]) {
        self.bootID = bootID
        self.observed = observed
        self.pid = pid
        self.segments = segments
    }

    enum CodingKeys: String, CodingKey {
        case bootID = "boot-id", observed, pid, segments
    }
}

/// The kernel's System V segment table, read from `/proc/sysvipc/shm`: no attach, no side effect.
package enum SegmentTable {
    package static let path = "/proc/sysvipc/shm"

    /// The Aerospike segments (of `instance`, or all), sorted by key.
    package static func read(instance: Int?) throws(EngineError) -> [SegmentEvidence] {
        guard let text = readText(path) else {
            throw EngineError(.system, "cannot read \(path): \(errnoText())")
        }
        return parse(text).filter { instance == nil || $0.key.instance == instance }
    }

    /// Identifies one life of the segment table: the kernel's boot id and the IPC namespace (segments live in
    /// it: a container restarted with a new IPC namespace, even under the same kernel boot, starts without them).
    /// nil when the kernel tells neither.
    package static func bootID() -> String? {
        let boot = readText("/proc/sys/kernel/random/boot_id")?.filter { !$0.isWhitespace } ?? ""
        var target = [CChar](repeating: 0, count: 64)
        let length = readlink("/proc/self/ns/ipc", &target, target.count - 1)
        let namespace =
            length > 0 ? String(decoding: target.prefix(length).map { UInt8(bitPattern: $0) }, as: UTF8.self) : ""
        if boot.isEmpty && namespace.isEmpty { return nil }
        return namespace.isEmpty ? boot : boot + "/" + namespace
    }

    /// Parses the table's text (pure). Columns are found by the header's names; lines that are not Aerospike
    /// segments or do not parse are skipped.
    package static func parse(_ text: String) -> [SegmentEvidence] {
        var lines = text.split(separator: "\n", omittingEmptySubsequences: true)
        guard !lines.isEmpty else { return [] }
        let header = lines.removeFirst().split(separator: " ", omittingEmptySubsequences: true).map(String.init)
        func column(_ name: String) -> Int? { header.firstIndex(of: name) }
        guard let key = column("key"), let shmid = column("shmid"), let size = column("size"),
            let cpid = column("cpid"), let lpid = column("lpid"), let nattch = column("nattch"),
            let atime = column("atime"), let dtime = column("dtime"), let ctime = column("ctime")
        else { return [] }
        var result: [SegmentEvidence] = []
        for line in lines {
            let fields = line.split(separator: " ", omittingEmptySubsequences: true)
            guard fields.count >= header.count, let rawKey = Int64(fields[key]),
                let segmentKey = SegmentKey(rawValue: UInt32(truncatingIfNeeded: rawKey)),
                let shmidValue = Int32(fields[shmid]), let sizeValue = UInt64(fields[size]),
                let cpidValue = Int32(fields[cpid]), let lpidValue = Int32(fields[lpid]),
                let nattchValue = Int(fields[nattch]), let atimeValue = Int64(fields[atime]),
                let dtimeValue = Int64(fields[dtime]), let ctimeValue = Int64(fields[ctime])
            else { continue }
            result.append(
                SegmentEvidence(
                    key: segmentKey, shmid: shmidValue, size: sizeValue, nattch: nattchValue, cpid: cpidValue,
                    lpid: lpidValue, atime: atimeValue, dtime: dtimeValue, ctime: ctimeValue))
        }
        return result.sorted { $0.key.rawValue < $1.key.rawValue }
    }

    /// The name and shutdown state in a base segment's first bytes. Attaches it read-only for microseconds, which
    /// changes its attach time and last pid: callers that watch those fields look before and after. Never attaches
    /// a segment a job of this process is restoring or has registered for its end-of-backup check (their jobs
    /// would take the attach for a server's): a restored base is not read, a backed-up one is read from the cache.
    package static func baseFacts(shmid: Int32, key: SegmentKey, size: UInt64) -> BaseFacts? {
        guard key.kind == .base, RestoreRegistry.namespace(of: shmid) == nil,
            let prefix = ListingCache.prefixForListing(
                shmid: shmid, size: size, length: SegmentFacts.prefixLength(kind: .base))
        else { return nil }
        let facts = SegmentFacts.read(kind: .base, prefix: prefix)
        return BaseFacts(namespace: facts.namespace, version: facts.version, shutdownStatus: facts.shutdownStatus)
    }

    /// A whole small /proc file (these report size 0, so read until EOF).
    static func readText(_ path: String) -> String? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var bytes: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = buffer.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if n < 0 {
                if errno == EINTR { continue }
                return nil
            }
            if n == 0 { break }
            bytes += buffer.prefix(n)
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}

/// What a base segment says about asd's last shutdown.
package struct BaseFacts: Sendable, Equatable {
    package var namespace: String?
    package var version: UInt32?
    package var shutdownStatus: UInt32?

    package init(namespace: String?, version: UInt32?, shutdownStatus: UInt32?) {
        self.namespace = namespace
        self.version = version
        self.shutdownStatus = shutdownStatus
    }

    /// Committed (version word set) and marked clean by asd (shutdown status 1).
    package var clean: Bool { (version ?? 0) != 0 && shutdownStatus == 1 }
}
