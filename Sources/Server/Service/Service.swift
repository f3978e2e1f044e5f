import Foundation
import HTTP1
import HTTPCore
import Logging
import ShmEngine

/// The running service: job manager, routes, HTTP server. Built from a loaded config.
final class Service: Sendable {
    let config: Config
    let logger: Logger
    let metrics: Metrics
    let jobs: JobQueue
    let watcher: Watcher
    let notify: SDNotify
    let http: HTTPServer
    /// Set by a second SIGTERM: the stop-time work is abandoned (running jobs are canceled by the caller).
    let stopWorkAbandoned = CancellationToken()

    init(config: Config, logger: Logger) {
        self.config = config
        self.logger = logger
        let metrics = Metrics(version: Engine.version)
        self.metrics = metrics
        let watcher = Watcher(config: config, logger: logger)
        self.watcher = watcher
        let jobs = JobQueue(
            config: config, metrics: metrics, logger: logger,
            warm: WarmJobHooks(watcher: watcher, config: config, logger: logger))
        self.jobs = jobs
        let notify = SDNotify()
        self.notify = notify
        let api = API(config: config, jobs: jobs, metrics: metrics, watcher: watcher)
        let router = api.router()
        var http = HTTPServerConfiguration()
        http.host = config.service.address
        http.port = config.service.port
        http.maxConnections = config.service.maxConnections
        http.maxBodyBytes = config.service.maxBody
        http.headTimeout = .milliseconds(config.service.timeoutMs)
        http.bodyTimeout = .milliseconds(config.service.timeoutMs)
        http.idleTimeout = .milliseconds(config.service.idleTimeoutMs)
        var hooks = HTTPServerHooks()
        hooks.errorResponse = { status, code, message in
            Responses.errorResponse(status: status, code: code, message: message)
        }
        hooks.onResponse = { method, route, status, duration in
            let (whole, attoseconds) = duration.components
            let seconds = Double(whole) + Double(attoseconds) / 1e18
            metrics.request(method: method, route: route, status: status, seconds: seconds)
            // The route pattern, never the raw target: ids and queries stay out of the access log.
            logger.debug(
                "request",
                metadata: [
                    "method": "\(method)", "route": "\(route ?? "-")", "status": .typed(status),
                    "ms": .typed(LogDecimal(seconds * 1000, places: 1)),
                ])
        }
        self.http = HTTPServer(configuration: http, router: router, hooks: hooks)
    }

    /// Creates the directories, takes the state dir's lock, recovers interrupted jobs, then listens.
    func start() throws {
        try FileSystem.createDirectories(config.service.stateDir, mode: 0o700)
        // A second asmtd on the same state dir would take the first one's running jobs for interrupted ones
        // and clean up after them: refuse to start instead.
        try StateLock.acquire(Paths.join(config.service.stateDir, "asmtd.lock"))
        for instance in config.instances {
            try FileSystem.createDirectories(instance.backupPath, mode: 0o700)
        }
        try jobs.recover()
        try watcher.start()
        try http.start()
        logger.info(
            "asmtd listening",
            metadata: [
                "address": "\(config.service.address)", "port": .typed(http.port), "version": "\(Engine.version)",
                "instances": .array(config.instances.map { .typed($0.instance) }),
                "auth": .typed(config.authToken != nil),
            ])
    }

    var port: Int { http.port }

    /// The start-up restores of the automatic mode, then READY=1 (asd, ordered after asmtd, starts only then).
    func becomeReady() async {
        let summary = await startupRestores()
        let status = summary.isEmpty ? "ready" : "ready; " + summary.joined(separator: "; ")
        notify.ready(status: status)
        logger.info("ready", metadata: ["status": "\(status)", "notify": "\(notify.enabled)"])
    }

    /// A second SIGTERM/SIGINT: cancel running jobs now and abandon the remaining stop-time backups.
    func cancelShutdownWork() {
        stopWorkAbandoned.cancel()
        jobs.cancelAll()
    }

    /// Stops taking jobs (503), lets the running ones finish within shutdown-timeout, cancels the rest,
    /// then closes the HTTP server.
    func shutdown() async {
        jobs.stopAccepting()
        let active = jobs.activeCount
        logger.info("shutting down", metadata: ["running-jobs": .typed(active)])
        await jobs.drain(timeout: .milliseconds(config.service.shutdownTimeoutMs))
        await http.shutdown(gracePeriod: .seconds(5))
        if autoBackupNeeded && !stopWorkAbandoned.isCancelled {
            jobs.acceptInternalJobs()
            await stopBackups()
            jobs.stopAccepting()
        }
        watcher.stop()
        logger.info("stopped")
    }
}

/// An flock(2) on `<state-dir>/asmtd.lock`, held for the life of the process (released by the kernel at exit).
enum StateLock {
    struct Held: Error, CustomStringConvertible {
        var path: String
        var description: String { "another asmtd is running on this state dir (\(path) is locked)" }
    }

    static func acquire(_ path: String) throws {
        let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw FileSystemError(operation: "open", path: path, errno: errno) }
        if flock(fd, LOCK_EX | LOCK_NB) != 0 {
            close(fd)
            throw Held(path: path)
        }
        // Deliberately never closed.
    }
}
