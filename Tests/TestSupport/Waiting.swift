import Synchronization

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

/// A one-shot event (a handler started, a process exited) that tests await with a bound: a latch. Once fired it stays
/// fired: every wait, before or after, returns.
package final class Latch: Sendable {
    private struct State {
        var fired = false
        var nextWaiter = 0
        var waiters: [Int: CheckedContinuation<Void, Never>] = [:]
        var cancelled: Set<Int> = []
    }

    private let state = Mutex(State())

    package init() {}

    package func fire() {
        let waiters = state.withLock { state in
            state.fired = true
            let waiting = Array(state.waiters.values)
            state.waiters = [:]
            return waiting
        }
        for waiter in waiters { waiter.resume() }
    }

    package var hasFired: Bool { state.withLock { $0.fired } }

    /// Returns once the signal fired; throws after `timeout`.
    package func wait(timeout: Duration = .seconds(15), _ what: String = "signal") async throws {
        let fired = try await withThrowingTaskGroup(of: Bool.self) { group in
            group.addTask {
                await self.fired()
                return self.hasFired
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

    /// Returns when the signal fires or the task is cancelled.
    private func fired() async {
        let id = state.withLock { state in
            state.nextWaiter += 1
            return state.nextWaiter
        }
        await withTaskCancellationHandler {
            await withCheckedContinuation { continuation in
                let now = state.withLock { state in
                    if state.fired || state.cancelled.contains(id) { return true }
                    state.waiters[id] = continuation
                    return false
                }
                if now { continuation.resume() }
            }
        } onCancel: {
            let waiter = state.withLock { state in
                state.cancelled.insert(id)
                return state.waiters.removeValue(forKey: id)
            }
            waiter?.resume()
        }
    }
}
