import Foundation
import ShmEngine

/// What a CLI restore created, kept in `<runtime-dir>/restore-<instance>.json` from the moment its segments exist
/// until it succeeds or fails cleanly; `asmtd cleanup` uses it to recognise exactly those segments. The runtime
/// dir (env `ASMTD_RUNTIME_DIR`, default `/run/asmtd`) is wiped at reboot, like the segments.
struct RestoreJournal: Codable, Equatable, Sendable {
    var instance: Int
    var namespaces: [String]
    var directory: String
    var created: [CreatedSegment]

    static var runtimeDirectory: String {
        let value = ProcessInfo.processInfo.environment["ASMTD_RUNTIME_DIR"] ?? ""
        return value.isEmpty ? "/run/asmtd" : value
    }

    static func path(instance: Int) -> String { Paths.join(runtimeDirectory, "restore-\(instance).json") }

    /// Written atomically (temp, fsync, rename, fsync of the directory), 0600 in a 0700 directory.
    func save() throws(EngineError) {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        do {
            try FileSystem.createDirectories(Self.runtimeDirectory, mode: 0o700)
            let data = (try? encoder.encode(self)) ?? Data()
            try FileSystem.writeAtomically(Array(data) + [0x0A], to: Self.path(instance: instance))
        } catch {
            throw EngineError(.io, "cannot write the restore journal \(Self.path(instance: instance)): \(error)")
        }
    }

    /// nil when there is none.
    static func load(instance: Int) throws(EngineError) -> RestoreJournal? {
        let path = path(instance: instance)
        guard FileSystem.kind(path) != .missing else { return nil }
        do {
            let bytes = try FileSystem.readFile(path)
            return try JSONDecoder().decode(RestoreJournal.self, from: Data(bytes))
        } catch {
            throw EngineError(.io, "cannot read the restore journal \(path): \(error)")
        }
    }

    static func remove(instance: Int) {
        FileSystem.remove(path(instance: instance))
    }
}
