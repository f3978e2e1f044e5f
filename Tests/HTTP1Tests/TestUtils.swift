@testable import HTTP1

/// What feeding some bytes to a fresh parser produced: requests, then possibly an error.
struct ParseOutcome: Equatable {
    struct Request: Equatable {
        var method: String
        var path: String
        var body: [UInt8]
        var keepAlive: Bool
    }

    var requests: [Request] = []
    var heads = 0
    var error: HTTPParseError?
}

/// Feeds `bytes` to a fresh parser in pieces of `chunk` bytes (0 = whole), draining events after each.
func parse(_ bytes: [UInt8], chunk: Int = 0, limits: ParserLimits = ParserLimits()) -> ParseOutcome {
    var parser = RequestParser(limits: limits)
    var outcome = ParseOutcome()
    let size = chunk == 0 ? max(bytes.count, 1) : chunk
    var offset = 0
    repeat {
        let end = min(bytes.count, offset + size)
        parser.append(bytes[offset..<end])
        offset = end
        drain: while true {
            switch parser.next() {
            case .needMore: break drain
            case .head: outcome.heads += 1
            case .request(let head, let body):
                outcome.requests.append(
                    .init(method: head.method, path: head.path, body: body, keepAlive: head.keepAlive))
            case .error(let error):
                outcome.error = error
                return outcome
            }
        }
    } while offset < bytes.count
    return outcome
}

/// Feeds whole, one byte at a time, and at a few other splits; returns the outcomes that differ from whole.
func parseAllSplits(_ bytes: [UInt8], limits: ParserLimits = ParserLimits()) -> (ParseOutcome, [Int]) {
    let whole = parse(bytes, limits: limits)
    var differing: [Int] = []
    for chunk in [1, 2, 3, 7] where parse(bytes, chunk: chunk, limits: limits) != whole {
        differing.append(chunk)
    }
    return (whole, differing)
}

extension String {
    var bytes: [UInt8] { Array(utf8) }
}
