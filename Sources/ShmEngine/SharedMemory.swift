import Glibc

/// A segment attached to this process: an immutable value whose `address` stays valid until
/// `SharedMemory.detach`, whichever thread calls it. `@unchecked Sendable` because of that raw pointer: the memory it
/// points to is the segment, shared by design, and a job detaches it only when no worker uses it any more
/// (`SegmentFileState`).
package struct Attachment: @unchecked Sendable {
    let shmid: Int32
    let address: UnsafeMutableRawPointer
    let size: Int

    package var bytes: UnsafeMutableRawBufferPointer { UnsafeMutableRawBufferPointer(start: address, count: size) }
}

/// The System V shared-memory calls the engine makes, over Glibc. The walk of the kernel's table that lists segments
/// (`segments`, `scan`) is in SegmentListing.swift.
package enum SharedMemory {
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
        guard let address = attachAddress(shmid: shmid, readOnly: true) else { return nil }
        defer { shmdt(address) }
        let count = Int(min(size, UInt64(length)))
        return Array(UnsafeRawBufferPointer(start: address, count: count))
    }

    /// IPC_STAT: nil when the segment is gone (or not readable).
    static func stat(shmid: Int32) -> SegmentStatus? {
        var ds = shmid_ds()
        return shmctl(shmid, IPC_STAT, &ds) == 0 ? SegmentStatus(shmid: shmid, record: ds) : nil
    }

    /// The highest used index of the kernel's segment table (SHM_INFO), -1 with errno.
    static func maxIndex() -> Int32 {
        var info = shm_info()
        return withUnsafeMutablePointer(to: &info) { pointer in
            pointer.withMemoryRebound(to: shmid_ds.self, capacity: 1) { shmctl(0, SHM_INFO, $0) }
        }
    }

    /// SHM_STAT on an index of the kernel's table: nil for an unused slot (or one emptied meanwhile).
    static func stat(index: Int32) -> SegmentStatus? {
        var ds = shmid_ds()
        let shmid = shmctl(index, SHM_STAT, &ds)
        return shmid >= 0 ? SegmentStatus(shmid: shmid, record: ds) : nil
    }

    /// shmid of an existing key, nil when it does not exist.
    package static func lookup(_ key: SegmentKey) -> Int32? {
        let id = shmget(key_t(bitPattern: key.rawValue), 0, 0)
        return id >= 0 ? id : nil
    }

    /// Creates a new segment exclusively, owner-only until its permissions are set.
    package static func create(_ key: SegmentKey, size: UInt64) throws(EngineError) -> Int32 {
        let id = shmget(key_t(bitPattern: key.rawValue), Int(size), IPC_CREAT | IPC_EXCL | 0o600)
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
        guard let address = attachAddress(shmid: shmid, readOnly: readOnly) else {
            throw EngineError(.system, "cannot attach segment \(key.hex) (shmid \(shmid)): \(errnoText())")
        }
        return Attachment(shmid: shmid, address: address, size: Int(size))
    }

    package static func detach(_ attachment: Attachment) { shmdt(attachment.address) }

    /// shmat: nil with errno on failure.
    private static func attachAddress(shmid: Int32, readOnly: Bool) -> UnsafeMutableRawPointer? {
        let address = shmat(shmid, nil, readOnly ? SHM_RDONLY : 0)
        return address == UnsafeMutableRawPointer(bitPattern: -1) ? nil : address
    }

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
        var ds = shmid_ds()
        guard shmctl(shmid, IPC_STAT, &ds) == 0 else {
            throw EngineError(.system, "cannot set owner and mode of segment \(key.hex): \(errnoText())")
        }
        ds.shm_perm.uid = uid
        ds.shm_perm.gid = gid
        ds.shm_perm.mode = mode & 0o777
        guard shmctl(shmid, IPC_SET, &ds) == 0 else {
            throw EngineError(.system, "cannot set owner and mode of segment \(key.hex): \(errnoText())")
        }
    }

    @discardableResult
    package static func remove(shmid: Int32) -> Bool { shmctl(shmid, IPC_RMID, nil) == 0 }

    /// Populates the pages of a writable mapping before they are written (MADV_POPULATE_WRITE, Linux 5.14), else
    /// touches one byte per page: inflating into prefaulted pages is faster than faulting them one by one.
    static func prefaultForWriting(_ address: UnsafeMutableRawPointer, count: Int) {
        guard count > 0 else { return }
        let page = max(4096, Int(sysconf(Int32(_SC_PAGESIZE))))
        let start = UInt(bitPattern: address) & ~UInt(page - 1)
        let end = UInt(bitPattern: address) + UInt(count)
        if madvise(UnsafeMutableRawPointer(bitPattern: start), Int(end - start), MADV_POPULATE_WRITE) == 0 { return }
        let bytes = address.assumingMemoryBound(to: UInt8.self)
        for offset in stride(from: 0, to: count, by: page) { touch(bytes + offset) }
    }

    /// Writes a byte back unchanged, which faults its page in writable. Not optimized, so that the write stays.
    @_optimize(none)
    private static func touch(_ byte: UnsafeMutablePointer<UInt8>) { byte.pointee = byte.pointee }
}
