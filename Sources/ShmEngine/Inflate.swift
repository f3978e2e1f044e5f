/// The engine's one inflate loop body: one raw-deflate stream inflated into exactly `length` bytes, step by step,
/// with their CRC-32. The caller feeds the input: a whole chunk of a compressed file at once (`inflateChunk`: a
/// restore's chunks, a backup's verification), or a window over a whole file (`RestoreWorker`, files without a chunk
/// index).
struct InflateRun {
    let length: Int
    private(set) var produced = 0
    private(set) var crc: UInt32 = 0
    /// The final block has ended.
    private(set) var finished = false
    /// Bytes past the end of the deflate data that the decoder read ahead (see `InflateStep.held`).
    private(set) var held: [UInt8] = []
    /// Past `length`, a small space takes the flush marker and the end of the stream; any byte more is too many.
    private var scratch = [UInt8](repeating: 0, count: 64)

    init(length: Int) { self.length = length }

    /// One inflate call on `input`: into `room(produced)` (used up to `length`), the bytes then handed to `take`
    /// with the offset they start at; once `length` bytes are out, into the scratch space. Returns the step, or nil
    /// when the stream yields more than `length` bytes.
    mutating func step(
        _ inflater: any StreamInflater, _ input: UnsafeRawBufferPointer,
        room: (_ produced: Int) -> UnsafeMutableRawBufferPointer,
        take: (_ bytes: UnsafeRawBufferPointer, _ produced: Int) throws(EngineError) -> Void
    ) throws(EngineError) -> InflateStep? {
        let step: InflateStep
        if produced < length {
            let target = UnsafeMutableRawBufferPointer(rebasing: room(produced).prefix(length - produced))
            step = try inflater.inflate(input, into: target)
            let bytes = UnsafeRawBufferPointer(start: target.baseAddress, count: step.produced)
            try take(bytes, produced)
            crc = CRC32.update(crc, bytes)
        } else {
            let extra: Result<InflateStep, EngineError> = scratch.withUnsafeMutableBytes { raw in
                Result { () throws(EngineError) in try inflater.inflate(input, into: raw) }
            }
            step = try extra.get()
            if step.produced > 0 { return nil }
        }
        produced += step.produced
        finished = step.finished
        held = step.held
        return step
    }
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
        var run = InflateRun(length: length)
        var consumed = 0
        while !run.finished {
            let input = UnsafeRawBufferPointer(rebasing: packed[consumed...])
            guard let step = try run.step(self, input, room: room, take: take) else { return nil }
            consumed += step.consumed
            if step.consumed == 0 && step.produced == 0 { break }
        }
        guard run.produced == length, consumed == packed.count, run.held.isEmpty, run.finished == last else {
            return nil
        }
        return run.crc
    }
}
