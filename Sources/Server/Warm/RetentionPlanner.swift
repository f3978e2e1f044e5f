/// Issue 9 §3 `keep`: which complete backups of an instance to remove after a successful backup (pure).
enum RetentionPlanner {
    struct Candidate: Sendable, Equatable {
        var id: String
        /// Creation time, Unix seconds (the job's, finer than the manifest's whole seconds).
        var created: Double
        var complete: Bool
        /// A job reads or writes it.
        var inUse: Bool
        /// The namespaces it is fresh for.
        var freshNamespaces: Set<String>
    }

    /// Ids to remove, oldest first: complete backups beyond the newest `keep`, never one in use and never the newest
    /// fresh one of any namespace. `keep` 0 keeps all. Incomplete directories are neither counted nor removed.
    static func plan(_ backups: [Candidate], keep: Int) -> [String] {
        guard keep > 0 else { return [] }
        let complete = backups.filter(\.complete).sorted { ($0.created, $0.id) > ($1.created, $1.id) }
        var protected: Set<String> = []
        var seen: Set<String> = []
        for backup in complete {
            let newlyCovered = backup.freshNamespaces.subtracting(seen)
            if !newlyCovered.isEmpty { protected.insert(backup.id) }
            seen.formUnion(backup.freshNamespaces)
        }
        return complete.dropFirst(keep).filter { !$0.inUse && !protected.contains($0.id) }.map(\.id).reversed()
    }
}
