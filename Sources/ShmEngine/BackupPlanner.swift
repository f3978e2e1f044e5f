/// Pure planning of a backup: segment descriptions and directory listings in, a plan or an EngineError out.
enum BackupPlanner {
    static func plan(
        _ request: BackupRequest, segments: [ScannedSegment], existingFiles: [String], manifestPresent: Bool
    ) throws(EngineError) -> BackupPlan {
        let names = try RequestValidation.check(
            instance: request.instance, namespaces: request.namespaces, directory: request.directory,
            threads: request.threads)
        let instance = request.instance
        let mine = segments.filter { $0.live.key.instance == instance }
        let existing = existingFiles.compactMap { name in SegmentKey.parse(fileName: name).map { (name, $0.key) } }
            .filter { $0.1.instance == instance }
        if manifestPresent {
            throw EngineError(
                .filesExist, "\(request.directory) already holds a completed backup (\(BackupManifest.fileName))")
        }
        // A base or data segment whose name cannot be read might belong to any namespace: never skip it silently.
        if let bad = mine.first(where: { $0.unreadable != nil && [.base, .dataStage].contains($0.live.key.kind) }) {
            throw EngineError(.system, bad.unreadable ?? "")
        }
        var namespaces: [PlannedNamespace] = []
        var planned: [PlannedSegment] = []
        for name in names {
            let bases = mine.filter { $0.live.key.kind == .base && sameName($0.facts.namespace, name) }
            guard let base = bases.first else {
                throw EngineError(
                    .namespaceNotFound, "no base segment of namespace \(name) on instance \(instance)")
            }
            guard bases.count == 1 else {
                let keys = bases.map(\.live.key.hex).joined(separator: ", ")
                throw EngineError(.invalidSegments, "namespace \(name) has several base segments: \(keys)")
            }
            let nsid = base.live.key.nsid
            let group = mine.filter {
                $0.live.key.kind == .dataStage ? sameName($0.facts.namespace, name) : $0.live.key.nsid == nsid
            }
            if let bad = group.first(where: { $0.unreadable != nil }) {
                throw EngineError(.system, bad.unreadable ?? "")
            }
            if let attached = group.first(where: { $0.live.attachCount > 0 }) {
                throw EngineError(
                    .serverRunning,
                    "segment \(attached.live.key.hex) of namespace \(name) is attached "
                        + "(\(attached.live.attachCount) attachments): the server is running")
            }
            let chosen = try NamespaceRules.choose(name, base: base, group: group, wording: .segments) {
                CandidateSegment(key: $0.live.key, size: $0.live.size, facts: $0.facts)
            }
            for segment in chosen {
                for compressed in [false, true] {
                    let file = segment.live.key.fileName(compressed: compressed)
                    if existingFiles.contains(file) {
                        throw EngineError(.filesExist, "file \(file) already exists in \(request.directory)")
                    }
                }
            }
            if let clash = existing.first(where: { $0.1.nsid == nsid }) {
                throw EngineError(
                    .filesExist,
                    "file \(clash.0) of instance \(instance) nsid \(nsid) already exists in \(request.directory)")
            }
            namespaces.append(PlannedNamespace(name: name, nsid: nsid))
            for segment in chosen {
                let key = segment.live.key
                let compressed = request.compress && key.kind.compressible
                planned.append(
                    PlannedSegment(
                        key: key, kind: key.kind, namespace: name, size: segment.live.size,
                        file: key.fileName(compressed: compressed), compressed: compressed, uid: segment.live.uid,
                        gid: segment.live.gid, mode: segment.live.mode & 0o777))
            }
        }
        return BackupPlan(
            instance: instance, directory: request.directory, namespaces: namespaces, segments: planned,
            totalBytes: planned.reduce(0) { $0 + $1.size })
    }
}
