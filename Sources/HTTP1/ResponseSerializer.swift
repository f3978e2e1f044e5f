/// Turns a response into the bytes sent on the wire (RFC 9112 §4, §6; RFC 9110 §6.6.1, §8.6).
package enum ResponseSerializer {
    /// How the connection frames this response.
    package struct Framing {
        /// HEAD: the headers of GET (Content-Length included) and no content.
        package var isHead: Bool
        /// Send `Connection: close`.
        package var close: Bool
        /// Send `Connection: keep-alive` (an HTTP/1.0 client that asked for it).
        package var keepAliveHeader: Bool

        package init(isHead: Bool = false, close: Bool = false, keepAliveHeader: Bool = false) {
            self.isHead = isHead
            self.close = close
            self.keepAliveHeader = keepAliveHeader
        }
    }

    /// Serializes `response`. The server owns `Date`, `Content-Length`, `Transfer-Encoding` and
    /// `Connection`: those set by the handler are replaced. 1xx, 204 and 304 carry no content and no
    /// Content-Length. CR, LF and NUL in handler-provided values become SP; fields with an invalid
    /// name are dropped, so a handler cannot split the response.
    package static func serialize(_ response: HTTPResponse, date: String, framing: Framing) -> [UInt8] {
        let status = response.status
        let noContent = (100..<200).contains(status) || status == 204 || status == 304
        var out: [UInt8] = []
        out.reserveCapacity(128 + response.headers.count * 32 + (framing.isHead || noContent ? 0 : response.body.count))
        out.append(contentsOf: "HTTP/1.1 ".utf8)
        appendStatus(status, to: &out)
        out.append(0x20)
        out.append(contentsOf: reasonPhrase(status).utf8)
        out.append(contentsOf: [0x0D, 0x0A])
        for field in response.headers {
            if isServerManaged(field.name) { continue }
            guard !field.name.isEmpty, field.name.utf8.allSatisfy(ByteClass.isToken) else { continue }
            out.append(contentsOf: field.name.utf8)
            out.append(contentsOf: [UInt8(ascii: ":"), 0x20])
            for byte in field.value.utf8 {
                out.append(byte == 0x0D || byte == 0x0A || byte == 0 ? 0x20 : byte)
            }
            out.append(contentsOf: [0x0D, 0x0A])
        }
        out.append(contentsOf: "Date: ".utf8)
        out.append(contentsOf: date.utf8)
        out.append(contentsOf: [0x0D, 0x0A])
        if !noContent {
            out.append(contentsOf: "Content-Length: ".utf8)
            out.append(contentsOf: String(response.body.count).utf8)
            out.append(contentsOf: [0x0D, 0x0A])
        }
        if framing.close {
            out.append(contentsOf: "Connection: close\r\n".utf8)
        } else if framing.keepAliveHeader {
            out.append(contentsOf: "Connection: keep-alive\r\n".utf8)
        }
        out.append(contentsOf: [0x0D, 0x0A])
        if !noContent && !framing.isHead {
            out.append(contentsOf: response.body)
        }
        return out
    }

    package static let continueResponse: [UInt8] = Array("HTTP/1.1 100 Continue\r\n\r\n".utf8)

    private static func isServerManaged(_ name: String) -> Bool {
        switch name.utf8.count {
        case 4: return asciiCaseInsensitiveEquals(name, "Date")
        case 10: return asciiCaseInsensitiveEquals(name, "Connection")
        case 14: return asciiCaseInsensitiveEquals(name, "Content-Length")
        case 17: return asciiCaseInsensitiveEquals(name, "Transfer-Encoding")
        default: return false
        }
    }

    private static func appendStatus(_ status: Int, to out: inout [UInt8]) {
        let clamped = (100...999).contains(status) ? status : 500
        out.append(UInt8(ascii: "0") + UInt8(clamped / 100))
        out.append(UInt8(ascii: "0") + UInt8(clamped / 10 % 10))
        out.append(UInt8(ascii: "0") + UInt8(clamped % 10))
    }

    static func reasonPhrase(_ status: Int) -> String {
        switch status {
        case 100: "Continue"
        case 200: "OK"
        case 201: "Created"
        case 202: "Accepted"
        case 204: "No Content"
        case 301: "Moved Permanently"
        case 302: "Found"
        case 304: "Not Modified"
        case 400: "Bad Request"
        case 401: "Unauthorized"
        case 403: "Forbidden"
        case 404: "Not Found"
        case 405: "Method Not Allowed"
        case 408: "Request Timeout"
        case 409: "Conflict"
        case 410: "Gone"
        case 411: "Length Required"
        case 412: "Precondition Failed"
        case 413: "Content Too Large"
        case 414: "URI Too Long"
        case 415: "Unsupported Media Type"
        case 417: "Expectation Failed"
        case 422: "Unprocessable Content"
        case 423: "Locked"
        case 429: "Too Many Requests"
        case 431: "Request Header Fields Too Large"
        case 500: "Internal Server Error"
        case 501: "Not Implemented"
        case 502: "Bad Gateway"
        case 503: "Service Unavailable"
        case 504: "Gateway Timeout"
        case 505: "HTTP Version Not Supported"
        case 507: "Insufficient Storage"
        default: "Status"
        }
    }
}
