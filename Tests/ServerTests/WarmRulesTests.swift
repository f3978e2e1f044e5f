import Foundation
import ShmEngine
import Testing

@testable import Server

/// Freshness rules, readiness, retention and the automatic decisions: pure, no segment, no socket.
struct FreshnessRulesTests {
    static let me: Int32 = 4242
    static let asd: Int32 = 777
    static let boot = "boot-1"

    static func seg(
        _ low: Int, nsid: Int = 1, shmid: Int32 = 10, nattch: Int = 0, cpid: Int32 = asd, lpid: Int32 = me,
        atime: Int64 = 100, dtime: Int64 = 101, ctime: Int64 = 50
    ) -> SegmentEvidence {
        let kind: SegmentKind = low == 0 ? .base : .primaryStage
        let key = SegmentKey(kind: kind, instance: 0, nsid: nsid, stage: low == 0 ? 0 : low - 1)
        return SegmentEvidence(
            key: key, shmid: shmid + Int32(low), size: 4096, nattch: nattch, cpid: cpid, lpid: lpid, atime: atime,
            dtime: dtime, ctime: ctime)
    }

    static let backedUp = [seg(0), seg(1)]

    static func track(_ segments: [SegmentEvidence] = backedUp) -> NamespaceTrack {
        FreshnessRules.start(
            name: "test", nsid: 1, evidence: FreshnessEvidence(bootID: boot, observed: 200, pid: me, segments: segments)
        )
    }

    static func watch(
        _ segments: [SegmentEvidence], time: Double = 300, boot: String = boot, own: Bool = false
    ) -> Observation {
        Observation(kind: .watch, time: time, bootID: boot, pid: me, ownActive: own, segments: segments)
    }

    @Test func startsFreshWhenTheBackupLeftTheSegmentsAsItsOwn() {
        #expect(Self.track().freshness == .fresh)
    }

    @Test func startsStaleWhenTheEvidenceShowsAnotherAttach() {
        #expect(Self.track([Self.seg(0, nattch: 1, lpid: Self.asd), Self.seg(1)]).freshness.isStale)
        #expect(Self.track([Self.seg(0, lpid: Self.asd), Self.seg(1)]).freshness.isStale)
        #expect(Self.track([]).freshness.name == "unknown")
    }

    @Test func unchangedSegmentsStayFresh() {
        let t = FreshnessRules.fold(Self.track(), [Self.watch(Self.backedUp), Self.watch(Self.backedUp, time: 400)])
        #expect(t.freshness == .fresh)
    }

    @Test func otherNamespacesAreIgnored() {
        let other = Self.seg(0, nsid: 2, shmid: 90, nattch: 1, lpid: Self.asd)
        let t = FreshnessRules.step(Self.track(), Self.watch(Self.backedUp + [other]))
        #expect(t.freshness == .fresh)
    }

    @Test func anAttachAfterTheBackupMakesItStale() {
        let attached = [Self.seg(0, nattch: 1, lpid: Self.asd, atime: 350), Self.seg(1)]
        let t = FreshnessRules.step(Self.track(), Self.watch(attached, time: 360))
        #expect(t.freshness.isStale)
        #expect(t.freshness.since == 360)
        #expect(t.freshness.reason?.contains("0xae001000") == true)
    }

    @Test func anAttachAndDetachBetweenSamplesMakesItStale() {
        let touched = [Self.seg(0, lpid: Self.asd, atime: 350, dtime: 355), Self.seg(1)]
        #expect(FreshnessRules.step(Self.track(), Self.watch(touched)).freshness.isStale)
    }

    @Test func staleIsSticky() {
        let attached = [Self.seg(0, nattch: 1, lpid: Self.asd), Self.seg(1)]
        let t = FreshnessRules.fold(
            Self.track(), [Self.watch(attached), Self.watch([], time: 500), Self.watch(Self.backedUp, time: 600)])
        #expect(t.freshness.isStale)
        #expect(t.freshness.since == 300)
    }

    @Test func replacedSegmentsAreStale() {
        let replaced = [Self.seg(0, shmid: 30, cpid: Self.asd, lpid: Self.asd, ctime: 340), Self.seg(1)]
        let t = FreshnessRules.step(Self.track(), Self.watch(replaced))
        #expect(t.freshness.reason?.contains("replaced") == true)
    }

    @Test func watchedUntilTheSegmentsVanishStaysFresh() {
        let t = FreshnessRules.fold(Self.track(), [Self.watch(Self.backedUp), Self.watch([], time: 400)])
        #expect(t.freshness == .fresh)
        #expect(t.baseline.isEmpty)
    }

    @Test func aColdStartAfterTheSegmentsVanishedIsStale() {
        let cold = [Self.seg(0, shmid: 70, nattch: 1, cpid: Self.asd, lpid: Self.asd, ctime: 500)]
        let t = FreshnessRules.fold(Self.track(), [Self.watch([], time: 400), Self.watch(cold, time: 500)])
        #expect(t.freshness.isStale)
        #expect(t.freshness.reason?.contains("cold start") == true)
    }

    @Test func ownAttachesAreReRecordedNotHidingOthers() {
        // A listing by asmtd itself: lpid is ours, nothing attached after: re-recorded, fresh.
        let listed = [Self.seg(0, lpid: Self.me, atime: 320, dtime: 320), Self.seg(1)]
        var t = FreshnessRules.step(Self.track(), Self.watch(listed, own: true))
        #expect(t.freshness == .fresh)
        #expect(t.baseline == listed)
        // While our own operation is attached, our own attach count is not another's.
        let during = [Self.seg(0, nattch: 1, lpid: Self.me, atime: 330, dtime: 320), Self.seg(1)]
        t = FreshnessRules.step(t, Self.watch(during, own: true))
        #expect(t.freshness == .fresh)
        // asd attached before our attach: after our detach the count is still 1 → stale, though lpid is ours.
        let hidden = [Self.seg(0, nattch: 1, lpid: Self.me, atime: 340, dtime: 341), Self.seg(1)]
        #expect(FreshnessRules.step(t, Self.watch(hidden, own: false)).freshness.isStale)
        // asd's attach seen before ours (compare before attaching) → stale.
        let before = [Self.seg(0, nattch: 1, lpid: Self.asd, atime: 340), Self.seg(1)]
        #expect(FreshnessRules.step(t, Self.watch(before, own: true)).freshness.isStale)
    }

    @Test func restoredSegmentsBecomeTheBaselineThenAnAttachConsumesThem() {
        let restored = [
            Self.seg(0, shmid: 50, cpid: Self.me, lpid: Self.me, ctime: 900),
            Self.seg(1, shmid: 50, cpid: Self.me, lpid: Self.me, ctime: 900),
        ]
        let t1 = FreshnessRules.fold(
            Self.track(), [Self.watch([], time: 400), Self.watch(restored, time: 900)])
        #expect(t1.freshness == .fresh)
        #expect(t1.baseline == restored)
        let asdStarted = [
            Self.seg(0, shmid: 50, nattch: 1, cpid: Self.me, lpid: Self.asd, atime: 950, ctime: 900),
            restored[1],
        ]
        let t2 = FreshnessRules.step(t1, Self.watch(asdStarted, time: 960))
        #expect(t2.freshness.isStale)
    }

    @Test func aGapInTheSameBootIsDecidedByTheKernelsFields() {
        let resume = Observation.Kind.resume(previousBoot: Self.boot, previousStop: nil)
        let unchanged = Observation(kind: resume, time: 5000, bootID: Self.boot, pid: 99, segments: Self.backedUp)
        #expect(FreshnessRules.step(Self.track(), unchanged).freshness == .fresh)
        let touched = [Self.seg(0, lpid: Self.asd, atime: 3000, dtime: 4000), Self.seg(1)]
        let used = Observation(kind: resume, time: 5000, bootID: Self.boot, pid: 99, segments: touched)
        #expect(FreshnessRules.step(Self.track(), used).freshness.isStale)
        let gone = Observation(kind: resume, time: 5000, bootID: Self.boot, pid: 99, segments: [])
        #expect(FreshnessRules.step(Self.track(), gone).freshness.name == "unknown")
        // Gone right after asmtd's clean stop (a container's reboot keeps the boot id): still fresh.
        let afterStop = Observation(
            kind: .resume(previousBoot: Self.boot, previousStop: 4990), time: 5000, bootID: Self.boot, pid: 99,
            segments: [])
        #expect(FreshnessRules.step(Self.track(), afterStop).freshness == .fresh)
    }

    @Test func aRebootAfterACleanStopStaysFreshOtherwiseUnknown() {
        let stopped = FreshnessRules.step(Self.track(), Self.watch(Self.backedUp, time: 1000))
        let clean = Observation(
            kind: .resume(previousBoot: Self.boot, previousStop: 1000), time: 1100, bootID: "boot-2", pid: 5,
            segments: [])
        let afterClean = FreshnessRules.step(stopped, clean)
        #expect(afterClean.freshness == .fresh)
        #expect(afterClean.bootID == "boot-2")
        #expect(afterClean.baseline.isEmpty)
        let crashed = Observation(
            kind: .resume(previousBoot: Self.boot, previousStop: nil), time: 1100, bootID: "boot-2", pid: 5,
            segments: [])
        #expect(FreshnessRules.step(stopped, crashed).freshness.name == "unknown")
        let longAfter = Observation(
            kind: .resume(previousBoot: Self.boot, previousStop: 1000), time: 1000 + FreshnessRules.rebootWindow + 1,
            bootID: "boot-2", pid: 5, segments: [])
        #expect(FreshnessRules.step(stopped, longAfter).freshness.name == "unknown")
        // Unknown never returns to fresh, and turns stale on a later use.
        let unknown = FreshnessRules.step(stopped, crashed)
        let cold = [Self.seg(0, shmid: 70, nattch: 1, cpid: Self.asd, lpid: Self.asd, ctime: 1200)]
        let later = FreshnessRules.fold(
            unknown,
            [
                Self.watch([], time: 1150, boot: "boot-2"),
                Self.watch(cold, time: 1200, boot: "boot-2"),
            ])
        #expect(later.freshness.isStale)
    }

    @Test func segmentsPresentAtTheFirstLookOfANewBootAreStale() {
        let cold = [Self.seg(0, shmid: 70, nattch: 1, cpid: Self.asd, lpid: Self.asd, ctime: 1050)]
        let o = Observation(
            kind: .resume(previousBoot: Self.boot, previousStop: 1000), time: 1100, bootID: "boot-2", pid: 5,
            segments: cold)
        #expect(FreshnessRules.step(Self.track(), o).freshness.isStale)
    }

    @Test func freshnessRoundTripsThroughJSON() throws {
        for value in [Freshness.fresh, .stale(since: 1, reason: "a"), .unknown(since: 2, reason: "b")] {
            let data = try JSONEncoder().encode(value)
            #expect(try JSONDecoder().decode(Freshness.self, from: data) == value)
        }
    }
}

struct WarmReadinessTests {
    static let fresh = CoveringBackup(id: "b1", freshness: .fresh, bytes: 10)
    static let stale = CoveringBackup(id: "b1", freshness: .stale(since: 1, reason: "asd attached"), bytes: 10)

    @Test func stoppedCleanlyWithAFreshBackupIsReady() {
        let a = WarmReadiness.evaluate(namespace: "test", server: .stopped, backup: Self.fresh, backupOnStop: false)
        #expect(a == .init(ready: true, reasons: []))
    }

    @Test func stoppedWithAStaleBackupNeedsBackupOnStop() {
        let a = WarmReadiness.evaluate(namespace: "test", server: .stopped, backup: Self.stale, backupOnStop: false)
        #expect(!a.ready)
        #expect(a.reasons.joined().contains("stale"))
        #expect(
            WarmReadiness.evaluate(namespace: "test", server: .stopped, backup: Self.stale, backupOnStop: true).ready)
    }

    @Test func runningIsReadyOnlyWithBackupOnStop() {
        #expect(
            !WarmReadiness.evaluate(namespace: "t", server: .running, backup: Self.fresh, backupOnStop: false).ready)
        #expect(WarmReadiness.evaluate(namespace: "t", server: .running, backup: nil, backupOnStop: true).ready)
    }

    @Test func uncleanIsNeverReady() {
        let a = WarmReadiness.evaluate(namespace: "t", server: .unclean, backup: Self.fresh, backupOnStop: true)
        #expect(!a.ready)
        #expect(a.reasons.first?.contains("clean shutdown") == true)
    }

    @Test func absentIsReadyWithAFreshBackup() {
        #expect(WarmReadiness.evaluate(namespace: "t", server: .absent, backup: Self.fresh, backupOnStop: false).ready)
        let a = WarmReadiness.evaluate(namespace: "t", server: .absent, backup: nil, backupOnStop: true)
        #expect(!a.ready)
        #expect(a.reasons.contains("no complete backup holds namespace t"))
    }

    @Test func serverStates() {
        #expect(ServerState.of(segments: 0, attached: false, baseClean: nil) == .absent)
        #expect(ServerState.of(segments: 3, attached: true, baseClean: true) == .running)
        #expect(ServerState.of(segments: 3, attached: false, baseClean: true) == .stopped)
        #expect(ServerState.of(segments: 3, attached: false, baseClean: false) == .unclean)
        #expect(ServerState.of(segments: 3, attached: false, baseClean: nil) == .unclean)
        #expect(ServerState.combined([.stopped, .absent]) == .stopped)
        #expect(ServerState.combined([.stopped, .unclean]) == .unclean)
        #expect(ServerState.combined([.unclean, .running]) == .running)
        #expect(ServerState.combined([]) == .absent)
    }

    @Test func restoreEstimate() {
        #expect(WarmReadiness.estimatedRestoreSeconds(bytes: 2_000_000_000, measuredBytesPerSecond: 1e9) == 2)
        #expect(WarmReadiness.estimatedRestoreSeconds(bytes: 1, measuredBytesPerSecond: nil) == 1)
        #expect(WarmReadiness.estimatedRestoreSeconds(bytes: 0, measuredBytesPerSecond: 0) == 0)
        #expect(WarmReadiness.estimatedRestoreSeconds(bytes: 400_000_000, measuredBytesPerSecond: nil) == 2)
    }
}

struct RetentionPlannerTests {
    func b(
        _ n: Int, fresh: Set<String> = [], inUse: Bool = false, complete: Bool = true
    )
        -> RetentionPlanner.Candidate
    {
        .init(id: "b\(n)", created: Double(n), complete: complete, inUse: inUse, freshNamespaces: fresh)
    }

    @Test func removesTheOldestBeyondKeep() {
        #expect(RetentionPlanner.plan([b(1), b(2), b(3), b(4)], keep: 2) == ["b1", "b2"])
        #expect(RetentionPlanner.plan([b(1), b(2)], keep: 2) == [])
        #expect(RetentionPlanner.plan([b(1), b(2), b(3)], keep: 0) == [])
    }

    @Test func neverOneInUseNorTheNewestFreshOne() {
        let backups = [b(1, fresh: ["test"]), b(2, inUse: true), b(3), b(4)]
        #expect(RetentionPlanner.plan(backups, keep: 1) == ["b3"])
        // An older fresh one is not protected when a newer one is fresh for the same namespace.
        #expect(RetentionPlanner.plan([b(1, fresh: ["test"]), b(2, fresh: ["test"]), b(3)], keep: 1) == ["b1"])
    }

    @Test func incompleteDirectoriesAreLeftAlone() {
        #expect(RetentionPlanner.plan([b(1, complete: false), b(2), b(3)], keep: 1) == ["b2"])
    }
}

struct AutoDecisionsTests {
    typealias View = AutoDecisions.NamespaceView

    @Test func restoresAFreshBackupWhenNoSegmentsExist() {
        let d = AutoDecisions.startRestore(
            [View(name: "test", server: .absent)], newestHoldingAll: (id: "b2", freshness: ["test": .fresh]))
        #expect(d == .restore(backup: "b2", namespaces: ["test"]))
    }

    @Test func skipsWithAReason() {
        let stale = AutoDecisions.startRestore(
            [View(name: "test", server: .absent)],
            newestHoldingAll: (id: "b2", freshness: ["test": .stale(since: 1, reason: "consumed")]))
        #expect(stale == .skip(reason: "backup b2 is stale for namespace test: consumed; asd will cold-start"))
        let present = AutoDecisions.startRestore(
            [View(name: "test", server: .stopped)], newestHoldingAll: (id: "b2", freshness: ["test": .fresh]))
        guard case .skip(let reason) = present else {
            Issue.record("restored over live segments")
            return
        }
        #expect(reason.contains("exist"))
        #expect(
            AutoDecisions.startRestore([View(name: "test", server: .absent)], newestHoldingAll: nil)
                != .restore(backup: "", namespaces: []))
    }

    @Test func stopBackupTakesOnlyCleanUncoveredNamespaces() {
        let fresh = CoveringBackup(id: "b1", freshness: .fresh, bytes: 1)
        let stale = CoveringBackup(id: "b0", freshness: .stale(since: 1, reason: "x"), bytes: 1)
        let d = AutoDecisions.stopBackup([
            View(name: "a", server: .stopped, backup: stale),
            View(name: "b", server: .stopped, backup: fresh),
            View(name: "c", server: .running),
            View(name: "d", server: .unclean),
            View(name: "e", server: .absent),
            View(name: "f", server: .stopped),
        ])
        #expect(d.namespaces == ["a", "f"])
        #expect(Set(d.skipped.keys) == ["b", "c", "d", "e"])
    }
}

struct SegmentTableTests {
    @Test func parsesTheProcTable() {
        let text = """
                   key      shmid perms                  size  cpid  lpid nattch   uid   gid  cuid  cgid      atime      dtime      ctime                   rss                  swap
             -1375727616         12  1600                  4096  1234  1240      1     0     0     0     0 1700000010 1700000005 1700000000                  4096                     0
                       0         13  1600                  4096  1234  1234      0     0     0     0     0          0          0 1700000000                     0                     0
             -1375727615         14  1600                  8192  1234  1234      0     0     0     0     0 1700000001 1700000002 1700000000                     0                     0

            """
        let segments = SegmentTable.parse(text)
        #expect(segments.count == 2)
        #expect(segments[0].key.hex == "0xae001000")
        #expect(segments[0].shmid == 12)
        #expect(segments[0].nattch == 1)
        #expect(segments[0].cpid == 1234)
        #expect(segments[0].lpid == 1240)
        #expect(segments[0].atime == 1_700_000_010)
        #expect(segments[0].dtime == 1_700_000_005)
        #expect(segments[0].ctime == 1_700_000_000)
        #expect(segments[1].key.kind == .treex)
        #expect(segments[1].size == 8192)
        #expect(SegmentTable.parse("") == [])
        #expect(SegmentTable.parse("garbage\n1 2 3\n") == [])
    }
}

struct SpaceCheckTests {
    @Test func plainNeedsTheSegmentBytesCompressedTheMeasuredRatio() {
        let segments: [(kind: SegmentKind, size: UInt64)] = [(.base, 1_000_000), (.primaryStage, 100_000_000)]
        let margin: UInt64 = 16 << 20
        #expect(SpaceCheck.required(segments: segments, compress: false, ratio: 0.1) == 102_010_000 + margin)
        #expect(SpaceCheck.required(segments: segments, compress: true, ratio: 0.1) == 11_110_000 + margin)
        // Without a measurement the ratio is 1: incompressible data fits too.
        #expect(SpaceCheck.required(segments: segments, compress: true, ratio: nil) == 102_010_000 + margin)
        #expect(SpaceCheck.available("/") != nil)
        #expect(SpaceCheck.available("/nonexistent/path") == nil)
    }
}

struct WarmConfigTests {
    @Test func autoKeysParseStrictly() throws {
        let yaml = """
            service: {watch-interval: 250}
            instances:
              - instance: 0
                backup-path: /b
                namespaces: [test]
                keep: 3
                auto: {restore-on-start: true, backup-on-stop: true, restore-timeout: 5000}
            """
        let config = try Config.parse(yaml, file: "/etc/asmtd.yml").get()
        #expect(config.service.watchIntervalMs == 250)
        #expect(config.instances[0].keep == 3)
        #expect(
            config.instances[0].auto
                == AutoSettings(restoreOnStart: true, backupOnStop: true, restoreTimeoutMs: 5000))
        let defaults = try Config.parse("instances: [{instance: 0, backup-path: /b, namespaces: [t]}]", file: "/x")
            .get()
        #expect(defaults.service.watchIntervalMs == 5000)
        #expect(defaults.instances[0].auto == AutoSettings())
        #expect(defaults.instances[0].keep == 0)
    }

    @Test func badAutoKeysAreErrors() {
        let yaml = """
            instances:
              - instance: 0
                backup-path: /b
                namespaces: [test]
                keep: -1
                auto: {restore-on-stat: true, backup-on-stop: yes}
            """
        guard case .failure(let errors) = Config.parse(yaml, file: "/x") else {
            Issue.record("accepted")
            return
        }
        let text = errors.description
        #expect(text.contains("instances[0].keep: -1 is out of range"))
        #expect(text.contains("instances[0].auto.restore-on-stat: unknown key; did you mean \"restore-on-start\"?"))
        #expect(text.contains("instances[0].auto.backup-on-stop: expected true or false"))
    }
}
