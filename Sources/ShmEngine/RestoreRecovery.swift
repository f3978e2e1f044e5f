import Glibc

/// A segment a restore created, as recorded before any byte is written: enough to recognise exactly that segment
/// later (crash recovery, cleanup) without relying on process ids.
package struct CreatedSegment: Codable, Sendable, Equatable {
    /// "0x%08x".
    package var key: String
    package var shmid: Int32
    /// The segment's change time (seconds since the epoch) right after its creation.
    package var ctime: Int64

    package init(key: String, shmid: Int32, ctime: Int64) {
        self.key = key
        self.shmid = shmid
        self.ctime = ctime
    }
}

/// What `Engine.recoverRestore` found and did.
package enum RestoreRecovery: Sendable, Equatable {
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

extension Engine {
    /// Crash recovery of a restore from what its `onCreated` reported, without process ids (it works across PID
    /// namespaces). Live segments match by key and shmid (and were created in this boot, no earlier than recorded).
    /// A committed restore whose segments all match the backup's CRC-32s is `.committed` (owner, group and mode
    /// rolled forward from the manifest); an uncommitted one loses its unattached segments (`.removed`); a committed
    /// base whose segments cannot be shown to be the backup's is left alone (`.kept`).
    package static func recoverRestore(created: [CreatedSegment], directory: String) -> RestoreRecovery {
        let boot = bootTime()
        var matched: [(segment: LiveSegment, file: String?)] = []
        var missing = 0
        for entry in created {
            guard let key = SegmentKey(hex: entry.key), entry.ctime >= boot,
                let info = SharedMemory.stat(shmid: entry.shmid), info.key == key.rawValue, info.ctime >= entry.ctime
            else {
                missing += 1
                continue
            }
            let live = LiveSegment(
                key: key, shmid: entry.shmid, size: info.size, attachCount: Int(info.nattch), uid: info.uid,
                gid: info.gid, mode: info.mode & 0o777, creatorPID: info.cpid)
            matched.append((live, nil))
        }
        let base = matched.first { $0.segment.key.kind == .base }?.segment
        let version = base.flatMap { SharedMemory.readPrefix(shmid: $0.shmid, size: $0.size, length: 4)?.u32(at: 0) }
        guard let base, let version, version != 0 else {
            var removed: [SegmentKey] = []
            var stuck: [SegmentKey] = []
            for (segment, _) in matched {
                if SharedMemory.settledAttachCount(shmid: segment.shmid, atMost: 0) == 0,
                    SharedMemory.remove(shmid: segment.shmid)
                {
                    removed.append(segment.key)
                } else if SharedMemory.stat(shmid: segment.shmid) != nil {
                    stuck.append(segment.key)
                }
            }
            return .removed(keys: removed, stuck: stuck)
        }
        guard missing == 0 else {
            return .kept(reason: "base \(base.key.hex) is committed but \(missing) created segment(s) are gone")
        }
        let expected: [SegmentKey: RecordedSegment]
        do throws(EngineError) {
            expected = try RecordedSegment.load(directory: directory, keys: matched.map(\.segment.key))
        } catch {
            return .kept(reason: "base \(base.key.hex) is committed but the backup cannot be read: \(error.message)")
        }
        for (segment, _) in matched {
            guard let record = expected[segment.key], record.size == segment.size else {
                return .kept(reason: "segment \(segment.key.hex) is not the one in the backup \(directory)")
            }
            guard let crc = crc32(of: segment), crc == record.crc32 else {
                return .kept(reason: "segment \(segment.key.hex) differs from the backup (CRC-32)")
            }
        }
        for (segment, _) in matched {
            let record = expected[segment.key]!
            if record.uid != segment.uid || record.gid != segment.gid || record.mode != segment.mode {
                try? SharedMemory.setOwner(
                    shmid: segment.shmid, key: segment.key, uid: record.uid, gid: record.gid, mode: record.mode)
            }
        }
        return .committed
    }

    /// CRC-32 of a whole live segment (temporary read-only attach), nil when it cannot be attached.
    static func crc32(of segment: LiveSegment) -> UInt32? {
        guard
            let attached = try? SharedMemory.attach(
                shmid: segment.shmid, key: segment.key, size: segment.size, readOnly: true)
        else { return nil }
        defer { SharedMemory.detach(attached) }
        return CRC32.update(0, UnsafeRawBufferPointer(attached.bytes))
    }

    /// Seconds since the epoch at which this boot started (`btime` of /proc/stat); 0 when unknown.
    static func bootTime() -> Int64 {
        guard let bytes = try? FileIO.readPrefix(path: "/proc/stat", length: 1 << 16) else { return 0 }
        let text = String(decoding: bytes, as: UTF8.self)
        for line in text.split(separator: "\n") where line.hasPrefix("btime ") {
            return Int64(line.dropFirst(6).trimmingCharacters(in: .whitespaces)) ?? 0
        }
        return 0
    }
}

/// What a backup says a segment must be: size, CRC-32, owner, group and mode.
struct RecordedSegment: Equatable {
    var size: UInt64
    var crc32: UInt32
    var uid, gid: UInt32
    var mode: UInt32

    /// From the manifest when the directory has one, else from the files (plain: their bytes; compressed: the ASMT
    /// header). Throws when a key has no readable file.
    static func load(directory: String, keys: [SegmentKey]) throws(EngineError) -> [SegmentKey: RecordedSegment] {
        var result: [SegmentKey: RecordedSegment] = [:]
        if let manifest = try BackupManifest.load(directory: directory) {
            for entry in manifest.segments where keys.contains(entry.key) {
                result[entry.key] = RecordedSegment(
                    size: entry.size, crc32: entry.crc32, uid: entry.uid, gid: entry.gid, mode: entry.mode & 0o777)
            }
            return result
        }
        for key in keys {
            for compressed in [false, true] {
                let path = directory + "/" + key.fileName(compressed: compressed)
                guard let (fd, st) = try openIfPresent(path) else { continue }
                defer { close(fd) }
                var recorded = RecordedSegment(
                    size: UInt64(st.st_size), crc32: 0, uid: st.st_uid, gid: st.st_gid,
                    mode: UInt32(st.st_mode) & 0o777)
                if compressed {
                    let head = try FileIO.read(fd, count: ASMTHeader.size, at: 0, file: path)
                    guard case .success(let header) = ASMTHeader.decode(head) else {
                        throw EngineError(.invalidBackup, "\(path) has a bad ASMT header")
                    }
                    recorded.size = header.segmentSize
                    recorded.crc32 = header.crc32
                } else {
                    recorded.crc32 = try fileCRC(fd, size: recorded.size, path: path)
                }
                result[key] = recorded
            }
        }
        return result
    }

    private static func openIfPresent(_ path: String) throws(EngineError) -> (Int32, stat)? {
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)
        if fd < 0 {
            if errno == ENOENT { return nil }
            throw EngineError(.invalidBackup, "cannot open \(path): \(errnoText())")
        }
        var st = stat()
        guard fstat(fd, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG else {
            close(fd)
            throw EngineError(.invalidBackup, "\(path) is not a regular file")
        }
        return (fd, st)
    }

    private static func fileCRC(_ fd: Int32, size: UInt64, path: String) throws(EngineError) -> UInt32 {
        let buffer = WorkBuffer(count: FileIO.maxWrite)
        var crc: UInt32 = 0
        var offset: UInt64 = 0
        while offset < size {
            let got = try FileIO.readFull(fd, buffer.bytes, at: offset, file: path)
            if got == 0 { break }
            crc = CRC32.update(crc, UnsafeRawBufferPointer(start: buffer.pointer, count: got))
            offset += UInt64(got)
        }
        return crc
    }
}
