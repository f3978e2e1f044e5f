/// A file of a backup directory as the restore planner sees it.
struct BackupFile: Sendable {
    var name: String
    var compressed: Bool
    /// Its key, the file's size and the facts read from its (decompressed) content, nil when they could not be read.
    var candidate: CandidateSegment
    /// Owner, group and permission bits of the file.
    var owner: (uid: UInt32, gid: UInt32, mode: UInt32)
    /// For compressed files: the decoded header, or why it is unusable.
    var header: Result<ASMTHeader, ASMTHeader.DecodeError>?

    var key: SegmentKey { candidate.key }
    var fileSize: UInt64 { candidate.size }
    var facts: SegmentFacts? { candidate.facts }
}

/// Pure planning of a restore: backup files, live segments and the manifest in, a plan or an EngineError out.
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
            let names = Dictionary(group.map { ($0.key, $0.name) }, uniquingKeysWith: { first, _ in first })
            let chosen = try NamespaceRules.choose(name, base: base, group: group, wording: .files(names), \.candidate)
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
                        compressed: file.compressed, uid: file.owner.uid, gid: file.owner.gid,
                        mode: file.owner.mode & 0o777,
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
