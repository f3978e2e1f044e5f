import Dispatch
import Synchronization

/// Waiters for the end of jobs (the long-poll of `GET /v1/jobs/{id}?wait=N`): each waiter is a suspended
/// continuation keyed by job id, resumed by ``finished(_:)`` when the job's final record is published, or by
/// its own deadline, or when its task is canceled, whichever comes first (exactly once).
final class JobCompletions: Sendable {
    private struct Waiter {
        var continuation: CheckedContinuation<Bool, Never>
    }

    private struct State {
        var waiters: [String: [Int: Waiter]] = [:]
        var next = 0
    }

    private let state = Mutex(State())

    init() {}

    /// Suspends until the job `id` finishes (true) or `timeout` passes (false). `isFinished` is asked
    /// after the waiter is registered, so a finish published before or during the call is never missed.
    func wait(for id: String, timeout: Duration, isFinished: @Sendable () -> Bool) async -> Bool {
        let ticket = state.withLock { s in
            s.next += 1
            return s.next
        }
        return await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Bool, Never>) in
                state.withLock { $0.waiters[id, default: [:]][ticket] = Waiter(continuation: continuation) }
                if isFinished() || Task.isCancelled {
                    resume(id, ticket, finished: isFinished())
                    return
                }
                let (seconds, attoseconds) = timeout.components
                let nanoseconds = max(0, seconds) * 1_000_000_000 + attoseconds / 1_000_000_000
                DispatchQueue.global().asyncAfter(deadline: .now() + .nanoseconds(Int(nanoseconds))) { [self] in
                    resume(id, ticket, finished: false)
                }
            }
        } onCancel: {
            resume(id, ticket, finished: false)
        }
    }

    /// Resumes every waiter of job `id` (called once its final record is visible to readers).
    func finished(_ id: String) {
        let waiters = state.withLock { $0.waiters.removeValue(forKey: id) ?? [:] }
        for waiter in waiters.values { waiter.continuation.resume(returning: true) }
    }

    /// Waiters registered right now.
    var count: Int { state.withLock { $0.waiters.values.reduce(0) { $0 + $1.count } } }

    /// Waiters of job `id` registered right now.
    func waiting(for id: String) -> Int { state.withLock { $0.waiters[id]?.count ?? 0 } }

    private func resume(_ id: String, _ ticket: Int, finished: Bool) {
        let waiter: Waiter? = state.withLock { s in
            guard let waiter = s.waiters[id]?.removeValue(forKey: ticket) else { return nil }
            if s.waiters[id]?.isEmpty == true { s.waiters[id] = nil }
            return waiter
        }
        waiter?.continuation.resume(returning: finished)
    }
}
