import ShmSynthetic
import Testing

@testable import ShmEngine

/// Segment descriptions as values, for the planners (no shared memory involved).
private func described(
    _ spec: SyntheticNamespace, instance: Int = 3, attached: Set<SegmentKey> = [], metaArenas: Int? = nil,
    baseArenas: Int? = nil
) -> [ScannedSegment] {
    spec.layout(instance: instance).enumerated().map { index, entry in
        let key = entry.key
        var facts = SegmentFacts()
        switch key.kind {
        case .base:
            facts = SegmentFacts(
                version: spec.baseVersion, shutdownStatus: spec.shutdownStatus,
                arenas: UInt32(baseArenas ?? spec.primaryStages), namespace: spec.name)
        case .meta: facts.arenas = UInt32(metaArenas ?? spec.secondaryStages)
        case .dataStage: facts.namespace = spec.name
        default: break
        }
        let live = LiveSegment(
            key: key, shmid: Int32(index), size: UInt64(entry.size), attachCount: attached.contains(key) ? 1 : 0,
            uid: spec.uid, gid: spec.gid, mode: spec.mode, creatorPID: 1,
            namespace: facts.namespace)
        return ScannedSegment(live: live, facts: facts)
    }
}

private let spec = SyntheticNamespace(
    name: "users", nsid: 4, primaryStages: 3, stageSize: 1 << 20, secondaryStages: 2, dataStages: 2, uid: 1234,
    gid: 2345, mode: 0o640)

private func plan(
    _ segments: [ScannedSegment], names: [String] = ["users"], files: [String] = [], manifest: Bool = false,
    compress: Bool = false, instance: Int = 3
) throws -> BackupPlan {
    let request = BackupRequest(instance: instance, namespaces: names, directory: "/backup", compress: compress)
    return try BackupPlanner.plan(request, segments: segments, existingFiles: files, manifestPresent: manifest)
}

private func key(_ kind: SegmentKind, _ stage: Int = 0, nsid: Int = 4) -> SegmentKey {
    SegmentKey(kind: kind, instance: 3, nsid: nsid, stage: stage)
}

@Suite struct BackupPlannerTests {
    @Test func plansTheWholeNamespaceInAsmtOrder() throws {
        let result = try plan(described(spec), compress: true)
        #expect(result.namespaces == [PlannedNamespace(name: "users", nsid: 4)])
        #expect(
            result.segments.map(\.kind) == [
                .base, .treex, .primaryStage, .primaryStage, .primaryStage, .meta, .secondaryStage, .secondaryStage,
                .dataStage, .dataStage,
            ])
        #expect(result.segments.filter(\.compressed).count == 8)
        #expect(!result.segments[0].compressed && result.segments[0].file == "ae304000.dat")
        #expect(!result.segments[5].compressed && result.segments[5].file == "a2304000.dat")
        #expect(result.segments[1].file == "ae304001.dat.gz")
        #expect(result.segments.allSatisfy { $0.uid == 1234 && $0.gid == 2345 && $0.mode == 0o640 })
        #expect(result.totalBytes == result.segments.reduce(0) { $0 + $1.size })
        #expect(result.segments.contains { $0.key == key(.dataStage, 1) })
    }

    /// A data or base segment whose header cannot be read might belong to the namespace: an error, never skipped.
    @Test func unreadableHeadersAreErrorsNotSkipped() throws {
        for kind in [SegmentKind.dataStage, .base, .meta] {
            var segments = described(spec)
            let index = try #require(segments.firstIndex { $0.live.key.kind == kind })
            segments[index].facts = SegmentFacts()
            segments[index].live.namespace = nil
            segments[index].unreadable = "cannot attach segment \(segments[index].live.key.hex) to read its header"
            Fixture.expectCode(.system) { _ = try plan(segments) }
        }
        // Another nsid's unreadable meta does not concern this namespace.
        var other = SyntheticNamespace(name: "other", nsid: 5)
        other.secondaryStages = 1
        var segments = described(spec) + described(other)
        let meta = try #require(segments.firstIndex { $0.live.key.kind == .meta && $0.live.key.nsid == 5 })
        segments[meta].unreadable = "unreadable"
        #expect(try plan(segments).segments.count == described(spec).count)
    }

    @Test func refusesBadRequests() {
        Fixture.expectCode(.invalidRequest) { _ = try plan(described(spec), instance: 16) }
        Fixture.expectCode(.invalidRequest) { _ = try plan(described(spec), names: []) }
        Fixture.expectCode(.invalidRequest) { _ = try plan(described(spec), names: [""]) }
        Fixture.expectCode(.invalidRequest) {
            _ = try plan(described(spec), names: [String(repeating: "x", count: 33)])
        }
        Fixture.expectCode(.invalidRequest) {
            _ = try BackupPlanner.plan(
                BackupRequest(instance: 3, namespaces: ["users"], directory: "/b", threads: 5000),
                segments: described(spec), existingFiles: [], manifestPresent: false)
        }
    }

    @Test func namespaceNotFound() {
        // Data stages without their base: never asmt's orphan-data path.
        Fixture.expectCode(.namespaceNotFound) { _ = try plan(described(spec).filter { $0.live.key.kind != .base }) }
        Fixture.expectCode(.namespaceNotFound) { _ = try plan(described(spec), names: ["other"]) }
        Fixture.expectCode(.namespaceNotFound) { _ = try plan(described(spec), instance: 4) }
    }

    @Test func attachedSegmentsMeanTheServerIsRunning() {
        for attached in [key(.base), key(.treex), key(.primaryStage, 1), key(.secondaryStage, 0), key(.dataStage, 1)] {
            Fixture.expectCode(.serverRunning) { _ = try plan(described(spec, attached: [attached])) }
        }
    }

    @Test func uncleanShutdown() {
        for status: UInt32 in [0, 2] {
            var unclean = spec
            unclean.shutdownStatus = status
            Fixture.expectCode(.uncleanShutdown) { _ = try plan(described(unclean)) }
        }
    }

    @Test func baseVersions() throws {
        for version: UInt32 in [9, 13] {
            var odd = spec
            odd.baseVersion = version
            Fixture.expectCode(.invalidSegments) { _ = try plan(described(odd)) }
        }
        var ten = spec
        ten.baseVersion = 10
        _ = try plan(described(ten))
    }

    @Test func structuralRules() {
        let all = described(spec)
        Fixture.expectCode(.invalidSegments) { _ = try plan(all.filter { $0.live.key != key(.treex) }) }
        Fixture.expectCode(.invalidSegments) { _ = try plan(all.filter { $0.live.key != key(.primaryStage, 1) }) }
        Fixture.expectCode(.invalidSegments) { _ = try plan(described(spec, baseArenas: 4)) }
        Fixture.expectCode(.invalidSegments) { _ = try plan(described(spec, metaArenas: 3)) }
        Fixture.expectCode(.invalidSegments) { _ = try plan(all.filter { $0.live.key != key(.secondaryStage, 0) }) }
        Fixture.expectCode(.invalidSegments) {
            _ = try plan(all.filter { $0.live.key.kind != .secondaryStage })
        }
        var small = all
        small[0].live.size = 2155
        Fixture.expectCode(.invalidSegments) { _ = try plan(small) }
        var noStages = spec
        noStages.primaryStages = 1
        Fixture.expectCode(.invalidSegments) {
            _ = try plan(described(noStages).filter { $0.live.key.kind != .primaryStage })
        }
    }

    /// The API and the CLI show these messages: the shared rules keep each one worded for segments.
    @Test func structuralMessages() {
        let all = described(spec)
        var small = all
        small[0].live.size = 2155
        var old = spec
        old.baseVersion = 9
        var unclean = spec
        unclean.shutdownStatus = 0
        var tinyMeta = all
        tinyMeta[5].live.size = 23
        let cases: [([ScannedSegment], EngineError)] = [
            (small, EngineError(.invalidSegments, "base segment 0xae304000 is 2155 bytes, less than 2156")),
            (
                described(old),
                EngineError(.invalidSegments, "base segment 0xae304000 has unsupported version 9 (10..12)")
            ),
            (
                described(unclean),
                EngineError(
                    .uncleanShutdown, "namespace users was not shut down cleanly (base 0xae304000 shutdown status 0)")
            ),
            (
                all.filter { $0.live.key != key(.treex) },
                EngineError(.invalidSegments, "namespace users: missing treex segment 0xae304001")
            ),
            (
                all.filter { $0.live.key != key(.primaryStage, 0) },
                EngineError(.invalidSegments, "namespace users: missing primary stage segment 0xae304100")
            ),
            (
                described(spec, baseArenas: 4),
                EngineError(.invalidSegments, "namespace users: base 0xae304000 counts 4 primary stages, found 3")
            ),
            (
                all.filter { $0.live.key != key(.secondaryStage, 0) },
                EngineError(.invalidSegments, "namespace users: missing secondary stage segment 0xa2304100")
            ),
            (tinyMeta, EngineError(.invalidSegments, "meta segment 0xa2304000 is smaller than 24 bytes")),
            (
                described(spec, metaArenas: 3),
                EngineError(.invalidSegments, "namespace users: meta 0xa2304000 counts 3 secondary stages, found 2")
            ),
        ]
        for (segments, expected) in cases {
            #expect(throws: expected) { try plan(segments) }
        }
    }

    @Test func secondaryStagesWithoutMetaAreIgnoredLikeAsmt() throws {
        let result = try plan(described(spec).filter { $0.live.key.kind != .meta })
        #expect(!result.segments.contains { $0.kind == .secondaryStage || $0.kind == .meta })
    }

    @Test func dataStagesAreMatchedByNameWhateverTheirNsid() throws {
        var segments = described(spec)
        let foreign = SegmentKey(kind: .dataStage, instance: 3, nsid: 9, stage: 1)
        segments.append(
            ScannedSegment(
                live: LiveSegment(
                    key: foreign, shmid: 99, size: 4096, attachCount: 0, uid: 0, gid: 0, mode: 0o600, creatorPID: 1,
                    namespace: "users"), facts: SegmentFacts(namespace: "users")))
        var other = SyntheticNamespace(name: "other", nsid: 5, dataStages: 1)
        other.shutdownStatus = 1
        segments += described(other)
        let result = try plan(segments)
        #expect(result.segments.contains { $0.key == foreign })
        #expect(!result.segments.contains { $0.key.nsid == 5 })
    }

    @Test func existingFilesBlockTheNamespace() throws {
        Fixture.expectCode(.filesExist) { _ = try plan(described(spec), files: ["ae304177.dat.gz"]) }
        Fixture.expectCode(.filesExist) { _ = try plan(described(spec), files: ["ad304001.dat"]) }
        Fixture.expectCode(.filesExist) { _ = try plan(described(spec), manifest: true) }
        _ = try plan(described(spec), files: ["unrelated.txt", "ae305000.dat", "ae204000.dat"])
    }
}

private func backupFiles(_ spec: SyntheticNamespace, compressed: Bool = true) -> [BackupFile] {
    spec.layout(instance: 3).map { entry in
        let key = entry.key
        let gz = compressed && key.kind.compressible
        var facts = SegmentFacts()
        switch key.kind {
        case .base:
            facts = SegmentFacts(
                version: spec.baseVersion, shutdownStatus: spec.shutdownStatus, arenas: UInt32(spec.primaryStages),
                namespace: spec.name)
        case .meta: facts.arenas = UInt32(spec.secondaryStages)
        case .dataStage: facts.namespace = spec.name
        default: break
        }
        return BackupFile(
            name: key.fileName(compressed: gz), compressed: gz,
            candidate: CandidateSegment(
                key: key, size: gz ? UInt64(entry.size / 2) : UInt64(entry.size), facts: facts),
            owner: (1234, 2345, 0o640),
            header: gz ? .success(ASMTHeader(segmentSize: UInt64(entry.size), crc32: 7)) : nil)
    }
}

private func restorePlan(
    _ files: [BackupFile], live: [LiveSegment] = [], manifest: BackupManifest? = nil
) throws -> RestorePlan {
    try RestorePlanner.plan(
        RestoreRequest(instance: 3, namespaces: ["users"], directory: "/backup"), files: files, live: live,
        manifest: manifest)
}

@Suite struct RestorePlannerTests {
    @Test func plansFromAnAsmtDirectory() throws {
        let result = try restorePlan(backupFiles(spec))
        #expect(result.segments.count == 10)
        #expect(result.segments[2].size == 1 << 20)
        #expect(result.segments.allSatisfy { $0.uid == 1234 && $0.gid == 2345 && $0.mode == 0o640 })
    }

    @Test func refusesBrokenDirectories() {
        let files = backupFiles(spec)
        Fixture.expectCode(.namespaceNotFound) { _ = try restorePlan([]) }
        Fixture.expectCode(.invalidBackup) { _ = try restorePlan(files.filter { $0.key != key(.treex) }) }
        Fixture.expectCode(.invalidBackup) { _ = try restorePlan(files.filter { $0.key != key(.primaryStage, 2) }) }
        Fixture.expectCode(.invalidBackup) { _ = try restorePlan(files.filter { $0.key != key(.secondaryStage, 1) }) }
        var badMagic = files
        badMagic[3].header = .failure(.badMagic(0))
        Fixture.expectCode(.invalidBackup) { _ = try restorePlan(badMagic) }
        var both = files
        var twin = files[2]
        twin.compressed = false
        twin.name = twin.key.fileName(compressed: false)
        twin.header = nil
        both.append(twin)
        Fixture.expectCode(.invalidBackup) { _ = try restorePlan(both) }
        var gzMeta = files
        gzMeta[5].compressed = true
        gzMeta[5].name = gzMeta[5].key.fileName(compressed: true)
        gzMeta[5].header = .success(ASMTHeader(segmentSize: 4096, crc32: 0))
        Fixture.expectCode(.invalidBackup) { _ = try restorePlan(gzMeta) }
        var tinyBase = files
        tinyBase[0].candidate.size = 1000
        Fixture.expectCode(.invalidBackup) { _ = try restorePlan(tinyBase) }
        var metaCount = files
        metaCount[5].candidate.facts?.arenas = 5
        Fixture.expectCode(.invalidBackup) { _ = try restorePlan(metaCount) }
        var giant = files
        giant[2].header = .success(ASMTHeader(segmentSize: 1 << 50, crc32: 0))
        Fixture.expectCode(.invalidBackup) { _ = try restorePlan(giant) }
        var unclean = files
        unclean[0].candidate.facts?.shutdownStatus = 0
        Fixture.expectCode(.uncleanShutdown) { _ = try restorePlan(unclean) }
    }

    /// The API and the CLI show these messages: the shared rules keep each one worded for files.
    @Test func structuralMessages() {
        let files = backupFiles(spec)
        var tinyBase = files
        tinyBase[0].candidate.size = 1000
        var old = files
        old[0].candidate.facts?.version = 13
        var unclean = files
        unclean[0].candidate.facts?.shutdownStatus = 2
        var primaryCount = files
        primaryCount[0].candidate.facts?.arenas = 2
        var tinyMeta = files
        tinyMeta[5].candidate.size = 20
        var metaCount = files
        metaCount[5].candidate.facts?.arenas = 5
        let cases: [([BackupFile], EngineError)] = [
            (tinyBase, EngineError(.invalidBackup, "base file ae304000.dat is 1000 bytes, less than 2156")),
            (old, EngineError(.invalidBackup, "base file ae304000.dat has unsupported version 13 (10..12)")),
            (unclean, EngineError(.uncleanShutdown, "base file ae304000.dat records an unclean shutdown (status 2)")),
            (
                files.filter { $0.key != key(.treex) },
                EngineError(.invalidBackup, "namespace users: missing treex file ae304001.dat")
            ),
            (
                files.filter { $0.key != key(.primaryStage, 2) },
                EngineError(.invalidBackup, "namespace users: base file counts 3 primary stages, found 2")
            ),
            (
                files.filter { $0.key != key(.primaryStage, 0) },
                EngineError(.invalidBackup, "namespace users: missing primary stage file for 0xae304100")
            ),
            (primaryCount, EngineError(.invalidBackup, "namespace users: base file counts 2 primary stages, found 3")),
            (
                files.filter { $0.key != key(.secondaryStage, 0) },
                EngineError(.invalidBackup, "namespace users: missing secondary stage file for 0xa2304100")
            ),
            (tinyMeta, EngineError(.invalidBackup, "meta file a2304000.dat is smaller than 24 bytes")),
            (metaCount, EngineError(.invalidBackup, "namespace users: meta file counts 5 secondary stages, found 2")),
        ]
        for (files, expected) in cases {
            #expect(throws: expected) { try restorePlan(files) }
        }
    }

    @Test func refusesWhenSegmentsOfTheNsidExist() {
        let foreign = LiveSegment(
            key: key(.primaryStage, 77), shmid: 5, size: 10, attachCount: 0, uid: 0, gid: 0, mode: 0o600,
            creatorPID: 1)
        Fixture.expectCode(.segmentsExist) { _ = try restorePlan(backupFiles(spec), live: [foreign]) }
    }

    @Test func crossChecksTheManifest() throws {
        let files = backupFiles(spec)
        let good = try restorePlan(files)
        let entries = good.segments.map {
            ManifestSegment(
                key: $0.key, kind: $0.kind, namespace: $0.namespace, file: $0.file, size: $0.size,
                compressed: $0.compressed, fileSize: $0.fileSize ?? 0, crc32: 42, uid: 1, gid: 1, mode: 0o600,
                started: "", finished: "")
        }
        let manifest = BackupManifest(
            formatVersion: 1, toolVersion: "t", host: "h", instance: 3, created: "", namespaces: good.namespaces,
            segments: entries)
        let checked = try restorePlan(files, manifest: manifest)
        #expect(checked.segments.allSatisfy { $0.crc32 == 42 })
        // The manifest decides owner, group and mode; each file that disagrees is reported.
        #expect(checked.segments.allSatisfy { $0.uid == 1 && $0.gid == 1 && $0.mode == 0o600 })
        #expect(checked.warnings.count == checked.segments.count)
        var shorter = files
        shorter[2].candidate.size -= 1
        Fixture.expectCode(.invalidBackup) { _ = try restorePlan(shorter, manifest: manifest) }
        Fixture.expectCode(.invalidBackup) {
            _ = try restorePlan(files.filter { $0.key != key(.dataStage, 1) }, manifest: manifest)
        }
    }
}
