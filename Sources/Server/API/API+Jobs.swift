import HTTP1

/// POST /v1/backup, POST /v1/restore and the /v1/jobs routes.
extension API {
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

    func accepted(_ submission: Submission) -> HTTPResponse {
        switch submission {
        case .accepted(let record):
            let location = "/v1/jobs/\(record.id)"
            return Responses.json(202, JobResource(record, now: Time.now()), headers: ["Location": location])
        case .backupPlan(let plan):
            return Responses.json(200, PlanView(backup: plan))
        case .restorePlan(let plan):
            return Responses.json(200, PlanView(restore: plan))
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
}
