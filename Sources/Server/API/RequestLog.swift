import HTTP1
import Logging

/// What the service logs of an API call, beside the DEBUG access line: every refusal (4xx) at INFO with
/// its code, every server error at ERROR, and every mutating call (POST, DELETE, ...) at INFO with the peer
/// address, so that the journal says who started, canceled or deleted what.
enum RequestLog {
    struct Entry: Equatable {
        var level: Logger.Level
        var message: String
        var metadata: Logger.Metadata
    }

    static let readOnlyMethods: Set<String> = ["GET", "HEAD", "OPTIONS"]

    /// The line to log for one answered API call, or nil for a successful read (pure).
    static func entry(
        method: String, route: String?, peer: String, status: Int, error: APIError?, id: String?, location: String?
    ) -> Entry? {
        let mutating = !readOnlyMethods.contains(method)
        guard status >= 400 || mutating else { return nil }
        var metadata: Logger.Metadata = [
            "method": "\(method)", "route": "\(route ?? "-")", "status": .typed(status), "peer": "\(peer)",
        ]
        if let id { metadata["id"] = "\(id)" }
        if let location { metadata["location"] = "\(location)" }
        if let error {
            metadata["code"] = "\(error.code.rawValue)"
            metadata["error"] = "\(error.message)"
        }
        switch status {
        case 500...: return Entry(level: .error, message: "request failed", metadata: metadata)
        case 400..<500: return Entry(level: .info, message: "request refused", metadata: metadata)
        default: return Entry(level: .info, message: "request", metadata: metadata)
        }
    }

    static func record(_ request: HTTPRequest, _ response: HTTPResponse, error: APIError?, logger: Logger) {
        guard
            let entry = entry(
                method: request.method, route: request.routePattern, peer: request.remoteAddress,
                status: response.status, error: error, id: request.pathParameters["id"],
                location: response.headers["Location"])
        else { return }
        logger.log(level: entry.level, "\(entry.message)", metadata: entry.metadata)
    }
}
