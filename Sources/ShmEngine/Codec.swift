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
