/// Turns a response into the bytes sent on the wire (RFC 9112 §4, §6; RFC 9110 §6.6.1, §8.6).
enum ResponseSerializer {
    /// How the connection frames this response.
    struct Framing {
        /// HEAD: the headers of GET (Content-Length included) and no content.
        var isHead = false
        /// Send `Connection: close`.
        var close = false
        /// Send `Connection: keep-alive` (an HTTP/1.0 client that asked for it).
        var keepAliveHeader = false
    }

    /// Serializes `response`. The server owns `Date`, `Content-Length`, `Transfer-Encoding` and
    /// `Connection`: those set by the handler are replaced. 1xx, 204 and 304 carry no content and no
    /// Content-Length. CR, LF and NUL in handler-provided values become SP; fields with an invalid
    /// name are dropped, so a handler cannot split the response.
    static func serialize(_ response: HTTPResponse, date: String, framing: Framing) -> [UInt8] {
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

    static let continueResponse: [UInt8] = Array("HTTP/1.1 100 Continue\r\n\r\n".utf8)

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

/// Calendar dates from day counts, for the date formats of HTTP and of the services built on it.
public enum CivilDate {
    /// Days since 1970-01-01 → (year, month 1...12, day 1...31) in the proleptic Gregorian calendar.
    public static func from(days: Int) -> (year: Int, month: Int, day: Int) {
        let shifted = days + 719_468
        let era = (shifted >= 0 ? shifted : shifted - 146_096) / 146_097
        let dayOfEra = shifted - era * 146_097
        let yearOfEra = (dayOfEra - dayOfEra / 1460 + dayOfEra / 36524 - dayOfEra / 146_096) / 365
        let dayOfYear = dayOfEra - (365 * yearOfEra + yearOfEra / 4 - yearOfEra / 100)
        let monthIndex = (5 * dayOfYear + 2) / 153
        let day = dayOfYear - (153 * monthIndex + 2) / 5 + 1
        let month = monthIndex < 10 ? monthIndex + 3 : monthIndex - 9
        return (yearOfEra + era * 400 + (month <= 2 ? 1 : 0), month, day)
    }
}

/// IMF-fixdate (RFC 9110 §5.6.7), e.g. `Sun, 06 Nov 1994 08:49:37 GMT`.
enum HTTPDate {
    private static let days = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"]
    private static let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]

    /// Formats seconds since the Unix epoch (UTC).
    static func format(epochSeconds: Int) -> String {
        let dayCount = epochSeconds >= 0 ? epochSeconds / 86400 : (epochSeconds - 86399) / 86400
        let secondOfDay = epochSeconds - dayCount * 86400
        let (year, month, day) = CivilDate.from(days: dayCount)
        let weekday = days[((dayCount % 7) + 7) % 7]
        return "\(weekday), \(twoDigits(day)) \(months[month - 1]) \(year) "
            + "\(twoDigits(secondOfDay / 3600)):\(twoDigits(secondOfDay / 60 % 60)):\(twoDigits(secondOfDay % 60)) GMT"
    }

    private static func twoDigits(_ value: Int) -> String {
        value < 10 ? "0\(value)" : "\(value)"
    }
}
