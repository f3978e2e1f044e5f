/// What asd's segments of one namespace look like now, from the kernel's table and the base's first bytes.
enum ServerState: String, Sendable, Codable, Equatable {
    /// A segment is attached.
    case running
    /// Segments exist, none attached, the base says asd shut down cleanly.
    case stopped
    /// Segments exist, none attached, the base is missing or does not say clean.
    case unclean
    /// No segments.
    case absent

    /// The instance's state from its namespaces' (running wins, then unclean, then stopped; absent when all are).
    static func combined(_ states: [ServerState]) -> ServerState {
        if states.contains(.running) { return .running }
        if states.contains(.unclean) { return .unclean }
        if states.contains(.stopped) { return .stopped }
        return .absent
    }

    /// From a namespace's live segments: whether any is attached, and the base's clean flag (nil: no base).
    static func of(segments: Int, attached: Bool, baseClean: Bool?) -> ServerState {
        if segments == 0 { return .absent }
        if attached { return .running }
        return baseClean == true ? .stopped : .unclean
    }
}

/// The newest complete backup holding a namespace, as the readiness rule needs it.
struct CoveringBackup: Sendable, Equatable {
    var id: String
    var freshness: Freshness
    /// Segment bytes of the namespace in that backup.
    var bytes: UInt64
}

/// Issue 9 §2: would a reboot now bring the namespace back warm, and if not, why (pure).
enum WarmReadiness {
    struct Answer: Sendable, Equatable {
        var ready: Bool
        var reasons: [String]
    }

    static func evaluate(
        namespace: String, server: ServerState, backup: CoveringBackup?, backupOnStop: Bool
    ) -> Answer {
        let fresh = backup?.freshness == .fresh
        var backupProblem: String {
            guard let backup else { return "no complete backup holds namespace \(namespace)" }
            switch backup.freshness {
            case .fresh: return ""
            case .stale(_, let reason): return "the newest backup \(backup.id) is stale: \(reason)"
            case .unknown(_, let reason): return "asmtd cannot vouch for the newest backup \(backup.id): \(reason)"
            }
        }
        switch server {
        case .running:
            if backupOnStop { return Answer(ready: true, reasons: []) }
            return Answer(
                ready: false,
                reasons: [
                    "asd is running (a segment of namespace \(namespace) is attached): stop it cleanly and back up, "
                        + "or enable auto.backup-on-stop"
                ])
        case .unclean:
            return Answer(
                ready: false,
                reasons: [
                    "the segments of namespace \(namespace) are not from a clean shutdown of asd: it will cold-start"
                ])
        case .stopped:
            if fresh || backupOnStop { return Answer(ready: true, reasons: []) }
            return Answer(ready: false, reasons: [backupProblem, "auto.backup-on-stop is off"])
        case .absent:
            if fresh { return Answer(ready: true, reasons: []) }
            return Answer(ready: false, reasons: ["no segments of namespace \(namespace) exist", backupProblem])
        }
    }

    /// Assumed restore speed until a restore has been measured (bytes per second; deliberately low).
    static let defaultRestoreBytesPerSecond = 200.0 * 1_000_000

    /// Seconds a restore of `bytes` would take at the measured speed (or the default), rounded up.
    static func estimatedRestoreSeconds(bytes: UInt64, measuredBytesPerSecond: Double?) -> Int {
        let speed = measuredBytesPerSecond.flatMap { $0 > 0 ? $0 : nil } ?? defaultRestoreBytesPerSecond
        return Int((Double(bytes) / speed).rounded(.up))
    }
}
