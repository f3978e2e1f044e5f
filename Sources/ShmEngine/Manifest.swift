import Foundation

/// One segment as recorded in the manifest.
package struct ManifestSegment: Sendable, Codable, Equatable {
    package var key: SegmentKey
    package var kind: SegmentKind
    package var namespace: String
    package var file: String
    package var size: UInt64
    package var compressed: Bool
    package var fileSize: UInt64
    /// CRC-32 of the segment bytes.
    package var crc32: UInt32
    package var uid: UInt32
    package var gid: UInt32
    package var mode: UInt32
    /// RFC 3339 UTC, when the copy of this segment started and finished.
    package var started: String
    package var finished: String
    /// Compressed files only: where each deflate chunk lies, so that a restore inflates one file on every core.
    var chunks: DeflateChunks? = nil
}

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

/// The completion marker of a backup directory, written last and atomically.
public struct BackupManifest: Sendable, Codable, Equatable {
    package static let fileName = "asmtd-manifest.json"
    package static let currentFormatVersion = 1

    package var formatVersion: Int
    package var toolVersion: String
    package var host: String
    package var instance: Int
    /// RFC 3339 UTC.
    package var created: String
    package var namespaces: [PlannedNamespace]
    package var segments: [ManifestSegment]
    /// The segments as they were at the end of the backup (the service's freshness evidence); optional.
    package var evidence: FreshnessEvidence? = nil

    /// nil when the directory has no manifest (incomplete, or written by asmt).
    package static func load(directory: String) throws(EngineError) -> BackupManifest? {
        try load(directory: directory, fileName: fileName)
    }

    /// `fileName` other than the manifest's: the pending manifest of a backup being published.
    static func load(directory: String, fileName: String) throws(EngineError) -> BackupManifest? {
        let path = directory + "/" + fileName
        var st = stat()
        if lstat(path, &st) != 0 {
            if errno == ENOENT { return nil }
            throw EngineError(.io, "cannot read \(path): \(errnoText())")
        }
        guard (st.st_mode & S_IFMT) == S_IFREG, st.st_size < 64 << 20 else {
            throw EngineError(.invalidBackup, "\(path) is not a regular manifest file")
        }
        let data = Data(try FileIO.readPrefix(path: path, length: Int(st.st_size) + 1))
        let manifest: BackupManifest
        do {
            manifest = try JSONDecoder().decode(BackupManifest.self, from: data)
        } catch {
            throw EngineError(.invalidBackup, "manifest \(path) is not valid: \(error)")
        }
        guard manifest.formatVersion == currentFormatVersion else {
            throw EngineError(
                .invalidBackup, "manifest \(path) has unsupported format version \(manifest.formatVersion)")
        }
        return manifest
    }

    func encoded() -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        // Encoding these plain value types cannot fail.
        let data = (try? encoder.encode(self)) ?? Data()
        return Array(data) + [0x0A]
    }
}

func errnoText(_ code: Int32 = errno) -> String { String(cString: strerror(code)) }

func rfc3339(_ date: Date = Date()) -> String {
    let formatter = ISO8601DateFormatter()
    formatter.formatOptions = [.withInternetDateTime]
    formatter.timeZone = TimeZone(identifier: "UTC")
    return formatter.string(from: date)
}

func hostName() -> String {
    var buffer = [CChar](repeating: 0, count: 256)
    guard gethostname(&buffer, buffer.count - 1) == 0 else { return "unknown" }
    let bytes = buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }
    return String(decoding: bytes, as: UTF8.self)
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
