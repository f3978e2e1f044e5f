import Dispatch

/// Runs blocking work (shm walks, file reads, engine plans) off the cooperative thread pool, whose few
/// threads every request shares. The one way the service does so.
enum Blocking {
    static func run<T: Sendable, E: Error>(_ body: @escaping @Sendable () throws(E) -> T) async -> Result<T, E> {
        await withCheckedContinuation { continuation in
            DispatchQueue.global().async {
                continuation.resume(returning: Result { () throws(E) -> T in try body() })
            }
        }
    }
}
