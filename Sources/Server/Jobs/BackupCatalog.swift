import ShmEngine

/// complete (has the manifest), incomplete (no manifest), invalid (unreadable manifest).
enum BackupState: String, Sendable, Encodable {
    case complete, incomplete, invalid
}

/// One backup directory as the API shows it.
struct BackupInfo: Sendable, Encodable {
    var id: String
    var instance: Int
    var path: String
    var state: BackupState
    var complete: Bool { state == .complete }
    var created: String
    var namespaces: [String]
    var segments: Int
    var bytes, fileBytes: UInt64
    var compressed: Bool
    @Nullable var toolVersion: String? = nil
    @Nullable var host: String? = nil
    var error: String? = nil
    @Nullable var usedBy: String? = nil
    /// Complete backups: fresh, stale or unknown, and the evidence behind it (null without any).
    @Nullable var freshness: String? = nil
    @Nullable var evidence: EvidenceView? = nil

    enum CodingKeys: String, CodingKey {
        case id, instance, path, state, created, namespaces, segments, bytes, compressed, host, error
        case fileBytes = "file-bytes", toolVersion = "tool-version", usedBy = "used-by", freshness, evidence
    }
}

/// Backups are the directories below each instance's backup path; complete ones hold the manifest.
enum BackupCatalog {
    static func list(instance: InstanceConfig) -> [BackupInfo] {
        FileSystem.list(instance.backupPath).filter(Paths.isSafeName).compactMap { name in
            info(id: name, instance: instance)
        }
        .sorted { ($0.created, $0.id) > ($1.created, $1.id) }
    }

    static func info(id: String, instance: InstanceConfig) -> BackupInfo? {
        let path = Paths.join(instance.backupPath, id)
        guard Paths.isSafeName(id), FileSystem.kind(path) == .directory else { return nil }
        let files = FileSystem.sizeOfFiles(in: path)
        var info = BackupInfo(
            id: id, instance: instance.instance, path: path, state: .incomplete, created: "", namespaces: [],
            segments: 0, bytes: 0, fileBytes: files.bytes, compressed: false)
        do {
            if let manifest = try BackupManifest.load(directory: path) {
                info.state = .complete
                info.created = manifest.created
                info.namespaces = manifest.namespaces.map(\.name)
                info.segments = manifest.segments.count
                info.bytes = manifest.segments.reduce(0) { $0 + $1.size }
                info.compressed = manifest.segments.contains { $0.compressed }
                info.toolVersion = manifest.toolVersion
                info.host = manifest.host
            }
        } catch {
            info.state = .invalid
            info.error = error.message
        }
        return info
    }

    static func find(id: String, in config: Config) -> (BackupInfo, InstanceConfig)? {
        for instance in config.instances {
            if let info = info(id: id, instance: instance) { return (info, instance) }
        }
        return nil
    }
}
