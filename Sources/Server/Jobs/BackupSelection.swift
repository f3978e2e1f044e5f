import ShmEngine

/// Which backup a restore reads: the one asked for, checked, or else the newest complete one holding every
/// requested namespace.
enum BackupSelection {
    /// `writer(id)` answers the id of a backup job still writing backup `id`, if any.
    static func choose(
        _ requested: String?, instance: InstanceConfig, namespaces: [String], writer: (String) -> String?
    ) throws(APIError) -> String {
        guard let requested else { return try newest(instance: instance, namespaces: namespaces) }
        let directory = Paths.join(instance.backupPath, requested)
        guard FileSystem.kind(directory) == .directory else {
            throw APIError(.backupNotFound, "no backup \(requested) for instance \(instance.instance)")
        }
        if let job = writer(requested) {
            throw APIError(.backupIncomplete, "backup \(requested) is still being written by job \(job)")
        }
        let manifest: BackupManifest?
        do {
            manifest = try BackupManifest.load(directory: directory)
        } catch {
            throw APIError(.invalidBackup, "backup \(requested): \(error.message)")
        }
        guard let manifest else {
            throw APIError(
                .backupIncomplete, "backup \(requested) has no manifest: it is incomplete or was not written by asmtd")
        }
        let held = Set(manifest.namespaces.map(\.name))
        for name in namespaces where !held.contains(name) {
            throw APIError(.namespaceNotFound, "backup \(requested) does not hold namespace \"\(name)\"")
        }
        return requested
    }

    private static func newest(instance: InstanceConfig, namespaces: [String]) throws(APIError) -> String {
        let candidates = BackupCatalog.list(instance: instance)
            .filter { $0.complete && Set(namespaces).isSubset(of: Set($0.namespaces)) }
        guard let newest = candidates.max(by: { ($0.created, $0.id) < ($1.created, $1.id) }) else {
            throw APIError(
                .noCompleteBackup,
                "no complete backup of instance \(instance.instance) holds \(namespaces.joined(separator: ", "))")
        }
        return newest.id
    }
}
