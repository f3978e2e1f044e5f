import CZlib
import Foundation
import Glibc
import ShmSynthetic
import TestSupport
import Testing

@testable import ShmEngine

/// Test support: synthetic segment sets on instances 13/14, temporary directories, independent readers.
enum Fixture {
    /// Creates the set, runs `body`, and removes exactly the created shmids, also when `body` throws.
    static func withSegments<T>(
        instance: Int, _ spec: SyntheticNamespace, _ body: ([LiveSegment]) throws -> T
    ) throws -> T {
        precondition((13...14).contains(instance))
        let created = try TestSegmentMaker.create(instance: instance, spec)
        defer { SyntheticSegments.remove(created) }
        return try body(created)
    }

    /// CAP_SYS_ADMIN (bit 21) or CAP_CHECKPOINT_RESTORE (bit 40) in this process's effective set: what opening
    /// /proc/self/map_files needs.
    static var hasSysAdminCapability: Bool {
        guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8),
            let line = status.split(separator: "\n").first(where: { $0.hasPrefix("CapEff:") }),
            let bits = UInt64(line.dropFirst("CapEff:".count).trimmingCharacters(in: .whitespaces), radix: 16)
        else { return false }
        return bits & (1 << 21 | 1 << 40) != 0
    }

    /// A token that a watcher thread cancels as soon as `progress` counts its first bytes: the job is then
    /// cancelled in the middle of its work. The watcher gives up after `timeout` seconds (a job that fails or ends
    /// before counting a byte), recording why, instead of spinning for ever.
    static func cancelOnceStarted(
        _ progress: JobProgress, timeout: Double = 120, sourceLocation: SourceLocation = #_sourceLocation
    ) -> CancellationToken {
        let token = CancellationToken()
        let deadline = Date().addingTimeInterval(timeout)
        let watcher = Thread {
            while progress.snapshot().bytesDone == 0 {
                guard Date() < deadline else {
                    Issue.record(
                        "cancelOnceStarted: the job counted no byte within \(timeout) s; not cancelled",
                        sourceLocation: sourceLocation)
                    return
                }
                usleep(200)
            }
            token.cancel()
        }
        watcher.start()
        return token
    }

    /// Removes segments with these keys that this process created (restored ones), after a test.
    static func removeRestored(_ keys: [SegmentKey]) {
        for key in keys {
            guard let shmid = SharedMemory.lookup(key), let info = SharedMemory.stat(shmid: shmid),
                info.cpid == getpid()
            else { continue }
            SharedMemory.remove(shmid: shmid)
        }
    }

    /// Live segments of an instance+nsid, plus data stages named `name`.
    static func live(instance: Int, nsid: Int, name: String) throws -> [LiveSegment] {
        try SharedMemory.segments(instance: instance).filter {
            $0.key.kind == .dataStage ? $0.namespace == name : $0.key.nsid == nsid
        }
    }

    static func contents(_ segment: LiveSegment) -> [UInt8] { SharedMemoryReader.contents(segment) }

    static func snapshot(_ segments: [LiveSegment]) -> [SegmentKey: [UInt8]] {
        Dictionary(uniqueKeysWithValues: segments.map { ($0.key, contents($0)) })
    }

    static func fileBytes(_ path: String) -> [UInt8] {
        FileManager.default.contents(atPath: path).map { Array($0) } ?? []
    }

    static func writeFile(_ path: String, _ bytes: [UInt8]) {
        _ = FileManager.default.createFile(atPath: path, contents: Data(bytes))
    }

    static func zlibCRC(_ bytes: [UInt8]) -> UInt32 {
        bytes.withUnsafeBufferPointer { UInt32(crc32(0, $0.baseAddress, UInt32($0.count))) }
    }

    /// Independent gzip reader (zlib, gzip wrapper): the whole member must inflate and end.
    static func gunzip(_ member: [UInt8]) -> [UInt8]? {
        var stream = z_stream()
        guard inflateInit2_(&stream, 31, zlibVersion(), Int32(MemoryLayout<z_stream>.size)) == Z_OK else {
            return nil
        }
        defer { inflateEnd(&stream) }
        var output: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 1 << 20)
        var input = member
        return input.withUnsafeMutableBufferPointer { inBuffer -> [UInt8]? in
            stream.next_in = inBuffer.baseAddress
            stream.avail_in = UInt32(inBuffer.count)
            while true {
                let rc = chunk.withUnsafeMutableBufferPointer { out -> Int32 in
                    stream.next_out = out.baseAddress
                    stream.avail_out = UInt32(out.count)
                    return inflate(&stream, Z_NO_FLUSH)
                }
                output += chunk.prefix(chunk.count - Int(stream.avail_out))
                if rc == Z_STREAM_END { return stream.avail_in == 0 ? output : nil }
                if rc != Z_OK { return nil }
            }
        }
    }

    /// gzip member as zlib writes it for asmt: level 1, windowBits 31, memLevel 9.
    static func gzip(_ data: [UInt8]) -> [UInt8] {
        var stream = z_stream()
        _ = deflateInit2_(
            &stream, 1, Z_DEFLATED, 31, 9, Z_DEFAULT_STRATEGY, zlibVersion(), Int32(MemoryLayout<z_stream>.size))
        defer { deflateEnd(&stream) }
        var output = [UInt8](repeating: 0, count: Int(deflateBound(&stream, UInt(data.count))) + 64)
        var input = data
        let produced = input.withUnsafeMutableBufferPointer { inBuffer in
            output.withUnsafeMutableBufferPointer { out -> Int in
                stream.next_in = inBuffer.baseAddress
                stream.avail_in = UInt32(inBuffer.count)
                stream.next_out = out.baseAddress
                stream.avail_out = UInt32(out.count)
                let rc = deflate(&stream, Z_FINISH)
                precondition(rc == Z_STREAM_END)
                return out.count - Int(stream.avail_out)
            }
        }
        return Array(output.prefix(produced))
    }

    static func le32(_ bytes: [UInt8], _ offset: Int) -> UInt32 {
        (0..<4).reduce(UInt32(0)) { $0 | UInt32(bytes[offset + $1]) << (8 * UInt32($1)) }
    }

    static func le64(_ bytes: [UInt8], _ offset: Int) -> UInt64 {
        (0..<8).reduce(UInt64(0)) { $0 | UInt64(bytes[offset + $1]) << (8 * UInt64($1)) }
    }

    static func expectCode(
        _ code: EngineError.Code, _ body: () throws -> Void, sourceLocation: SourceLocation = #_sourceLocation
    ) {
        do {
            try body()
            Issue.record("expected \(code.rawValue), got success", sourceLocation: sourceLocation)
        } catch let error as EngineError {
            #expect(error.code == code, "\(error)", sourceLocation: sourceLocation)
        } catch {
            Issue.record("unexpected error \(error)", sourceLocation: sourceLocation)
        }
    }
}
