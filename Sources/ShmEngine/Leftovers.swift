import Glibc

/// Uncommitted leftovers: segments of an (instance, nsid) whose base is missing or has version word 0. A restore
/// keeps its base's first 8 bytes zero until its very last write, so these are what an interrupted restore leaves;
/// no journal is needed to recognise them.
enum Leftovers {
    /// Sets `uncommitted` on every segment whose group has no base with a non-zero version word.
    static func markUncommitted(_ segments: [ScannedSegment]) -> [ScannedSegment] {
        var committed = Set<Int>()
        for segment in segments where segment.live.key.kind == .base {
            if let version = segment.facts.version, version != 0 { committed.insert(group(segment.live.key)) }
        }
        return segments.map { segment in
            var marked = segment
            marked.live.uncommitted = !committed.contains(group(segment.live.key))
            return marked
        }
    }

    static func group(_ key: SegmentKey) -> Int { key.instance << 8 | key.nsid }

    /// The namespace a group of segments belongs to: its base's name, else a data stage's.
    static func namespaces(_ segments: [LiveSegment]) -> [Int: String] {
        var names: [Int: String] = [:]
        for segment in segments.sorted(by: { $0.key < $1.key }) {
            if let name = segment.namespace, names[group(segment.key)] == nil { names[group(segment.key)] = name }
        }
        return names
    }

    static func leftover(_ segment: LiveSegment, namespace: String?) -> LeftoverSegment {
        LeftoverSegment(
            key: segment.key, shmid: segment.shmid, size: segment.size, attachCount: segment.attachCount,
            namespace: namespace, uncommitted: segment.uncommitted)
    }
}

extension Engine {
    /// The unattached uncommitted leftovers of an instance (see `Leftovers`).
    package static func leftovers(instance: Int) throws(EngineError) -> [LeftoverSegment] {
        guard (0...15).contains(instance) else {
            throw EngineError(.invalidRequest, "instance \(instance) is out of range 0..15")
        }
        let segments = try SharedMemory.segments(instance: instance)
        let names = Leftovers.namespaces(segments)
        return segments.filter { $0.uncommitted && $0.attachCount == 0 }.map {
            Leftovers.leftover($0, namespace: names[Leftovers.group($0.key)])
        }
    }

    /// Removes those of `keys` (on their instances) that are unattached uncommitted leftovers; returns them. For a
    /// restore that died before it could report what it created: what it planned is all it can have made.
    package static func removeUncommitted(keys: [SegmentKey]) -> [SegmentKey] {
        var removed: [SegmentKey] = []
        for instance in Set(keys.map(\.instance)) {
            guard let segments = try? SharedMemory.segments(instance: instance) else { continue }
            for segment in segments where keys.contains(segment.key) && segment.uncommitted && segment.attachCount == 0
            {
                if SharedMemory.remove(shmid: segment.shmid) { removed.append(segment.key) }
            }
        }
        return removed
    }

    /// Removes the unattached uncommitted leftovers of an instance (of `namespaces` only, when given), and the
    /// staging files (`*.partial` of that instance) of `backupDirectories`, each under the directory's lock. A
    /// committed or attached segment is refused unless `force`; a leftover whose namespace cannot be read is refused
    /// when `namespaces` is given.
    package static func cleanup(
        instance: Int, namespaces: [String]?, backupDirectories: [String], force: Bool
    ) throws(EngineError) -> CleanupReport {
        guard (0...15).contains(instance) else {
            throw EngineError(.invalidRequest, "instance \(instance) is out of range 0..15")
        }
        var report = CleanupReport()
        let segments = try SharedMemory.segments(instance: instance)
        let names = Leftovers.namespaces(segments)
        for segment in segments {
            let name = names[Leftovers.group(segment.key)]
            if let namespaces {
                guard let name else {
                    report.refused.append(
                        .init(
                            key: segment.key, shmid: segment.shmid,
                            reason: "its namespace cannot be read (base missing or not filled); run without --namespace"
                        ))
                    continue
                }
                guard namespaces.contains(where: { sameName(name, $0) }) else { continue }
            }
            if !force {
                if !segment.uncommitted {
                    report.refused.append(
                        .init(key: segment.key, shmid: segment.shmid, reason: "committed: its namespace is usable"))
                    continue
                }
                if segment.attachCount > 0 {
                    report.refused.append(
                        .init(
                            key: segment.key, shmid: segment.shmid,
                            reason: "attached by \(segment.attachCount) process(es)"))
                    continue
                }
            }
            if SharedMemory.remove(shmid: segment.shmid) {
                report.removed.append(Leftovers.leftover(segment, namespace: name))
            } else if errno != EINVAL && errno != EIDRM {
                report.errors.append(
                    "cannot remove segment \(segment.key.hex) (shmid \(segment.shmid)): \(errnoText())")
            }
        }
        for directory in backupDirectories {
            StagingFiles.remove(in: directory, instance: instance, into: &report)
        }
        return report
    }
}

/// A backup's staging files: `<key>.dat.partial` and `<key>.dat.gz.partial`.
enum StagingFiles {
    static let suffix = ".partial"

    /// The segment file name a staging name stands for, nil for any other name.
    static func target(of name: String) -> (key: SegmentKey, compressed: Bool)? {
        guard name.hasSuffix(suffix) else { return nil }
        return SegmentKey.parse(fileName: String(name.dropLast(suffix.count)))
    }

    /// Removes the staging files of `instance` in `directory`, holding the directory's lock (a backup writing
    /// there holds it exclusively: then nothing is removed).
    static func remove(in directory: String, instance: Int, into report: inout CleanupReport) {
        let fd = open(directory, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        guard fd >= 0 else {
            report.errors.append("cannot open backup directory \(directory): \(errnoText())")
            return
        }
        defer { close(fd) }
        guard flock(fd, LOCK_EX | LOCK_NB) == 0 else {
            report.errors.append("backup directory \(directory) is in use by a backup; its staging files were kept")
            return
        }
        let names: [String]
        do throws(EngineError) {
            names = try FileIO.list(directory)
        } catch {
            report.errors.append(error.message)
            return
        }
        for name in names {
            guard let target = target(of: name), target.key.instance == instance else { continue }
            if unlinkat(fd, name, 0) == 0 {
                report.removedFiles.append(directory + "/" + name)
            } else {
                report.errors.append("cannot remove \(directory)/\(name): \(errnoText())")
            }
        }
        if !report.removedFiles.isEmpty { _ = fsync(fd) }
    }
}

/// A segment that is asmtd's uncommitted leftover, or another segment `Engine.cleanup` looked at.
package struct LeftoverSegment: Codable, Sendable, Equatable {
    package var key: SegmentKey
    package var shmid: Int32
    package var size: UInt64
    package var attachCount: Int
    /// From the base (or data stage) when it could be read.
    package var namespace: String?
    /// True when the base of its instance and nsid is missing or has version word 0.
    package var uncommitted: Bool

    package init(
        key: SegmentKey, shmid: Int32, size: UInt64, attachCount: Int, namespace: String?, uncommitted: Bool
    ) {
        self.key = key
        self.shmid = shmid
        self.size = size
        self.attachCount = attachCount
        self.namespace = namespace
        self.uncommitted = uncommitted
    }
}

/// What `Engine.cleanup` removed and what it refused to touch.
package struct CleanupReport: Codable, Sendable, Equatable {
    package struct Refusal: Codable, Sendable, Equatable {
        package var key: SegmentKey
        package var shmid: Int32
        package var reason: String
    }

    package var removed: [LeftoverSegment] = []
    package var refused: [Refusal] = []
    /// Staging files (`*.partial`) removed from backup directories.
    package var removedFiles: [String] = []
    /// Failures that left something in place (a segment that could not be removed, an unreadable directory).
    package var errors: [String] = []

    package init() {}
}
