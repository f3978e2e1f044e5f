/// Shutdown: stop taking jobs, let the running ones finish within a timeout, cancel the rest and wait for
/// their clean-up.
extension JobQueue {
    func stopAccepting() { registry.stopAccepting() }

    /// At stop, once the HTTP server is closed: the stop-time backups of the automatic mode go through the queue.
    func acceptInternalJobs() { registry.resumeAccepting() }

    /// Cancels every queued or running job (their clean-up still runs).
    func cancelAll() { registry.cancelAll() }

    var isAccepting: Bool { registry.isAccepting }

    var activeCount: Int { registry.activeCount }

    /// Lets running jobs finish within `timeout`, then cancels them and waits for their clean-up.
    func drain(timeout: Duration) async {
        let deadline = ContinuousClock.now + timeout
        while activeCount > 0 && ContinuousClock.now < deadline {
            try? await Task.sleep(for: .milliseconds(50))
        }
        if activeCount > 0 {
            let ids = registry.cancelAll()
            logger.warning("shutdown timeout reached; canceling running jobs", metadata: ["jobs": "\(ids)"])
        }
        var waited = 0
        while activeCount > 0 {
            try? await Task.sleep(for: .milliseconds(50))
            waited += 1
            if waited % 100 == 0 { logger.warning("still waiting for canceled jobs to clean up") }
        }
    }
}
