/// A failure a helper throws, with what it waited for or what it found.
package struct TestFailure: Error, CustomStringConvertible {
    package var description: String
    package init(_ description: String) { self.description = description }
}

/// Polls `condition` (every 20 ms) until it holds; throws after `timeout`. For states that have no signal to
/// await (a counter of the server under test, a file another process writes).
package func waitUntil(
    timeout: Duration = .seconds(15), _ what: String = "condition", _ condition: () throws -> Bool
) async throws {
    let clock = ContinuousClock()
    let deadline = clock.now + timeout
    while try !condition() {
        guard clock.now < deadline else { throw TestFailure("\(what) not met within \(timeout)") }
        try await Task.sleep(for: .milliseconds(20))
    }
}

/// A one-shot event (a handler started, a process exited) that a test awaits with a bound.
package final class TestSignal: Sendable {
    private let stream: AsyncStream<Void>
    private let continuation: AsyncStream<Void>.Continuation

    package init() {
        (stream, continuation) = AsyncStream.makeStream(bufferingPolicy: .bufferingNewest(1))
    }

    package func fire() { continuation.yield() }

    /// Returns once the signal fired (also when it fired before the call); throws after `timeout`.
    package func wait(timeout: Duration = .seconds(15), _ what: String = "signal") async throws {
        let stream = self.stream
        let fired = try await withThrowingTaskGroup(of: Bool.self) { group in
            group.addTask {
                var events = stream.makeAsyncIterator()
                return await events.next() != nil
            }
            group.addTask {
                try await Task.sleep(for: timeout)
                return false
            }
            let first = try await group.next() ?? false
            group.cancelAll()
            return first
        }
        guard fired else { throw TestFailure("\(what) not seen within \(timeout)") }
    }
}
