/// The chunks of a compressed file. The deflate stream is flushed at every chunk boundary, so each chunk inflates
/// on its own; chunk `i` holds the segment bytes from `i * size`, its deflate data follows chunk `i - 1`'s.
struct DeflateChunks: Sendable, Codable, Equatable {
    /// Segment bytes per chunk (the last chunk may hold fewer).
    var size: Int
    /// Length of each chunk's deflate data, in file order from the end of the gzip header.
    var lengths: [Int]
    /// CRC-32 of each chunk's segment bytes.
    var crc32: [UInt32]

    /// Limits a restore accepts (the engine writes 8 MiB chunks).
    static let sizeRange = 4096...(64 << 20)
}

extension DeflateChunks {
    /// Bytes before the first chunk: the ASMT header and the gzip header asmtd writes.
    static let dataStart = ASMTHeader.size + GzipFraming.header.count

    /// Consistent with a segment of `size` bytes in a file of `fileSize` bytes: one entry per chunk, each no longer
    /// than deflate can make it, and the chunks filling the file between the headers and the gzip trailer.
    func fits(size segmentSize: UInt64, fileSize: UInt64) -> Bool {
        guard Self.sizeRange.contains(size) else { return false }
        let count = (segmentSize + UInt64(size) - 1) / UInt64(size)
        guard count > 0, lengths.count == count, crc32.count == lengths.count else { return false }
        var total = UInt64(Self.dataStart + GzipFraming.trailerSize)
        for length in lengths {
            guard length > 0, length <= Codec.deflateBound(size) else { return false }
            total += UInt64(length)
        }
        return total == fileSize
    }

    /// File offset of each chunk's deflate data.
    var offsets: [UInt64] {
        var offset = UInt64(Self.dataStart)
        return lengths.map { length in
            defer { offset += UInt64(length) }
            return offset
        }
    }
}
