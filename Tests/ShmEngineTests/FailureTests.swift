import Foundation
import Glibc
import ShmSynthetic
import TestSupport
import Testing

@testable import ShmEngine

/// Makes a compressed (or plain) backup of `spec` in `directory`, then removes the original segments.
private func backupAndDrop(
    instance: Int, spec: SyntheticNamespace, directory: String, compress: Bool = true
) throws
    -> [SegmentKey]
{
    let created = try TestSegmentMaker.create(instance: instance, spec)
    defer { SyntheticSegments.remove(created) }
    let request = BackupRequest(instance: instance, namespaces: [spec.name], directory: directory, compress: compress)
    _ = try Engine.backup(
        try Engine.planBackup(request), request: request, progress: JobProgress(), cancellation: CancellationToken())
    return created.map(\.key)
}

/// Restore must fail with one of `codes` and leave no segment of the namespace behind.
private func expectRestoreFails(
    instance: Int, spec: SyntheticNamespace, directory: String, keys: [SegmentKey], codes: Set<EngineError.Code>,
    sourceLocation: SourceLocation = #_sourceLocation
) throws {
    defer { Fixture.removeRestored(keys) }
    let request = RestoreRequest(instance: instance, namespaces: [spec.name], directory: directory)
    do throws(EngineError) {
        let plan = try Engine.planRestore(request)
        try Engine.restore(plan, request: request, progress: JobProgress(), cancellation: CancellationToken())
        Issue.record("restore succeeded", sourceLocation: sourceLocation)
    } catch {
        #expect(codes.contains(error.code), "\(error)", sourceLocation: sourceLocation)
    }
    let left = try Fixture.live(instance: instance, nsid: spec.nsid, name: spec.name)
    #expect(left.isEmpty, "segments left behind: \(left.map(\.key))", sourceLocation: sourceLocation)
}

private func stagePath(_ directory: String, _ instance: Int, _ nsid: Int, stage: Int = 0, gz: Bool = true) -> String {
    directory + "/"
        + SegmentKey(kind: .primaryStage, instance: instance, nsid: nsid, stage: stage).fileName(
            compressed: gz)
}

private func small(_ name: String, _ nsid: Int, stageSize: Int = 3 << 20) -> SyntheticNamespace {
    SyntheticNamespace(
        name: name, nsid: nsid, primaryStages: 2, stageSize: stageSize, secondaryStages: 1, dataStages: 1, uid: 1234,
        gid: 2345, mode: 0o640, seed: UInt64(nsid))
}

@Suite struct DamagedBackupTests {
    @Test func corruptedCompressedFileFailsAndLeavesNothing() throws {
        let spec = small("bad-byte", 17)
        try TemporaryDirectory.with { directory in
            let keys = try backupAndDrop(instance: 14, spec: spec, directory: directory)
            let path = stagePath(directory, 14, 17, stage: 1)
            var bytes = Fixture.fileBytes(path)
            bytes[bytes.count / 2] ^= 0x5A
            Fixture.writeFile(path, bytes)
            try expectRestoreFails(
                instance: 14, spec: spec, directory: directory, keys: keys, codes: [.invalidBackup, .verifyFailed])
        }
    }

    @Test func truncatedCompressedFileFailsWithAndWithoutManifest() throws {
        let spec = small("cut-gz", 18)
        try TemporaryDirectory.with { directory in
            let keys = try backupAndDrop(instance: 14, spec: spec, directory: directory)
            let path = stagePath(directory, 14, 18, stage: 1)
            let bytes = Fixture.fileBytes(path)
            Fixture.writeFile(path, Array(bytes.prefix(bytes.count - 1000)))
            try expectRestoreFails(instance: 14, spec: spec, directory: directory, keys: keys, codes: [.invalidBackup])
            unlink(directory + "/" + BackupManifest.fileName)
            try expectRestoreFails(instance: 14, spec: spec, directory: directory, keys: keys, codes: [.invalidBackup])
            // Only the trailer missing, or cut in the middle of the trailer.
            for cut in [8, 3] {
                Fixture.writeFile(path, Array(bytes.prefix(bytes.count - cut)))
                try expectRestoreFails(
                    instance: 14, spec: spec, directory: directory, keys: keys, codes: [.invalidBackup])
            }
        }
    }

    @Test func trailingBytesAfterTheMemberFail() throws {
        let spec = small("tail-gz", 19)
        try TemporaryDirectory.with { directory in
            let keys = try backupAndDrop(instance: 14, spec: spec, directory: directory)
            unlink(directory + "/" + BackupManifest.fileName)
            let path = stagePath(directory, 14, 19)
            Fixture.writeFile(path, Fixture.fileBytes(path) + [1, 2, 3])
            try expectRestoreFails(instance: 14, spec: spec, directory: directory, keys: keys, codes: [.invalidBackup])
        }
    }

    @Test func headerSizeLargerOrSmallerThanTheDataFails() throws {
        let spec = small("size-gz", 20)
        try TemporaryDirectory.with { directory in
            let keys = try backupAndDrop(instance: 14, spec: spec, directory: directory)
            unlink(directory + "/" + BackupManifest.fileName)
            let path = stagePath(directory, 14, 20)
            let original = Fixture.fileBytes(path)
            let size = Fixture.le64(original, 8)
            for wrong in [size + 4096, size - 4096, size - 1, 1] {
                var bytes = original
                for index in 0..<8 { bytes[8 + index] = UInt8(truncatingIfNeeded: wrong >> (8 * UInt64(index))) }
                Fixture.writeFile(path, bytes)
                try expectRestoreFails(
                    instance: 14, spec: spec, directory: directory, keys: keys, codes: [.invalidBackup, .verifyFailed])
            }
            var badMagic = original
            badMagic[0] = 0x42
            Fixture.writeFile(path, badMagic)
            try expectRestoreFails(instance: 14, spec: spec, directory: directory, keys: keys, codes: [.invalidBackup])
        }
    }

    @Test func truncatedPlainFileIsCaughtByTheManifest() throws {
        let spec = small("cut-plain", 22)
        try TemporaryDirectory.with { directory in
            let keys = try backupAndDrop(instance: 14, spec: spec, directory: directory, compress: false)
            let path = stagePath(directory, 14, 22, gz: false)
            #expect(truncate(path, off_t(spec.stageSize - 10)) == 0)
            try expectRestoreFails(instance: 14, spec: spec, directory: directory, keys: keys, codes: [.invalidBackup])
        }
    }

    @Test func changedPlainFileFailsVerification() throws {
        let spec = small("flip-plain", 23)
        try TemporaryDirectory.with { directory in
            let keys = try backupAndDrop(instance: 14, spec: spec, directory: directory, compress: false)
            let path = stagePath(directory, 14, 23, stage: 1, gz: false)
            var bytes = Fixture.fileBytes(path)
            bytes[12345] ^= 1
            Fixture.writeFile(path, bytes)
            #expect(chown(path, 1234, 2345) == 0)
            try expectRestoreFails(instance: 14, spec: spec, directory: directory, keys: keys, codes: [.verifyFailed])
        }
    }
}

/// The manifest's chunk index is checked against the file, and a wrong one fails the restore cleanly.
@Suite struct ChunkIndexTests {
    /// Rewrites the manifest of `directory` with `change` applied to the chunk index of primary stage 0.
    private func tamper(_ directory: String, _ change: (inout DeflateChunks) -> Void) throws {
        var manifest = try #require(try BackupManifest.load(directory: directory))
        let index = try #require(manifest.segments.firstIndex { $0.kind == .primaryStage && $0.chunks != nil })
        change(&manifest.segments[index].chunks!)
        let path = directory + "/" + BackupManifest.fileName
        unlink(path)
        Fixture.writeFile(path, manifest.encoded())
    }

    @Test func anIndexThatDoesNotFitTheFileIsRefusedAtPlanning() throws {
        let spec = small("chunk-plan", 20, stageSize: (20 << 20) + 5)
        try TemporaryDirectory.with { directory in
            let keys = try backupAndDrop(instance: 13, spec: spec, directory: directory)
            defer { Fixture.removeRestored(keys) }
            try tamper(directory) { $0.lengths[0] += 1 }
            let request = RestoreRequest(instance: 13, namespaces: [spec.name], directory: directory)
            Fixture.expectCode(.invalidBackup) { _ = try Engine.planRestore(request) }
            try tamper(directory) { chunks in
                chunks.lengths[0] -= 1
                chunks.size = 1 << 30
            }
            Fixture.expectCode(.invalidBackup) { _ = try Engine.planRestore(request) }
            #expect(try Fixture.live(instance: 13, nsid: 20, name: spec.name).isEmpty)
        }
    }

    @Test func movedChunksOrAWrongChunkCRCFailTheRestoreAndLeaveNothing() throws {
        let spec = small("chunk-swap", 21, stageSize: (20 << 20) + 5)
        try TemporaryDirectory.with { directory in
            let keys = try backupAndDrop(instance: 13, spec: spec, directory: directory)
            defer { Fixture.removeRestored(keys) }
            // Same total length, so planning accepts it; the chunks no longer inflate where the index says.
            try tamper(directory) { chunks in
                chunks.lengths[0] += 7
                chunks.lengths[1] -= 7
            }
            try expectRestoreFails(
                instance: 13, spec: spec, directory: directory, keys: keys, codes: [.invalidBackup, .verifyFailed])
            try tamper(directory) { chunks in
                chunks.lengths[0] -= 7
                chunks.lengths[1] += 7
                chunks.crc32[1] ^= 1
            }
            try expectRestoreFails(instance: 13, spec: spec, directory: directory, keys: keys, codes: [.verifyFailed])
            // Put right, the same directory restores.
            try tamper(directory) { chunks in chunks.crc32[1] ^= 1 }
            let request = RestoreRequest(instance: 13, namespaces: [spec.name], directory: directory)
            try Engine.restore(
                try Engine.planRestore(request), request: request, progress: JobProgress(),
                cancellation: CancellationToken())
            #expect(try Fixture.live(instance: 13, nsid: 21, name: spec.name).count == keys.count)
        }
    }
}

@Suite struct LiveSanityTests {
    @Test func attachedBaseIsServerRunning() throws {
        let spec = small("running", 6, stageSize: 64 << 10)
        try Fixture.withSegments(instance: 13, spec) { created in
            try TemporaryDirectory.with { temp in
                let base = try #require(created.first { $0.key.kind == .base })
                let attachment = try SharedMemory.attach(
                    shmid: base.shmid, key: base.key, size: base.size, readOnly: true)
                defer { SharedMemory.detach(attachment) }
                let request = BackupRequest(instance: 13, namespaces: ["running"], directory: temp + "/b")
                Fixture.expectCode(.serverRunning) { _ = try Engine.planBackup(request) }
                #expect(!FileManager.default.fileExists(atPath: temp + "/b"))
            }
        }
    }

    /// A segment listing attaches base and data segments for a moment to read their names; a listing running at
    /// the same time as planning (another request, another asmtd) must not read as a running server, nor a listing
    /// of this process during the run.
    @Test func briefAttachmentsAreNotARunningServer() throws {
        let spec = small("flicker", 28, stageSize: 64 << 10)
        try Fixture.withSegments(instance: 13, spec) { created in
            try TemporaryDirectory.with { temp in
                let flickering = created.filter { $0.key.kind == .base || $0.key.kind == .dataStage }
                let stop = CancellationToken()
                let exited = DispatchSemaphore(value: 0)
                let flicker = Thread {
                    defer { exited.signal() }
                    while !stop.isCancelled {
                        for segment in flickering {
                            guard
                                let attachment = try? SharedMemory.attach(
                                    shmid: segment.shmid, key: segment.key, size: segment.size, readOnly: true)
                            else { continue }
                            usleep(200)
                            SharedMemory.detach(attachment)
                        }
                        usleep(2000)
                    }
                }
                flicker.start()
                defer { stop.cancel() }
                let request = BackupRequest(instance: 13, namespaces: ["flicker"], directory: temp + "/b")
                for _ in 0..<5 { _ = try Engine.planBackup(request) }
                stop.cancel()
                exited.wait()
                // During the run, this process's own listings (the service's GET /v1/segments) read the prefixes the
                // backup cached instead of attaching: the end-of-backup attach check does not take them for a server.
                let listingsDone = CancellationToken()
                let listings = Thread {
                    while !listingsDone.isCancelled { _ = try? SharedMemory.segments(instance: 13) }
                }
                listings.start()
                defer { listingsDone.cancel() }
                let manifest = try Engine.backup(
                    try Engine.planBackup(request), request: request, progress: JobProgress(),
                    cancellation: CancellationToken())
                #expect(manifest.segments.count == created.count)
            }
        }
    }

    @Test func uncleanShutdownIsRefused() throws {
        var spec = small("unclean", 7, stageSize: 64 << 10)
        spec.shutdownStatus = 0
        try Fixture.withSegments(instance: 13, spec) { _ in
            try TemporaryDirectory.with { temp in
                let request = BackupRequest(instance: 13, namespaces: ["unclean"], directory: temp + "/b")
                Fixture.expectCode(.uncleanShutdown) { _ = try Engine.planBackup(request) }
            }
        }
    }

    @Test func existingFilesAndSegmentsAreRefused() throws {
        let spec = small("exists", 8, stageSize: 64 << 10)
        try Fixture.withSegments(instance: 13, spec) { _ in
            try TemporaryDirectory.with { directory in
                Fixture.writeFile(directory + "/ad008177.dat.gz", [1])  // another instance: ignored
                Fixture.writeFile(directory + "/ad" + "d08" + "0ff.dat", [1])  // instance 13 nsid 8
                let request = BackupRequest(instance: 13, namespaces: ["exists"], directory: directory)
                Fixture.expectCode(.filesExist) { _ = try Engine.planBackup(request) }
                unlink(directory + "/add080ff.dat")
                _ = try Engine.backup(
                    try Engine.planBackup(request), request: request, progress: JobProgress(),
                    cancellation: CancellationToken())
                Fixture.expectCode(.filesExist) { _ = try Engine.planBackup(request) }
                let restore = RestoreRequest(instance: 13, namespaces: ["exists"], directory: directory)
                Fixture.expectCode(.segmentsExist) { _ = try Engine.planRestore(restore) }
            }
        }
    }

    @Test func backupDirectoryMustBeUsable() throws {
        let spec = small("nodir", 9, stageSize: 64 << 10)
        try Fixture.withSegments(instance: 13, spec) { _ in
            try TemporaryDirectory.with { temp in
                let deep = BackupRequest(instance: 13, namespaces: ["nodir"], directory: temp + "/a/b")
                Fixture.expectCode(.io) { _ = try Engine.planBackup(deep) }
                Fixture.writeFile(temp + "/file", [1])
                let file = BackupRequest(instance: 13, namespaces: ["nodir"], directory: temp + "/file")
                Fixture.expectCode(.io) { _ = try Engine.planBackup(file) }
                let restore = RestoreRequest(instance: 13, namespaces: ["nodir"], directory: temp + "/none")
                Fixture.expectCode(.invalidBackup) { _ = try Engine.planRestore(restore) }
            }
        }
    }

    @Test func segmentsChangedSincePlanning() throws {
        let spec = small("replan", 10, stageSize: 64 << 10)
        try Fixture.withSegments(instance: 13, spec) { created in
            try TemporaryDirectory.with { temp in
                let request = BackupRequest(instance: 13, namespaces: ["replan"], directory: temp + "/b")
                var plan = try Engine.planBackup(request)
                plan.segments.removeLast()
                Fixture.expectCode(.invalidSegments) {
                    _ = try Engine.backup(
                        plan, request: request, progress: JobProgress(), cancellation: CancellationToken())
                }
                #expect(!FileManager.default.fileExists(atPath: temp + "/b"))
                let live = try Fixture.live(instance: 13, nsid: 10, name: "replan")
                #expect(created.count == live.count)
            }
        }
    }
}

@Suite struct CancellationTests {
    @Test func cancelledBackupLeavesNoFile() throws {
        let spec = SyntheticNamespace(
            name: "cancel-b", nsid: 24, primaryStages: 4, stageSize: 24 << 20, secondaryStages: 0, dataStages: 1,
            seed: 24)
        try Fixture.withSegments(instance: 14, spec) { _ in
            try TemporaryDirectory.with { temp in
                let directory = temp + "/b"
                let request = BackupRequest(
                    instance: 14, namespaces: ["cancel-b"], directory: directory, compress: true, threads: 1)
                let plan = try Engine.planBackup(request)
                let progress = JobProgress()
                let token = Fixture.cancelOnceStarted(progress)
                Fixture.expectCode(.canceled) {
                    _ = try Engine.backup(plan, request: request, progress: progress, cancellation: token)
                }
                #expect(progress.snapshot().bytesDone < plan.totalBytes)
                #expect(!FileManager.default.fileExists(atPath: directory))
                // A pre-cancelled job into an existing directory leaves it empty.
                #expect(mkdir(directory, 0o700) == 0)
                let cancelled = CancellationToken()
                cancelled.cancel()
                Fixture.expectCode(.canceled) {
                    _ = try Engine.backup(plan, request: request, progress: JobProgress(), cancellation: cancelled)
                }
                #expect(try FileManager.default.contentsOfDirectory(atPath: directory).isEmpty)
            }
        }
    }

    @Test func cancelledRestoreLeavesNoSegment() throws {
        let spec = SyntheticNamespace(
            name: "cancel-r", nsid: 25, primaryStages: 4, stageSize: 24 << 20, secondaryStages: 0, dataStages: 1,
            seed: 25)
        try TemporaryDirectory.with { directory in
            let keys = try backupAndDrop(instance: 14, spec: spec, directory: directory)
            defer { Fixture.removeRestored(keys) }
            let request = RestoreRequest(instance: 14, namespaces: ["cancel-r"], directory: directory, threads: 1)
            let plan = try Engine.planRestore(request)
            let progress = JobProgress()
            let token = Fixture.cancelOnceStarted(progress)
            Fixture.expectCode(.canceled) {
                try Engine.restore(plan, request: request, progress: progress, cancellation: token)
            }
            #expect(progress.snapshot().bytesDone < plan.totalBytes)
            #expect(try Fixture.live(instance: 14, nsid: 25, name: "cancel-r").isEmpty)
        }
    }
}
