import CISAL
import Glibc

/// A live segment plus the facts read from its first bytes.
struct ScannedSegment: Sendable {
    var live: LiveSegment
    var facts: SegmentFacts
    /// Why the first bytes could not be read (the facts are then empty).
    var unreadable: String? = nil
}

/// A segment attached to this process. Raw pointers cross worker threads only inside the engine.
package struct Attachment: @unchecked Sendable {
    let shmid: Int32
    let address: UnsafeMutableRawPointer
    let size: Int

    package var bytes: UnsafeMutableRawBufferPointer { UnsafeMutableRawBufferPointer(start: address, count: size) }
}

/// The file and the attached segment of one backup or restore item.
protocol FileAndSegment: AnyObject {
    var fd: Int32 { get set }
    var attachment: Attachment? { get set }
    /// The segment's shmem file (`SharedMemory.openFile`), -1 when the mapping is used.
    var segmentFD: Int32 { get set }
    var segment: PlannedSegment { get }
}

extension FileAndSegment {
    /// Attaches the segment and opens its shmem file when `access` allows it.
    func attach(shmid: Int32, readOnly: Bool, access: SegmentAccess) throws(EngineError) {
        let attached = try SharedMemory.attach(shmid: shmid, key: segment.key, size: segment.size, readOnly: readOnly)
        attachment = attached
        if access == .automatic {
            segmentFD = SharedMemory.openFile(attached, key: segment.key, writable: !readOnly) ?? -1
        }
    }

    /// Plain copies between this item's file and segment.
    var segmentIO: SegmentIO { SegmentIO(segmentFD: segmentFD, mapping: attachment!.address, key: segment.key) }

    /// Closes the file and detaches the segment; safe to call more than once.
    func release() {
        if fd >= 0 {
            close(fd)
            fd = -1
        }
        detachSegment()
    }

    /// Detaches the segment as soon as its bytes are copied: unmapping a segment costs about 12 ms per 256 MiB,
    /// which the workers then pay in parallel instead of the caller one segment after another at the end.
    func detachSegment() {
        if segmentFD >= 0 {
            close(segmentFD)
            segmentFD = -1
        }
        if let attachment {
            SharedMemory.detach(attachment)
            self.attachment = nil
        }
    }
}

package enum SharedMemory {
    /// SHM_INFO / SHM_STAT walk; tolerant of segments vanishing during the walk. nil = all instances.
    package static func segments(instance: Int?) throws(EngineError) -> [LiveSegment] {
        try scan(instance: instance).map(\.live)
    }

    static func scan(instance: Int?) throws(EngineError) -> [ScannedSegment] {
        let maxIndex = cisal_shm_max_index()
        guard maxIndex >= 0 else { throw EngineError(.system, "shmctl(SHM_INFO) failed: \(errnoText())") }
        var result: [ScannedSegment] = []
        for index in 0...maxIndex {
            var info = cisal_shm_info()
            let id = cisal_shm_stat_index(Int32(index), &info)
            guard id >= 0 else { continue }  // unused slot, or removed meanwhile
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

    /// The attach count of a segment, ignoring brief attachments. A segment listing (this process's or another
    /// asmtd's) attaches base and data segments for microseconds to read their names, while a server stays
    /// attached. Returns the smallest count seen within about 100 ms, as soon as it is `atMost` or lower; nil when
    /// the segment is gone.
    static func settledAttachCount(shmid: Int32, atMost floor: Int) -> Int? {
        var lowest = Int.max
        for attempt in 0..<20 {
            if attempt > 0 { usleep(5000) }
            guard let info = stat(shmid: shmid) else { return nil }
            lowest = min(lowest, Int(info.nattch))
            if lowest <= floor { break }
        }
        return lowest
    }

    /// Copies up to `length` leading bytes of a segment (temporary read-only attach).
    static func readPrefix(shmid: Int32, size: UInt64, length: Int) -> [UInt8]? {
        guard let address = cisal_shm_attach(shmid, 1) else { return nil }
        defer { _ = cisal_shm_detach(address) }
        let count = Int(min(size, UInt64(length)))
        return Array(UnsafeRawBufferPointer(start: address, count: count))
    }

    static func stat(shmid: Int32) -> cisal_shm_info? {
        var info = cisal_shm_info()
        return cisal_shm_stat_id(shmid, &info) == 0 ? info : nil
    }

    /// shmid of an existing key, nil when it does not exist.
    package static func lookup(_ key: SegmentKey) -> Int32? {
        let id = cisal_shm_get(key.rawValue, 0, 0)
        return id >= 0 ? id : nil
    }

    /// Creates a new segment exclusively, owner-only until its permissions are set.
    package static func create(_ key: SegmentKey, size: UInt64) throws(EngineError) -> Int32 {
        let id = cisal_shm_get(key.rawValue, size, cisal_ipc_creat() | cisal_ipc_excl() | 0o600)
        guard id >= 0 else {
            let code = errno
            if code == EEXIST { throw EngineError(.segmentsExist, "segment \(key.hex) already exists") }
            throw EngineError(.system, "cannot create segment \(key.hex) of \(size) bytes: \(errnoText(code))")
        }
        return id
    }

    package static func attach(
        shmid: Int32, key: SegmentKey, size: UInt64, readOnly: Bool
    ) throws(EngineError) -> Attachment {
        guard let address = cisal_shm_attach(shmid, readOnly ? 1 : 0) else {
            throw EngineError(.system, "cannot attach segment \(key.hex) (shmid \(shmid)): \(errnoText())")
        }
        return Attachment(shmid: shmid, address: address, size: Int(size))
    }

    package static func detach(_ attachment: Attachment) { _ = cisal_shm_detach(attachment.address) }

    /// `ASMTD_NO_SHM_FILE=1` in the environment: never open a segment's shmem file, always use the mapping.
    static let mappingOnly = getenv("ASMTD_NO_SHM_FILE").map { String(cString: $0) == "1" } ?? false

    /// Opens the shmem file behind an attached segment through /proc/self/map_files, so that its bytes can move
    /// with pread and pwrite (see `SegmentIO`). Needs CAP_SYS_ADMIN, as root has; nil when the kernel refuses or
    /// the file is not the segment's (by name and size), and the caller uses the mapping instead.
    static func openFile(_ attachment: Attachment, key: SegmentKey, writable: Bool) -> Int32? {
        if mappingOnly { return nil }
        let page = max(4096, Int(sysconf(Int32(_SC_PAGESIZE))))
        let start = UInt(bitPattern: attachment.address)
        let end = start + UInt((attachment.size + page - 1) / page * page)
        let path = "/proc/self/map_files/" + String(start, radix: 16) + "-" + String(end, radix: 16)
        // The kernel names a System V segment's file "SYSV" and the key in 8 hex digits.
        var target = [CChar](repeating: 0, count: 256)
        let length = readlink(path, &target, target.count - 1)
        guard length > 0 else { return nil }
        let name = String(decoding: target.prefix(length).map { UInt8(bitPattern: $0) }, as: UTF8.self)
        guard name.hasPrefix("/SYSV" + key.hex8) else { return nil }
        let fd = open(path, (writable ? O_RDWR : O_RDONLY) | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        var st = Glibc.stat()
        guard fstat(fd, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG, st.st_size == attachment.size else {
            close(fd)
            return nil
        }
        return fd
    }

    package static func setOwner(
        shmid: Int32, key: SegmentKey, uid: UInt32, gid: UInt32, mode: UInt32
    ) throws(EngineError) {
        guard cisal_shm_set(shmid, uid, gid, mode & 0o777) == 0 else {
            throw EngineError(.system, "cannot set owner and mode of segment \(key.hex): \(errnoText())")
        }
    }

    @discardableResult
    package static func remove(shmid: Int32) -> Bool { cisal_shm_remove(shmid) == 0 }
}
