import Foundation

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

    /// This host's name, as a manifest records it; "unknown" when the kernel does not tell.
    static func hostName() -> String {
        var buffer = [CChar](repeating: 0, count: 256)
        guard gethostname(&buffer, buffer.count - 1) == 0 else { return "unknown" }
        let bytes = buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }
        return String(decoding: bytes, as: UTF8.self)
    }
}

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
