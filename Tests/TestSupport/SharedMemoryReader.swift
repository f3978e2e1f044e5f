import Foundation
import Glibc
import ShmEngine

/// An independent reader of System V shared memory (SHM_INFO / SHM_STAT, read-only shmat, /proc/sysvipc/shm):
/// nothing of the engine under test, and it attaches nothing when it lists.
package enum SharedMemoryReader {
    /// Every Aerospike-keyed segment of the host, attaching none.
    package static func walk() -> [LiveSegment] {
        var info = shmid_ds()
        let maxIndex = shmctl(0, SHM_INFO, &info)
        guard maxIndex >= 0 else { return [] }
        var result: [LiveSegment] = []
        for index in 0...maxIndex {
            var ds = shmid_ds()
            let shmid = shmctl(index, SHM_STAT, &ds)
            guard shmid >= 0, let key = SegmentKey(rawValue: UInt32(bitPattern: ds.shm_perm.__key)) else { continue }
            result.append(
                LiveSegment(
                    key: key, shmid: shmid, size: UInt64(ds.shm_segsz), attachCount: Int(ds.shm_nattch),
                    uid: ds.shm_perm.uid, gid: ds.shm_perm.gid, mode: UInt32(ds.shm_perm.mode) & 0o777,
                    creatorPID: ds.shm_cpid))
        }
        return result
    }

    /// The segments of one instance and nsid, in key order.
    package static func live(instance: Int, nsid: Int) -> [LiveSegment] {
        walk().filter { $0.key.instance == instance && $0.key.nsid == nsid }.sorted { $0.key < $1.key }
    }

    /// Bytes of a segment, read through a read-only attach ([] when it cannot be attached).
    package static func contents(_ segment: LiveSegment) -> [UInt8] {
        guard let address = shmat(segment.shmid, nil, SHM_RDONLY), address != UnsafeMutableRawPointer(bitPattern: -1)
        else { return [] }
        defer { shmdt(address) }
        return Array(UnsafeRawBufferPointer(start: address, count: Int(segment.size)))
    }

    /// The segment holds exactly `bytes` (read-only attach, memcmp: fast enough for hundreds of MiB per check).
    package static func holds(_ segment: LiveSegment, _ bytes: [UInt8]) -> Bool {
        guard segment.size == UInt64(bytes.count), let address = shmat(segment.shmid, nil, SHM_RDONLY),
            address != UnsafeMutableRawPointer(bitPattern: -1)
        else { return false }
        defer { shmdt(address) }
        return bytes.withUnsafeBytes { memcmp(address, $0.baseAddress!, bytes.count) } == 0
    }

    /// Who holds `segment`, from /proc/sysvipc/shm: its creator and last attacher with their process names.
    package static func holder(of segment: LiveSegment) -> String {
        let table = (try? String(contentsOfFile: "/proc/sysvipc/shm", encoding: .utf8)) ?? ""
        // key shmid perms size cpid lpid nattch ...
        for line in table.split(separator: "\n").dropFirst() {
            let fields = line.split(separator: " ")
            guard fields.count >= 7, Int32(fields[1]) == segment.shmid,
                let cpid = Int32(fields[4]), let lpid = Int32(fields[5])
            else { continue }
            return "created by \(describe(cpid)), last attached by \(describe(lpid)), \(fields[6]) attached"
        }
        return "created by \(describe(segment.creatorPID)), \(segment.attachCount) attached"
    }

    /// "pid 123 (asmtd)", or "pid 123 (exited)".
    static func describe(_ pid: Int32) -> String {
        guard pid > 0 else { return "no process" }
        guard isAlive(pid) else { return "pid \(pid) (exited)" }
        let name = (try? String(contentsOfFile: "/proc/\(pid)/comm", encoding: .utf8)) ?? "?\n"
        return "pid \(pid) (\(name.dropLast()))\(pid == getpid() ? ", this test process" : "")"
    }

    /// The process exists and is no zombie.
    static func isAlive(_ pid: Int32) -> Bool {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
            let close = stat.lastIndex(of: ")")
        else { return false }
        return stat[stat.index(after: close)...].dropFirst().first != "Z"
    }
}
