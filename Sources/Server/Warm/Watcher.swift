import Dispatch
import Foundation
import Logging
import ShmEngine
import Synchronization

/// Watches the configured instances' segments through the kernel's table (never attaching them) every
/// `service.watch-interval`, at start and stop, and before and after asmtd's own attaching operations, and keeps
/// each backup's freshness in the state dir.
final class Watcher: Sendable {
    private struct State {
        var tracks: [String: BackupTracks] = [:]
        /// Complete backups without evidence (asmt's, or older than the evidence): unknown.
        var withoutEvidence: Set<String> = []
        /// instance → asmtd operations attaching its segments right now.
        var own: [Int: Int] = [:]
        /// instance → the last table read.
        var latest: [Int: [SegmentEvidence]] = [:]
        /// base key → (its evidence right after asmtd read it, what it said).
        var baseCache: [SegmentKey: (SegmentEvidence, BaseFacts)] = [:]
        var started = false
        var failedReads = 0
    }

    let config: Config
    let logger: Logger
    let store: FreshnessStore
    let pid: Int32
    let bootID: String
    private let state = Mutex(State())
    private let stopping = Atomic<Bool>(false)
    private let wake = DispatchSemaphore(value: 0)
    private let loopEnded = DispatchSemaphore(value: 0)

    init(config: Config, logger: Logger) {
        self.config = config
        self.logger = logger
        self.store = FreshnessStore(stateDirectory: config.service.stateDir)
        self.pid = getpid()
        self.bootID = SegmentTable.bootID() ?? "unknown"
    }

    // MARK: life cycle

    /// Loads the tracks, takes the first look (a resume after the previous run), records this run, starts the timer.
    func start() throws(FileSystemError) {
        try store.prepare()
        let previous = store.loadRun()
        let (loaded, warnings) = store.loadAll()
        for warning in warnings { logger.warning("\(warning)") }
        state.withLock { s in
            for tracks in loaded { s.tracks[tracks.backup] = tracks }
        }
        let resume = Observation.Kind.resume(previousBoot: previous?.bootID, previousStop: previous?.stopped)
        for instance in config.instances {
            adoptNewBackups(instance)
            observe(instance.instance, kind: resume)
        }
        try store.saveRun(WatchRun(bootID: bootID, pid: pid, started: Time.now(), stopped: nil))
        state.withLock { $0.started = true }
        let thread = Thread { [self] in
            let interval = DispatchTimeInterval.milliseconds(config.service.watchIntervalMs)
            while !stopping.load(ordering: .acquiring) {
                if wake.wait(timeout: .now() + interval) == .success { continue }
                tick()
            }
            loopEnded.signal()
        }
        thread.name = "asmtd-watch"
        thread.stackSize = 1 << 20
        thread.start()
        logger.info(
            "watching segments", metadata: ["interval-ms": "\(config.service.watchIntervalMs)", "boot": "\(bootID)"])
    }

    /// The last look, then the clean-stop mark the next run trusts.
    func stop() {
        if state.withLock({ $0.started }) {
            stopping.store(true, ordering: .releasing)
            wake.signal()
            loopEnded.wait()
        }
        for instance in config.instances { observe(instance.instance, kind: .watch) }
        do {
            let started = store.loadRun()?.started ?? Time.now()
            try store.saveRun(WatchRun(bootID: bootID, pid: pid, started: started, stopped: Time.now()))
        } catch {
            logger.error("cannot record the clean stop", metadata: ["error": "\(error)"])
        }
    }

    private func tick() {
        for instance in config.instances {
            adoptNewBackups(instance)
            observe(instance.instance, kind: .watch)
        }
    }

    // MARK: observations

    /// Reads the table and folds it into every track of the instance, under the lock (so that the count of own
    /// operations matches the table read).
    @discardableResult
    private func observe(
        _ instance: Int, kind: Observation.Kind, ownDelta: Int = 0, deltaFirst: Bool = false
    )
        -> [SegmentEvidence]
    {
        state.withLock { s in
            if deltaFirst { s.own[instance, default: 0] += ownDelta }
            let segments: [SegmentEvidence]
            do {
                segments = try SegmentTable.read(instance: instance)
            } catch {
                s.failedReads += 1
                if s.failedReads == 1 { logger.error("cannot read the segment table", metadata: ["error": "\(error)"]) }
                if !deltaFirst { s.own[instance, default: 0] += ownDelta }
                return s.latest[instance] ?? []
            }
            s.latest[instance] = segments
            let observation = Observation(
                kind: kind, time: Time.now(), bootID: bootID, pid: pid, ownActive: s.own[instance, default: 0] > 0,
                segments: segments)
            for (id, tracks) in s.tracks where tracks.instance == instance {
                var updated = tracks
                updated.namespaces = tracks.namespaces.map { FreshnessRules.step($0, observation) }
                guard updated != tracks else { continue }
                s.tracks[id] = updated
                persist(updated, was: tracks)
            }
            if !deltaFirst { s.own[instance, default: 0] += ownDelta }
            return segments
        }
    }

    private func persist(_ updated: BackupTracks, was old: BackupTracks) {
        for (new, previous) in zip(updated.namespaces, old.namespaces) where new.freshness != previous.freshness {
            logger.warning(
                "backup is now \(new.freshness.name)",
                metadata: [
                    "backup": "\(updated.backup)", "namespace": "\(new.name)",
                    "reason": "\(new.freshness.reason ?? "")",
                ])
        }
        do {
            try store.save(updated)
        } catch {
            logger.error("cannot save freshness", metadata: ["backup": "\(updated.backup)", "error": "\(error)"])
        }
    }

    /// Before asmtd attaches segments of `instance` (a listing, a job): looks first, so that its own attach never
    /// hides another's.
    func beginOwn(_ instance: Int) {
        observe(instance, kind: .watch, ownDelta: 1)
    }

    /// After asmtd detached them: looks again and re-records what its own attaches changed. Returns the table.
    @discardableResult
    func endOwn(_ instance: Int) -> [SegmentEvidence] {
        observe(instance, kind: .watch, ownDelta: -1, deltaFirst: true)
    }

    /// Runs `body` between `beginOwn` and `endOwn`.
    func own<T, E: Error>(_ instance: Int, _ body: () throws(E) -> T) throws(E) -> T {
        beginOwn(instance)
        defer { endOwn(instance) }
        return try body()
    }

    // MARK: backups

    /// A backup just completed (before `endOwn` of its job): records its evidence in the state and the manifest.
    func recordBackup(id: String, instance: Int, manifest: BackupManifest, directory: String) {
        let nsids = Set(manifest.namespaces.map(\.nsid))
        let table = (try? SegmentTable.read(instance: instance)) ?? []
        let evidence = FreshnessEvidence(
            bootID: bootID, observed: Int64(Time.now()), pid: pid,
            segments: table.filter { nsids.contains($0.key.nsid) })
        let tracks = BackupTracks(
            backup: id, instance: instance, bootID: bootID, observed: Double(evidence.observed),
            namespaces: manifest.namespaces.map {
                FreshnessRules.start(name: $0.name, nsid: $0.nsid, evidence: evidence)
            }
        )
        state.withLock { s in
            s.tracks[id] = tracks
            s.withoutEvidence.remove(id)
        }
        do {
            try store.save(tracks)
        } catch {
            logger.error("cannot save freshness", metadata: ["backup": "\(id)", "error": "\(error)"])
        }
        do {
            try FreshnessStore.addEvidence(evidence, toManifestIn: directory)
        } catch {
            logger.error("cannot add the evidence to the manifest", metadata: ["backup": "\(id)", "error": "\(error)"])
        }
        logger.info(
            "backup evidence recorded",
            metadata: [
                "backup": "\(id)", "freshness": "\(tracks.freshness.name)", "segments": "\(evidence.segments.count)",
            ])
    }

    /// Complete backups the watcher has not seen yet: adopted from their manifest's evidence (made by the CLI, or
    /// the state was lost), judged like a gap since then; without evidence: unknown. Tracks of removed backups go.
    private func adoptNewBackups(_ instance: InstanceConfig) {
        let ids = FileSystem.list(instance.backupPath).filter(Paths.isSafeName)
        let present = Set(ids)
        let (known, gone): (Set<String>, [String]) = state.withLock { s in
            let gone = s.tracks.values.filter { $0.instance == instance.instance && !present.contains($0.backup) }
                .map(\.backup)
            for id in gone { s.tracks[id] = nil }
            s.withoutEvidence.formIntersection(present)
            return (Set(s.tracks.keys).union(s.withoutEvidence), gone)
        }
        for id in gone { store.delete(id) }
        for id in ids where !known.contains(id) {
            let directory = Paths.join(instance.backupPath, id)
            guard let manifest = try? BackupManifest.load(directory: directory) else { continue }
            guard let evidence = manifest.evidence else {
                state.withLock { _ = $0.withoutEvidence.insert(id) }
                continue
            }
            var tracks = BackupTracks(
                backup: id, instance: instance.instance, bootID: evidence.bootID, observed: Double(evidence.observed),
                namespaces: manifest.namespaces.map {
                    FreshnessRules.start(name: $0.name, nsid: $0.nsid, evidence: evidence)
                })
            let table = (try? SegmentTable.read(instance: instance.instance)) ?? []
            let adopt = Observation(
                kind: .resume(previousBoot: nil, previousStop: nil), time: Time.now(), bootID: bootID, pid: pid,
                segments: table)
            tracks.namespaces = tracks.namespaces.map { FreshnessRules.step($0, adopt) }
            state.withLock { $0.tracks[id] = tracks }
            do { try store.save(tracks) } catch {
                logger.error("cannot save freshness", metadata: ["backup": "\(id)", "error": "\(error)"])
            }
            logger.info(
                "backup adopted from its manifest",
                metadata: ["backup": "\(id)", "freshness": "\(tracks.freshness.name)"])
        }
    }

    func forget(_ backup: String) {
        state.withLock { s in
            s.tracks[backup] = nil
            s.withoutEvidence.remove(backup)
        }
        store.delete(backup)
    }

    // MARK: queries

    /// The tracks of a backup; nil when asmtd holds no evidence for it (freshness unknown).
    func tracks(of backup: String) -> BackupTracks? {
        state.withLock { $0.tracks[backup] }
    }

    /// A backup's freshness for one namespace (unknown without evidence).
    func freshness(of backup: String, namespace: String) -> Freshness {
        tracks(of: backup)?.freshness(of: namespace)
            ?? .unknown(
                since: 0,
                reason: "asmtd holds no evidence for backup \(backup) (made by asmt, or without a watching asmtd)")
    }

    /// Looks now (before a decision that must not rest on a look up to one interval old).
    func refresh(_ instance: Int) {
        observe(instance, kind: .watch)
    }

    /// Whether one of asmtd's own operations attaches segments of the instance right now.
    func ownActive(_ instance: Int) -> Bool {
        state.withLock { $0.own[instance, default: 0] > 0 }
    }

    /// The instance's segments as last read (reads now when never read).
    func latestSegments(_ instance: Int) -> [SegmentEvidence] {
        if let latest = state.withLock({ $0.latest[instance] }) { return latest }
        return observe(instance, kind: .watch)
    }

    /// Name and shutdown state of each base segment of the instance; reads a base (a brief own attach) only when
    /// its kernel fields changed since asmtd last read it, so that nothing wrote it meanwhile.
    func bases(_ instance: Int) -> [SegmentKey: BaseFacts] {
        let table = latestSegments(instance).filter { $0.key.kind == .base }
        var result: [SegmentKey: BaseFacts] = [:]
        var missing: [SegmentEvidence] = []
        state.withLock { s in
            for base in table {
                if let (seen, facts) = s.baseCache[base.key], seen == base {
                    result[base.key] = facts
                } else {
                    missing.append(base)
                }
            }
        }
        guard !missing.isEmpty else { return result }
        beginOwn(instance)
        var read: [SegmentKey: BaseFacts] = [:]
        for base in missing {
            if let facts = SegmentTable.baseFacts(shmid: base.shmid, key: base.key, size: base.size) {
                read[base.key] = facts
            }
        }
        let after = endOwn(instance)
        state.withLock { s in
            for segment in after where segment.key.kind == .base {
                if let facts = read[segment.key] { s.baseCache[segment.key] = (segment, facts) }
            }
        }
        return result.merging(read) { a, _ in a }
    }
}
