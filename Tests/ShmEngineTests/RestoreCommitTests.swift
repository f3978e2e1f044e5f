import Foundation
import Glibc
import ShmSynthetic
import Synchronization
import TestSupport
import Testing

@testable import ShmEngine

/// A child process (python3 with ctypes) that attaches a segment: `hold` keeps it attached until `release()`,
/// `touch` attaches and detaches at once. Another process's shmat, as a starting asd's would be.
final class AttachingChild: @unchecked Sendable {
    private let process = Process()
    private let input = Pipe()
    private let output = Pipe()

    static let script = """
        import ctypes, sys
        libc = ctypes.CDLL(None, use_errno=True)
        libc.shmat.restype = ctypes.c_void_p
        libc.shmat.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_int]
        libc.shmdt.argtypes = [ctypes.c_void_p]
        address = libc.shmat(int(sys.argv[1]), None, 0o10000)
        if address is None or address == ctypes.c_void_p(-1).value:
            sys.exit(2)
        sys.stdout.write("attached\\n")
        sys.stdout.flush()
        if sys.argv[2] == "hold":
            sys.stdin.read()
        libc.shmdt(address)
        """

    init(shmid: Int32, hold: Bool) throws {
        process.executableURL = URL(fileURLWithPath: "/usr/bin/python3")
        process.arguments = ["-c", Self.script, String(shmid), hold ? "hold" : "touch"]
        process.standardInput = input
        process.standardOutput = output
        try process.run()
        // Wait for the child's word that it is attached (a signal, not a sleep).
        let line = output.fileHandleForReading.readData(ofLength: 9)
        guard String(decoding: line, as: UTF8.self) == "attached\n" else {
            process.waitUntilExit()
            throw EngineError(.system, "the attaching child failed (status \(process.terminationStatus))")
        }
        if !hold { process.waitUntilExit() }
    }

    /// Lets a holding child detach and exit; waits for it.
    func release() {
        try? input.fileHandleForWriting.close()
        process.waitUntilExit()
    }
}

/// A backup of `spec` on instance 13 in `temp`; the original segments are removed before `body` runs.
private func withBackup(
    _ spec: SyntheticNamespace, compress: Bool = false, _ body: (String, [SegmentKey: [UInt8]]) throws -> Void
) throws {
    try TemporaryDirectory.with { temp in
        let directory = temp + "/backup"
        let created = try TestSegmentMaker.create(instance: 13, spec)
        let before = Fixture.snapshot(created)
        do {
            let request = BackupRequest(
                instance: 13, namespaces: [spec.name], directory: directory, compress: compress, threads: 2)
            let plan = try Engine.planBackup(request)
            _ = try Engine.backup(plan, request: request, progress: JobProgress(), cancellation: CancellationToken())
        } catch {
            SyntheticSegments.remove(created)
            throw error
        }
        SyntheticSegments.remove(created)
        defer { Fixture.removeRestored(Array(before.keys)) }
        try body(directory, before)
    }
}

private func live(_ nsid: Int) throws -> [LiveSegment] {
    try SharedMemory.segments(instance: 13).filter { $0.key.nsid == nsid }
}

/// Collects what `onCreated` reported.
private final class Collected: @unchecked Sendable {
    let lock = NSLock()
    var created: [CreatedSegment] = []
    var failures: [String] = []

    func note(_ failure: String) {
        lock.withLock { failures.append(failure) }
    }
}

@Suite struct RestoreCommitTests {
    /// Segments exist 0600 with a zero base version word from creation until the commit, the base is the last to
    /// change, and the result is byte-identical with owner and mode as recorded.
    @Test(arguments: [false, true]) func restoreCommitsLast(compress: Bool) throws {
        let nsid = compress ? 23 : 22
        let spec = SyntheticNamespace(
            name: "commit\(nsid)", nsid: nsid, primaryStages: 3, stageSize: 256 << 10, secondaryStages: 1,
            dataStages: 1, uid: 1234, gid: 2345, mode: 0o640, seed: UInt64(nsid))
        try withBackup(spec, compress: compress) { directory, before in
            let collected = Collected()
            var request = RestoreRequest(instance: 13, namespaces: [spec.name], directory: directory, threads: 2)
            request.onCreated = { created throws(EngineError) in
                collected.lock.withLock { collected.created = created }
                // Independent reader: every segment exists, 0600, all zero (no byte written yet).
                for entry in created {
                    guard let info = SharedMemory.stat(shmid: entry.shmid), info.mode & 0o777 == 0o600,
                        let bytes = SharedMemory.readPrefix(shmid: entry.shmid, size: info.size, length: 64),
                        bytes.allSatisfy({ $0 == 0 })
                    else { return collected.note("\(entry.key) not a fresh 0600 segment at onCreated") }
                }
            }
            request.afterFill = {
                // Everything is in place except the base's first 8 bytes; still 0600; listed as uncommitted.
                do {
                    let segments = try live(nsid)
                    for segment in segments {
                        let bytes = Fixture.contents(segment)
                        let expected = before[segment.key] ?? []
                        if segment.mode != 0o600 { collected.note("\(segment.key) mode \(segment.mode) before commit") }
                        if !segment.uncommitted { collected.note("\(segment.key) not marked uncommitted") }
                        if segment.key.kind == .base {
                            if bytes.prefix(8) != [0, 0, 0, 0, 0, 0, 0, 0] { collected.note("base written early") }
                            if bytes.dropFirst(8) != expected.dropFirst(8) { collected.note("base body differs") }
                        } else if bytes != expected {
                            collected.note("\(segment.key) differs before the commit")
                        }
                    }
                    let leftovers = try Engine.leftovers(instance: 13).filter { $0.key.nsid == nsid }
                    if leftovers.count != before.count { collected.note("leftovers \(leftovers.count)") }
                } catch {
                    collected.note("\(error)")
                }
            }
            let plan = try Engine.planRestore(request)
            try Engine.restore(plan, request: request, progress: JobProgress(), cancellation: CancellationToken())
            #expect(collected.failures.isEmpty, "\(collected.failures)")
            let segments = try live(nsid)
            #expect(segments.count == before.count)
            #expect(Set(collected.created.map(\.key)) == Set(before.keys.map(\.hex)))
            #expect(collected.created.first?.key == SegmentKey(kind: .base, instance: 13, nsid: nsid).hex)
            for segment in segments {
                #expect(Fixture.contents(segment) == before[segment.key])
                #expect(segment.uid == 1234 && segment.gid == 2345 && segment.mode == 0o640)
                #expect(!segment.uncommitted)
                #expect(collected.created.contains { $0.shmid == segment.shmid && $0.key == segment.key.hex })
            }
            #expect(try Engine.leftovers(instance: 13).filter { $0.key.nsid == nsid }.isEmpty)
        }
    }

    /// A throwing `onCreated` aborts before any byte: the error comes back, no segment stays.
    @Test func onCreatedThrowAbortsAndRemoves() throws {
        let spec = SyntheticNamespace(name: "abort24", nsid: 24, primaryStages: 2, stageSize: 64 << 10, seed: 24)
        try withBackup(spec) { directory, _ in
            var request = RestoreRequest(instance: 13, namespaces: [spec.name], directory: directory)
            request.onCreated = { _ throws(EngineError) in throw EngineError(.io, "journal full") }
            let plan = try Engine.planRestore(request)
            #expect(throws: EngineError(.io, "journal full")) {
                try Engine.restore(plan, request: request, progress: JobProgress(), cancellation: CancellationToken())
            }
            #expect(try live(24).isEmpty)
        }
    }

    /// Another process attached to a created segment (and still holding it) at the commit: the restore fails with
    /// SERVER_RUNNING and leaves nothing once that process lets go.
    @Test func foreignAttachHeldFailsTheRestore() throws {
        let spec = SyntheticNamespace(name: "held25", nsid: 25, primaryStages: 2, stageSize: 64 << 10, seed: 25)
        try withBackup(spec) { directory, _ in
            let holder = Mutex<AttachingChild?>(nil)
            var request = RestoreRequest(instance: 13, namespaces: [spec.name], directory: directory)
            request.onCreated = { created throws(EngineError) in
                let base = created[0]
                do {
                    let child = try AttachingChild(shmid: base.shmid, hold: true)
                    holder.withLock { $0 = child }
                } catch {
                    throw EngineError(.system, "\(error)")
                }
            }
            let plan = try Engine.planRestore(request)
            do {
                try Engine.restore(plan, request: request, progress: JobProgress(), cancellation: CancellationToken())
                Issue.record("the restore succeeded with a foreign attachment")
            } catch let error as EngineError {
                #expect(error.code == .serverRunning, "\(error)")
            }
            let child = try #require(holder.withLock { $0 })
            child.release()
            #expect(try live(25).isEmpty)
        }
    }

    /// Another process attached and detached again after the segment was filled: caught by the attach check.
    @Test(arguments: [SegmentKind.base, .primaryStage]) func foreignAttachAfterFillFailsTheRestore(
        kind: SegmentKind
    )
        throws
    {
        let nsid = kind == .base ? 26 : 27
        let spec = SyntheticNamespace(name: "touch\(nsid)", nsid: nsid, primaryStages: 2, stageSize: 64 << 10, seed: 26)
        try withBackup(spec) { directory, _ in
            let failures = Mutex<[String]>([])
            var request = RestoreRequest(instance: 13, namespaces: [spec.name], directory: directory)
            request.afterFill = {
                do {
                    let target = try #require(try live(nsid).first { $0.key.kind == kind })
                    _ = try AttachingChild(shmid: target.shmid, hold: false)
                } catch {
                    failures.withLock { $0.append("\(error)") }
                }
            }
            let plan = try Engine.planRestore(request)
            do {
                try Engine.restore(plan, request: request, progress: JobProgress(), cancellation: CancellationToken())
                Issue.record("the restore succeeded after a foreign attach")
            } catch let error as EngineError {
                #expect(error.code == .serverRunning, "\(error)")
            }
            #expect(failures.withLock { $0 }.isEmpty)
            #expect(try live(nsid).isEmpty)
        }
    }

    /// Recovery of a committed restore keeps it (and rolls owner and mode forward); a changed segment is kept too,
    /// never removed.
    @Test func recoveryKeepsACommittedRestore() throws {
        let spec = SyntheticNamespace(
            name: "recover28", nsid: 28, primaryStages: 2, stageSize: 64 << 10, uid: 7, gid: 8, mode: 0o644, seed: 28)
        try withBackup(spec) { directory, before in
            let collected = Collected()
            var request = RestoreRequest(instance: 13, namespaces: [spec.name], directory: directory)
            request.onCreated = { created throws(EngineError) in collected.lock.withLock { collected.created = created }
            }
            let plan = try Engine.planRestore(request)
            try Engine.restore(plan, request: request, progress: JobProgress(), cancellation: CancellationToken())
            let created = collected.created
            let stage = try #require(try live(28).first { $0.key.kind == .primaryStage })
            try SharedMemory.setOwner(shmid: stage.shmid, key: stage.key, uid: 0, gid: 0, mode: 0o600)
            #expect(Engine.recoverRestore(created: created, directory: directory) == .committed)
            let fixed = try #require(try live(28).first { $0.key == stage.key })
            #expect(fixed.uid == 7 && fixed.gid == 8 && fixed.mode == 0o644)
            // Changed after the commit (a server ran on it): kept, not removed.
            let attached = try SharedMemory.attach(
                shmid: stage.shmid, key: stage.key, size: stage.size, readOnly: false)
            attached.address.storeBytes(of: 0xFF, toByteOffset: 100, as: UInt8.self)
            SharedMemory.detach(attached)
            guard case .kept = Engine.recoverRestore(created: created, directory: directory) else {
                Issue.record("a changed committed restore was not kept")
                return
            }
            #expect(try live(28).count == before.count)
        }
    }

    /// Recovery of an uncommitted restore removes exactly the recorded, unattached segments; an attached one is
    /// reported stuck; an entry older than this boot, or with another shmid, matches nothing.
    @Test func recoveryRemovesAnUncommittedRestore() throws {
        let keys = [
            SegmentKey(kind: .base, instance: 13, nsid: 29), SegmentKey(kind: .treex, instance: 13, nsid: 29),
            SegmentKey(kind: .primaryStage, instance: 13, nsid: 29, stage: 0),
        ]
        var created: [CreatedSegment] = []
        defer { for entry in created { SharedMemory.remove(shmid: entry.shmid) } }
        for key in keys {
            let shmid = try SharedMemory.create(key, size: 8192)
            created.append(CreatedSegment(key: key.hex, shmid: shmid, ctime: SharedMemory.stat(shmid: shmid)!.ctime))
        }
        var stale = created
        stale[0].ctime = 0
        stale[1].shmid = stale[2].shmid
        stale.removeLast()
        #expect(Engine.recoverRestore(created: stale, directory: "/nonexistent") == .removed(keys: [], stuck: []))
        #expect(try live(29).count == 3)
        let treex = try SharedMemory.attach(shmid: created[1].shmid, key: keys[1], size: 8192, readOnly: true)
        let outcome = Engine.recoverRestore(created: created, directory: "/nonexistent")
        SharedMemory.detach(treex)
        #expect(outcome == .removed(keys: [keys[0], keys[2]], stuck: [keys[1]]))
        #expect(try live(29).map(\.key) == [keys[1]])
    }
}

@Suite struct ChunkOrderTests {
    @Test func windowBoundsTheFilesInFlight() {
        let order = ChunkOrder.windowed([3, 1, 0, 2, 5], window: 2)
        let expected: [(Int, Int)] = [
            (0, 0), (1, 0), (0, 1), (3, 0), (0, 2), (3, 1), (4, 0), (4, 1), (4, 2), (4, 3), (4, 4),
        ]
        #expect(order.map(\.file) == expected.map(\.0) && order.map(\.chunk) == expected.map(\.1))
        // Every chunk exactly once, in order per file, and at most `window` files started and unfinished at once.
        let counts = (0..<300).map { $0 % 7 }
        let big = ChunkOrder.windowed(counts, window: 4)
        #expect(big.count == counts.reduce(0, +))
        var next = Array(repeating: 0, count: counts.count)
        var open = Set<Int>()
        var widest = 0
        for item in big {
            #expect(item.chunk == next[item.file])
            next[item.file] += 1
            open.insert(item.file)
            widest = max(widest, open.count)
            if next[item.file] == counts[item.file] { open.remove(item.file) }
        }
        #expect(next == counts && widest <= 4)
        #expect(ChunkOrder.windowed([], window: 3).isEmpty)
        #expect(ChunkOrder.windowed([2, 2], window: 0).count == 4)
    }
}
