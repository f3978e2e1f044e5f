import Foundation
import Glibc

/// One worker thread of a backup: copies files or chunks of them, and reads chunks back to verify them. Owns its
/// codecs and bounded buffers.
final class BackupWorker {
    private let pool: WorkPool
    private let syncer: FileSyncer
    private let progress: JobProgress
    private let access: SegmentAccess
    /// With verification, half of a chunk's bytes count when it is written and half when it is checked.
    private let verifying: Bool
    private var deflater: (any PieceDeflater)?
    private var inflater: (any StreamInflater)?
    private var output: WorkBuffer?
    private var input: WorkBuffer?
    private var check: WorkBuffer?
    private var staging: WorkBuffer?

    init(pool: WorkPool, syncer: FileSyncer, progress: JobProgress, access: SegmentAccess, verifying: Bool) {
        self.pool = pool
        self.syncer = syncer
        self.progress = progress
        self.access = access
        self.verifying = verifying
    }

    /// Copies chunk `chunk` of `file`, or every chunk in order when `chunk` is nil. The worker that copies the
    /// file's last chunk finishes the file (`BackupFileState.finish`) and hands it to the syncer.
    func copy(_ file: BackupFileState, chunk: Int?) throws(EngineError) {
        try file.open(access: access)
        let chunks = chunk.map { $0..<$0 + 1 } ?? 0..<file.chunkCount
        for chunk in chunks {
            if pool.shouldStop { return }
            if try copy(file, chunk: chunk) {
                try file.finish()
                syncer.sync(file, pool: pool, progress: progress)
            }
        }
    }

    /// Copies one chunk; returns true when it was the file's last outstanding chunk.
    private func copy(_ file: BackupFileState, chunk: Int) throws(EngineError) -> Bool {
        let segment = file.segment
        let chunkSize = file.chunkSize
        if chunk == 0 {
            progress.set(file.index, .running)
            file.lock.lock()
            file.started = rfc3339()
            file.lock.unlock()
        }
        let count = file.chunkLength(chunk)
        let crc: UInt32
        if segment.compressed {
            let data: UnsafeRawBufferPointer
            if file.segmentFD >= 0 {
                // Read through the segment's file (see SegmentIO): no page faults on the mapping.
                if staging == nil { staging = WorkBuffer(count: chunkSize) }
                let target = UnsafeMutableRawBufferPointer(start: staging!.pointer, count: count)
                try file.segmentIO.load(chunk * chunkSize, into: target)
                data = UnsafeRawBufferPointer(target)
            } else {
                data = UnsafeRawBufferPointer(start: file.attachment!.address + chunk * chunkSize, count: count)
            }
            crc = CRC32.update(0, data)
            if deflater == nil { deflater = try Codec.makeDeflater() }
            if output == nil { output = WorkBuffer(count: Codec.deflateBound(chunkSize)) }
            let last = chunk == file.chunkCount - 1
            guard let length = try deflater!.compress(data, into: output!.bytes, last: last) else {
                throw EngineError(.system, "compressed chunk of \(segment.key.hex) exceeds its buffer")
            }
            // Chunks take their places in the file in order. Chunks are handed out in order, so the one before is
            // held by a running worker, which places it or stops the pool: the wait ends either way (the timeout
            // only lets it see a stop).
            file.lock.lock()
            while file.nextToPlace != chunk && !pool.shouldStop {
                _ = file.lock.wait(until: Date(timeIntervalSinceNow: 0.05))
            }
            guard file.nextToPlace == chunk else {
                file.lock.unlock()
                return false
            }
            let offset = file.writeOffset
            file.writeOffset += UInt64(length)
            file.nextToPlace += 1
            file.chunkRange[chunk] = (offset, length)
            file.lock.broadcast()
            file.lock.unlock()
            try FileIO.writeAll(
                file.fd, UnsafeRawBufferPointer(start: output!.pointer, count: length), at: offset,
                file: file.stagingPath)
        } else {
            if input == nil { input = WorkBuffer(count: Codec.deflateBound(chunkSize)) }
            let offset = chunk * chunkSize
            crc = try file.segmentIO.write(
                offset, count: count, to: file.fd, at: UInt64(offset), path: file.stagingPath, buffer: input!)
        }
        progress.add(bytes: UInt64(verifying ? count / 2 : count))
        return file.chunkDone(chunk, crc: crc)
    }

    /// Reads one chunk of a complete file back and checks it against the CRC-32 of the segment bytes.
    func verify(_ file: BackupFileState, chunk: Int) throws(EngineError) {
        // Verify items come after every copy item: the file's copy is held by running workers, which complete it
        // or stop the pool (the timeout only lets the wait see a stop).
        file.lock.lock()
        while !file.written && !pool.shouldStop { _ = file.lock.wait(until: Date(timeIntervalSinceNow: 0.05)) }
        let ready = file.written
        file.lock.unlock()
        guard ready else { return }
        let length = file.chunkLength(chunk)
        // A descriptor of our own for the read-back: the writer's is closed once the copy is complete.
        let fd = open(file.stagingPath, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)
        guard fd >= 0 else { throw EngineError(.io, "cannot open \(file.stagingPath): \(errnoText())") }
        defer { close(fd) }
        if input == nil { input = WorkBuffer(count: Codec.deflateBound(file.chunkSize)) }
        let crc =
            file.segment.compressed
            ? try readBackCompressed(file, chunk: chunk, length: length, fd: fd, buffer: input!)
            : try readBackPlain(file, chunk: chunk, length: length, fd: fd, buffer: input!)
        guard crc == file.chunkCRC[chunk] else {
            throw EngineError(
                .verifyFailed,
                "CRC-32 mismatch in \(file.stagingPath) at chunk \(chunk): the file differs from segment "
                    + file.segment.key.hex)
        }
        progress.add(bytes: UInt64(length - length / 2))
        file.stepDone(progress)
    }

    /// The chunk's deflate data inflated; the headers and trailer too with chunk 0. Returns the CRC-32.
    private func readBackCompressed(
        _ file: BackupFileState, chunk: Int, length: Int, fd: Int32, buffer: WorkBuffer
    ) throws(EngineError) -> UInt32 {
        if chunk == 0 { try checkFraming(file, fd: fd) }
        if inflater == nil { inflater = try Codec.makeInflater() }
        if check == nil { check = WorkBuffer(count: file.chunkSize + 4096) }
        let range = file.chunkRange[chunk]
        let got = try FileIO.readFull(
            fd, UnsafeMutableRawBufferPointer(start: buffer.pointer, count: range.length), at: range.offset,
            file: file.stagingPath)
        guard got == range.length else {
            throw EngineError(.verifyFailed, "\(file.stagingPath) is shorter than written")
        }
        let target = check!
        let inflated = try inflater!.inflateChunk(
            UnsafeRawBufferPointer(start: buffer.pointer, count: got), length: length,
            last: chunk == file.chunkCount - 1,
            room: { produced in UnsafeMutableRawBufferPointer(rebasing: target.bytes[produced...]) },
            take: { (_, _) throws(EngineError) in })
        guard let crc = inflated else {
            throw EngineError(
                .verifyFailed, "\(file.stagingPath): chunk \(chunk) does not inflate to the segment bytes")
        }
        return crc
    }

    /// The chunk read back in pieces, each checksummed while still in cache. Returns the CRC-32.
    private func readBackPlain(
        _ file: BackupFileState, chunk: Int, length: Int, fd: Int32, buffer: WorkBuffer
    ) throws(EngineError) -> UInt32 {
        var crc: UInt32 = 0
        var done = 0
        while done < length {
            let count = min(FileIO.maxWrite, length - done)
            let got = try FileIO.readFull(
                fd, UnsafeMutableRawBufferPointer(start: buffer.pointer, count: count),
                at: UInt64(chunk * file.chunkSize + done), file: file.stagingPath)
            guard got == count else {
                throw EngineError(.verifyFailed, "\(file.stagingPath) is shorter than written")
            }
            crc = CRC32.update(crc, UnsafeRawBufferPointer(start: buffer.pointer, count: count))
            done += count
        }
        return crc
    }

    /// A compressed file's headers and gzip trailer, read back, are the ones written.
    private func checkFraming(_ file: BackupFileState, fd: Int32) throws(EngineError) {
        let expectedHead = file.expectedHead
        let expectedTail = GzipFraming.trailer(crc32: file.crc, size: file.segment.size)
        let head = try FileIO.read(fd, count: expectedHead.count, at: 0, file: file.stagingPath)
        let tail = try FileIO.read(
            fd, count: expectedTail.count, at: file.fileSize - UInt64(expectedTail.count), file: file.stagingPath)
        guard head == expectedHead, tail == expectedTail else {
            throw EngineError(
                .verifyFailed, "\(file.stagingPath): header or gzip trailer differs from what was written")
        }
    }
}
