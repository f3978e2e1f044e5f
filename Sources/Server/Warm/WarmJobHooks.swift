import Logging
import ShmEngine

/// What the job queue asks of, and tells, the warm-reboot machinery: the watcher's looks around asmtd's
/// own attaches, backup evidence, the stale-backup refusal, the free-space check and `keep`.
struct WarmJobHooks: Sendable {
    let watcher: Watcher
    let config: Config
    let logger: Logger

    /// Before a job's planning attaches segments of the instance.
    func willAttach(_ instance: Int) { watcher.beginOwn(instance) }

    /// After the job ended (or was refused): asmtd no longer attaches them.
    func didDetach(_ instance: Int) { watcher.endOwn(instance) }

    /// A backup's engine run completed: its evidence goes to the state and the manifest.
    func backupCompleted(id: String, instance: Int, directory: String) {
        guard let manifest = try? BackupManifest.load(directory: directory) else { return }
        watcher.recordBackup(id: id, instance: instance, manifest: manifest, directory: directory)
    }

    /// A job's final record is published: asmtd no longer attaches the instance's segments; after a successful
    /// backup, `keep` applies.
    func jobEnded(_ record: JobRecord, registry: JobRegistry) {
        didDetach(record.request.instance)
        if record.type == .backup, record.state == .success, let instance = config.instance(record.request.instance) {
            applyRetention(instance, registry: registry)
        }
    }

    /// 409 BACKUP_STALE unless forced; returns the warnings the job keeps (forced stale, unknown).
    func checkRestore(backup: String, namespaces: [String], force: Bool) throws(APIError) -> [String] {
        var warnings: [String] = []
        for namespace in namespaces {
            let freshness = watcher.freshness(of: backup, namespace: namespace)
            switch freshness {
            case .fresh:
                continue
            case .unknown(_, let reason):
                warnings.append("backup \(backup) is of unknown freshness for namespace \(namespace): \(reason)")
            case .stale(let since, let reason):
                let text =
                    "backup \(backup) is stale for namespace \(namespace) since \(Time.rfc3339(since)): \(reason)"
                if !force {
                    throw APIError(
                        .backupStale,
                        text + "; restoring it would give asd an index older than its data. "
                            + "Send \"force\": true to restore it anyway",
                        details: [
                            "backup": backup, "namespace": namespace, "since": Time.rfc3339(since), "reason": reason,
                        ])
                }
                logger.warning(
                    "forced restore of a stale backup", metadata: ["backup": "\(backup)", "detail": "\(text)"])
                warnings.append("forced: " + text)
            }
        }
        return warnings
    }

    /// 507 INSUFFICIENT_STORAGE when the backup path has less free space than the backup will write.
    func checkSpace(_ plan: BackupPlan, compress: Bool, instance: InstanceConfig) throws(APIError) {
        let ratio = compress ? Self.measuredRatio(instance) : nil
        let needed = SpaceCheck.required(
            segments: plan.segments.map { ($0.kind, $0.size) }, compress: compress, ratio: ratio)
        guard let free = SpaceCheck.available(instance.backupPath) else { return }
        if free < needed {
            throw APIError(
                .insufficientStorage,
                "\(instance.backupPath) has \(free) bytes free; this backup needs about \(needed)",
                details: ["free-bytes": "\(free)", "required-bytes": "\(needed)"])
        }
    }

    /// The largest file/segment ratio of the compressible segments of the newest compressed backup, if any.
    static func measuredRatio(_ instance: InstanceConfig) -> Double? {
        for info in BackupCatalog.list(instance: instance) where info.complete && info.compressed {
            guard let manifest = try? BackupManifest.load(directory: info.path) else { continue }
            let compressed = manifest.segments.filter { $0.compressed && $0.size > 0 }
            guard !compressed.isEmpty else { continue }
            return compressed.map { Double($0.fileSize) / Double($0.size) }.max()
        }
        return nil
    }

    /// After a successful backup: removes complete backups beyond `keep`, oldest first, never one in use and never
    /// the newest fresh one.
    func applyRetention(_ instance: InstanceConfig, registry jobs: JobRegistry) {
        guard instance.keep > 0 else { return }
        let candidates = BackupCatalog.list(instance: instance).map { info in
            RetentionPlanner.Candidate(
                id: info.id, created: jobs.job(info.id)?.created ?? Time.parseRFC3339(info.created) ?? 0,
                complete: info.complete, inUse: jobs.user(ofBackup: info.id) != nil,
                freshNamespaces: Set(info.namespaces.filter { watcher.freshness(of: info.id, namespace: $0) == .fresh })
            )
        }
        for id in RetentionPlanner.plan(candidates, keep: instance.keep) {
            do throws(APIError) {
                try jobs.reserveBackup(id, for: "retention")
            } catch {
                continue
            }
            defer { jobs.releaseBackup(id, for: "retention") }
            let path = Paths.join(instance.backupPath, id)
            do {
                try FileSystem.removeTree(path)
                watcher.forget(id)
                logger.info("backup removed by keep", metadata: ["backup": "\(id)", "keep": "\(instance.keep)"])
            } catch {
                logger.error("cannot remove backup", metadata: ["backup": "\(id)", "error": "\(error)"])
            }
        }
    }
}
