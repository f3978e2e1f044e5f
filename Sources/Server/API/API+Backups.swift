import HTTP1

/// The /v1/backups routes, and the backup inventory of /metrics.
extension API {
    struct BackupList: Encodable, Sendable { var backups: [BackupInfo] }

    func listBackups(_ request: HTTPRequest) throws(APIError) -> HTTPResponse {
        var instances = config.instances
        if let n = try Self.instanceQuery(request) {
            guard let instance = config.instance(n) else {
                throw APIError(.unknownInstance, "instance \(n) is not configured")
            }
            instances = [instance]
        }
        var all: [BackupInfo] = []
        for instance in instances {
            all += BackupCatalog.list(instance: instance).map { info in
                var info = withFreshness(info)
                info.usedBy = jobs.user(ofBackup: info.id)
                return info
            }
        }
        return Responses.json(200, BackupList(backups: all))
    }

    func getBackup(_ request: HTTPRequest) throws(APIError) -> HTTPResponse {
        let id = request.pathParameters["id"] ?? ""
        guard Paths.isSafeName(id), var (info, _) = BackupCatalog.find(id: id, in: config) else {
            throw APIError(.backupNotFound, "no backup \(id)")
        }
        info = withFreshness(info)
        info.usedBy = jobs.user(ofBackup: id)
        return Responses.json(200, info)
    }

    func deleteBackup(_ request: HTTPRequest) async throws(APIError) -> HTTPResponse {
        let id = request.pathParameters["id"] ?? ""
        guard Paths.isSafeName(id) else { throw APIError(.backupNotFound, "no backup \(id)") }
        // Reserved first: a backup being written may not have its directory yet, and no job may pick it
        // while its files go (which can take a while, so off the lock and off the cooperative pool).
        try jobs.reserveBackup(id, for: "deleting")
        defer { jobs.releaseBackup(id, for: "deleting") }
        guard let (info, _) = BackupCatalog.find(id: id, in: config) else {
            throw APIError(.backupNotFound, "no backup \(id)")
        }
        let path = info.path
        let removed = await Blocking.run { () throws(FileSystemError) in try FileSystem.removeTree(path) }
        if case .failure(let error) = removed {
            throw APIError(.io, "cannot remove backup \(id): \(error)")
        }
        watcher?.forget(id)
        jobs.logger.info("backup deleted", metadata: ["backup": "\(id)", "path": "\(path)"])
        return HTTPResponse(status: 204)
    }

    /// The configured instances' backups for the metrics (directory listings and manifests: off the pool).
    func backupInventory() async -> BackupInventory {
        let instances = config.instances
        let result = await Blocking.run { () throws(Never) -> BackupInventory in
            let backups = instances.flatMap { instance in
                BackupCatalog.list(instance: instance).map {
                    (instance: $0.instance, state: $0.state.rawValue, created: $0.created)
                }
            }
            return BackupInventory(instances: instances.map(\.instance), backups: backups)
        }
        switch result {
        case .success(let inventory): return inventory
        }
    }
}
