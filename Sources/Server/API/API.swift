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

    /// `?instance=N` of the listings: nil when absent, 400 unless 0..15.
    static func instanceQuery(_ request: HTTPRequest) throws(APIError) -> Int? {
        guard let text = request.query("instance") else { return nil }
        guard let n = Int(text), (0...15).contains(n) else {
            throw APIError(.invalidQuery, "instance must be an integer in 0..15")
        }
        return n
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
}
