import Testing

@testable import HTTPCore

struct ParserSmokeTests {
    @Test func parsesASimpleGet() {
        let (outcome, differing) = parseAllSplits("GET /a%20b?x=1 HTTP/1.1\r\nHost: h\r\n\r\n".bytes)
        #expect(differing.isEmpty)
        #expect(outcome.error == nil)
        #expect(outcome.requests.first?.path == "/a b")
    }
}
