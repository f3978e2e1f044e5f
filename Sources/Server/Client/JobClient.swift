import Foundation

/// The client reads the job object with the very type the API writes it with.
extension JobResource {
    var isFinished: Bool { state.isFinished }

    /// The exit status a finished job stands for: 0 success, 130 canceled, else its error code's.
    var exitStatus: SysExit {
        switch state {
        case .success: .success
        case .canceled: .canceled
        default: SysExit.of(code: error?.code ?? "FAILURE", message: error?.message ?? "")
        }
    }
}

/// The calls `asmtd job` makes; every refusal comes back as a ``ClientError`` with the API's code.
struct JobClient: Sendable {
    var http: HTTPClient

    /// A successful (2xx) answer, or the service's error envelope as a ``ClientError``.
    func call(
        _ method: String, _ path: String, body: [UInt8]? = nil, timeout: Int = 30
    ) throws(ClientError)
        -> ClientResponse
    {
        let response = try http.send(method, path, body: body, timeout: timeout)
        guard (200..<300).contains(response.status) else { throw Self.refusal(response) }
        return response
    }

    /// The error of a non-2xx answer (pure).
    static func refusal(_ response: ClientResponse) -> ClientError {
        struct Envelope: Decodable {
            struct Inner: Decodable {
                var code: String
                var message: String
            }
            var error: Inner
        }
        if let envelope = try? JSONDecoder().decode(Envelope.self, from: Data(response.body)) {
            return ClientError(code: envelope.error.code, message: envelope.error.message, status: response.status)
        }
        let code = [502, 503, 504].contains(response.status) ? "UNAVAILABLE" : "UNEXPECTED_ANSWER"
        return ClientError(
            code: code, message: "the server answered \(response.status) without an asmtd error",
            status: response.status)
    }

    static func decodeJob(_ body: [UInt8]) throws(ClientError) -> JobResource {
        do {
            return try JSONDecoder().decode(JobResource.self, from: Data(body))
        } catch {
            throw ClientError(code: "UNEXPECTED_ANSWER", message: "the answer is not a job object: \(error)")
        }
    }

    /// One job; with `wait` > 0 a long-poll that answers when the job ends or after `wait` seconds.
    func job(_ id: String, wait: Int = 0) throws(ClientError) -> (job: JobResource, body: [UInt8]) {
        let query = wait > 0 ? "?wait=\(wait)" : ""
        let response = try call("GET", "/v1/jobs/\(ServerURL.segment(id))\(query)", timeout: wait + 30)
        return (try Self.decodeJob(response.body), response.body)
    }

    /// Long-polls until the job ends; `update` sees every state on the way (about once a second when
    /// `often`, else once a minute or at the end).
    func waitForEnd(
        _ id: String, often: Bool, update: (JobResource) -> Void
    ) throws(ClientError)
        -> (job: JobResource, body: [UInt8])
    {
        var current = try job(id)
        update(current.job)
        while !current.job.isFinished {
            current = try job(id, wait: often ? 1 : JobWait.maximumSeconds)
            update(current.job)
        }
        return current
    }
}
