import Dispatch
import Glibc

/// One accepted connection: the I/O shell of a ``ConnectionStateMachine``. It reads, writes, runs handlers
/// and a timer as the machine asks, and feeds it what happened; every decision is the machine's.
///
/// `@unchecked Sendable`: every mutable field is confined to `queue` (the poller's, the timer's and the
/// handler's callbacks all hop onto it). Readiness comes from the server's `SocketPoller` (one-shot: each
/// event disarms the registration until `arm` arms it again). The fd is closed exactly once, in `close`,
/// right after its registration is removed.
final class Connection: @unchecked Sendable {
    static let readChunk = 16384

    let id: Int
    let fd: Int32
    let queue: DispatchQueue
    private let executor: QueueExecutor
    private let core: ServerCore

    private var machine: ConnectionStateMachine
    /// Bytes queued for the socket, written from `outputOffset`.
    private var output: [UInt8] = []
    private var outputOffset = 0
    /// What the machine waits for.
    private var interest: ConnectionStateMachine.Interest = .read
    /// The events the registration is armed for; nil once an event disarmed it.
    private var armed: UInt32? = SocketPoller.readable
    private var handlerTask: Task<Void, Never>?
    /// Made once the registration exists (a source that was never resumed must not be released).
    private var timer: (any DispatchSourceTimer)?
    /// When the timer fires; nil: not scheduled.
    private var timerDeadline: UInt64?
    private var closed = false

    init(id: Int, fd: Int32, remoteAddress: String, core: ServerCore) {
        self.id = id
        self.fd = fd
        self.core = core
        queue = DispatchQueue(label: "HTTPServer.connection", target: core.loops[id % core.loops.count])
        executor = QueueExecutor(queue: queue)
        machine = ConnectionStateMachine(
            configuration: core.connectionConfiguration, router: core.router, remoteAddress: remoteAddress,
            errorResponse: core.hooks.errorResponse, now: Self.now())
    }

    /// The clock the machine's times are read on (the one Dispatch timers use).
    @inline(__always)
    private static func now() -> UInt64 {
        DispatchTime.now().uptimeNanoseconds
    }

    func start() {
        queue.async { [self] in
            let registered = core.poller.add(UInt64(id), fd: fd, events: SocketPoller.readable) { [self] events in
                queue.async { [self] in onEvents(events) }
            }
            guard registered else {
                closed = true
                Syscalls.close(fd)
                core.connectionClosed(id: id)
                return
            }
            let timer = DispatchSource.makeTimerSource(queue: queue)
            timer.setEventHandler { [self] in onTimer() }
            timer.resume()
            self.timer = timer
            run(now: Self.now())
        }
    }

    /// Shutdown: idle connections close now; busy ones close after their current response.
    func beginShutdown() {
        queue.async { [self] in
            guard !closed else { return }
            machine.drain()
            run(now: Self.now())
        }
    }

    func forceClose() {
        queue.async { [self] in
            guard !closed else { return }
            machine.peerFailed()
            run(now: Self.now())
        }
    }

    // MARK: Events

    /// One event of the poller: the registration is disarmed now.
    private func onEvents(_ events: UInt32) {
        guard !closed else { return }  // taken off the queue before the registration was removed
        armed = nil
        let now = Self.now()
        let failed = events & SocketPoller.failed != 0
        if failed { machine.socketFailed() }
        if !machine.isClosed && interest.contains(.read) && (events & SocketPoller.readable != 0 || failed) {
            read(now: now)
        }
        if !machine.isClosed && outputOffset < output.count && (events & SocketPoller.writable != 0 || failed) {
            flush(now: now)
        }
        run(now: now)
    }

    private func onTimer() {
        guard !closed else { return }
        timerDeadline = nil
        let now = Self.now()
        machine.timerFired(now: now)
        run(now: now)
    }

    private func handlerFinished(_ response: HTTPResponse) {
        handlerTask = nil
        guard !closed else { return }
        let now = Self.now()
        machine.handlerFinished(response, now: now)
        run(now: now)
    }

    // MARK: Actions

    /// Performs the machine's actions until it waits or closes.
    private func run(now: UInt64) {
        if !machine.isDraining && core.shutdownStarted.load(ordering: .relaxed) {
            machine.drain()
        }
        while true {
            switch machine.nextAction(now: now) {
            case .write(.continueResponse):
                enqueueOutput(ResponseSerializer.continueResponse, now: now)
            case .write(.response(let response, let framing, let exchange)):
                let bytes = ResponseSerializer.serialize(response, date: core.dateCache.current(), framing: framing)
                core.hooks.onResponse(
                    exchange.method, exchange.routePattern, response.status,
                    .nanoseconds(Int64(clamping: now &- exchange.started)))
                enqueueOutput(bytes, now: now)
            case .startHandler(let request, let handler):
                startHandler(request, handler)
            case .halfClose:
                if !Syscalls.shutdownWrite(fd) { machine.peerFailed() }
            case .close(let cancellingHandler):
                close(cancellingHandler: cancellingHandler)
                return
            case .wait(let interest, let deadline):
                self.interest = interest
                arm(interest)
                scheduleTimer(deadline)
                return
            }
        }
    }

    private func enqueueOutput(_ bytes: [UInt8], now: UInt64) {
        if outputOffset == output.count {
            output = bytes
            outputOffset = 0
        } else {
            output.append(contentsOf: bytes)
        }
        flush(now: now)
    }

    /// The handler task prefers this connection's queue as its executor, so its synchronous parts and its
    /// completion run on the queue without an extra hop; if it ends anywhere else, it hops back.
    private func startHandler(_ request: HTTPRequest, _ handler: @escaping HTTPHandler) {
        handlerTask = Task(executorPreference: executor) { [self] in
            let response = await handler(request)
            if DispatchQueue.getSpecific(key: QueueExecutor.key) == ObjectIdentifier(executor) {
                handlerFinished(response)
            } else {
                queue.async { [self] in handlerFinished(response) }
            }
        }
    }

    // MARK: Socket

    private func read(now: UInt64) {
        withUnsafeTemporaryAllocation(byteCount: Self.readChunk, alignment: 16) { buffer in
            let count = Syscalls.receive(fd, into: buffer)
            if count > 0 {
                machine.received(UnsafeRawBufferPointer(rebasing: buffer[0..<count]), now: now)
            } else if count == 0 {
                machine.peerClosed()
            } else if errno != EAGAIN && errno != EWOULDBLOCK {
                machine.peerFailed()
            }
        }
    }

    private func flush(now: UInt64) {
        var progressed = false
        while outputOffset < output.count {
            let written = output.withUnsafeBytes { bytes in
                Syscalls.send(fd, UnsafeRawBufferPointer(rebasing: bytes[outputOffset...]))
            }
            if written > 0 {
                outputOffset += written
                progressed = true
            } else if written < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) {
                break
            } else {
                machine.peerFailed()
                return
            }
        }
        let finished = outputOffset == output.count
        if finished {
            output.removeAll(keepingCapacity: output.capacity <= 1 << 16)
            outputOffset = 0
        }
        if progressed || finished {
            machine.wrote(now: now, finished: finished)
        }
    }

    /// Arms the registration for `interest`. Waiting for nothing but a reset happens while a handler runs:
    /// that arming waits until the handler's first step has run, so a handler that answers at once (it runs
    /// first on this serial queue) arms for the next read instead, one `epoll_ctl` instead of two.
    private func arm(_ interest: ConnectionStateMachine.Interest) {
        let wanted =
            (interest.contains(.read) ? SocketPoller.readable : 0)
            | (interest.contains(.write) ? SocketPoller.writable : 0)
        guard wanted != armed else { return }
        if wanted == 0 && armed == nil {
            queue.async { [self] in
                guard !closed, armed == nil, self.interest.isEmpty else { return }
                armed = 0
                if !core.poller.arm(UInt64(id), fd: fd, events: 0) { fail() }
            }
            return
        }
        armed = wanted
        if !core.poller.arm(UInt64(id), fd: fd, events: wanted) { fail() }
    }

    /// The registration could not be armed: nothing would wake the connection again.
    private func fail() {
        machine.peerFailed()
        run(now: Self.now())
    }

    /// Keeps an earlier timer: when it fires, the machine finds nothing due and names the next deadline.
    private func scheduleTimer(_ deadline: UInt64?) {
        guard let deadline else { return }
        if let current = timerDeadline, current <= deadline { return }
        timerDeadline = deadline
        timer?.schedule(deadline: DispatchTime(uptimeNanoseconds: deadline), leeway: .milliseconds(10))
    }

    /// Removes the registration, then closes the fd: nothing watches it any more, so the number may be reused.
    private func close(cancellingHandler: Bool) {
        guard !closed else { return }
        closed = true
        if cancellingHandler { handlerTask?.cancel() }
        handlerTask = nil
        timer?.cancel()
        timer = nil
        core.poller.remove(UInt64(id), fd: fd)
        Syscalls.close(fd)
        core.connectionClosed(id: id)
    }
}

/// A task executor that runs jobs on a serial Dispatch queue, and marks the queue (with its identity,
/// not a reference, to avoid a cycle) so code can tell whether it runs there.
final class QueueExecutor: TaskExecutor {
    static let key = DispatchSpecificKey<ObjectIdentifier>()

    let queue: DispatchQueue

    init(queue: DispatchQueue) {
        self.queue = queue
        queue.setSpecific(key: Self.key, value: ObjectIdentifier(self))
    }

    func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        queue.async { [self] in
            job.runSynchronously(on: asUnownedTaskExecutor())
        }
    }
}
