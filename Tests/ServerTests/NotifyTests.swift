import Foundation
import TestSupport
import Testing

@testable import Server
@testable import ShmEngine

/// A real AF_UNIX datagram socket standing in for systemd's notify socket; collects what arrives.
final class NotifySocket: @unchecked Sendable {
    let name: String
    private let fd: Int32
    private let sink = Sink()
    private let thread: Thread
    /// Signalled by the receiving thread when it ends (within its 100 ms receive timeout of a cancel).
    private let ended = DispatchSemaphore(value: 0)

    private final class Sink: @unchecked Sendable {
        let lock = NSLock()
        var messages: [String] = []
        func add(_ m: String) { lock.withLock { messages.append(m) } }
        var all: [String] { lock.withLock { messages } }
    }

    init(abstract: Bool = true) throws {
        let name =
            abstract
            ? "@asmtd-test-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
            : "/tmp/asmtd-notify-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        let socketFD = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue), 0)
        guard socketFD >= 0, let (target, length) = SDNotify.address(name) else { throw POSIXError(.EIO) }
        var address = target
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(socketFD, $0, length) }
        }
        guard bound == 0 else {
            close(socketFD)
            throw POSIXError(.EADDRINUSE)
        }
        var timeout = timeval(tv_sec: 0, tv_usec: 100_000)
        setsockopt(socketFD, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        let sink = self.sink
        let ended = self.ended
        thread = Thread {
            defer { ended.signal() }
            var buffer = [UInt8](repeating: 0, count: 4096)
            while !Thread.current.isCancelled {
                let n = buffer.withUnsafeMutableBytes { recv(socketFD, $0.baseAddress, $0.count, 0) }
                if n > 0 { sink.add(String(decoding: buffer.prefix(n), as: UTF8.self)) }
            }
        }
        self.name = name
        self.fd = socketFD
        thread.start()
    }

    var messages: [String] { sink.all }

    /// Waits until a message contains the line `text`; returns the messages up to and including it.
    func wait(for text: String, seconds: Double = 60) async -> [String]? {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            let all = messages
            if let index = all.firstIndex(where: { $0.split(separator: "\n").contains(Substring(text)) }) {
                return Array(all[...index])
            }
            try? await Task.sleep(for: .milliseconds(10))
        }
        return nil
    }

    deinit {
        thread.cancel()
        _ = ended.wait(timeout: .now() + 5)
        close(fd)
        if !name.hasPrefix("@") { unlink(name) }
    }
}

struct SDNotifyTests {
    @Test func abstractAndPathAddresses() throws {
        let (abstract, abstractLength) = try #require(SDNotify.address("@name"))
        #expect(abstract.sun_path.0 == 0)
        #expect(Int(abstractLength) == MemoryLayout<sockaddr_un>.offset(of: \sockaddr_un.sun_path)! + 5)
        let (_, pathLength) = try #require(SDNotify.address("/run/x"))
        #expect(Int(pathLength) == MemoryLayout<sockaddr_un>.offset(of: \sockaddr_un.sun_path)! + 7)
        #expect(SDNotify.address(String(repeating: "a", count: 200)) == nil)
        #expect(SDNotify.address("") == nil)
        #expect(!SDNotify(environment: nil).send([("READY", "1")]))
    }

    @Test(arguments: [true, false]) func messagesReachARealDatagramSocket(abstract: Bool) async throws {
        let socket = try NotifySocket(abstract: abstract)
        let notify = SDNotify(environment: socket.name)
        notify.extendTimeout(seconds: 2.5)
        notify.ready(status: "line one\nline two")
        let messages = try #require(await socket.wait(for: "READY=1", seconds: 10))
        #expect(messages == ["EXTEND_TIMEOUT_USEC=2500000", "READY=1\nSTATUS=line one line two"])
    }
}

extension ShmTests {
    /// The automatic mode end to end against a real asmtd: stop-time backup on SIGTERM, READY only after the
    /// start-up restore, EXTEND_TIMEOUT_USEC while it works.
    @Suite(.serialized) struct AutoModeTests {
        @Test func stopBackupThenStartRestoreBeforeReady() async throws {
            let f = try WarmFixture(nsid: 31, name: "auto31")
            try f.createSegments()
            let original = f.live().map { ($0.key, SharedMemoryReader.contents($0)) }
            let auto = """
                    keep: 1
                    auto: {restore-on-start: true, backup-on-stop: true}
                """
            // 1. Segments exist: no restore; READY at once. SIGTERM: STOPPING=1, then the stop-time backup.
            var socket = try NotifySocket()
            try await f.start(extra: auto, environment: ["NOTIFY_SOCKET": socket.name])
            let first = try #require(await socket.wait(for: "READY=1"))
            #expect(first.last?.contains("restore skipped") == true)
            f.process?.signal(SIGTERM)
            #expect(await socket.wait(for: "STOPPING=1") != nil)
            #expect(await f.process?.waitForExit() == 0)
            let log = f.process?.text ?? ""
            #expect(log.contains("stop-time backup finished"), "\(log)")
            let backups = FileSystem.list(f.backupPath)
            #expect(backups.count == 1)
            f.process = nil
            // 2. The segments vanish while asmtd watches (the backup stays fresh); nothing to back up at stop.
            socket = try NotifySocket()
            try await f.start(extra: auto, environment: ["NOTIFY_SOCKET": socket.name])
            #expect(await socket.wait(for: "READY=1") != nil)
            f.removeLive()
            try await Task.sleep(for: .milliseconds(400))
            let status = try await f.request("GET", "/v1/instances/13").json
            let ns = try #require((status["namespaces"] as? [[String: Any]])?.first)
            #expect(ns["freshness"] as? String == "fresh")
            #expect(ns["warm-restart-ready"] as? Bool == true)
            #expect(await f.stop() == 0)
            #expect(FileSystem.list(f.backupPath) == backups)
            // 3. Start: the fresh backup is restored before READY=1, with EXTEND_TIMEOUT_USEC on the way.
            socket = try NotifySocket()
            try await f.start(extra: auto, environment: ["NOTIFY_SOCKET": socket.name])
            let ready = try #require(await socket.wait(for: "READY=1"))
            let restored = f.live()
            #expect(restored.count == original.count)
            #expect(restored.map { ($0.key, SharedMemoryReader.contents($0)) }.elementsEqual(original) { $0 == $1 })
            #expect(ready.dropLast().contains { $0.hasPrefix("EXTEND_TIMEOUT_USEC=") })
            #expect(ready.last?.contains("restored \(backups[0])") == true)
            await f.stop()
        }
    }
}
