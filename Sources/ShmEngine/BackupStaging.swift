import Glibc

/// Leftovers of an interrupted backup in a backup directory, and their removal.
///
/// While a backup runs, its files carry the staging suffix `.partial` (`<key>.dat.partial`,
/// `<key>.dat.gz.partial`): asmt reads only names of exactly 8 hex digits plus `.dat` or `.dat.gz`, and neither does
/// asmtd. Before renaming anything the publisher writes the manifest under `asmtd-manifest.json.partial`: it lists
/// every file about to get its real name, so it tells a later cleanup exactly which real names are the interrupted
/// backup's. A kill during the renames leaves either no base file, or (after the last rename) every file in place.
enum BackupStaging {
    static let suffix = ".partial"
    static let pendingManifest = BackupManifest.fileName + suffix

    /// What to do with a directory's leftovers; pure.
    struct Decision: Equatable {
        /// Every file the pending manifest lists is in place: rename it to the manifest (the backup was published
        /// but for that last rename).
        var completeManifest = false
        /// Names to remove, in this order (base files first, so that an interrupted cleanup never leaves a base
        /// file without the rest).
        var remove: [String] = []
    }

    /// `names`: the directory's entries. `pending`: the decoded pending manifest (nil when absent or unreadable).
    static func decide(names: [String], pending: BackupManifest?) -> Decision {
        let present = Set(names)
        var decision = Decision()
        let staging = names.filter { $0.hasSuffix(suffix) && $0 != pendingManifest }
        guard present.contains(pendingManifest) else {
            decision.remove = staging
            return decision
        }
        let listed = (pending?.segments ?? []).filter { SegmentKey.parse(fileName: $0.file) != nil }
        let complete =
            pending != nil && !listed.isEmpty && listed.allSatisfy { present.contains($0.file) }
            && !present.contains(BackupManifest.fileName)
        if complete {
            decision.completeManifest = true
            decision.remove = staging
            return decision
        }
        if !present.contains(BackupManifest.fileName) {
            let bases = listed.filter { $0.kind == .base }.map(\.file)
            let others = listed.filter { $0.kind != .base }.map(\.file)
            decision.remove = (bases + others).filter { present.contains($0) }
        }
        decision.remove += staging + [pendingManifest]
        return decision
    }

    /// Applies `decide` to `directory`, which the caller holds locked (`DirectoryLock.exclusive`). Returns the names
    /// removed.
    static func clean(directory: String) throws(EngineError) -> [String] {
        let names = try FileIO.list(directory)
        var pending: BackupManifest?
        if names.contains(pendingManifest) {
            pending = try? BackupManifest.load(directory: directory, fileName: pendingManifest)
        }
        let decision = decide(names: names, pending: pending)
        guard decision.completeManifest || !decision.remove.isEmpty else { return [] }
        var removed: [String] = []
        for name in decision.remove {
            let path = directory + "/" + name
            if unlink(path) == 0 {
                removed.append(name)
            } else if errno != ENOENT {
                throw EngineError(.io, "cannot remove \(path): \(errnoText())")
            }
        }
        if decision.completeManifest {
            try FileIO.fsyncDirectory(directory)
            let from = directory + "/" + pendingManifest
            let to = directory + "/" + BackupManifest.fileName
            guard rename(from, to) == 0 else {
                throw EngineError(.io, "cannot rename \(from) to \(to): \(errnoText())")
            }
        }
        try FileIO.fsyncDirectory(directory)
        return removed
    }
}
