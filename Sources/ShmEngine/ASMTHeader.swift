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
