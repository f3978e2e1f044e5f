import CISAL
import CZlib

/// Compresses independent pieces of one raw-deflate stream. One per worker thread (not thread-safe).
protocol PieceDeflater: AnyObject {
    /// Compresses `input` (< 4 GiB) into `output`. Non-last pieces end with a sync flush (byte aligned,
    /// not final); the last piece ends with the final block. nil when `output` is too small.
    func compress(
        _ input: UnsafeRawBufferPointer, into output: UnsafeMutableRawBufferPointer, last: Bool
    )
        throws(EngineError) -> Int?
}

/// One step of an inflater.
struct InflateStep {
    var consumed: Int
    var produced: Int
    /// The final block has ended.
    var finished: Bool
    /// Bytes after the end of the deflate data that the decoder had read ahead in an earlier step; they come
    /// before `input[consumed...]` in the stream. Almost always empty.
    var held: [UInt8] = []
}

/// Streams one raw-deflate stream. One per worker thread (not thread-safe).
protocol StreamInflater: AnyObject {
    func reset()
    /// Throws on corrupt data.
    func inflate(
        _ input: UnsafeRawBufferPointer, into output: UnsafeMutableRawBufferPointer
    )
        throws(EngineError) -> InflateStep
}

extension StreamInflater {
    /// Inflates one chunk of a stream flushed at chunk boundaries (each chunk decodes on its own). `room` gives
    /// space for the bytes from `produced` on (used up to the chunk's `length`), `take` gets each step's bytes.
    /// Returns their CRC-32 when `packed` yields exactly `length` bytes, is used up, and ends the stream exactly
    /// when `last`; nil otherwise.
    func inflateChunk(
        _ packed: UnsafeRawBufferPointer, length: Int, last: Bool,
        room: (_ produced: Int) -> UnsafeMutableRawBufferPointer,
        take: (_ bytes: UnsafeRawBufferPointer, _ produced: Int) throws(EngineError) -> Void
    ) throws(EngineError) -> UInt32? {
        reset()
        var consumed = 0
        var produced = 0
        var crc: UInt32 = 0
        var finished = false
        var held: [UInt8] = []
        // Past the chunk's bytes, a small space uses up the flush marker; any byte more is too many.
        var scratch = [UInt8](repeating: 0, count: 64)
        while !finished {
            let available = UnsafeRawBufferPointer(rebasing: packed[consumed...])
            let step: InflateStep
            if produced < length {
                let target = UnsafeMutableRawBufferPointer(rebasing: room(produced).prefix(length - produced))
                step = try inflate(available, into: target)
                let bytes = UnsafeRawBufferPointer(start: target.baseAddress, count: step.produced)
                try take(bytes, produced)
                crc = CRC32.update(crc, bytes)
            } else {
                let extra: Result<InflateStep, EngineError> = scratch.withUnsafeMutableBytes { raw in
                    Result { () throws(EngineError) in try inflate(available, into: raw) }
                }
                step = try extra.get()
                if step.produced > 0 { return nil }
            }
            consumed += step.consumed
            produced += step.produced
            finished = step.finished
            held = step.held
            if step.consumed == 0 && step.produced == 0 { break }
        }
        guard produced == length, consumed == packed.count, held.isEmpty, finished == last else { return nil }
        return crc
    }
}

/// The codec seam: ISA-L when it can be loaded, zlib otherwise.
enum Codec {
    static var usesISAL: Bool { cisal_available() != 0 }

    static var name: String { usesISAL ? "isa-l" : "zlib" }

    static func makeDeflater() throws(EngineError) -> any PieceDeflater {
        if usesISAL, let handle = cisal_deflater_new() { return ISALDeflater(handle) }
        return try ZlibDeflater()
    }

    static func makeInflater() throws(EngineError) -> any StreamInflater {
        if usesISAL, let handle = cisal_inflater_new() { return ISALInflater(handle) }
        return try ZlibInflater()
    }

    /// Largest output a piece of `inputSize` bytes can need (stored blocks plus flush markers).
    static func deflateBound(_ inputSize: Int) -> Int { inputSize + inputSize / 8 + 64 * 1024 }
}

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

final class ISALDeflater: PieceDeflater {
    private let handle: OpaquePointer

    init(_ handle: OpaquePointer) { self.handle = handle }
    deinit { cisal_deflater_free(handle) }

    func compress(
        _ input: UnsafeRawBufferPointer, into output: UnsafeMutableRawBufferPointer, last: Bool
    )
        throws(EngineError) -> Int?
    {
        precondition(input.count < 1 << 32 && output.count < 1 << 32)
        let inBase = input.baseAddress?.assumingMemoryBound(to: UInt8.self)
        let outBase = output.baseAddress!.assumingMemoryBound(to: UInt8.self)
        let result = cisal_deflate_piece(
            handle, inBase, UInt32(input.count), outBase, UInt32(output.count), last ? 1 : 0)
        if result == -1 { return nil }
        if result < 0 { throw EngineError(.system, "ISA-L deflate failed") }
        return Int(result)
    }
}

final class ISALInflater: StreamInflater {
    private let handle: OpaquePointer

    init(_ handle: OpaquePointer) { self.handle = handle }
    deinit { cisal_inflater_free(handle) }

    func reset() { cisal_inflater_reset(handle) }

    func inflate(
        _ input: UnsafeRawBufferPointer, into output: UnsafeMutableRawBufferPointer
    )
        throws(EngineError) -> InflateStep
    {
        var consumed: UInt32 = 0
        var produced: UInt32 = 0
        var finished: Int32 = 0
        var held = [UInt8](repeating: 0, count: 8)
        var heldCount: UInt32 = 0
        let inCount = UInt32(min(input.count, Int(UInt32.max)))
        let outCount = UInt32(min(output.count, Int(UInt32.max)))
        let rc = cisal_inflate(
            handle, input.baseAddress?.assumingMemoryBound(to: UInt8.self), inCount,
            output.baseAddress?.assumingMemoryBound(to: UInt8.self), outCount, &consumed, &produced, &finished,
            &held, &heldCount)
        if rc < 0 { throw EngineError(.invalidBackup, "invalid deflate data (ISA-L error \(rc))") }
        let heldBytes = Array(held.prefix(Int(min(heldCount, 8))))
        return InflateStep(
            consumed: Int(consumed), produced: Int(produced), finished: finished != 0, held: heldBytes)
    }
}

final class ZlibDeflater: PieceDeflater {
    private let stream: UnsafeMutablePointer<z_stream>

    init() throws(EngineError) {
        stream = .allocate(capacity: 1)
        stream.initialize(to: z_stream())
        let rc = deflateInit2_(
            stream, 1, Z_DEFLATED, -15, 9, Z_DEFAULT_STRATEGY, zlibVersion(), Int32(MemoryLayout<z_stream>.size))
        guard rc == Z_OK else {
            stream.deallocate()
            throw EngineError(.system, "zlib deflateInit2 failed (\(rc))")
        }
    }

    deinit {
        deflateEnd(stream)
        stream.deallocate()
    }

    func compress(
        _ input: UnsafeRawBufferPointer, into output: UnsafeMutableRawBufferPointer, last: Bool
    )
        throws(EngineError) -> Int?
    {
        precondition(input.count < 1 << 32 && output.count < 1 << 32)
        deflateReset(stream)
        stream.pointee.next_in = UnsafeMutablePointer(
            mutating: input.baseAddress?.assumingMemoryBound(to: Bytef.self))
        stream.pointee.avail_in = UInt32(input.count)
        stream.pointee.next_out = output.baseAddress!.assumingMemoryBound(to: Bytef.self)
        stream.pointee.avail_out = UInt32(output.count)
        let rc = deflate(stream, last ? Z_FINISH : Z_SYNC_FLUSH)
        if last {
            if rc == Z_STREAM_END { return output.count - Int(stream.pointee.avail_out) }
            if rc == Z_OK || rc == Z_BUF_ERROR { return nil }
        } else {
            if rc == Z_OK && stream.pointee.avail_in == 0 && stream.pointee.avail_out > 0 {
                return output.count - Int(stream.pointee.avail_out)
            }
            if rc == Z_OK || rc == Z_BUF_ERROR { return nil }
        }
        throw EngineError(.system, "zlib deflate failed (\(rc))")
    }
}

final class ZlibInflater: StreamInflater {
    private let stream: UnsafeMutablePointer<z_stream>

    init() throws(EngineError) {
        stream = .allocate(capacity: 1)
        stream.initialize(to: z_stream())
        let rc = inflateInit2_(stream, -15, zlibVersion(), Int32(MemoryLayout<z_stream>.size))
        guard rc == Z_OK else {
            stream.deallocate()
            throw EngineError(.system, "zlib inflateInit2 failed (\(rc))")
        }
    }

    deinit {
        inflateEnd(stream)
        stream.deallocate()
    }

    func reset() { inflateReset(stream) }

    func inflate(
        _ input: UnsafeRawBufferPointer, into output: UnsafeMutableRawBufferPointer
    )
        throws(EngineError) -> InflateStep
    {
        let inCount = min(input.count, Int(UInt32.max))
        let outCount = min(output.count, Int(UInt32.max))
        stream.pointee.next_in = UnsafeMutablePointer(
            mutating: input.baseAddress?.assumingMemoryBound(to: Bytef.self))
        stream.pointee.avail_in = UInt32(inCount)
        stream.pointee.next_out = output.baseAddress?.assumingMemoryBound(to: Bytef.self)
        stream.pointee.avail_out = UInt32(outCount)
        let rc = CZlib.inflate(stream, Z_NO_FLUSH)
        let consumed = inCount - Int(stream.pointee.avail_in)
        let produced = outCount - Int(stream.pointee.avail_out)
        switch rc {
        case Z_STREAM_END: return InflateStep(consumed: consumed, produced: produced, finished: true)
        case Z_OK, Z_BUF_ERROR: return InflateStep(consumed: consumed, produced: produced, finished: false)
        default:
            let text = stream.pointee.msg.map { String(cString: $0) } ?? "error \(rc)"
            throw EngineError(.invalidBackup, "invalid deflate data (zlib: \(text))")
        }
    }
}
