import Foundation
import Glibc
import HTTP1
import ShmEngine

/// The routes and their handlers.
struct API: Sendable {
    let config: Config
    let jobs: JobQueue
    let metrics: Metrics
    /// The segment watcher (freshness); nil only in tests that build the routes alone.
    var watcher: Watcher? = nil

    func router() -> Router {
        var router = Router()
        router.add("GET", "/health") { _ in Responses.json(200, ["status": "ok"]) }
        router.add("GET", "/ready") { _ in await ready() }
        router.add("GET", "/version") { _ in
            Responses.json(200, ["name": "asmtd", "version": Engine.version])
        }
        router.add("GET", "/metrics") { _ in
            let inventory = await backupInventory()
            let ready = readiness().status == "ready"
            return Responses.text(
                200, metrics.render(inventory: inventory, ready: ready) + (await warmMetrics()),
                contentType: Exposition.contentType)
        }
        router.add("GET", "/openapi.yaml") { _ in
            Responses.text(200, OpenAPIDocument.text, contentType: "application/yaml")
        }
        router.add("POST", "/v1/backup", guarded { (request) throws(APIError) in try await submitBackup(request) })
        router.add("POST", "/v1/restore", guarded { (request) throws(APIError) in try await submitRestore(request) })
        router.add("GET", "/v1/jobs", guarded { (request) throws(APIError) in try listJobs(request) })
        router.add("GET", "/v1/jobs/{id}", guarded { (request) throws(APIError) in try await getJob(request) })
        router.add("POST", "/v1/jobs/{id}/cancel", guarded { (request) throws(APIError) in try cancelJob(request) })
        router.add("GET", "/v1/backups", guarded { (request) throws(APIError) in try listBackups(request) })
        router.add("GET", "/v1/backups/{id}", guarded { (request) throws(APIError) in try getBackup(request) })
        router.add(
            "DELETE", "/v1/backups/{id}", guarded { (request) throws(APIError) in try await deleteBackup(request) })
        router.add("GET", "/v1/segments", guarded { (request) throws(APIError) in try await listSegments(request) })
        addWarmRoutes(&router)
        return router
    }

    /// Checks the bearer token (when configured) and turns thrown API errors into the JSON envelope.
    func guarded(_ body: @escaping @Sendable (HTTPRequest) async throws(APIError) -> HTTPResponse) -> HTTPHandler {
        let token = config.authToken
        let logger = jobs.logger
        return { request in
            var failure: APIError?
            let response: HTTPResponse
            do throws(APIError) {
                if let token {
                    guard let header = request.headers["Authorization"], Self.bearerMatches(header, token: token)
                    else { throw APIError(.unauthorized, "missing or wrong bearer token") }
                }
                if request.method == "POST", !request.body.isEmpty,
                    !Self.isJSONMediaType(request.headers["Content-Type"])
                {
                    let given = request.headers["Content-Type"] ?? ""
                    throw APIError(.unsupportedMediaType, "the request body must be application/json, not \"\(given)\"")
                }
                response = try await body(request)
            } catch {
                failure = error
                response = Responses.error(error)
            }
            RequestLog.record(request, response, error: failure, logger: logger)
            return response
        }
    }

    /// A request body must be JSON: `application/json`, with parameters or not. A body sent without a
    /// Content-Type is taken as JSON (the type a client means when it does not say).
    static func isJSONMediaType(_ header: String?) -> Bool {
        guard let header else { return true }
        let type = header.split(separator: ";", maxSplits: 1, omittingEmptySubsequences: false).first ?? ""
        return type.trimmingWhitespace().lowercased() == "application/json"
    }

    /// Constant-time comparison of "Bearer <token>".
    static func bearerMatches(_ header: String, token: String) -> Bool {
        let prefix = "Bearer "
        guard header.count > prefix.count, header.prefix(prefix.count).lowercased() == prefix.lowercased() else {
            return false
        }
        let given = Array(header.dropFirst(prefix.count).utf8)
        let expected = Array(token.utf8)
        var difference = UInt8(given.count == expected.count ? 0 : 1)
        for index in 0..<expected.count {
            difference |= expected[index] ^ (index < given.count ? given[index] : 0)
        }
        return difference == 0
    }

    // MARK: jobs

    func submitBackup(_ request: HTTPRequest) async throws(APIError) -> HTTPResponse {
        if !jobs.isAccepting { throw JobRegistry.shuttingDown() }
        let submission = try BackupSubmission.decode(request.body)
        return accepted(try await jobs.submitBackup(submission))
    }

    func submitRestore(_ request: HTTPRequest) async throws(APIError) -> HTTPResponse {
        if !jobs.isAccepting { throw JobRegistry.shuttingDown() }
        let submission = try RestoreSubmission.decode(request.body)
        return accepted(try await jobs.submitRestore(submission))
    }

    /// A dry run's answer: the pre-flight plan, nothing written.
    struct PlanView: Encodable, Sendable {
        struct Namespace: Encodable, Sendable {
            var name: String
            var nsid: Int
        }
        struct Segment: Encodable, Sendable {
            var key: String
            var kind: String
            var namespace: String
            var size: UInt64
            var file: String
            var compressed: Bool
            var uid: UInt32
            var gid: UInt32
            var mode: String
        }
        var dryRun = true
        var type: String
        var instance: Int
        var path: String
        var namespaces: [Namespace]
        var segments: [Segment]
        var totalBytes: UInt64

        enum CodingKeys: String, CodingKey {
            case dryRun = "dry-run", type, instance, path, namespaces, segments, totalBytes = "total-bytes"
        }

        init(
            type: String, instance: Int, path: String, namespaces: [PlannedNamespace], segments: [PlannedSegment],
            totalBytes: UInt64
        ) {
            self.type = type
            self.instance = instance
            self.path = path
            self.namespaces = namespaces.map { Namespace(name: $0.name, nsid: $0.nsid) }
            self.segments = segments.map {
                Segment(
                    key: $0.key.hex, kind: $0.kind.rawValue, namespace: $0.namespace, size: $0.size, file: $0.file,
                    compressed: $0.compressed, uid: $0.uid, gid: $0.gid, mode: "0" + String($0.mode, radix: 8))
            }
            self.totalBytes = totalBytes
        }
    }

    func accepted(_ submission: Submission) -> HTTPResponse {
        switch submission {
        case .accepted(let record):
            let location = "/v1/jobs/\(record.id)"
            return Responses.json(202, JobResource(record, now: Time.now()), headers: ["Location": location])
        case .backupPlan(let p):
            return Responses.json(
                200,
                PlanView(
                    type: "backup", instance: p.instance, path: p.directory, namespaces: p.namespaces,
                    segments: p.segments, totalBytes: p.totalBytes))
        case .restorePlan(let p):
            return Responses.json(
                200,
                PlanView(
                    type: "restore", instance: p.instance, path: p.directory, namespaces: p.namespaces,
                    segments: p.segments, totalBytes: p.totalBytes))
        }
    }

    struct JobList: Encodable, Sendable { var jobs: [JobResource] }

    func listJobs(_ request: HTTPRequest) throws(APIError) -> HTTPResponse {
        let filters = try JobFilters.parse(
            type: request.query("type"), state: request.query("state"), limit: request.query("limit"))
        let now = Time.now()
        let records = jobs.jobs(limit: filters.limit, matching: filters.matches)
        return Responses.json(200, JobList(jobs: records.map { JobResource($0, now: now) }))
    }

    /// `?wait=N` answers as soon as the job is finished, or with its state after N seconds.
    func getJob(_ request: HTTPRequest) async throws(APIError) -> HTTPResponse {
        let id = request.pathParameters["id"] ?? ""
        let wait = try JobWait.seconds(request.query("wait"))
        guard var record = jobs.job(id) else { throw APIError(.jobNotFound, "no job \(id)") }
        if wait > 0 && !record.state.isFinished {
            let jobs = jobs
            _ = await jobs.completions.wait(for: id, timeout: .seconds(wait)) { jobs.job(id)?.state.isFinished ?? true }
            record = jobs.job(id) ?? record
        }
        return Responses.json(200, JobResource(record, now: Time.now()))
    }

    func cancelJob(_ request: HTTPRequest) throws(APIError) -> HTTPResponse {
        let id = request.pathParameters["id"] ?? ""
        _ = try jobs.cancel(id)
        let record = jobs.job(id)!
        return Responses.json(202, JobResource(record, now: Time.now()), headers: ["Location": "/v1/jobs/\(id)"])
    }

    // MARK: backups

    struct BackupList: Encodable, Sendable { var backups: [BackupInfo] }

    func listBackups(_ request: HTTPRequest) throws(APIError) -> HTTPResponse {
        var instances = config.instances
        if let text = request.query("instance") {
            guard let n = Int(text), (0...15).contains(n) else {
                throw APIError(.invalidQuery, "instance must be an integer in 0..15")
            }
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

    // MARK: segments, readiness

    struct SegmentView: Encodable, Sendable {
        var key: String
        var kind: String
        var instance: Int
        var nsid: Int
        var stage: Int
        var namespace: String?
        var size: UInt64
        var shmid: Int32
        var attached: Int
        var uid: UInt32
        var gid: UInt32
        var mode: String
        var creatorPID: Int32
        /// The base of its instance and nsid is missing or has version word 0 (an unfinished restore's).
        var uncommitted: Bool

        enum CodingKeys: String, CodingKey {
            case key, kind, instance, nsid, stage, namespace, size, shmid, attached, uid, gid, mode, uncommitted
            case creatorPID = "creator-pid"
        }

        init(_ s: LiveSegment) {
            key = s.key.hex
            kind = s.key.kind.rawValue
            instance = s.key.instance
            nsid = s.key.nsid
            stage = s.key.stage
            namespace = s.namespace
            size = s.size
            shmid = s.shmid
            attached = s.attachCount
            uid = s.uid
            gid = s.gid
            mode = "0" + String(s.mode, radix: 8)
            creatorPID = s.creatorPID
            uncommitted = s.uncommitted
        }
    }

    struct SegmentList: Encodable, Sendable { var segments: [SegmentView] }

    func listSegments(_ request: HTTPRequest) async throws(APIError) -> HTTPResponse {
        var instance: Int?
        if let text = request.query("instance") {
            guard let n = Int(text), (0...15).contains(n) else {
                throw APIError(.invalidQuery, "instance must be an integer in 0..15")
            }
            instance = n
        }
        let filter = instance
        // The listing attaches bases and data stages to read their names: the watcher looks before and after.
        let watched = config.instances.map(\.instance).filter { filter == nil || $0 == filter }
        let watcher = watcher
        let result = await Blocking.run { () throws(EngineError) -> [LiveSegment] in
            for n in watched { watcher?.beginOwn(n) }
            defer { for n in watched { watcher?.endOwn(n) } }
            return try SharedMemory.segments(instance: filter)
        }
        let segments = try result.mapError { APIError($0) }.get()
        return Responses.json(200, SegmentList(segments: segments.sorted { $0.key < $1.key }.map(SegmentView.init)))
    }

    struct Check: Encodable, Sendable {
        var name: String
        var ok: Bool
        var message: String
    }

    struct Readiness: Encodable, Sendable {
        var status: String
        var checks: [Check]
    }

    func ready() async -> HTTPResponse {
        let readiness = self.readiness()
        return Responses.json(readiness.status == "ready" ? 200 : 503, readiness)
    }

    /// The checks of GET /ready (also the `asmtd_ready` metric).
    func readiness() -> Readiness {
        var checks: [Check] = [Check(name: "config", ok: true, message: "loaded from \(config.file)")]
        checks.append(
            Check(
                name: "accepting-jobs", ok: jobs.isAccepting,
                message: jobs.isAccepting ? "taking jobs" : "shutting down"))
        let state = config.service.stateDir
        let stateOK = FileSystem.isWritableDirectory(state) && FileSystem.isWritableDirectory(jobs.store.directory)
        checks.append(
            Check(name: "state-dir", ok: stateOK, message: stateOK ? "\(state) writable" : "\(state) not writable"))
        let unsaved = jobs.unsavedJobs
        checks.append(
            Check(
                name: "job-records", ok: unsaved.isEmpty,
                message: unsaved.isEmpty
                    ? "every record on disk"
                    : "final record not on disk yet for job(s) \(unsaved.joined(separator: ", "))"))
        for instance in config.instances {
            let ok = FileSystem.isWritableDirectory(instance.backupPath)
            checks.append(
                Check(
                    name: "backup-path-\(instance.instance)", ok: ok,
                    message: ok ? "\(instance.backupPath) writable" : "\(instance.backupPath) not writable"))
        }
        // SHM_INFO only: a walk that attaches segments to read their names would disturb a running backup.
        var info = shmid_ds()
        if shmctl(0, SHM_INFO, &info) >= 0 {
            checks.append(Check(name: "shm", ok: true, message: "shm calls permitted"))
        } else {
            checks.append(
                Check(name: "shm", ok: false, message: "shmctl(SHM_INFO) failed: \(String(cString: strerror(errno)))"))
        }
        let root = geteuid() == 0
        checks.append(
            Check(
                name: "privileges", ok: root,
                message: root ? "running as root" : "not root: restores cannot give segments their owners"))
        let ok = checks.allSatisfy(\.ok)
        return Readiness(status: ok ? "ready" : "not-ready", checks: checks)
    }
}
