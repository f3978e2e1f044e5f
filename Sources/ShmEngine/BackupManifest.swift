import Foundation

/// The completion marker of a backup directory, written last and atomically.
public struct BackupManifest: Sendable, Codable, Equatable {
    public static let fileName = "asmtd-manifest.json"
    public static let currentFormatVersion = 1

    public var formatVersion: Int
    public var toolVersion: String
    public var host: String
    public var instance: Int
    /// RFC 3339 UTC.
    public var created: String
    public var namespaces: [PlannedNamespace]
    public var segments: [ManifestSegment]
    /// The segments as they were at the end of the backup (the service's freshness evidence); optional.
    public var evidence: FreshnessEvidence? = nil

    /// nil when the directory has no manifest (incomplete, or written by asmt).
    public static func load(directory: String) throws(EngineError) -> BackupManifest? {
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
public struct ManifestSegment: Sendable, Codable, Equatable {
    public var key: SegmentKey
    public var kind: SegmentKind
    public var namespace: String
    public var file: String
    public var size: UInt64
    public var compressed: Bool
    public var fileSize: UInt64
    /// CRC-32 of the segment bytes.
    public var crc32: UInt32
    public var uid: UInt32
    public var gid: UInt32
    public var mode: UInt32
    /// RFC 3339 UTC, when the copy of this segment started and finished.
    public var started: String
    public var finished: String
    /// Compressed files only: where each deflate chunk lies, so that a restore inflates one file on every core.
    public var chunks: DeflateChunks? = nil
}
