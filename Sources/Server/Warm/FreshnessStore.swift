import Foundation
import ShmEngine

/// The freshness tracks of one backup: `<state-dir>/freshness/<backup-id>.json`.
struct BackupTracks: Sendable, Codable, Equatable {
    var backup: String
    var instance: Int
    var bootID: String
    /// Unix seconds of the end-of-backup evidence.
    var observed: Double
    var namespaces: [NamespaceTrack]

    var freshness: Freshness { Freshness.worst(namespaces.map(\.freshness)) }

    func freshness(of namespace: String) -> Freshness? {
        namespaces.first { $0.name == namespace }?.freshness
    }

    enum CodingKeys: String, CodingKey {
        case backup, instance, bootID = "boot-id", observed, namespaces
    }
}

/// One run of the service as the next run needs to know it: `<state-dir>/watch.json`.
struct WatchRun: Sendable, Codable, Equatable {
    var bootID: String
    var pid: Int32
    var started: Double
    /// Set at a clean stop, after the last look at the segments.
    var stopped: Double?

    enum CodingKeys: String, CodingKey {
        case bootID = "boot-id", pid, started, stopped
    }
}

/// Files of the freshness state, each written atomically (temporary file, fsync, rename).
struct FreshnessStore: Sendable {
    let directory: String
    let runFile: String

    init(stateDirectory: String) {
        directory = Paths.join(stateDirectory, "freshness")
        runFile = Paths.join(stateDirectory, "watch.json")
    }

    func prepare() throws(FileSystemError) {
        try FileSystem.createDirectories(directory, mode: 0o700)
    }

    func save(_ tracks: BackupTracks) throws(FileSystemError) {
        try write(tracks, to: Paths.join(directory, "\(tracks.backup).json"))
    }

    func delete(_ backup: String) {
        FileSystem.remove(Paths.join(directory, "\(backup).json"))
    }

    /// Every readable file, plus a warning per unreadable one. Removes leftover temporary files.
    func loadAll() -> (tracks: [BackupTracks], warnings: [String]) {
        let (tracks, warnings) = FileSystem.loadJSONRecords(BackupTracks.self, in: directory, what: "freshness file")
        return (tracks, warnings)
    }

    func loadRun() -> WatchRun? {
        guard let bytes = try? FileSystem.readFile(runFile) else { return nil }
        return try? JSONDecoder().decode(WatchRun.self, from: Data(bytes))
    }

    func saveRun(_ run: WatchRun) throws(FileSystemError) {
        try write(run, to: runFile)
    }

    private func write(_ value: some Encodable, to path: String) throws(FileSystemError) {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .prettyPrinted]
        guard let data = try? encoder.encode(value) else {
            throw FileSystemError(operation: "encode", path: path, errno: EINVAL)
        }
        try FileSystem.writeAtomically(Array(data) + [0x0a], to: path)
    }

    /// Rewrites a backup's manifest with the evidence (atomically: the manifest stays the completion marker).
    static func addEvidence(_ evidence: FreshnessEvidence, toManifestIn directory: String) throws {
        guard var manifest = try BackupManifest.load(directory: directory) else { return }
        manifest.evidence = evidence
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        let data = try encoder.encode(manifest)
        try FileSystem.writeAtomically(Array(data) + [0x0a], to: Paths.join(directory, BackupManifest.fileName))
    }
}
