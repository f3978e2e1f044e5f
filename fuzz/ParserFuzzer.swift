import Glibc

// libFuzzer target for the HTTP1 request parser. Built by scripts/fuzz-http together with the
// sources of the pure module Sources/HTTP1 (no sockets), not by SwiftPM.
//
// For each input it checks that the parser never traps, that feeding the bytes whole, one byte at a
// time and in uneven pieces gives the same result, and that limits hold (body size, header count).

struct Summary: Equatable {
    var requests: [String] = []
    var error: Int?
}

let fuzzLimits: ParserLimits = {
    var limits = ParserLimits()
    limits.maxRequestLineLength = 256
    limits.maxHeaderBytes = 512
    limits.maxHeaderCount = 8
    limits.maxBodyBytes = 300
    limits.maxChunkLineLength = 64
    return limits
}()

func summarize(_ bytes: UnsafeBufferPointer<UInt8>, pieces: (Int) -> Int) -> Summary {
    var parser = RequestParser(limits: fuzzLimits)
    var summary = Summary()
    var offset = 0
    var round = 0
    while offset < bytes.count {
        let size = max(1, min(bytes.count - offset, pieces(round)))
        parser.append(UnsafeRawBufferPointer(UnsafeBufferPointer(rebasing: bytes[offset..<(offset + size)])))
        offset += size
        round += 1
        drain: while true {
            switch parser.next() {
            case .needMore:
                break drain
            case .head(let head):
                check(head.framing != .none, "head event without a body")
            case .request(let head, let body):
                check(body.count <= fuzzLimits.maxBodyBytes, "body over the limit")
                // An absolute-form authority may add Host on top of the counted fields.
                check(head.headers.count <= fuzzLimits.maxHeaderCount + 1, "too many headers")
                if case .length(let length) = head.framing {
                    check(length == body.count, "body length differs from Content-Length")
                }
                _ = Router.decodedSegments(of: head.target)
                let query = head.queryItems.map { "\($0.name)=\($0.value)" }.joined(separator: "&")
                summary.requests.append(
                    "\(head.method) \(head.target) \(head.path)?\(query) \(head.keepAlive) \(head.expectsContinue) "
                        + "\(head.headers.count) \(body)")
            case .error(let error):
                check([400, 413, 414, 417, 431, 501, 505].contains(error.status), "unexpected status")
                summary.error = error.status
                return summary
            }
        }
    }
    return summary
}

/// Traps after printing `message` to stderr, so that the saved crash input comes with a reason.
func check(_ condition: Bool, _ message: @autoclosure () -> String) {
    if !condition {
        fputs("fuzz check failed: \(message())\n", stderr)
        abort()
    }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzParser(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = UnsafeBufferPointer(start: data, count: size)
    let whole = summarize(bytes) { _ in Int.max }
    let bytewise = summarize(bytes) { _ in 1 }
    check(whole == bytewise, "byte-at-a-time parse differs from whole:\n\(whole)\n\(bytewise)")
    let seed = size > 0 ? Int(data[0]) : 0
    let uneven = summarize(bytes) { round in (round * 7 + seed) % 13 + 1 }
    check(whole == uneven, "uneven split parse differs from whole:\n\(whole)\n\(uneven)")
    return 0
}
