import ArgumentParser
import Foundation
import ShmEngine

/// `asmtd cleanup`: removes what interrupted jobs left (uncommitted segments, staging files) and says what it did.
struct CleanupCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cleanup",
        abstract: "Remove the uncommitted segments an interrupted restore left, and backup staging files.",
        discussion: """
            Removes the unattached segments of the instance whose namespace is uncommitted (base missing or \
            version word 0) and the *.partial files of --path directories. Committed or attached segments are \
            refused unless --force. With a journal of an interrupted CLI restore (restore-<instance>.json in \
            $ASMTD_RUNTIME_DIR, default /run/asmtd), exactly its segments are recovered first.
            """)

    @Option(help: "Aerospike instance (0..15).")
    var instance: Int

    @Option(help: "Only these namespaces, comma-separated.")
    var namespace: String?

    @Option(help: "Backup directories whose staging files (*.partial) to remove, comma-separated.")
    var path: String?

    @Flag(help: "Also remove committed and attached segments (of --namespace, or of the whole instance).")
    var force = false

    @Flag(help: "Print the report as JSON.")
    var json = false

    struct Report: Encodable, Sendable {
        var instance: Int
        var journal: String?
        var removed: [LeftoverSegment]
        var refused: [CleanupReport.Refusal]
        var removedFiles: [String]
        var errors: [String]

        enum CodingKeys: String, CodingKey {
            case instance, journal, removed, refused, errors
            case removedFiles = "removed-files"
        }
    }

    func run() async throws {
        let instance = instance
        let namespaces = namespace?.commaSeparated
        let directories = path?.commaSeparated ?? []
        let force = force
        if let namespaces, namespaces.isEmpty { throw EngineCLI.fail(message: "--namespace names no namespace") }
        let report: Report
        do {
            report = try await EngineCLI.blocking { () throws(EngineError) in
                try Self.clean(instance: instance, namespaces: namespaces, directories: directories, force: force)
            }
        } catch {
            throw EngineCLI.fail(error)
        }
        if json {
            JSONOutput.write(report)
        } else {
            Self.print(report)
        }
        if !report.errors.isEmpty { throw ExitCode(1) }
    }

    static func clean(
        instance: Int, namespaces: [String]?, directories: [String], force: Bool
    ) throws(EngineError) -> Report {
        guard (0...15).contains(instance) else {
            throw EngineError(.invalidRequest, "instance \(instance) is out of range 0..15")
        }
        var note: String?
        var removedByJournal: [LeftoverSegment] = []
        if let journal = try RestoreJournal.load(instance: instance) {
            if let namespaces, !Set(journal.namespaces).isSubset(of: Set(namespaces)) {
                note =
                    "journal of a restore of \(journal.namespaces.joined(separator: ",")) kept: not all in --namespace"
            } else {
                switch Engine.recoverRestore(created: journal.created, directory: journal.directory) {
                case .committed:
                    note = "the journaled restore from \(journal.directory) had committed: its segments are kept"
                    RestoreJournal.remove(instance: instance)
                case .removed(let keys, let stuck):
                    note = "journaled restore from \(journal.directory): removed \(keys.count) uncommitted segment(s)"
                    removedByJournal = keys.map {
                        LeftoverSegment(key: $0, shmid: -1, size: 0, attachCount: 0, namespace: nil, uncommitted: true)
                    }
                    if stuck.isEmpty || force {
                        RestoreJournal.remove(instance: instance)
                    } else {
                        note! += "; \(stuck.count) still attached: " + stuck.map(\.hex).joined(separator: ", ")
                    }
                case .kept(let reason):
                    note = "journaled restore from \(journal.directory) left in place: \(reason)"
                    RestoreJournal.remove(instance: instance)
                }
            }
        }
        let cleaned = try Engine.cleanup(
            instance: instance, namespaces: namespaces, backupDirectories: directories, force: force)
        return Report(
            instance: instance, journal: note, removed: removedByJournal + cleaned.removed, refused: cleaned.refused,
            removedFiles: cleaned.removedFiles, errors: cleaned.errors)
    }

    static func print(_ report: Report) {
        if let journal = report.journal { Swift.print(journal) }
        for segment in report.removed {
            let shmid = segment.shmid >= 0 ? " (shmid \(segment.shmid))" : ""
            let state = segment.uncommitted ? "uncommitted" : "committed"
            Swift.print("removed \(segment.key.hex)\(shmid) \(segment.key.kind.rawValue) \(state)")
        }
        for refusal in report.refused {
            Swift.print("refused \(refusal.key.hex) (shmid \(refusal.shmid)): \(refusal.reason)")
        }
        for file in report.removedFiles { Swift.print("removed file \(file)") }
        for error in report.errors { FileHandle.standardError.write(Data("asmtd: error: \(error)\n".utf8)) }
        Swift.print(
            "instance \(report.instance): removed \(report.removed.count) segment(s) and "
                + "\(report.removedFiles.count) staging file(s), refused \(report.refused.count)")
    }
}
