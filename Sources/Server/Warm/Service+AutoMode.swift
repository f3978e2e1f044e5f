import Logging
import ShmEngine

/// The automatic mode under systemd: the restore before READY and the backup at stop, each through the ordinary job
/// queue (same checks, records and clean-up as an API job). The decisions are `AutoDecisions`'; this is their I/O.
extension Service {
    var autoBackupNeeded: Bool { config.instances.contains { $0.auto.backupOnStop } }

    // MARK: start

    /// Each instance with `restore-on-start`: restore its newest complete backup when it is fresh and no segment of
    /// its namespaces exists, within `restore-timeout`; anything else is skipped with the reason in the log and in
    /// STATUS=. Returns one line per instance for the READY status.
    func startupRestores() async -> [String] {
        var summary: [String] = []
        for instance in config.instances where instance.auto.restoreOnStart {
            summary.append("instance \(instance.instance): " + (await startupRestore(instance)))
        }
        return summary
    }

    private func startupRestore(_ instance: InstanceConfig) async -> String {
        watcher.refresh(instance.instance)
        let status = InstanceStatus.compute(instance, watcher: watcher, restoreBytesPerSecond: nil)
        let views = status.namespaces.map { AutoDecisions.NamespaceView(name: $0.name, server: $0.server) }
        let newest = BackupCatalog.list(instance: instance).first {
            $0.complete && Set(instance.namespaces).isSubset(of: Set($0.namespaces))
        }
        let candidate = newest.map { backup in
            (
                id: backup.id,
                freshness: Dictionary(
                    uniqueKeysWithValues: instance.namespaces.map {
                        ($0, watcher.freshness(of: backup.id, namespace: $0))
                    })
            )
        }
        switch AutoDecisions.startRestore(views, newestHoldingAll: candidate) {
        case .skip(let reason):
            logger.info(
                "start-up restore skipped", metadata: ["instance": "\(instance.instance)", "reason": "\(reason)"])
            notify.status("instance \(instance.instance): restore skipped: \(reason)")
            return "restore skipped: \(reason)"
        case .restore(let backup, let namespaces):
            let submission = RestoreSubmission(
                instance: instance.instance, namespaces: namespaces, options: RestoreOptions(backup: backup))
            notify.status("instance \(instance.instance): restoring backup \(backup)")
            let id: String
            do {
                guard case .accepted(let record) = try await jobs.submitRestore(submission) else {
                    return "restore not started"
                }
                id = record.id
            } catch {
                logger.error(
                    "start-up restore refused", metadata: ["instance": "\(instance.instance)", "error": "\(error)"])
                return "restore refused: \(error.message)"
            }
            let limit = Double(instance.auto.restoreTimeoutMs) / 1000
            let final = await waitForAutoJob(
                id, limit: limit, what: "instance \(instance.instance): restoring \(backup)")
            let outcome = final?.state.rawValue ?? "unknown"
            logger.info(
                "start-up restore finished",
                metadata: [
                    "instance": "\(instance.instance)", "backup": "\(backup)", "job": "\(id)", "outcome": "\(outcome)",
                ])
            return outcome == "success"
                ? "restored \(backup)"
                : "restore \(outcome) (\(final?.error?.message ?? "")); its segments were removed: asd cold-starts"
        }
    }

    // MARK: stop

    /// Each instance with `backup-on-stop` (after the running job ended and the API closed): backs up the namespaces
    /// whose segments are clean, unattached and not covered by a fresh backup.
    func stopBackups() async {
        for instance in config.instances where instance.auto.backupOnStop {
            if stopWorkAbandoned.isCancelled {
                logger.warning(
                    "stop-time backup abandoned (second signal)", metadata: ["instance": "\(instance.instance)"])
                continue
            }
            await stopBackup(instance)
        }
    }

    private func stopBackup(_ instance: InstanceConfig) async {
        watcher.refresh(instance.instance)
        let status = InstanceStatus.compute(instance, watcher: watcher, restoreBytesPerSecond: nil)
        let views = status.namespaces.map { ns in
            AutoDecisions.NamespaceView(
                name: ns.name, server: ns.server,
                backup: ns.backup.map {
                    CoveringBackup(id: $0, freshness: watcher.freshness(of: $0, namespace: ns.name), bytes: 0)
                })
        }
        let decision = AutoDecisions.stopBackup(views)
        for (namespace, reason) in decision.skipped.sorted(by: { $0.key < $1.key }) {
            logger.info(
                "stop-time backup skipped",
                metadata: ["instance": "\(instance.instance)", "namespace": "\(namespace)", "reason": "\(reason)"])
        }
        guard !decision.namespaces.isEmpty else { return }
        notify.status("instance \(instance.instance): backing up \(decision.namespaces.joined(separator: ", "))")
        let submission = BackupSubmission(
            instance: instance.instance, namespaces: decision.namespaces, options: BackupOptions())
        do {
            guard case .accepted(let record) = try await jobs.submitBackup(submission) else { return }
            let final = await waitForAutoJob(
                record.id, limit: nil, what: "instance \(instance.instance): stop-time backup")
            logger.info(
                "stop-time backup finished",
                metadata: [
                    "instance": "\(instance.instance)", "job": "\(record.id)",
                    "outcome": "\(final?.state.rawValue ?? "unknown")",
                ])
        } catch {
            logger.error(
                "stop-time backup refused", metadata: ["instance": "\(instance.instance)", "error": "\(error)"])
        }
    }

    // MARK: waiting

    /// Waits for a job, telling systemd it is making progress (EXTEND_TIMEOUT_USEC, STATUS=) every 5 s; cancels it
    /// after `limit` seconds (its clean-up runs) and waits for its end.
    private func waitForAutoJob(_ id: String, limit: Double?, what: String) async -> JobRecord? {
        let begin = Time.monotonic()
        var lastNotice = -10.0
        var canceled = false
        while let record = jobs.job(id), !record.state.isFinished {
            let elapsed = Time.monotonic() - begin
            if let limit, elapsed > limit, !canceled {
                canceled = true
                logger.warning("start-up restore took too long; canceling it", metadata: ["job": "\(id)"])
                _ = try? jobs.cancel(id)
            }
            if elapsed - lastNotice >= 5 {
                lastNotice = elapsed
                let p = record.progress
                let percent = p.bytesTotal > 0 ? Int(Double(p.bytesDone) * 100 / Double(p.bytesTotal)) : 0
                notify.send([("EXTEND_TIMEOUT_USEC", "30000000"), ("STATUS", "\(what): \(percent)%")])
            }
            // Woken by the job's end, else at the next notice or at the limit.
            var wake = lastNotice + 5 - elapsed
            if let limit, !canceled { wake = min(wake, limit - elapsed) }
            let jobs = jobs
            _ = await jobs.completions.wait(for: id, timeout: .milliseconds(max(10, Int(wake * 1000)))) {
                jobs.job(id)?.state.isFinished ?? true
            }
        }
        return jobs.job(id)
    }
}
