import Dispatch
import Foundation
import Glibc
import Synchronization

/// Runs numbered work items on a bounded set of threads. The first failure or a cancellation stops the
/// hand-out of new items; items already running finish.
final class WorkPool: Sendable {
    let items: Int
    private let next = Atomic<Int>(0)
    private let firstError = Mutex<EngineError?>(nil)
    private let stopped = Atomic<Bool>(false)
    let cancellation: CancellationToken

    init(items: Int, cancellation: CancellationToken) {
        self.items = items
        self.cancellation = cancellation
    }

    static func threadCount(_ requested: Int) -> Int {
        if requested > 0 { return requested }
        return max(1, Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))))
    }

    /// True once something failed or the job was cancelled.
    var shouldStop: Bool { stopped.load(ordering: .acquiring) || cancellation.isCancelled }

    func fail(_ error: EngineError) {
        firstError.withLock { if $0 == nil { $0 = error } }
        stopped.store(true, ordering: .releasing)
    }

    /// Each worker thread calls `makeWorker` once, then the returned closure for each item it takes.
    ///
    /// The calling thread is one of the workers; the others are threads of their own, not Dispatch's global queues:
    /// a caller may itself block one of those (the CLI runs jobs through them), and on Linux that pool grows past
    /// the core count only after a blocked thread has waited about a second, so a job would run on one core.
    func run(
        threads: Int,
        makeWorker: @escaping @Sendable () throws(EngineError) -> (Int) throws(EngineError) -> Void
    ) throws(EngineError) {
        let count = min(Self.threadCount(threads), max(items, 1))
        let group = DispatchGroup()
        let worker: @Sendable () -> Void = { [self] in
            do throws(EngineError) {
                let work = try makeWorker()
                while !shouldStop {
                    let item = next.add(1, ordering: .relaxed).oldValue
                    guard item < items else { break }
                    try work(item)
                }
            } catch {
                fail(error)
            }
        }
        for _ in 1..<count {
            group.enter()
            let thread = Thread {
                worker()
                group.leave()
            }
            thread.name = "asmtd-worker"
            thread.start()
        }
        worker()
        group.wait()
        if let error = firstError.withLock({ $0 }) { throw error }
        if cancellation.isCancelled { throw EngineError(.canceled, "the job was cancelled") }
    }
}
