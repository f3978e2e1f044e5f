import ShmEngine

/// `GET /v1/instances/{instance}`: asd's state, and per configured namespace the newest backup, its freshness,
/// whether a reboot now would come back warm and why not.
struct InstanceStatus: Sendable, Encodable {
    struct Auto: Sendable, Encodable {
        var restoreOnStart: Bool
        var backupOnStop: Bool
        var keep: Int

        enum CodingKeys: String, CodingKey {
            case restoreOnStart = "restore-on-start", backupOnStop = "backup-on-stop", keep
        }
    }

    struct Namespace: Sendable, Encodable {
        var name: String
        @Nullable var nsid: Int? = nil
        var server: ServerState
        var segments: Int
        @Nullable var backup: String? = nil
        @Nullable var freshness: String? = nil
        @Nullable var freshnessSince: String? = nil
        @Nullable var freshnessReason: String? = nil
        @Nullable var backupAgeSeconds: Double? = nil
        var warmRestartReady: Bool
        var reasons: [String]
        @Nullable var estimatedRestoreSeconds: Int? = nil

        enum CodingKeys: String, CodingKey {
            case name, nsid, server, segments, backup, freshness, reasons
            case freshnessSince = "freshness-since", freshnessReason = "freshness-reason"
            case backupAgeSeconds = "backup-age-seconds", warmRestartReady = "warm-restart-ready"
            case estimatedRestoreSeconds = "estimated-restore-seconds"
        }
    }

    var instance: Int
    var server: ServerState
    var auto: Auto
    var namespaces: [Namespace]

    /// Reads the watcher's last table (and the bases it has not read since they last changed), the backups and the
    /// measured restore speed.
    static func compute(_ instance: InstanceConfig, watcher: Watcher, restoreBytesPerSecond: Double?) -> InstanceStatus
    {
        // asmtd's own attaches (a running job, a listing) are not asd's.
        let own = watcher.ownActive(instance.instance)
        let table = watcher.latestSegments(instance.instance).map { segment in
            var segment = segment
            if own && segment.lpid == watcher.pid { segment.nattch = 0 }
            return segment
        }
        let bases = watcher.bases(instance.instance)
        let backups = BackupCatalog.list(instance: instance).filter(\.complete)
        let now = Time.now()
        var namespaces: [Namespace] = []
        for name in instance.namespaces {
            let base = bases.first { $0.value.namespace == name }
            let covering = backups.first { $0.namespaces.contains(name) }
            let manifest = covering.flatMap { try? BackupManifest.load(directory: $0.path) }
            let nsid = base?.key.nsid ?? manifest?.namespaces.first { $0.name == name }?.nsid
            let segments = nsid.map { n in table.filter { $0.key.nsid == n } } ?? []
            let server = ServerState.of(
                segments: segments.count, attached: segments.contains { $0.nattch > 0 }, baseClean: base?.value.clean)
            var view = Namespace(
                name: name, nsid: nsid, server: server, segments: segments.count, warmRestartReady: false, reasons: [])
            var coveringBackup: CoveringBackup?
            if let covering {
                let freshness = watcher.freshness(of: covering.id, namespace: name)
                let bytes =
                    manifest?.segments.filter { $0.namespace == name }.reduce(0) { $0 + $1.size } ?? covering.bytes
                coveringBackup = CoveringBackup(id: covering.id, freshness: freshness, bytes: bytes)
                view.backup = covering.id
                view.freshness = freshness.name
                view.freshnessSince = freshness.since.map(Time.rfc3339)
                view.freshnessReason = freshness.reason
                if let created = Time.parseRFC3339(covering.created) {
                    view.backupAgeSeconds = max(0, (now - created).rounded())
                }
                view.estimatedRestoreSeconds = WarmReadiness.estimatedRestoreSeconds(
                    bytes: bytes, measuredBytesPerSecond: restoreBytesPerSecond)
            }
            let answer = WarmReadiness.evaluate(
                namespace: name, server: server, backup: coveringBackup, backupOnStop: instance.auto.backupOnStop)
            view.warmRestartReady = answer.ready
            view.reasons = answer.reasons
            namespaces.append(view)
        }
        var server = ServerState.combined(namespaces.map(\.server))
        if table.contains(where: { $0.nattch > 0 }) { server = .running }
        return InstanceStatus(
            instance: instance.instance, server: server,
            auto: Auto(
                restoreOnStart: instance.auto.restoreOnStart, backupOnStop: instance.auto.backupOnStop,
                keep: instance.keep),
            namespaces: namespaces)
    }

    /// The warm-reboot metrics, in Prometheus text.
    static func metrics(_ statuses: [InstanceStatus]) -> String {
        var out = Exposition()
        out.family(
            "asmtd_warm_restart_ready", "gauge",
            "1 when a reboot now would bring the namespace back warm from a fresh backup, else 0.")
        for status in statuses {
            for ns in status.namespaces {
                out.sample(
                    "asmtd_warm_restart_ready", [("aerospike_instance", "\(status.instance)"), ("namespace", ns.name)],
                    ns.warmRestartReady ? 1 : 0)
            }
        }
        out.family(
            "asmtd_backup_age_seconds", "gauge", "Age of the newest complete backup holding the namespace, in seconds.")
        for status in statuses {
            for ns in status.namespaces {
                guard let age = ns.backupAgeSeconds else { continue }
                out.sample(
                    "asmtd_backup_age_seconds", [("aerospike_instance", "\(status.instance)"), ("namespace", ns.name)],
                    age)
            }
        }
        return out.text
    }
}
