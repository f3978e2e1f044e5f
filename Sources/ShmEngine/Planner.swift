/// Pure planning logic: segment descriptions and directory listings in, a plan or an EngineError out.
enum RequestValidation {
    static func check(
        instance: Int, namespaces: [String], directory: String, threads: Int
    ) throws(EngineError)
        -> [String]
    {
        guard (0...15).contains(instance) else {
            throw EngineError(.invalidRequest, "instance \(instance) is out of range 0..15")
        }
        guard (0...1024).contains(threads) else {
            throw EngineError(.invalidRequest, "threads \(threads) is out of range 0..1024 (0 = one per core)")
        }
        guard !directory.isEmpty else { throw EngineError(.invalidRequest, "no directory given") }
        var names: [String] = []
        for name in namespaces {
            guard !name.isEmpty else { throw EngineError(.invalidRequest, "empty namespace name") }
            guard name.utf8.count <= Layout.nameLength, !name.utf8.contains(0) else {
                throw EngineError(.invalidRequest, "invalid namespace name \"\(name)\" (1 to 32 bytes, no NUL)")
            }
            if !names.contains(name) { names.append(name) }
        }
        guard !names.isEmpty else { throw EngineError(.invalidRequest, "no namespace given") }
        return names
    }
}

/// Namespace names are compared byte for byte, like asmt (not by Unicode equivalence).
func sameName(_ stored: String?, _ name: String) -> Bool {
    guard let stored else { return false }
    return stored.utf8.elementsEqual(name.utf8)
}

enum StageCheck {
    /// nil when `stages` is exactly 0..<count; else the first missing stage number.
    static func firstMissing(_ stages: [Int]) -> Int? {
        let sorted = stages.sorted()
        for (expected, stage) in sorted.enumerated() where stage != expected { return expected }
        return nil
    }
}

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
            let chosen = try checkStructure(name: name, base: base, group: group)
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

    /// asmt's candidate analysis and sanity rules; returns the segments to copy in file order.
    static func checkStructure(
        name: String, base: ScannedSegment, group: [ScannedSegment]
    ) throws(EngineError)
        -> [ScannedSegment]
    {
        let key = base.live.key
        guard base.live.size >= UInt64(Layout.baseMinimumSize) else {
            throw EngineError(
                .invalidSegments, "base segment \(key.hex) is \(base.live.size) bytes, less than 2156")
        }
        let version = base.facts.version ?? 0
        guard Layout.acceptedBaseVersions.contains(version) else {
            throw EngineError(.invalidSegments, "base segment \(key.hex) has unsupported version \(version) (10..12)")
        }
        let shutdown = base.facts.shutdownStatus ?? 0
        guard shutdown == 1 else {
            throw EngineError(
                .uncleanShutdown,
                "namespace \(name) was not shut down cleanly (base \(key.hex) shutdown status \(shutdown))")
        }
        let instance = key.instance
        let nsid = key.nsid
        guard let treex = group.first(where: { $0.live.key.kind == .treex }) else {
            let missing = SegmentKey(kind: .treex, instance: instance, nsid: nsid)
            throw EngineError(.invalidSegments, "namespace \(name): missing treex segment \(missing.hex)")
        }
        let stages = group.filter { $0.live.key.kind == .primaryStage }.sorted { $0.live.key < $1.live.key }
        if let missing = StageCheck.firstMissing(stages.map(\.live.key.stage)) ?? (stages.isEmpty ? 0 : nil) {
            let missingKey = SegmentKey(kind: .primaryStage, instance: instance, nsid: nsid, stage: missing)
            throw EngineError(.invalidSegments, "namespace \(name): missing primary stage segment \(missingKey.hex)")
        }
        let arenas = Int(base.facts.arenas ?? 0)
        guard arenas == stages.count else {
            throw EngineError(
                .invalidSegments,
                "namespace \(name): base \(key.hex) counts \(arenas) primary stages, found \(stages.count)")
        }
        var chosen = [base, treex] + stages
        if let meta = group.first(where: { $0.live.key.kind == .meta }) {
            let secondary = group.filter { $0.live.key.kind == .secondaryStage }.sorted { $0.live.key < $1.live.key }
            if let missing = StageCheck.firstMissing(secondary.map(\.live.key.stage))
                ?? (secondary.isEmpty ? 0 : nil)
            {
                let missingKey = SegmentKey(kind: .secondaryStage, instance: instance, nsid: nsid, stage: missing)
                throw EngineError(
                    .invalidSegments, "namespace \(name): missing secondary stage segment \(missingKey.hex)")
            }
            guard meta.live.size >= UInt64(Layout.metaMinimumSize) else {
                throw EngineError(.invalidSegments, "meta segment \(meta.live.key.hex) is smaller than 24 bytes")
            }
            let metaArenas = Int(meta.facts.arenas ?? 0)
            guard metaArenas == secondary.count else {
                throw EngineError(
                    .invalidSegments,
                    "namespace \(name): meta \(meta.live.key.hex) counts \(metaArenas) secondary stages, "
                        + "found \(secondary.count)")
            }
            chosen += [meta] + secondary
        }
        chosen += group.filter { $0.live.key.kind == .dataStage }.sorted { $0.live.key < $1.live.key }
        return chosen
    }
}

/// A file of a backup directory as the restore planner sees it.
struct BackupFile: Sendable {
    var name: String
    var key: SegmentKey
    var compressed: Bool
    var fileSize: UInt64
    var uid: UInt32
    var gid: UInt32
    var mode: UInt32
    /// For compressed files: the decoded header, or why it is unusable.
    var header: Result<ASMTHeader, ASMTHeader.DecodeError>?
    /// Facts read from the (decompressed) content; nil when they could not be read.
    var facts: SegmentFacts?
}

enum RestorePlanner {
    static func plan(
        _ request: RestoreRequest, files: [BackupFile], live: [LiveSegment], manifest: BackupManifest?
    ) throws(EngineError) -> RestorePlan {
        let names = try RequestValidation.check(
            instance: request.instance, namespaces: request.namespaces, directory: request.directory,
            threads: request.threads)
        let instance = request.instance
        let dir = request.directory
        let mine = files.filter { $0.key.instance == instance }
        guard !mine.isEmpty else {
            throw EngineError(.namespaceNotFound, "no segment files of instance \(instance) in \(dir)")
        }
        var namespaces: [PlannedNamespace] = []
        var planned: [PlannedSegment] = []
        var warnings: [String] = []
        for name in names {
            let bases = mine.filter { $0.key.kind == .base && !$0.compressed && sameName($0.facts?.namespace, name) }
            guard let base = bases.first else {
                if let gz = mine.first(where: { ($0.key.kind == .base || $0.key.kind == .meta) && $0.compressed }) {
                    throw EngineError(
                        .invalidBackup, "file \(gz.name) is compressed: base and meta files must be plain")
                }
                throw EngineError(
                    .namespaceNotFound, "no base file of namespace \(name) for instance \(instance) in \(dir)")
            }
            guard bases.count == 1 else {
                throw EngineError(
                    .invalidBackup,
                    "several base files for namespace \(name): "
                        + bases.map(\.name).joined(separator: ", "))
            }
            let nsid = base.key.nsid
            var group: [BackupFile] = []
            for file in mine {
                if file.key.kind == .dataStage {
                    if sameName(file.facts?.namespace, name) {
                        group.append(file)
                    } else if file.facts == nil && file.key.nsid == nsid {
                        throw EngineError(.invalidBackup, "cannot read data stage file \(file.name)")
                    }
                } else if file.key.nsid == nsid {
                    group.append(file)
                }
            }
            var seen: [SegmentKey: String] = [:]
            for file in group {
                if let other = seen[file.key] {
                    throw EngineError(.invalidBackup, "both \(other) and \(file.name) exist in \(dir)")
                }
                seen[file.key] = file.name
                if file.compressed && !file.key.kind.compressible {
                    throw EngineError(
                        .invalidBackup, "file \(file.name) is compressed: base and meta files must be plain")
                }
                if case .failure(let error)? = file.header {
                    throw EngineError(.invalidBackup, "file \(file.name) has a bad ASMT header (\(error))")
                }
            }
            let chosen = try checkStructure(name: name, base: base, group: group, dir: dir)
            let conflicts = live.filter {
                $0.key.instance == instance && ($0.key.nsid == nsid || seen[$0.key] != nil)
            }
            if let first = conflicts.first {
                throw EngineError(
                    .segmentsExist,
                    "segment \(first.key.hex) (shmid \(first.shmid)) already exists; "
                        + "\(conflicts.count) segment(s) of instance \(instance) nsid \(nsid) must be removed first")
            }
            var segments: [PlannedSegment] = []
            for file in chosen {
                let size: UInt64
                if file.compressed {
                    guard case .success(let header)? = file.header else {
                        throw EngineError(.invalidBackup, "file \(file.name) has no ASMT header")
                    }
                    guard file.fileSize >= UInt64(ASMTHeader.size + 10 + 2 + GzipFraming.trailerSize) else {
                        throw EngineError(.invalidBackup, "file \(file.name) is truncated (\(file.fileSize) bytes)")
                    }
                    size = header.segmentSize
                    // Deflate cannot expand more than 1032:1; a larger stated size is a damaged header.
                    let limit = (file.fileSize - UInt64(ASMTHeader.size)).multipliedReportingOverflow(by: 1100)
                    guard limit.overflow || size <= limit.partialValue + 4096 else {
                        throw EngineError(
                            .invalidBackup,
                            "file \(file.name) states a segment of \(size) bytes, more than its data can hold")
                    }
                } else {
                    size = file.fileSize
                }
                guard size > 0 else { throw EngineError(.invalidBackup, "file \(file.name) holds an empty segment") }
                segments.append(
                    PlannedSegment(
                        key: file.key, kind: file.key.kind, namespace: name, size: size, file: file.name,
                        compressed: file.compressed, uid: file.uid, gid: file.gid, mode: file.mode & 0o777,
                        fileSize: file.fileSize))
            }
            if let manifest {
                warnings += try crossCheck(&segments, manifest: manifest, name: name, dir: dir)
            }
            namespaces.append(PlannedNamespace(name: name, nsid: nsid))
            planned += segments
        }
        return RestorePlan(
            instance: instance, directory: dir, namespaces: namespaces, segments: planned,
            totalBytes: planned.reduce(0) { $0 + $1.size }, warnings: warnings)
    }

    static func checkStructure(
        name: String, base: BackupFile, group: [BackupFile], dir: String
    ) throws(EngineError)
        -> [BackupFile]
    {
        let instance = base.key.instance
        let nsid = base.key.nsid
        guard base.fileSize >= UInt64(Layout.baseMinimumSize), let facts = base.facts else {
            throw EngineError(.invalidBackup, "base file \(base.name) is \(base.fileSize) bytes, less than 2156")
        }
        let version = facts.version ?? 0
        guard Layout.acceptedBaseVersions.contains(version) else {
            throw EngineError(.invalidBackup, "base file \(base.name) has unsupported version \(version) (10..12)")
        }
        let shutdown = facts.shutdownStatus ?? 0
        guard shutdown == 1 else {
            throw EngineError(
                .uncleanShutdown, "base file \(base.name) records an unclean shutdown (status \(shutdown))")
        }
        guard let treex = group.first(where: { $0.key.kind == .treex }) else {
            let missing = SegmentKey(kind: .treex, instance: instance, nsid: nsid)
            throw EngineError(
                .invalidBackup, "namespace \(name): missing treex file \(missing.fileName(compressed: false))")
        }
        let stages = group.filter { $0.key.kind == .primaryStage }.sorted { $0.key < $1.key }
        if let missing = StageCheck.firstMissing(stages.map(\.key.stage)) ?? (stages.isEmpty ? 0 : nil) {
            let key = SegmentKey(kind: .primaryStage, instance: instance, nsid: nsid, stage: missing)
            throw EngineError(.invalidBackup, "namespace \(name): missing primary stage file for \(key.hex)")
        }
        let arenas = Int(facts.arenas ?? 0)
        guard arenas == stages.count else {
            throw EngineError(
                .invalidBackup, "namespace \(name): base file counts \(arenas) primary stages, found \(stages.count)")
        }
        var chosen = [base, treex] + stages
        if let meta = group.first(where: { $0.key.kind == .meta }) {
            let secondary = group.filter { $0.key.kind == .secondaryStage }.sorted { $0.key < $1.key }
            if let missing = StageCheck.firstMissing(secondary.map(\.key.stage)) ?? (secondary.isEmpty ? 0 : nil) {
                let key = SegmentKey(kind: .secondaryStage, instance: instance, nsid: nsid, stage: missing)
                throw EngineError(.invalidBackup, "namespace \(name): missing secondary stage file for \(key.hex)")
            }
            guard meta.fileSize >= UInt64(Layout.metaMinimumSize) else {
                throw EngineError(.invalidBackup, "meta file \(meta.name) is smaller than 24 bytes")
            }
            let metaArenas = Int(meta.facts?.arenas ?? 0)
            guard metaArenas == secondary.count else {
                throw EngineError(
                    .invalidBackup,
                    "namespace \(name): meta file counts \(metaArenas) secondary stages, found \(secondary.count)")
            }
            chosen += [meta] + secondary
        }
        chosen += group.filter { $0.key.kind == .dataStage }.sorted { $0.key < $1.key }
        return chosen
    }

    /// Checks the files against the manifest, which is authoritative for owner, group and mode: a file that
    /// disagrees is reported in the returned warnings, not used.
    static func crossCheck(
        _ segments: inout [PlannedSegment], manifest: BackupManifest, name: String, dir: String
    )
        throws(EngineError) -> [String]
    {
        var warnings: [String] = []
        guard manifest.namespaces.contains(where: { $0.name == name }) else {
            throw EngineError(.invalidBackup, "the manifest in \(dir) does not list namespace \(name)")
        }
        let recorded = manifest.segments.filter { $0.namespace == name }
        for index in segments.indices {
            let segment = segments[index]
            guard let entry = recorded.first(where: { $0.key == segment.key }) else {
                throw EngineError(.invalidBackup, "file \(segment.file) is not in the manifest of \(dir)")
            }
            guard entry.file == segment.file, entry.size == segment.size, entry.compressed == segment.compressed,
                entry.fileSize == segment.fileSize
            else {
                throw EngineError(
                    .invalidBackup,
                    "file \(segment.file) does not match the manifest (size \(segment.size), "
                        + "file size \(segment.fileSize ?? 0); recorded \(entry.size), \(entry.fileSize))")
            }
            segments[index].crc32 = entry.crc32
            let recorded = (entry.uid, entry.gid, entry.mode & 0o777)
            if (segment.uid, segment.gid, segment.mode) != recorded {
                warnings.append(
                    "file \(segment.file) is owned \(segment.uid):\(segment.gid) mode \(octal(segment.mode)); "
                        + "the segment gets \(recorded.0):\(recorded.1) mode \(octal(recorded.2)) from the manifest")
                segments[index].uid = recorded.0
                segments[index].gid = recorded.1
                segments[index].mode = recorded.2
            }
            if let chunks = entry.chunks {
                guard segment.compressed, chunks.fits(size: segment.size, fileSize: entry.fileSize) else {
                    throw EngineError(
                        .invalidBackup, "the chunk index of \(segment.file) in the manifest of \(dir) is not valid")
                }
                segments[index].chunks = chunks
            }
        }
        for entry in recorded where !segments.contains(where: { $0.key == entry.key }) {
            throw EngineError(.invalidBackup, "file \(entry.file) listed in the manifest is missing from \(dir)")
        }
        return warnings
    }

    static func octal(_ mode: UInt32) -> String { "0" + String(mode, radix: 8) }
}
