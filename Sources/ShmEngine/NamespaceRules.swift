/// One segment of a namespace as asmt's rules see it, whether it is a live segment or a file of a backup.
struct CandidateSegment: Sendable, Equatable {
    var key: SegmentKey
    /// The segment's size (a live segment, a plain file); for a compressed file, the file's size.
    var size: UInt64
    /// What the first bytes say; nil when they could not be read.
    var facts: SegmentFacts?
}

/// A rule of asmt's candidate analysis that a namespace breaks; the planners word it for segments or for files.
enum RuleViolation: Error, Equatable {
    /// The base is smaller than 2156 bytes, or its first bytes could not be read.
    case baseTooSmall(size: UInt64)
    /// The base version is outside 10..12.
    case unsupportedVersion(UInt32)
    /// The base's shutdown status is not 1.
    case uncleanShutdown(status: UInt32)
    /// No treex, or a hole in the primary or secondary stages: the first key missing.
    case missing(SegmentKey)
    /// The base's n_arenas is not the number of primary stages.
    case primaryCount(counted: Int, found: Int)
    /// The meta is smaller than 24 bytes.
    case metaTooSmall(meta: SegmentKey)
    /// The meta's n_arenas is not the number of secondary stages.
    case secondaryCount(meta: SegmentKey, counted: Int, found: Int)
}

extension RuleViolation {
    /// How a planner names what it checks: live segments by key, the files of a backup by name.
    enum Wording {
        case segments
        case files([SegmentKey: String])
    }

    /// The error a backup (`.segments`) or a restore (`.files`) reports for this violation of namespace `name`.
    func error(namespace name: String, base: SegmentKey, wording: Wording) -> EngineError {
        let files: [SegmentKey: String]?
        if case .files(let names) = wording { files = names } else { files = nil }
        let code: EngineError.Code = files == nil ? .invalidSegments : .invalidBackup
        /// "base segment 0xae…" or "base file ae….dat".
        func named(_ key: SegmentKey) -> String {
            guard let files else { return "\(key.kind.words) segment \(key.hex)" }
            return "\(key.kind.words) file \(files[key] ?? key.fileName(compressed: false))"
        }
        switch self {
        case .baseTooSmall(let size):
            return EngineError(code, "\(named(base)) is \(size) bytes, less than 2156")
        case .unsupportedVersion(let version):
            return EngineError(code, "\(named(base)) has unsupported version \(version) (10..12)")
        case .uncleanShutdown(let status) where files == nil:
            return EngineError(
                .uncleanShutdown,
                "namespace \(name) was not shut down cleanly (base \(base.hex) shutdown status \(status))")
        case .uncleanShutdown(let status):
            return EngineError(.uncleanShutdown, "\(named(base)) records an unclean shutdown (status \(status))")
        case .missing(let key) where files == nil || key.kind == .treex:
            return EngineError(code, "namespace \(name): missing \(named(key))")
        case .missing(let key):
            return EngineError(code, "namespace \(name): missing \(key.kind.words) file for \(key.hex)")
        case .primaryCount(let counted, let found):
            let counter = files == nil ? "base \(base.hex)" : "base file"
            return EngineError(code, "namespace \(name): \(counter) counts \(counted) primary stages, found \(found)")
        case .metaTooSmall(let meta):
            return EngineError(code, "\(named(meta)) is smaller than 24 bytes")
        case .secondaryCount(let meta, let counted, let found):
            let counter = files == nil ? "meta \(meta.hex)" : "meta file"
            return EngineError(
                code, "namespace \(name): \(counter) counts \(counted) secondary stages, found \(found)")
        }
    }
}

/// asmt's candidate analysis and sanity rules (asmt-format.md §3), the same for a backup and a restore.
enum NamespaceRules {
    /// Checks the namespace of `base`, whose `group` holds every candidate of its instance and nsid, plus the data
    /// stages bearing its name. Returns the candidates to copy in file order: base, treex, primary stages, then
    /// meta and secondary stages (only when there is a meta), then data stages.
    static func check(base: CandidateSegment, group: [CandidateSegment]) -> Result<[CandidateSegment], RuleViolation> {
        let key = base.key
        guard base.size >= UInt64(Layout.baseMinimumSize), let facts = base.facts else {
            return .failure(.baseTooSmall(size: base.size))
        }
        let version = facts.version ?? 0
        guard Layout.acceptedBaseVersions.contains(version) else { return .failure(.unsupportedVersion(version)) }
        let shutdown = facts.shutdownStatus ?? 0
        guard shutdown == 1 else { return .failure(.uncleanShutdown(status: shutdown)) }
        guard let treex = group.first(where: { $0.key.kind == .treex }) else {
            return .failure(.missing(SegmentKey(kind: .treex, instance: key.instance, nsid: key.nsid)))
        }
        let stages = group.filter { $0.key.kind == .primaryStage }.sorted { $0.key < $1.key }
        if let missing = firstMissing(stages, of: .primaryStage, base: key) { return .failure(.missing(missing)) }
        let arenas = Int(facts.arenas ?? 0)
        guard arenas == stages.count else { return .failure(.primaryCount(counted: arenas, found: stages.count)) }
        var chosen = [base, treex] + stages
        if let meta = group.first(where: { $0.key.kind == .meta }) {
            let secondary = group.filter { $0.key.kind == .secondaryStage }.sorted { $0.key < $1.key }
            if let missing = firstMissing(secondary, of: .secondaryStage, base: key) {
                return .failure(.missing(missing))
            }
            guard meta.size >= UInt64(Layout.metaMinimumSize) else { return .failure(.metaTooSmall(meta: meta.key)) }
            let metaArenas = Int(meta.facts?.arenas ?? 0)
            guard metaArenas == secondary.count else {
                return .failure(.secondaryCount(meta: meta.key, counted: metaArenas, found: secondary.count))
            }
            chosen += [meta] + secondary
        }
        chosen += group.filter { $0.key.kind == .dataStage }.sorted { $0.key < $1.key }
        return .success(chosen)
    }

    /// `check` for a planner: its own values in, those to copy out in file order, or the violation worded for it.
    static func choose<Member>(
        _ name: String, base: Member, group: [Member], wording: RuleViolation.Wording,
        _ candidate: (Member) -> CandidateSegment
    ) throws(EngineError) -> [Member] {
        let baseKey = candidate(base).key
        switch check(base: candidate(base), group: group.map(candidate)) {
        case .success(let chosen):
            let byKey = Dictionary(([base] + group).map { (candidate($0).key, $0) }, uniquingKeysWith: { a, _ in a })
            return chosen.compactMap { byKey[$0.key] }
        case .failure(let violation):
            throw violation.error(namespace: name, base: baseKey, wording: wording)
        }
    }

    /// The key of the first stage missing from `stages` (sorted), which must be exactly 0..<count and not empty.
    static func firstMissing(_ stages: [CandidateSegment], of kind: SegmentKind, base: SegmentKey) -> SegmentKey? {
        let missing = firstMissing(stages.map(\.key.stage)) ?? (stages.isEmpty ? 0 : nil)
        return missing.map { SegmentKey(kind: kind, instance: base.instance, nsid: base.nsid, stage: $0) }
    }

    /// nil when `stages` is exactly 0..<count; else the first missing stage number.
    static func firstMissing(_ stages: [Int]) -> Int? {
        for (expected, stage) in stages.sorted().enumerated() where stage != expected { return expected }
        return nil
    }
}

/// Namespace names are compared byte for byte, like asmt (not by Unicode equivalence).
package func sameName(_ stored: String?, _ name: String) -> Bool {
    guard let stored else { return false }
    return stored.utf8.elementsEqual(name.utf8)
}

extension SegmentKind {
    /// How messages name a segment of this kind ("primary stage").
    var words: String {
        switch self {
        case .base: "base"
        case .treex: "treex"
        case .primaryStage: "primary stage"
        case .meta: "meta"
        case .secondaryStage: "secondary stage"
        case .dataStage: "data stage"
        }
    }
}
