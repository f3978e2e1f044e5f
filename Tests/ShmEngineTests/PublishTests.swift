import Foundation
import Glibc
import ShmSynthetic
import Synchronization
import TestSupport
import Testing

@testable import ShmEngine

/// Pure: what a cleanup does with the leftovers of an interrupted backup.
@Suite struct StagingDecisionTests {
    private func entry(_ kind: SegmentKind, stage: Int = 0) -> ManifestSegment {
        let key = SegmentKey(kind: kind, instance: 3, nsid: 4, stage: stage)
        return ManifestSegment(
            key: key, kind: kind, namespace: "n", file: key.fileName(compressed: false), size: 1, compressed: false,
            fileSize: 1, crc32: 0, uid: 0, gid: 0, mode: 0o600, started: "", finished: "")
    }

    private func manifest(_ segments: [ManifestSegment]) -> BackupManifest {
        BackupManifest(
            formatVersion: 1, toolVersion: "t", host: "h", instance: 3, created: "", namespaces: [], segments: segments)
    }

    @Test func onlyStagingFilesWithoutAPendingManifest() {
        let names = ["ae304000.dat.partial", "ae304100.dat.gz.partial", "ae304001.dat", "notes.txt", "x.partialy"]
        let decision = BackupStaging.decide(names: names, pending: nil)
        #expect(
            decision == .init(completeManifest: false, remove: ["ae304000.dat.partial", "ae304100.dat.gz.partial"]))
    }

    @Test func anInterruptedPublicationIsRemovedBaseFirst() {
        let segments = [entry(.treex), entry(.primaryStage), entry(.base)]
        let pending = manifest(segments)
        // The treex and the stage were renamed, the base not yet; one more listed name was never created.
        let names = ["ae304001.dat", "ae304100.dat", "ae304000.dat.partial", BackupStaging.pendingManifest, "keep.dat"]
        let decision = BackupStaging.decide(names: names, pending: pending)
        #expect(!decision.completeManifest)
        #expect(
            decision.remove == ["ae304001.dat", "ae304100.dat", "ae304000.dat.partial", BackupStaging.pendingManifest])
        // Killed after the base's rename too, but with one other file missing: the base goes first.
        let broken = ["ae304000.dat", "ae304001.dat", BackupStaging.pendingManifest]
        #expect(
            BackupStaging.decide(names: broken, pending: pending).remove == [
                "ae304000.dat", "ae304001.dat", BackupStaging.pendingManifest,
            ])
    }

    @Test func aPublicationLackingOnlyTheManifestIsCompleted() {
        let pending = manifest([entry(.treex), entry(.base)])
        let names = ["ae304000.dat", "ae304001.dat", BackupStaging.pendingManifest]
        #expect(BackupStaging.decide(names: names, pending: pending) == .init(completeManifest: true, remove: []))
    }

    @Test func anUnreadablePendingManifestOrOneNamingOtherPathsRemovesOnlyItself() {
        let names = ["ae304000.dat", BackupStaging.pendingManifest, "a.dat.partial"]
        #expect(
            BackupStaging.decide(names: names, pending: nil).remove == ["a.dat.partial", BackupStaging.pendingManifest])
        var hostile = entry(.base)
        hostile.file = "../ae304000.dat"
        #expect(
            BackupStaging.decide(names: names, pending: manifest([hostile])).remove == [
                "a.dat.partial", BackupStaging.pendingManifest,
            ])
    }

    @Test func aPublishedBackupKeepsItsFiles() {
        let pending = manifest([entry(.base)])
        let names = ["ae304000.dat", BackupManifest.fileName, BackupStaging.pendingManifest]
        #expect(BackupStaging.decide(names: names, pending: pending).remove == [BackupStaging.pendingManifest])
    }
}

/// Real segments (instance 14, nsids 21 and 26..31).
@Suite struct PublishTests {
    private func small(_ name: String, _ nsid: Int, stages: Int = 2, stageSize: Int = 1 << 20) -> SyntheticNamespace {
        SyntheticNamespace(
            name: name, nsid: nsid, primaryStages: stages, stageSize: stageSize, secondaryStages: 1, dataStages: 1,
            seed: UInt64(nsid))
    }

    private func run(
        _ request: BackupRequest, cancellation: CancellationToken = CancellationToken()
    ) throws(EngineError)
        -> BackupManifest
    {
        try Engine.backup(
            try Engine.planBackup(request), request: request, progress: JobProgress(), cancellation: cancellation)
    }

    private func names(_ directory: String) -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []).sorted()
    }

    @Test func filesCarryStagingNamesUntilTheBackupIsPublished() throws {
        let spec = small("publish", 21, stages: 4, stageSize: 8 << 20)
        try Fixture.withSegments(instance: 14, spec) { created in
            try TemporaryDirectory.with { temp in
                let directory = temp + "/b"
                let request = BackupRequest(
                    instance: 14, namespaces: ["publish"], directory: directory, compress: true, threads: 1)
                let progress = JobProgress()
                let observations = Mutex<[[String]]>([])
                let finished = CancellationToken()
                let watcher = Thread {
                    while !finished.isCancelled {
                        let before = progress.snapshot()
                        guard before.segmentsDone > 0 else {
                            usleep(100)
                            continue
                        }
                        let listing = names(directory)
                        let after = progress.snapshot()
                        if after.segmentsDone < after.segmentsTotal { observations.withLock { $0.append(listing) } }
                    }
                }
                watcher.start()
                defer { finished.cancel() }
                let manifest = try Engine.backup(
                    try Engine.planBackup(request), request: request, progress: progress,
                    cancellation: CancellationToken())
                finished.cancel()
                let seen = observations.withLock { $0 }
                #expect(!seen.isEmpty, "no listing taken while the backup ran")
                for listing in seen {
                    #expect(listing.allSatisfy { $0.hasSuffix(".partial") }, "\(listing)")
                }
                let final = names(directory)
                #expect(final == (manifest.segments.map(\.file) + [BackupManifest.fileName]).sorted())
                #expect(manifest.segments.count == created.count)
            }
        }
    }

    @Test func theNextBackupRemovesLeftoversAndRemoveStagingReportsThem() throws {
        let spec = small("leftover", 26)
        try Fixture.withSegments(instance: 14, spec) { created in
            try TemporaryDirectory.with { directory in
                // What a killed backup leaves: staging files (under this namespace's keys), the pending manifest,
                // and a stage file already renamed into place.
                let stage = try #require(created.first { $0.key.kind == .primaryStage })
                let base = try #require(created.first { $0.key.kind == .base })
                for segment in created { Fixture.writeFile(directory + "/" + segment.key.hex8 + ".dat.partial", [1]) }
                Fixture.writeFile(directory + "/" + stage.key.fileName(compressed: false), [2])
                let pending = BackupManifest(
                    formatVersion: 1, toolVersion: "t", host: "h", instance: 14, created: "", namespaces: [],
                    segments: [stage, base].map {
                        ManifestSegment(
                            key: $0.key, kind: $0.key.kind, namespace: "leftover",
                            file: $0.key.fileName(compressed: false),
                            size: $0.size, compressed: false, fileSize: $0.size, crc32: 0, uid: 0, gid: 0, mode: 0o600,
                            started: "", finished: "")
                    })
                Fixture.writeFile(directory + "/" + BackupStaging.pendingManifest, pending.encoded())
                Fixture.writeFile(directory + "/ad008177.dat.gz", [3])  // not ours: stays
                let request = BackupRequest(instance: 14, namespaces: ["leftover"], directory: directory)
                // Planning sees the directory as the backup will once it has removed the leftovers: the renamed
                // stage file, listed by the pending manifest without its base, does not block it.
                #expect(try Engine.planBackup(request).segments.count == created.count)
                let removed = try Engine.removeStaging(directory: directory)
                #expect(removed.count == created.count + 2)
                #expect(removed.contains(stage.key.fileName(compressed: false)))
                #expect(names(directory) == ["ad008177.dat.gz"])
                // Leftovers again: this time the backup itself removes them.
                for segment in created { Fixture.writeFile(directory + "/" + segment.key.hex8 + ".dat.partial", [1]) }
                let manifest = try run(request)
                #expect(
                    names(directory)
                        == (manifest.segments.map(\.file) + [BackupManifest.fileName, "ad008177.dat.gz"]).sorted())
                #expect(try Engine.removeStaging(directory: directory).isEmpty)
            }
        }
    }

    @Test func oneBackupPerDirectoryAndNoBackupIntoADirectoryBeingRestored() throws {
        let spec = small("dirlock", 27)
        try Fixture.withSegments(instance: 14, spec) { _ in
            try TemporaryDirectory.with { directory in
                let request = BackupRequest(instance: 14, namespaces: ["dirlock"], directory: directory)
                for exclusive in [true, false] {
                    let held = exclusive ? try DirectoryLock.exclusive(directory) : try DirectoryLock.shared(directory)
                    Fixture.expectCode(.backupBusy) { _ = try run(request) }
                    Fixture.expectCode(.backupBusy) { _ = try Engine.removeStaging(directory: directory) }
                    #expect(names(directory).isEmpty)
                    held.release()
                }
                let reader = try DirectoryLock.shared(directory)
                let second = try DirectoryLock.shared(directory)  // restores share it
                reader.release()
                second.release()
                _ = try run(request)
                // A restore reads under the shared lock: refused while a backup holds the directory.
                let writer = try DirectoryLock.exclusive(directory)
                Fixture.expectCode(.backupBusy) { _ = try DirectoryLock.shared(directory) }
                let restore = RestoreRequest(instance: 14, namespaces: ["dirlock"], directory: directory)
                let plan = RestorePlan(instance: 14, directory: directory, namespaces: [], segments: [], totalBytes: 0)
                Fixture.expectCode(.backupBusy) {
                    try Engine.restore(
                        plan, request: restore, progress: JobProgress(), cancellation: CancellationToken())
                }
                writer.release()
            }
        }
    }

    /// A server attaching a segment after its copy and holding it: SERVER_RUNNING, nothing published.
    @Test func anAttachAfterTheCopyFailsTheBackupAndPublishesNothing() throws {
        let spec = small("late-attach", 28, stages: 4, stageSize: 8 << 20)
        try Fixture.withSegments(instance: 14, spec) { created in
            try TemporaryDirectory.with { temp in
                let directory = temp + "/b"
                let base = try #require(created.first { $0.key.kind == .base })
                // Without verification a segment is done once copied and synced, long before the stages are.
                let request = BackupRequest(
                    instance: 14, namespaces: ["late-attach"], directory: directory, verify: false, threads: 1)
                let progress = JobProgress()
                let attached = Mutex<ShmEngine.Attachment?>(nil)
                let finished = CancellationToken()
                let watcher = Thread {
                    // The base is the plan's first segment: attach once its copy is done.
                    while progress.snapshot().segments.first?.state != .done {
                        if finished.isCancelled { return }
                        usleep(100)
                    }
                    let attachment = try? SharedMemory.attach(
                        shmid: base.shmid, key: base.key, size: base.size, readOnly: true)
                    attached.withLock { $0 = attachment }
                }
                watcher.start()
                defer {
                    finished.cancel()
                    attached.withLock { if let attachment = $0 { SharedMemory.detach(attachment) } }
                }
                Fixture.expectCode(.serverRunning) {
                    _ = try Engine.backup(
                        try Engine.planBackup(request), request: request, progress: progress,
                        cancellation: CancellationToken())
                }
                #expect(attached.withLock { $0 != nil })
                #expect(!FileManager.default.fileExists(atPath: directory), "\(names(directory))")
            }
        }
    }
}

/// The publisher on plain files (no shared memory): order, no replacing, and the undo.
@Suite struct PublisherTests {
    private func files(_ directory: String) -> [BackupFileState] {
        [SegmentKind.base, .treex, .primaryStage].enumerated().map { index, kind in
            let key = SegmentKey(kind: kind, instance: 3, nsid: 4)
            let segment = PlannedSegment(
                key: key, kind: kind, namespace: "n", size: 1, file: key.fileName(compressed: false),
                compressed: false, uid: 0, gid: 0, mode: 0o600)
            let file = BackupFileState(index: index, segment: segment, directory: directory, chunkSize: 1)
            Fixture.writeFile(file.stagingPath, [UInt8(index)])
            file.created = true
            return file
        }
    }

    private func manifest(_ files: [BackupFileState]) -> BackupManifest {
        BackupManifest(
            formatVersion: 1, toolVersion: "t", host: "h", instance: 3, created: "", namespaces: [],
            segments: files.map {
                ManifestSegment(
                    key: $0.segment.key, kind: $0.segment.kind, namespace: "n", file: $0.segment.file, size: 1,
                    compressed: false, fileSize: 1, crc32: 0, uid: 0, gid: 0, mode: 0o600, started: "", finished: "")
            })
    }

    private func names(_ directory: String) -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []).sorted()
    }

    @Test func publishesEveryFileThenTheManifest() throws {
        try TemporaryDirectory.with { directory in
            let files = files(directory)
            let publisher = BackupPublisher(directory: directory, createdDirectory: false)
            try publisher.publish(manifest(files), files: files, cancellation: CancellationToken())
            #expect(names(directory) == ["ae304000.dat", "ae304001.dat", "ae304100.dat", BackupManifest.fileName])
            #expect(try BackupManifest.load(directory: directory) == manifest(files))
            #expect(Fixture.fileBytes(directory + "/ae304001.dat") == [1])
        }
    }

    /// A file that appeared under a real name is never replaced: the publication fails and is undone, and the
    /// foreign file stays.
    @Test func neverReplacesAFileAndUndoesWhatItRenamed() throws {
        try TemporaryDirectory.with { directory in
            let files = files(directory)
            Fixture.writeFile(directory + "/ae304000.dat", [9])
            let publisher = BackupPublisher(directory: directory, createdDirectory: false)
            Fixture.expectCode(.filesExist) {
                try publisher.publish(manifest(files), files: files, cancellation: CancellationToken())
            }
            publisher.withdraw(files)
            #expect(names(directory) == ["ae304000.dat"])
            #expect(Fixture.fileBytes(directory + "/ae304000.dat") == [9])
        }
    }

    @Test func aCancelBeforeTheRenamesPublishesNothing() throws {
        try TemporaryDirectory.with { temp in
            let directory = temp + "/b"
            #expect(mkdir(directory, 0o700) == 0)
            let files = files(directory)
            let cancelled = CancellationToken()
            cancelled.cancel()
            let publisher = BackupPublisher(directory: directory, createdDirectory: true)
            Fixture.expectCode(.canceled) {
                try publisher.publish(manifest(files), files: files, cancellation: cancelled)
            }
            publisher.withdraw(files)
            #expect(!FileManager.default.fileExists(atPath: directory))
        }
    }
}
