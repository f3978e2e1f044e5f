import CISAL
import CZlib

/// CRC-32 (gzip polynomial) over 64-bit lengths.
enum CRC32 {
    static let piece = 1 << 30

    static func update(_ crc: UInt32, _ buffer: UnsafeRawBufferPointer) -> UInt32 {
        guard let base = buffer.baseAddress, buffer.count > 0 else { return crc }
        let bytes = base.assumingMemoryBound(to: UInt8.self)
        if Codec.usesISAL { return cisal_crc32(crc, bytes, UInt64(buffer.count)) }
        var value = UInt(crc)
        var offset = 0
        while offset < buffer.count {
            let length = min(piece, buffer.count - offset)
            value = crc32(value, bytes + offset, UInt32(length))
            offset += length
        }
        return UInt32(truncatingIfNeeded: value)
    }

    static func checksum(_ bytes: [UInt8]) -> UInt32 {
        bytes.withUnsafeBytes { update(0, $0) }
    }

    /// CRC of consecutive chunks of `chunkSize` bytes (the last one shorter) that make `totalLength` bytes.
    static func combine(_ chunks: [UInt32], chunkSize: Int, totalLength: UInt64) -> UInt32 {
        var crc: UInt32 = 0
        for (index, chunk) in chunks.enumerated() {
            crc = combine(crc, chunk, secondLength: min(UInt64(chunkSize), totalLength - UInt64(index * chunkSize)))
        }
        return crc
    }

    /// CRC of A followed by B, from crc(A), crc(B) and the length of B.
    static func combine(_ first: UInt32, _ second: UInt32, secondLength: UInt64) -> UInt32 {
        UInt32(truncatingIfNeeded: crc32_combine(UInt(first), UInt(second), Int(secondLength)))
    }
}
