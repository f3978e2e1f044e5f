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
