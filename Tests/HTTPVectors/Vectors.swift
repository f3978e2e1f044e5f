import HTTP1
import Testing

/// One request vector of the checklist in shared/http-server.md §4, with what the server must do.
package struct Vector: CustomTestStringConvertible, Sendable {
    /// Checklist row (0 when not a checklist row) and a short label.
    package var row: Int
    package var label: String
    package var raw: [UInt8]
    /// nil: the parser accepts; otherwise the status of the refusal (which always closes).
    package var status: Int?
    /// Requests parsed before the error (or in all, when accepted).
    package var requests: Int = 1
    /// For accepted vectors: whether the last request keeps the connection open.
    package var keepAlive: Bool = true
    /// Parser limits for this vector.
    package var limits = ParserLimits()

    package var testDescription: String { "#\(row) \(label)" }

    init(
        _ row: Int, _ label: String, _ raw: String, status: Int? = nil, requests: Int? = nil,
        keepAlive: Bool = true, limits: ParserLimits = ParserLimits()
    ) {
        self.init(
            row, label, Array(raw.utf8), status: status, requests: requests, keepAlive: keepAlive, limits: limits)
    }

    init(
        _ row: Int, _ label: String, _ raw: [UInt8], status: Int? = nil, requests: Int? = nil,
        keepAlive: Bool = true, limits: ParserLimits = ParserLimits()
    ) {
        self.row = row
        self.label = label
        self.raw = raw
        self.status = status
        self.requests = requests ?? (status == nil ? 1 : 0)
        self.keepAlive = keepAlive
        self.limits = limits
    }
}

let host = "Host: h\r\n"

func limits(_ change: (inout ParserLimits) -> Void) -> ParserLimits {
    var limits = ParserLimits()
    change(&limits)
    return limits
}

package func post(_ headers: String, _ body: String) -> String {
    "POST /echo HTTP/1.1\r\n\(host)\(headers)\r\n\(body)"
}

package let validVectors: [Vector] = [
    Vector(0, "simple GET", "GET / HTTP/1.1\r\n\(host)\r\n"),
    Vector(0, "HEAD", "HEAD /x HTTP/1.1\r\n\(host)\r\n"),
    Vector(0, "POST with Content-Length", post("Content-Length: 5\r\n", "hello")),
    Vector(0, "Content-Length 0", post("Content-Length: 0\r\n", "")),
    Vector(
        0, "chunked body with extensions and trailers",
        post("Transfer-Encoding: chunked\r\n", "5;name=val\r\nhello\r\n6 ; q=\"x\"\r\n world\r\n0\r\nX-T: 1\r\n\r\n")),
    Vector(0, "HTTP/1.0 without keep-alive", "GET / HTTP/1.0\r\n\r\n", keepAlive: false),
    Vector(13, "HTTP/1.2 read as 1.1", "GET / HTTP/1.2\r\n\(host)\r\n"),
    Vector(17, "one leading CRLF", "\r\nGET / HTTP/1.1\r\n\(host)\r\n"),
    Vector(19, "absolute-form target", "GET http://a.example/x?y=1 HTTP/1.1\r\nHost: other\r\n\r\n"),
    Vector(
        30, "obs-text in a value",
        [UInt8]("GET / HTTP/1.1\r\n\(host)X: caf".utf8) + [0xC3, 0xA9] + Array("\r\n\r\n".utf8)),
    Vector(35, "Content-Length 5, 5", post("Content-Length: 5, 5\r\n", "hello")),
    Vector(42, "Transfer-Encoding Chunked", post("Transfer-Encoding: Chunked\r\n", "0\r\n\r\n")),
    Vector(
        50, "trailer Content-Length not merged",
        post("Transfer-Encoding: chunked\r\n", "0\r\nContent-Length: 0\r\n\r\n")),
    Vector(54, "Expect 100-continue", post("Expect: 100-continue\r\nContent-Length: 2\r\n", "hi")),
    Vector(
        57, "Expect ignored in HTTP/1.0", "POST /echo HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\nhi",
        keepAlive: false),
    Vector(59, "two pipelined GETs", "GET /a HTTP/1.1\r\n\(host)\r\nGET /b HTTP/1.1\r\n\(host)\r\n", requests: 2),
    Vector(61, "Connection: close", "GET / HTTP/1.1\r\n\(host)Connection: close\r\n\r\n", keepAlive: false),
    Vector(
        61, "close inside a list", "GET / HTTP/1.1\r\n\(host)Connection: keep-alive, Close\r\n\r\n", keepAlive: false),
    Vector(62, "HTTP/1.0 keep-alive honoured", "GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"),
    Vector(71, "only CRLFs: nothing, no error", "\r\n\r\n", requests: 0),
]

package let badVectors: [Vector] = [
    Vector(1, "no Host in 1.1", "GET / HTTP/1.1\r\n\r\n", status: 400),
    Vector(2, "two Host lines", "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", status: 400),
    Vector(3, "Host with a space", "GET / HTTP/1.1\r\nHost: a b\r\n\r\n", status: 400),
    Vector(3, "Host with a slash", "GET / HTTP/1.1\r\nHost: a/b\r\n\r\n", status: 400),
    Vector(4, "two SP after the method", "GET  / HTTP/1.1\r\n\(host)\r\n", status: 400),
    Vector(4, "trailing SP after the version", "GET / HTTP/1.1 \r\n\(host)\r\n", status: 400),
    Vector(5, "space in the target", "GET /a b HTTP/1.1\r\n\(host)\r\n", status: 400),
    Vector(6, "LF inside the request line", "GET /\nHTTP/1.1\r\n\(host)\r\n", status: 400),
    Vector(7, "unknown method", "FOO / HTTP/1.1\r\n\(host)\r\n", status: 501),
    Vector(8, "lower-case method", "get / HTTP/1.1\r\n\(host)\r\n", status: 501),
    Vector(9, "non-tchar in the method", "G(T / HTTP/1.1\r\n\(host)\r\n", status: 400),
    Vector(10, "method of 1000 A", String(repeating: "A", count: 1000) + " / HTTP/1.1\r\n\(host)\r\n", status: 501),
    Vector(
        12, "16 KiB target, 8 KiB limit", "GET /" + String(repeating: "a", count: 16384) + " HTTP/1.1\r\n\(host)\r\n",
        status: 414),
    // Found by the fuzzer: the verdict once depended on the split (400 whole, 414 byte by byte).
    Vector(
        12, "over-long request line ending in a bare LF", "GET /" + String(repeating: "a", count: 9000) + "\n",
        status: 414),
    Vector(
        27, "over-long field ending in a bare CR",
        "GET / HTTP/1.1\r\nX: " + String(repeating: "v", count: 40000) + "\rx",
        status: 431),
    Vector(14, "HTTP/2.0", "GET / HTTP/2.0\r\n\(host)\r\n", status: 505),
    Vector(14, "HTTP/3.0", "GET / HTTP/3.0\r\n\(host)\r\n", status: 505),
    Vector(15, "HTTP/1.10", "GET / HTTP/1.10\r\n\(host)\r\n", status: 400),
    Vector(15, "HTTP/1.32", "GET / HTTP/1.32\r\n\(host)\r\n", status: 400),
    Vector(15, "HTTP/1", "GET / HTTP/1\r\n\(host)\r\n", status: 400),
    Vector(15, "lower-case http/1.1", "GET / http/1.1\r\n\(host)\r\n", status: 400),
    Vector(16, "HTTP/0.9 form", "GET /\r\n", status: 400),
    Vector(18, "asterisk-form with GET", "GET * HTTP/1.1\r\n\(host)\r\n", status: 400),
    Vector(0, "fragment in the target", "GET /a#b HTTP/1.1\r\n\(host)\r\n", status: 400),
    Vector(0, "bad percent-encoding", "GET /a%zz HTTP/1.1\r\n\(host)\r\n", status: 400),
    Vector(0, "encoded NUL in the path", "GET /a%00 HTTP/1.1\r\n\(host)\r\n", status: 400),
    Vector(20, "SP before the colon", post("Content-Length : 5\r\n", "hello"), status: 400),
    Vector(21, "obs-fold", "GET / HTTP/1.1\r\n\(host)X-A: 1\r\n  continued\r\n\r\n", status: 400),
    Vector(22, "HTAB before the first field", "GET / HTTP/1.1\r\n\tHost: a\r\n\r\n", status: 400),
    Vector(22, "SP before the first field", "GET / HTTP/1.1\r\n X: 1\r\n\(host)\r\n", status: 400),
    Vector(
        23, "0xFF in a field name", [UInt8]("GET / HTTP/1.1\r\n\(host)".utf8) + [0xFF] + Array("oo: bar\r\n\r\n".utf8),
        status: 400),
    Vector(23, "SP inside a field name", "GET / HTTP/1.1\r\n\(host)X Y: 1\r\n\r\n", status: 400),
    Vector(24, "empty field name", "GET / HTTP/1.1\r\n\(host): x\r\n\r\n", status: 400),
    Vector(24, "no colon", "GET / HTTP/1.1\r\nHost a\r\n\r\n", status: 400),
    Vector(25, "NUL in a value", "GET / HTTP/1.1\r\n\(host)X: a\u{0}b\r\n\r\n", status: 400),
    Vector(25, "bare CR in a value", "GET / HTTP/1.1\r\n\(host)X: a\rb\r\n\r\n", status: 400),
    Vector(25, "DEL in a value", "GET / HTTP/1.1\r\n\(host)X: a\u{7F}b\r\n\r\n", status: 400),
    Vector(26, "bare LF line ends", "GET / HTTP/1.1\nHost: a\n\n", status: 400),
    Vector(26, "bare LF ending a field", "GET / HTTP/1.1\r\nHost: a\n\r\n", status: 400),
    Vector(
        27, "9 KiB field, 8 KiB header cap",
        "GET / HTTP/1.1\r\n\(host)X: " + String(repeating: "v", count: 9216) + "\r\n\r\n", status: 431,
        limits: limits { $0.maxHeaderBytes = 8192 }),
    Vector(
        28, "70 KiB head, 64 KiB cap",
        "GET / HTTP/1.1\r\n\(host)"
            + String(repeating: "X-Pad: " + String(repeating: "p", count: 1000) + "\r\n", count: 70)
            + "\r\n", status: 431, limits: limits { $0.maxHeaderBytes = 65536 }),
    Vector(
        29, "101 fields, cap 100",
        "GET / HTTP/1.1\r\n\(host)" + (1...100).map { "X-\($0): 1\r\n" }.joined() + "\r\n", status: 431),
    Vector(
        32, "Content-Length and Transfer-Encoding",
        post("Content-Length: 4\r\nTransfer-Encoding: chunked\r\n", "0\r\n\r\n"), status: 400),
    Vector(
        33, "CL with TE gzip, chunked", post("Content-Length: 5\r\nTransfer-Encoding: gzip, chunked\r\n", "0\r\n\r\n"),
        status: 400),
    Vector(
        34, "two different Content-Length", post("Content-Length: 5\r\nContent-Length: 6\r\n", "hello!"), status: 400),
    Vector(34, "Content-Length 5, 6", post("Content-Length: 5, 6\r\n", "hello!"), status: 400),
    Vector(36, "Content-Length +5", post("Content-Length: +5\r\n", "hello"), status: 400),
    Vector(36, "Content-Length -1", post("Content-Length: -1\r\n", ""), status: 400),
    Vector(36, "Content-Length 0x10", post("Content-Length: 0x10\r\n", ""), status: 400),
    Vector(36, "Content-Length 5_0", post("Content-Length: 5_0\r\n", ""), status: 400),
    Vector(36, "Content-Length 1e3", post("Content-Length: 1e3\r\n", ""), status: 400),
    Vector(36, "Content-Length 5 5", post("Content-Length: 5 5\r\n", ""), status: 400),
    Vector(36, "Content-Length fullwidth 5", post("Content-Length: \u{FF15}\r\n", ""), status: 400),
    Vector(36, "empty Content-Length", post("Content-Length: \r\n", ""), status: 400),
    Vector(37, "Content-Length overflow", post("Content-Length: 99999999999999999999999\r\n", ""), status: 400),
    Vector(38, "Content-Length above the body cap", post("Content-Length: 10485760\r\n", ""), status: 413),
    Vector(39, "Transfer-Encoding gzip", post("Transfer-Encoding: gzip\r\n", ""), status: 400),
    Vector(40, "chunked, chunked", post("Transfer-Encoding: chunked, chunked\r\n", "0\r\n\r\n"), status: 400),
    Vector(41, "xchunked", post("Transfer-Encoding: xchunked\r\n", "0\r\n\r\n"), status: 400),
    Vector(41, "chunked;q=1", post("Transfer-Encoding: chunked;q=1\r\n", "0\r\n\r\n"), status: 400),
    Vector(41, "chunked, identity", post("Transfer-Encoding: chunked, identity\r\n", "0\r\n\r\n"), status: 400),
    Vector(41, "gzip, chunked: unknown coding", post("Transfer-Encoding: gzip, chunked\r\n", "0\r\n\r\n"), status: 501),
    Vector(
        43, "chunked in HTTP/1.0", "POST /echo HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", status: 400),
    Vector(44, "body without framing is the next request", post("", "hello world\r\n\r\n"), status: 400, requests: 1),
    Vector(45, "chunk size Z", post("Transfer-Encoding: chunked\r\n", "Z\r\n\r\n"), status: 400),
    Vector(45, "empty chunk size", post("Transfer-Encoding: chunked\r\n", "\r\n\r\n"), status: 400),
    Vector(45, "chunk size +5", post("Transfer-Encoding: chunked\r\n", "+5\r\nhello\r\n0\r\n\r\n"), status: 400),
    Vector(45, "chunk size -1", post("Transfer-Encoding: chunked\r\n", "-1\r\n"), status: 400),
    Vector(45, "chunk size 0x5", post("Transfer-Encoding: chunked\r\n", "0x5\r\nhello\r\n0\r\n\r\n"), status: 400),
    Vector(45, "chunk size 0_2e", post("Transfer-Encoding: chunked\r\n", "0_2e\r\n"), status: 400),
    Vector(46, "17 hex digits", post("Transfer-Encoding: chunked\r\n", "FFFFFFFFFFFFFFFFF\r\n"), status: 413),
    Vector(
        46, "many leading zeros", post("Transfer-Encoding: chunked\r\n", "00000000000000000001\r\na\r\n0\r\n\r\n"),
        status: 400),
    Vector(
        47, "chunk data longer than its size", post("Transfer-Encoding: chunked\r\n", "5\r\nhelloXX\r\n0\r\n\r\n"),
        status: 400),
    Vector(
        47, "bare LF after chunk data", post("Transfer-Encoding: chunked\r\n", "5\r\nhello\n0\r\n\r\n"), status: 400),
    Vector(
        48, "CR in chunk-ext whitespace", post("Transfer-Encoding: chunked\r\n", "2\r\r;a\r\nhi\r\n0\r\n\r\n"),
        status: 400),
    Vector(
        26, "bare LF ending a chunk line", post("Transfer-Encoding: chunked\r\n", "2\nhi\r\n0\r\n\r\n"), status: 400),
    Vector(
        49, "8 KiB chunk-ext, 4 KiB cap",
        post("Transfer-Encoding: chunked\r\n", "2;a=" + String(repeating: "x", count: 8192) + "\r\nhi\r\n0\r\n\r\n"),
        status: 400),
    Vector(
        50, "oversized trailer section",
        post("Transfer-Encoding: chunked\r\n", "0\r\nX-T: " + String(repeating: "t", count: 40000) + "\r\n\r\n"),
        status: 431),
    Vector(50, "trailer with bad syntax", post("Transfer-Encoding: chunked\r\n", "0\r\nX T: 1\r\n\r\n"), status: 400),
    Vector(
        51, "chunked body over the cap",
        post("Transfer-Encoding: chunked\r\n", "400\r\n" + String(repeating: "b", count: 1024) + "\r\n400\r\n"),
        status: 413, limits: limits { $0.maxBodyBytes = 1500 }),
    Vector(56, "Expect something else", post("Expect: something\r\nContent-Length: 2\r\n", "hi"), status: 417),
    Vector(60, "bad request then a good one", "GET / HTTP/1.1\r\n\r\nGET / HTTP/1.1\r\n\(host)\r\n", status: 400),
    Vector(
        0, "too many leading empty lines", String(repeating: "\r\n", count: 20) + "GET / HTTP/1.1\r\n\(host)\r\n",
        status: 400),
]
