import Glibc
import Synchronization
import TestSupport
import Testing

@testable import HTTPCore

/// The poller on a socket pair: one event per arming, events by registration number, nothing after removal.
struct SocketPollerTests {
    /// Events seen by a handler, in order; `next` waits for the next one (bounded).
    final class Events: Sendable {
        private let seen = Mutex<[UInt32]>([])

        var handler: SocketPoller.Handler { { events in self.seen.withLock { $0.append(events) } } }
        var count: Int { seen.withLock { $0.count } }

        func waitForCount(_ count: Int, timeout: Duration = .seconds(5)) async throws -> [UInt32] {
            try await waitUntil(timeout: timeout) { self.count >= count }
            return seen.withLock { $0 }
        }
    }

    static func socketPair() throws -> (Int32, Int32) {
        var fds: [Int32] = [0, 0]
        guard socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0, &fds) == 0 else {
            throw TestFailure("socketpair failed")
        }
        return (fds[0], fds[1])
    }

    /// A started poller and a socket pair, all stopped and closed after `body`.
    static func withPollerAndPair(
        _ body: (SocketPoller, _ watched: Int32, _ peer: Int32) async throws -> Void
    )
        async throws
    {
        let poller = try SocketPoller()
        try poller.start()
        defer { poller.stop() }
        let (watched, peer) = try socketPair()
        defer {
            Glibc.close(watched)
            Glibc.close(peer)
        }
        try await body(poller, watched, peer)
    }

    @Test func oneEventPerArmingUntilArmedAgain() async throws {
        try await Self.withPollerAndPair { poller, watched, peer in
            let events = Events()
            #expect(poller.add(7, fd: watched, events: SocketPoller.readable, handler: events.handler))
            var byte: UInt8 = 1
            #expect(write(peer, &byte, 1) == 1)
            let first = try await events.waitForCount(1)
            #expect(first[0] & SocketPoller.readable != 0)
            // Still readable (nothing was read), but the one-shot registration stays quiet until armed again.
            #expect(write(peer, &byte, 1) == 1)
            try await Task.sleep(for: .milliseconds(100))
            #expect(events.count == 1)
            #expect(poller.arm(7, fd: watched, events: SocketPoller.readable))
            _ = try await events.waitForCount(2)
            // Armed for writing: a socket with room in its buffer is writable at once.
            #expect(poller.arm(7, fd: watched, events: SocketPoller.writable))
            let third = try await events.waitForCount(3)
            #expect(third[2] & SocketPoller.writable != 0)
        }
    }

    @Test func armedForNothingStillReportsTheHangUp() async throws {
        let poller = try SocketPoller()
        try poller.start()
        defer { poller.stop() }
        let (watched, peer) = try Self.socketPair()
        defer { Glibc.close(watched) }
        let events = Events()
        #expect(poller.add(1, fd: watched, events: 0, handler: events.handler))
        Glibc.close(peer)
        let seen = try await events.waitForCount(1)
        #expect(seen[0] & SocketPoller.failed != 0)
    }

    @Test func removedRegistrationGetsNoEventAndItsNumberIsFree() async throws {
        let poller = try SocketPoller()
        try poller.start()
        defer { poller.stop() }
        let (watched, peer) = try Self.socketPair()
        defer { Glibc.close(peer) }
        let removed = Events()
        #expect(poller.add(3, fd: watched, events: 0, handler: removed.handler))
        poller.remove(3, fd: watched)
        Glibc.close(watched)
        // A new socket, likely on the same fd number, under another registration.
        let (again, againPeer) = try Self.socketPair()
        defer {
            Glibc.close(again)
            Glibc.close(againPeer)
        }
        let current = Events()
        #expect(poller.add(4, fd: again, events: SocketPoller.readable, handler: current.handler))
        var byte: UInt8 = 1
        #expect(write(againPeer, &byte, 1) == 1)
        _ = try await current.waitForCount(1)
        #expect(removed.count == 0)
    }

    @Test func watchedRegistrationReportsEachArrivalWithoutArming() async throws {
        try await Self.withPollerAndPair { poller, watched, peer in
            let events = Events()
            #expect(poller.watch(9, fd: watched, handler: events.handler))
            // A fresh socket has room: the first event says writable.
            let first = try await events.waitForCount(1)
            #expect(first[0] & SocketPoller.writable != 0)
            var byte: UInt8 = 1
            for round in 2...3 {
                // Nothing is read, yet each new arrival is reported: no arming in between.
                #expect(write(peer, &byte, 1) == 1)
                let seen = try await events.waitForCount(round)
                #expect(seen[round - 1] & SocketPoller.readable != 0)
            }
            shutdown(peer, Int32(SHUT_WR))
            let last = try await events.waitForCount(4)
            #expect(last[3] & SocketPoller.peerShutWrite != 0)
        }
    }
}
