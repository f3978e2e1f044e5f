import Dispatch
import Glibc
import HTTP1

/// One accepted connection: the I/O shell of a ``ConnectionStateMachine``. It reads, writes, runs handlers
/// and a timer as the machine asks, and feeds it what happened; every decision is the machine's.
///
/// `@unchecked Sendable`: every mutable field is confined to `queue`, the serial loop queue the connection
/// shares with others (the poller's, the timer's and the handler's callbacks all hop onto it). Readiness comes
/// from the server's `SocketPoller`, edge-triggered: an event says the socket became readable or writable,
/// and the connection remembers it until a read or write finds the socket drained or full. The fd is closed
/// exactly once, in `close`, right after its registration is removed.
final class Connection: @unchecked Sendable {
    static let readChunk = 16384
    /// Reads in a row before the connection lets the other connections of its loop run.
    static let readBudget = 4

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
    /// The socket may have bytes to read (an event said so and no read found it drained since).
    private var readable = false
    /// The socket may take bytes (no write found it full since the last event).
    private var writable = true
    /// The peer shut its write side: EOF follows the queued bytes but raises no event of its own, so a short
    /// read no longer means drained.
    private var peerShutWrite = false
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
        executor = core.loops[id % core.loops.count]
        queue = executor.queue
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
            let registered = core.poller.watch(UInt64(id), fd: fd) { [self] events in
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
            drive(now: Self.now())
        }
    }

    /// Shutdown: idle connections close now; busy ones close after their current response.
    func beginShutdown() {
        queue.async { [self] in
            guard !closed else { return }
            machine.drain()
            drive(now: Self.now())
        }
    }

    func forceClose() {
        queue.async { [self] in
            guard !closed else { return }
            machine.peerFailed()
            drive(now: Self.now())
        }
    }

    // MARK: Events

    /// One event of the poller.
    private func onEvents(_ events: UInt32) {
        guard !closed else { return }  // taken off the queue before the registration was removed
        if events & SocketPoller.failed != 0 {
            machine.socketFailed()
            // The next read or write reports what happened.
            readable = true
            writable = true
        }
        if events & SocketPoller.readable != 0 { readable = true }
        if events & SocketPoller.peerShutWrite != 0 { peerShutWrite = true }
        if events & SocketPoller.writable != 0 { writable = true }
        drive(now: Self.now())
    }

    private func onTimer() {
        guard !closed else { return }
        timerDeadline = nil
        let now = Self.now()
        machine.timerFired(now: now)
        drive(now: now)
    }

    private func handlerFinished(_ response: HTTPResponse) {
        handlerTask = nil
        guard !closed else { return }
        let now = Self.now()
        machine.handlerFinished(response, now: now)
        drive(now: now)
    }

    // MARK: Actions

    /// Performs the machine's actions, and reads and writes while the machine wants to and the socket can,
    /// until the machine waits for an event or the connection is closed.
    /// After `readBudget` reads in a row the connection yields its loop queue to the others and goes on later.
    private func drive(now: UInt64) {
        var reads = 0
        while !closed {
            run(now: now)
            if closed { return }
            if interest.contains(.read) && readable {
                if reads == Self.readBudget {
                    queue.async { [self] in
                        if !closed { drive(now: Self.now()) }
                    }
                    return
                }
                reads += 1
                read(now: now)
            } else if outputOffset < output.count && writable {
                flush(now: now)
            } else {
                return
            }
        }
    }

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
                // A read that did not fill the buffer drained the socket: bytes arriving later raise an event.
                if count < buffer.count && !peerShutWrite { readable = false }
                machine.received(UnsafeRawBufferPointer(rebasing: buffer[0..<count]), now: now)
            } else if count == 0 {
                machine.peerClosed()
            } else if errno == EAGAIN || errno == EWOULDBLOCK {
                readable = false
            } else {
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
                writable = false  // room freed later raises an event
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
