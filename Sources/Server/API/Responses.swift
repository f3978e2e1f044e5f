import Foundation
import HTTP1

/// JSON responses and the one error envelope: `{"error":{"code":"...","message":"..."}}`.
enum Responses {
    static let jsonType = "application/json"

    static func json<T: Encodable>(
        _ status: Int, _ value: T, headers extra: HTTPHeaders = HTTPHeaders()
    ) -> HTTPResponse {
        var headers = extra
        headers.replaceOrAdd(name: "Content-Type", value: jsonType)
        guard let data = JSONOutput.encode(value) else {
            return error(APIError(.internalError, "cannot encode the response"))
        }
        return HTTPResponse(status: status, headers: headers, body: Array(data) + [0x0a])
    }

    struct ErrorBody: Encodable {
        struct Inner: Encodable {
            var code: String
            var message: String
            var details: [String: String]?
        }
        var error: Inner
    }

    static func error(_ error: APIError) -> HTTPResponse {
        var headers = HTTPHeaders()
        if error.code == .unauthorized { headers.add(name: "WWW-Authenticate", value: "Bearer realm=\"asmtd\"") }
        if error.code == .shuttingDown { headers.add(name: "Retry-After", value: "30") }
        return errorResponse(
            status: error.status, code: error.code.rawValue, message: error.message,
            details: error.details.isEmpty ? nil : error.details, headers: headers)
    }

    /// Also used for the errors HTTPCore generates itself (404, 405, 413, ...), so every error looks the same.
    static func errorResponse(
        status: Int, code: String, message: String, details: [String: String]? = nil,
        headers: HTTPHeaders = HTTPHeaders()
    ) -> HTTPResponse {
        let body = ErrorBody(error: .init(code: code, message: message, details: details))
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.withoutEscapingSlashes, .sortedKeys]
        var headers = headers
        headers.replaceOrAdd(name: "Content-Type", value: jsonType)
        let data = (try? encoder.encode(body)) ?? Data("{\"error\":{\"code\":\"INTERNAL_ERROR\"}}".utf8)
        return HTTPResponse(status: status, headers: headers, body: Array(data) + [0x0a])
    }

    static func text(_ status: Int, _ text: String, contentType: String) -> HTTPResponse {
        HTTPResponse(status: status, headers: ["Content-Type": contentType], body: Array(text.utf8))
    }
}
