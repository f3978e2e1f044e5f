import Glibc

/// Reads what the restore planner needs from a backup directory.
enum BackupScanner {
    static func scan(directory: String, instance: Int) throws(EngineError) -> [BackupFile] {
        var result: [BackupFile] = []
        for name in try FileIO.list(directory) {
            guard let parsed = SegmentKey.parse(fileName: name), parsed.key.instance == instance else { continue }
            let path = directory + "/" + name
            var st = stat()
            guard lstat(path, &st) == 0 else { throw EngineError(.io, "cannot stat \(path): \(errnoText())") }
            guard (st.st_mode & S_IFMT) != S_IFLNK else {
                throw EngineError(.invalidBackup, "\(path) is a symbolic link: a backup holds regular files only")
            }
            guard (st.st_mode & S_IFMT) == S_IFREG else {
                throw EngineError(.invalidBackup, "\(path) is not a regular file")
            }
            var file = BackupFile(
                name: name, compressed: parsed.compressed,
                candidate: CandidateSegment(key: parsed.key, size: UInt64(st.st_size)),
                owner: (st.st_uid, st.st_gid, UInt32(st.st_mode) & 0o777))
            let kind = parsed.key.kind
            if parsed.compressed {
                let head = try FileIO.readPrefix(path: path, length: 64 * 1024)
                file.header = ASMTHeader.decode(head)
                if case .success = file.header {
                    if kind == .dataStage {
                        if let prefix = try inflatePrefix(Array(head.dropFirst(ASMTHeader.size)), length: 44) {
                            file.candidate.facts = SegmentFacts.read(kind: kind, prefix: prefix)
                        }
                    } else {
                        file.candidate.facts = SegmentFacts()
                    }
                }
            } else {
                let length = SegmentFacts.prefixLength(kind: kind)
                if length > 0 {
                    let prefix = try FileIO.readPrefix(path: path, length: length)
                    if prefix.count >= min(length, Layout.nameLength) {
                        file.candidate.facts = SegmentFacts.read(kind: kind, prefix: prefix)
                    }
                } else {
                    file.candidate.facts = SegmentFacts()
                }
            }
            result.append(file)
        }
        return result
    }

    /// The first `length` bytes of a gzip member, or nil when they cannot be decoded.
    static func inflatePrefix(_ member: [UInt8], length: Int) throws(EngineError) -> [UInt8]? {
        guard case .ok(let headerLength) = GzipFraming.parseHeader(member) else { return nil }
        let inflater = try Codec.makeInflater()
        var output = [UInt8](repeating: 0, count: length)
        let body = Array(member.dropFirst(headerLength))
        var produced = 0
        var consumed = 0
        while produced < length && consumed < body.count {
            let step: InflateStep? = body.withUnsafeBytes { input in
                output.withUnsafeMutableBytes { out in
                    try? inflater.inflate(
                        UnsafeRawBufferPointer(rebasing: input[consumed...]),
                        into: UnsafeMutableRawBufferPointer(rebasing: out[produced...]))
                }
            }
            guard let step, step.consumed + step.produced > 0 else { break }
            consumed += step.consumed
            produced += step.produced
            if step.finished { break }
        }
        return Array(output.prefix(produced))
    }
}
