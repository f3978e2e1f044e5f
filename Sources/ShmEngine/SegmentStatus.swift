import Glibc

/// A segment's entry in the kernel's table (`shmctl` IPC_STAT or SHM_STAT), fields named as in `shmid_ds`.
/// `shmat` sets `atime` and `lpid`, `shmdt` sets `dtime` and `lpid`, `IPC_SET` sets `ctime`. Pids are as this
/// process's PID namespace sees them; times are Unix seconds.
struct SegmentStatus: Sendable {
    let shmid: Int32
    /// The kernel's record, as `shmctl` filled it.
    let record: shmid_ds

    var key: UInt32 { UInt32(bitPattern: record.shm_perm.__key) }
    var size: UInt64 { UInt64(record.shm_segsz) }
    var nattch: UInt64 { UInt64(record.shm_nattch) }
    var uid: UInt32 { record.shm_perm.uid }
    var gid: UInt32 { record.shm_perm.gid }
    /// Permission bits plus the kernel's flag bits (callers keep `& 0o777`).
    var mode: UInt32 { UInt32(record.shm_perm.mode) }
    var cpid: Int32 { record.shm_cpid }
    var ctime: Int64 { Int64(record.shm_ctime) }
    var lpid: Int32 { record.shm_lpid }
    var atime: Int64 { Int64(record.shm_atime) }
    var dtime: Int64 { Int64(record.shm_dtime) }

    /// What the last attach or detach left.
    var trace: SegmentTrace { SegmentTrace(lpid: lpid, atime: atime, dtime: dtime) }

    /// What any use of the segment changes.
    var stamp: SegmentStamp { SegmentStamp(shmid: shmid, nattch: nattch, ctime: ctime, trace: trace) }
}

/// What a segment's last attach or detach left in its status: pid and times. Any other process's shmat or shmdt
/// changes it.
struct SegmentTrace: Equatable, Sendable {
    var lpid: Int32 = 0
    var atime: Int64 = 0
    var dtime: Int64 = 0
}

/// Which segment object this is (shmid), how many hold it, when it was last changed (`IPC_SET`) and who attached or
/// detached it last: two equal stamps of one key mean that nobody used or changed the segment in between.
struct SegmentStamp: Equatable, Sendable {
    var shmid: Int32 = -1
    var nattch: UInt64 = 0
    var ctime: Int64 = 0
    var trace = SegmentTrace()

    /// The stamp of the segment under `key` now; nil when there is none.
    static func read(_ key: SegmentKey) -> SegmentStamp? {
        SharedMemory.lookup(key).flatMap { SharedMemory.stat(shmid: $0) }?.stamp
    }
}
