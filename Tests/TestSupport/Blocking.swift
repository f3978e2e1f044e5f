import Glibc

/// Runs blocking work (socket reads, waits for a child, filling segments) on a thread of its own, off the
/// cooperative pool that every suite of the test process shares: a blocked pool thread would starve the
/// awaits of the other tests, and a shared Dispatch queue could starve an in-process server's handlers.
package func blocking<T: Sendable, E: Error>(_ work: @escaping @Sendable () throws(E) -> T) async throws(E) -> T {
    let result: Result<T, E> = await withCheckedContinuation { continuation in
        BlockingThread {
            continuation.resume(returning: Result { () throws(E) -> T in try work() })
        }.start()
    }
    return try result.get()
}

/// One detached pthread per call (or the calling thread when none can be created).
private final class BlockingThread: @unchecked Sendable {
    private let work: () -> Void
    init(_ work: @escaping () -> Void) { self.work = work }

    func start() {
        let box = Unmanaged.passRetained(self)
        var thread = pthread_t()
        let created = pthread_create(
            &thread, nil,
            { raw in
                let box = Unmanaged<BlockingThread>.fromOpaque(raw!).takeRetainedValue()
                box.work()
                return nil
            }, box.toOpaque())
        if created == 0 {
            pthread_detach(thread)
        } else {
            box.release()
            work()
        }
    }
}
