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
        if await !registry.idle(within: timeout) {
            let ids = registry.cancelAll()
            logger.warning("shutdown timeout reached; canceling running jobs", metadata: ["jobs": "\(ids)"])
            while await !registry.idle(within: .seconds(5)) {
                if Task.isCancelled { return }
                logger.warning("still waiting for canceled jobs to clean up")
            }
        }
        if !runner.saveUnsaved() {
            logger.error(
                "final job records could not be written; at the next start recovery decides on the evidence",
                metadata: ["jobs": "\(unsavedJobs)"])
        }
    }
}
