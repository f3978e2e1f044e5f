import HTTP1
import ShmEngine

/// The warm-reboot routes: instance status, and the freshness and evidence of backups.
extension API {
    struct InstanceList: Encodable, Sendable { var instances: [InstanceStatus] }

    func addWarmRoutes(_ router: inout Router) {
        router.add("GET", "/v1/instances", guarded { (request) throws(APIError) in try await listInstances(request) })
        router.add(
            "GET", "/v1/instances/{instance}", guarded { (request) throws(APIError) in try await getInstance(request) })
    }

    func listInstances(_ request: HTTPRequest) async throws(APIError) -> HTTPResponse {
        Responses.json(200, InstanceList(instances: await statuses(config.instances)))
    }

    func getInstance(_ request: HTTPRequest) async throws(APIError) -> HTTPResponse {
        let text = request.pathParameters["instance"] ?? ""
        guard let number = Int(text), (0...15).contains(number) else {
            throw APIError(.notFound, "no instance \(text): instances are numbers 0..15")
        }
        guard let instance = config.instance(number) else {
            let known = config.instances.map { "\($0.instance)" }.joined(separator: ", ")
            throw APIError(.unknownInstance, "instance \(number) is not configured (configured: \(known))")
        }
        return Responses.json(200, await statuses([instance])[0])
    }

    /// Off the cooperative pool: reads /proc, manifests, and may briefly attach a base that changed.
    func statuses(_ instances: [InstanceConfig]) async -> [InstanceStatus] {
        guard let watcher else { return [] }
        let speed = measuredRestoreSpeed()
        let result = await Blocking.run { () throws(Never) -> [InstanceStatus] in
            instances.map { InstanceStatus.compute($0, watcher: watcher, restoreBytesPerSecond: speed) }
        }
        switch result {
        case .success(let statuses): return statuses
        }
    }

    /// Bytes per second of the newest successful restore, nil when none ran.
    func measuredRestoreSpeed() -> Double? {
        let restores = jobs.jobs(limit: 1) { $0.type == .restore && $0.state == .success }
        guard let last = restores.first, let started = last.started, let finished = last.finished, finished > started
        else { return nil }
        return Double(last.progress.bytesDone) / (finished - started)
    }

    /// The warm-reboot metrics appended to /metrics.
    func warmMetrics() async -> String {
        InstanceStatus.metrics(await statuses(config.instances))
    }

    /// Adds `freshness` and `evidence` to a backup's view.
    func withFreshness(_ info: BackupInfo) -> BackupInfo {
        guard let watcher, info.complete else { return info }
        var info = info
        if let tracks = watcher.tracks(of: info.id) {
            info.freshness = tracks.freshness.name
            info.evidence = EvidenceView(tracks)
        } else {
            info.freshness = "unknown"
        }
        return info
    }
}
