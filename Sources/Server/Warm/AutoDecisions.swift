/// The automatic mode's two decisions, as pure functions of what asmtd observed.
enum AutoDecisions {
    /// One namespace as the decisions see it.
    struct NamespaceView: Sendable, Equatable {
        var name: String
        var server: ServerState
        /// The newest complete backup holding the namespace.
        var backup: CoveringBackup?
    }

    enum StartRestore: Sendable, Equatable {
        case restore(backup: String, namespaces: [String])
        case skip(reason: String)
    }

    /// At start, before READY: restore only a fresh backup, and only when no segment of the namespaces exists.
    /// One backup must hold every namespace (the newest such; never an older one, which can only be staler).
    static func startRestore(
        _ namespaces: [NamespaceView], newestHoldingAll: (id: String, freshness: [String: Freshness])?
    )
        -> StartRestore
    {
        let present = namespaces.filter { $0.server != .absent }.map(\.name)
        if !present.isEmpty {
            return .skip(reason: "segments of namespace(s) \(present.joined(separator: ", ")) exist; asd will use them")
        }
        let names = namespaces.map(\.name)
        guard let backup = newestHoldingAll else {
            return .skip(reason: "no complete backup holds \(names.joined(separator: ", ")); asd will cold-start")
        }
        for name in names {
            let freshness = backup.freshness[name] ?? .unknown(since: 0, reason: "no evidence")
            if freshness != .fresh {
                return .skip(
                    reason: "backup \(backup.id) is \(freshness.name) for namespace \(name)"
                        + (freshness.reason.map { ": \($0)" } ?? "") + "; asd will cold-start")
            }
        }
        return .restore(backup: backup.id, namespaces: names)
    }

    struct StopBackup: Sendable, Equatable {
        /// Namespaces to back up together (empty: no backup).
        var namespaces: [String]
        /// Why each other namespace is skipped.
        var skipped: [String: String]
    }

    /// At stop, after the running job ended: back up the namespaces whose segments are clean and unattached and not
    /// covered by a fresh backup.
    static func stopBackup(_ namespaces: [NamespaceView]) -> StopBackup {
        var result = StopBackup(namespaces: [], skipped: [:])
        for ns in namespaces {
            switch ns.server {
            case .running:
                result.skipped[ns.name] = "asd is running (a segment is attached)"
            case .unclean:
                result.skipped[ns.name] = "the segments are not from a clean shutdown"
            case .absent:
                result.skipped[ns.name] = "no segments"
            case .stopped:
                if let backup = ns.backup, backup.freshness == .fresh {
                    result.skipped[ns.name] = "fresh backup \(backup.id) covers it"
                } else {
                    result.namespaces.append(ns.name)
                }
            }
        }
        return result
    }
}
