/// Byte layouts of the things asmt reads and writes. Pure code, no I/O.
package enum Layout {
    package static let baseVersionOffset = 0
    package static let baseShutdownOffset = 4
    package static let baseNameOffset = 1024
    package static let baseArenasOffset = 2152
    /// Smallest base asmt accepts (the n_arenas field must fit).
    static let baseMinimumSize = 2156
    package static let metaArenasOffset = 20
    static let metaMinimumSize = 24
    package static let dataNameOffset = 12
    package static let nameLength = 32
    static let acceptedBaseVersions: ClosedRange<UInt32> = 10...12
}

/// Facts read from the first bytes of a segment or file.
struct SegmentFacts: Sendable, Equatable {
    var version: UInt32?
    var shutdownStatus: UInt32?
    var arenas: UInt32?
    var namespace: String?

    static func read(kind: SegmentKind, prefix: [UInt8]) -> SegmentFacts {
        var facts = SegmentFacts()
        switch kind {
        case .base:
            facts.version = prefix.u32(at: Layout.baseVersionOffset)
            facts.shutdownStatus = prefix.u32(at: Layout.baseShutdownOffset)
            facts.arenas = prefix.u32(at: Layout.baseArenasOffset)
            facts.namespace = prefix.name(at: Layout.baseNameOffset)
        case .meta:
            facts.arenas = prefix.u32(at: Layout.metaArenasOffset)
        case .dataStage:
            facts.namespace = prefix.name(at: Layout.dataNameOffset)
        default:
            break
        }
        return facts
    }

    /// How many leading bytes `read` needs for a kind.
    static func prefixLength(kind: SegmentKind) -> Int {
        switch kind {
        case .base: Layout.baseArenasOffset + 4
        case .meta: Layout.metaArenasOffset + 4
        case .dataStage: Layout.dataNameOffset + Layout.nameLength
        default: 0
        }
    }
}

extension Array where Element == UInt8 {
    func u32(at offset: Int) -> UInt32? {
        guard offset >= 0, offset + 4 <= count else { return nil }
        return UInt32(self[offset]) | UInt32(self[offset + 1]) << 8 | UInt32(self[offset + 2]) << 16
            | UInt32(self[offset + 3]) << 24
    }

    func u64(at offset: Int) -> UInt64? {
        guard let low = u32(at: offset), let high = u32(at: offset + 4) else { return nil }
        return UInt64(low) | UInt64(high) << 32
    }

    /// A NUL-padded name of at most 32 bytes; nil when missing or empty.
    func name(at offset: Int) -> String? {
        guard offset + Layout.nameLength <= count else { return nil }
        var bytes = self[offset..<offset + Layout.nameLength]
        if let nul = bytes.firstIndex(of: 0) { bytes = bytes[offset..<nul] }
        guard !bytes.isEmpty else { return nil }
        return String(decoding: bytes, as: UTF8.self)
    }

    mutating func appendLE(_ value: UInt32) {
        for shift in stride(from: 0, to: 32, by: 8) { append(UInt8(truncatingIfNeeded: value >> UInt32(shift))) }
    }

    mutating func appendLE(_ value: UInt64) {
        for shift in stride(from: 0, to: 64, by: 8) { append(UInt8(truncatingIfNeeded: value >> UInt64(shift))) }
    }
}

/// The 24-byte header in front of the gzip member of a `.dat.gz` file.
struct ASMTHeader: Equatable, Sendable {
    static let size = 24
    /// Bytes "ASMT" read as a little-endian u32.
    static let magic: UInt32 = 0x544D_5341
    /// The byte-swapped form asmt also accepts.
    static let swappedMagic: UInt32 = 0x4153_4D54
    static let version: UInt32 = 1

    var segmentSize: UInt64
    var crc32: UInt32

    func encoded() -> [UInt8] {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(Self.size)
        bytes.appendLE(Self.magic)
        bytes.appendLE(Self.version)
        bytes.appendLE(segmentSize)
        bytes.appendLE(UInt64(crc32))
        return bytes
    }

    enum DecodeError: Error, Equatable { case short, badMagic(UInt32), badVersion(UInt32) }

    static func decode(_ bytes: [UInt8]) -> Result<ASMTHeader, DecodeError> {
        guard bytes.count >= size, let magic = bytes.u32(at: 0), let version = bytes.u32(at: 4),
            let segmentSize = bytes.u64(at: 8), let crc = bytes.u64(at: 16)
        else { return .failure(.short) }
        guard magic == Self.magic || magic == Self.swappedMagic else { return .failure(.badMagic(magic)) }
        guard version == Self.version else { return .failure(.badVersion(version)) }
        return .success(ASMTHeader(segmentSize: segmentSize, crc32: UInt32(truncatingIfNeeded: crc)))
    }
}

/// RFC 1952 member framing around raw deflate data.
enum GzipFraming {
    /// ID1 ID2 CM=8 FLG=0 MTIME=0 XFL=4 (fastest) OS=3 (Unix): what zlib writes at level 1.
    static let header: [UInt8] = [0x1F, 0x8B, 0x08, 0x00, 0, 0, 0, 0, 0x04, 0x03]
    static let trailerSize = 8

    static func trailer(crc32: UInt32, size: UInt64) -> [UInt8] {
        var bytes: [UInt8] = []
        bytes.appendLE(crc32)
        bytes.appendLE(UInt32(truncatingIfNeeded: size))
        return bytes
    }

    enum HeaderResult: Equatable {
        case needMore
        case invalid(String)
        case ok(length: Int)
    }

    /// Parses a member header (any optional fields) at the start of `bytes`.
    static func parseHeader(_ bytes: [UInt8]) -> HeaderResult {
        guard bytes.count >= 10 else { return .needMore }
        guard bytes[0] == 0x1F, bytes[1] == 0x8B else { return .invalid("not a gzip member") }
        guard bytes[2] == 8 else { return .invalid("gzip compression method \(bytes[2]) is not deflate") }
        let flags = bytes[3]
        guard flags & 0xE0 == 0 else { return .invalid("reserved gzip header flags set") }
        var position = 10
        if flags & 0x04 != 0 {
            guard bytes.count >= position + 2 else { return .needMore }
            let extra = Int(bytes[position]) | Int(bytes[position + 1]) << 8
            position += 2 + extra
            guard bytes.count >= position else { return .needMore }
        }
        for flag: UInt8 in [0x08, 0x10] where flags & flag != 0 {
            guard let nul = bytes[position...].firstIndex(of: 0) else { return .needMore }
            position = nul + 1
        }
        if flags & 0x02 != 0 {
            position += 2
            guard bytes.count >= position else { return .needMore }
        }
        return .ok(length: position)
    }
}
