import Glibc
import ShmEngine

/// Aerospike-shaped synthetic segments: used by tests, the benchmark and `asmtd demo`.
package struct SyntheticNamespace: Sendable {
    package var name: String
    package var nsid: Int
    package var primaryStages: Int
    package var stageSize: Int
    /// 0 = no meta.
    package var secondaryStages: Int
    package var dataStages: Int
    package var baseVersion: UInt32 = 12
    package var shutdownStatus: UInt32 = 1
    package var uid: UInt32
    package var gid: UInt32
    package var mode: UInt32
    /// Deterministic index-like content (compresses to ~70%).
    package var seed: UInt64
    /// Mostly zero pages: only the first page of each segment gets content (for very large segments).
    package var sparse = false

    package init(
        name: String, nsid: Int, primaryStages: Int = 2, stageSize: Int = 1 << 20, secondaryStages: Int = 1,
        dataStages: Int = 1, uid: UInt32 = 0, gid: UInt32 = 0, mode: UInt32 = 0o600, seed: UInt64 = 1
    ) {
        self.name = name
        self.nsid = nsid
        self.primaryStages = primaryStages
        self.stageSize = stageSize
        self.secondaryStages = secondaryStages
        self.dataStages = dataStages
        self.uid = uid
        self.gid = gid
        self.mode = mode
        self.seed = seed
    }

    /// Keys and sizes of the whole set, in file order.
    package func layout(instance: Int) -> [(key: SegmentKey, size: Int)] {
        var result: [(SegmentKey, Int)] = [
            (SegmentKey(kind: .base, instance: instance, nsid: nsid), SyntheticSegments.baseSize),
            (SegmentKey(kind: .treex, instance: instance, nsid: nsid), max(4096, min(stageSize, 1 << 20))),
        ]
        for stage in 0..<primaryStages {
            result.append((SegmentKey(kind: .primaryStage, instance: instance, nsid: nsid, stage: stage), stageSize))
        }
        if secondaryStages > 0 {
            result.append((SegmentKey(kind: .meta, instance: instance, nsid: nsid), SyntheticSegments.baseSize))
            for stage in 0..<secondaryStages {
                result.append(
                    (SegmentKey(kind: .secondaryStage, instance: instance, nsid: nsid, stage: stage), stageSize))
            }
        }
        for stage in 0..<dataStages {
            result.append((SegmentKey(kind: .dataStage, instance: instance, nsid: nsid, stage: stage), stageSize))
        }
        return result
    }
}

package enum SyntheticSegments {
    package static let baseSize = 4096
    /// The last 16 bytes of every synthetic segment.
    package static let marker: [UInt8] = Array("ASMTD-SYNTHETIC".utf8) + [0]

    /// Creates the whole set exclusively (fails if any key exists); returns what it created.
    package static func create(instance: Int, namespace: SyntheticNamespace) throws(EngineError) -> [LiveSegment] {
        guard (0...15).contains(instance), (1...32).contains(namespace.nsid), !namespace.name.isEmpty,
            namespace.name.utf8.count <= Layout.nameLength,
            (1...SegmentKey.maxStages).contains(namespace.primaryStages),
            (0...SegmentKey.maxStages).contains(namespace.secondaryStages),
            (0...SegmentKey.maxDataStages).contains(namespace.dataStages), namespace.stageSize >= 4096
        else { throw EngineError(.invalidRequest, "invalid synthetic namespace \(namespace.name)") }
        let layout = namespace.layout(instance: instance)
        for (key, _) in layout where SharedMemory.lookup(key) != nil {
            throw EngineError(.segmentsExist, "segment \(key.hex) already exists")
        }
        var created: [LiveSegment] = []
        do throws(EngineError) {
            for (index, entry) in layout.enumerated() {
                let shmid = try SharedMemory.create(entry.key, size: UInt64(entry.size))
                created.append(
                    LiveSegment(
                        key: entry.key, shmid: shmid, size: UInt64(entry.size), attachCount: 0, uid: namespace.uid,
                        gid: namespace.gid, mode: namespace.mode & 0o777, creatorPID: getpid()))
                let attachment = try SharedMemory.attach(
                    shmid: shmid, key: entry.key, size: UInt64(entry.size), readOnly: false)
                fill(attachment.bytes, key: entry.key, namespace: namespace, salt: UInt64(index))
                SharedMemory.detach(attachment)
                if entry.key.kind == .base || entry.key.kind == .dataStage {
                    created[created.count - 1].namespace = namespace.name
                }
                try SharedMemory.setOwner(
                    shmid: shmid, key: entry.key, uid: namespace.uid, gid: namespace.gid, mode: namespace.mode)
            }
        } catch {
            remove(created)
            throw error
        }
        return created
    }

    /// Removes exactly these shmids (only if they still carry the same key).
    package static func remove(_ segments: [LiveSegment]) {
        for segment in segments {
            guard SharedMemory.lookup(segment.key) == segment.shmid else { continue }
            SharedMemory.remove(shmid: segment.shmid)
        }
    }

    /// The unattached segments of `namespace` on `instance` that carry the synthetic marker (what `create` made),
    /// for `asmtd demo remove`.
    package static func find(instance: Int, namespace: String) throws(EngineError) -> [LiveSegment] {
        let listed = try SharedMemory.segments(instance: instance)
        let nsids = Set(listed.filter { $0.key.kind == .base && sameName($0.namespace, namespace) }.map(\.key.nsid))
        return listed.filter { segment in
            let key = segment.key
            let mine = key.kind == .dataStage ? sameName(segment.namespace, namespace) : nsids.contains(key.nsid)
            return mine && segment.attachCount == 0 && hasMarker(segment)
        }
    }

    static func hasMarker(_ segment: LiveSegment) -> Bool {
        guard segment.size >= UInt64(marker.count),
            let attachment = try? SharedMemory.attach(
                shmid: segment.shmid, key: segment.key, size: segment.size, readOnly: true)
        else { return false }
        defer { SharedMemory.detach(attachment) }
        return Array(attachment.bytes.suffix(marker.count)) == marker
    }

    static func fill(
        _ bytes: UnsafeMutableRawBufferPointer, key: SegmentKey, namespace: SyntheticNamespace, salt: UInt64
    ) {
        let contentLength = namespace.sparse ? min(bytes.count, 4096) : bytes.count
        if key.kind != .base && key.kind != .meta {
            fillIndexLike(
                UnsafeMutableRawBufferPointer(rebasing: bytes[0..<contentLength]), seed: namespace.seed &+ salt)
        }
        func put32(_ value: UInt32, at offset: Int) {
            bytes.storeBytes(of: value.littleEndian, toByteOffset: offset, as: UInt32.self)
        }
        func putName(at offset: Int) {
            let name = Array(namespace.name.utf8)
            for index in 0..<Layout.nameLength { bytes[offset + index] = index < name.count ? name[index] : 0 }
        }
        switch key.kind {
        case .base:
            put32(namespace.baseVersion, at: Layout.baseVersionOffset)
            put32(namespace.shutdownStatus, at: Layout.baseShutdownOffset)
            putName(at: Layout.baseNameOffset)
            put32(UInt32(namespace.primaryStages), at: Layout.baseArenasOffset)
        case .meta:
            put32(UInt32(namespace.secondaryStages), at: Layout.metaArenasOffset)
        case .dataStage:
            putName(at: Layout.dataNameOffset)
        default:
            break
        }
        for (index, byte) in marker.enumerated() { bytes[bytes.count - marker.count + index] = byte }
    }

    /// 64-byte records: 44 random bytes (digest, pointers), a small counter and constant flags.
    static func fillIndexLike(_ bytes: UnsafeMutableRawBufferPointer, seed: UInt64) {
        var state = seed &* 0x9E37_79B9_7F4A_7C15 | 1
        func nextRandom() -> UInt64 {
            state ^= state >> 12
            state ^= state << 25
            state ^= state >> 27
            return state &* 0x2545_F491_4F6C_DD1D
        }
        let words = bytes.count / 8
        let pointer = bytes.baseAddress!.assumingMemoryBound(to: UInt64.self)
        var record: UInt64 = 0
        var index = 0
        while index + 8 <= words {
            for word in 0..<5 { pointer[index + word] = nextRandom() }
            pointer[index + 5] = (nextRandom() & 0xFFFF_FFFF) | (record & 0xFFFF) << 32
            pointer[index + 6] = 1
            pointer[index + 7] = 0
            record += 1
            index += 8
        }
        while index < words {
            pointer[index] = nextRandom()
            index += 1
        }
    }
}
