import ShmEngine

/// Whether a backup of a namespace still matches the data asd would start on (pure values).
///
/// fresh: asmtd can vouch that no other process used the namespace's segments since the backup. stale: it saw
/// such a use (sticky: never goes back). unknown: it cannot vouch (it was not watching for a while, or the backup
/// carries no evidence). Order of strength: fresh < unknown < stale.
enum Freshness: Sendable, Equatable, Codable {
    case fresh
    case unknown(since: Double, reason: String)
    case stale(since: Double, reason: String)

    var name: String {
        switch self {
        case .fresh: "fresh"
        case .unknown: "unknown"
        case .stale: "stale"
        }
    }

    var isStale: Bool { if case .stale = self { true } else { false } }

    var since: Double? {
        switch self {
        case .fresh: nil
        case .unknown(let since, _), .stale(let since, _): since
        }
    }

    var reason: String? {
        switch self {
        case .fresh: nil
        case .unknown(_, let reason), .stale(_, let reason): reason
        }
    }

    private var rank: Int {
        switch self {
        case .fresh: 0
        case .unknown: 1
        case .stale: 2
        }
    }

    /// The stronger of the two (stale wins; an earlier verdict of the same strength is kept).
    func worsened(to other: Freshness) -> Freshness { other.rank > rank ? other : self }

    /// The worst verdict of several (fresh for none).
    static func worst(_ all: [Freshness]) -> Freshness { all.reduce(.fresh) { $0.worsened(to: $1) } }

    enum CodingKeys: String, CodingKey { case state, since, reason }

    init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let state = try c.decode(String.self, forKey: .state)
        switch state {
        case "fresh": self = .fresh
        case "unknown":
            self = .unknown(
                since: try c.decode(Double.self, forKey: .since), reason: try c.decode(String.self, forKey: .reason))
        case "stale":
            self = .stale(
                since: try c.decode(Double.self, forKey: .since), reason: try c.decode(String.self, forKey: .reason))
        default:
            throw DecodingError.dataCorruptedError(forKey: .state, in: c, debugDescription: "unknown state \(state)")
        }
    }

    func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(name, forKey: .state)
        try c.encodeIfPresent(since, forKey: .since)
        try c.encodeIfPresent(reason, forKey: .reason)
    }
}

/// One look at the kernel's segment table, as the freshness rules consume it.
struct Observation: Sendable, Equatable {
    enum Kind: Sendable, Equatable {
        /// asmtd was watching without interruption since its previous observation.
        case watch
        /// The first observation of a run: asmtd was not watching before. `previousBoot` and `previousStop` describe
        /// the previous run (nil when unknown, or when it did not stop cleanly).
        case resume(previousBoot: String?, previousStop: Double?)
    }

    var kind: Kind
    /// Unix seconds.
    var time: Double
    var bootID: String
    /// This asmtd's pid: changes it made itself (attaches, restores) are explained.
    var pid: Int32
    /// One of asmtd's own operations (a listing, a job) is attaching segments right now.
    var ownActive: Bool = false
    /// The instance's segments (other namespaces are ignored by the rules).
    var segments: [SegmentEvidence]
}

/// What asmtd tracks for one namespace of one backup: its verdict and the segments it vouches for now.
struct NamespaceTrack: Sendable, Equatable, Codable {
    var name: String
    var nsid: Int
    var freshness: Freshness
    /// The namespace's segments as asmtd last vouched for them; empty once they are gone (a reboot).
    var baseline: [SegmentEvidence]
    /// The boot `baseline` belongs to.
    var bootID: String
    /// The segments when the backup ended (never changes).
    var evidence: [SegmentEvidence]
    /// Unix seconds of `evidence`.
    var observed: Double
}

/// The freshness rules (README, "Warm reboots without a human"), as pure functions: a track starts from the evidence recorded at the end of a
/// backup and is folded over every later observation.
enum FreshnessRules {
    /// How long after asmtd's clean stop a new boot may begin for the segments to count as gone with that reboot
    /// (between the stop and the reboot nobody watched; systemd stops asd before asmtd and starts nothing then).
    static let rebootWindow: Double = 900

    /// The track of a backup just taken by this process, from its end-of-backup evidence.
    /// The evidence must show the segments unattached and last touched by the backup itself, else the backup is
    /// stale from the start.
    /// A directory made by another process (the CLI) is adopted by folding a `.resume` without a previous stop:
    /// it was not watched since.
    static func start(name: String, nsid: Int, evidence: FreshnessEvidence) -> NamespaceTrack {
        let segments = evidence.segments.filter { $0.key.nsid == nsid }
        let time = Double(evidence.observed)
        var track = NamespaceTrack(
            name: name, nsid: nsid, freshness: .fresh, baseline: segments, bootID: evidence.bootID,
            evidence: segments, observed: time)
        if segments.isEmpty {
            track.freshness = .unknown(since: time, reason: "the evidence lists no segment of namespace \(name)")
        } else if let used = segments.first(where: { $0.nattch > 0 }) {
            track.freshness = .stale(
                since: time, reason: "segment \(used.key.hex) was attached (\(used.nattch)) when the backup ended")
        } else if let other = segments.first(where: { $0.lpid != evidence.pid }) {
            track.freshness = .stale(
                since: time,
                reason: "segment \(other.key.hex) was last attached or detached by pid \(other.lpid), not by the backup"
            )
        }
        return track
    }

    /// Folds observations, oldest first.
    static func fold(_ track: NamespaceTrack, _ observations: [Observation]) -> NamespaceTrack {
        observations.reduce(track) { step($0, $1) }
    }

    /// One observation.
    static func step(_ track: NamespaceTrack, _ observation: Observation) -> NamespaceTrack {
        var track = track
        if track.freshness.isStale { return track }
        let now = observation.segments.filter { $0.key.nsid == track.nsid }
        let time = observation.time
        switch observation.kind {
        case .watch where observation.bootID == track.bootID:
            apply(compare(track.baseline, now, observation), to: &track, now: now, time: time, watched: true)
        case .watch, .resume:
            var stoppedCleanlyJustBefore = false
            if case .resume(let previousBoot, let previousStop) = observation.kind, let previousStop,
                previousBoot == track.bootID, time >= previousStop, time - previousStop <= rebootWindow
            {
                stoppedCleanlyJustBefore = true
            }
            let change = compare(track.baseline, now, observation)
            if observation.bootID == track.bootID && change != .vanished {
                // Not watched for a while, same boot: the kernel's fields still tell whether anyone attached.
                apply(change, to: &track, now: now, time: time, watched: false)
            } else {
                // The segments asmtd vouched for are gone while it was not watching: with a reboot (a new boot id),
                // or with a new IPC namespace under the same boot id (a container's reboot), or removed. Fine only
                // right after asmtd's own clean stop, which saw them unchanged.
                if !stoppedCleanlyJustBefore && !(track.baseline.isEmpty && observation.bootID == track.bootID) {
                    track.freshness = track.freshness.worsened(
                        to: .unknown(
                            since: time,
                            reason: "the segments of namespace \(track.name) went away (a reboot, or removed) while "
                                + "asmtd was not watching, without a clean stop of asmtd shortly before"))
                }
                track.baseline = []
                track.bootID = observation.bootID
                apply(compare([], now, observation), to: &track, now: now, time: time, watched: true)
            }
        }
        return track
    }

    /// How the namespace's segments changed between two observations.
    enum Change: Equatable {
        case same
        /// Every segment asmtd vouched for is gone.
        case vanished
        /// Every difference is asmtd's own doing (its attaches, the segments it restored).
        case explained
        /// Another process used, replaced or created segments.
        case used(String)
    }

    static func compare(_ baseline: [SegmentEvidence], _ now: [SegmentEvidence], _ o: Observation) -> Change {
        if baseline == now {
            let foreign = now.contains { $0.nattch > 0 && !(o.ownActive && $0.lpid == o.pid) }
            return foreign ? .used(attachedText(now, o)) : .same
        }
        if now.isEmpty { return .vanished }
        let old = Dictionary(baseline.map { ($0.key, $0) }, uniquingKeysWith: { a, _ in a })
        let own = o.pid
        for segment in now {
            let attachedOK = segment.nattch == 0 || (o.ownActive && segment.lpid == own)
            if let before = old[segment.key], before.sameSegment(as: segment) {
                if segment.lpid == own && attachedOK { continue }
                if before == segment && segment.nattch == 0 { continue }
                if segment.nattch > 0 { return .used(attachedText([segment], o)) }
                return .used(
                    "segment \(segment.key.hex) was attached and detached by another process "
                        + "(last by pid \(segment.lpid), detached at \(segment.dtime))")
            }
            // A new segment object under this key: acceptable only when asmtd created it (a restore).
            if segment.cpid == own && segment.lpid == own && attachedOK { continue }
            if old[segment.key] != nil {
                return .used(
                    "segment \(segment.key.hex) was replaced (shmid \(old[segment.key]!.shmid) → \(segment.shmid), "
                        + "created by pid \(segment.cpid))")
            }
            return .used(
                "segment \(segment.key.hex) was created by another process (pid \(segment.cpid)): "
                    + (baseline.isEmpty ? "a cold start, or a restore by another tool" : "the namespace changed"))
        }
        let present = Set(now.map(\.key))
        for gone in baseline where !present.contains(gone.key) && gone.cpid != own {
            return .used("segment \(gone.key.hex) was removed while others of the namespace remain")
        }
        return .explained
    }

    private static func attachedText(_ segments: [SegmentEvidence], _ o: Observation) -> String {
        let attached =
            segments.first { $0.nattch > 0 && !(o.ownActive && $0.lpid == o.pid) } ?? segments.first { $0.nattch > 0 }!
        return "segment \(attached.key.hex) is attached (\(attached.nattch); last by pid \(attached.lpid))"
    }

    private static func apply(
        _ change: Change, to track: inout NamespaceTrack, now: [SegmentEvidence], time: Double, watched: Bool
    ) {
        switch change {
        case .same:
            break
        case .vanished:
            if !watched && !track.baseline.isEmpty {
                track.freshness = track.freshness.worsened(
                    to: .unknown(
                        since: time,
                        reason: "the segments of namespace \(track.name) were removed while asmtd was not running"))
            }
            track.baseline = []
        case .explained:
            track.baseline = now
        case .used(let what):
            track.freshness = .stale(since: time, reason: what)
            track.baseline = now
        }
    }
}
