import Foundation

/// Job records on disk: `<state-dir>/jobs/<id>.json`, each written atomically.
struct JobStore: Sendable {
    let directory: String

    init(stateDirectory: String) {
        directory = Paths.join(stateDirectory, "jobs")
    }

    func prepare() throws(FileSystemError) {
        try FileSystem.createDirectories(directory, mode: 0o700)
    }

    func save(_ record: JobRecord) throws(FileSystemError) {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .prettyPrinted]
        let data: Data
        do {
            data = try encoder.encode(record)
        } catch {
            throw FileSystemError(operation: "encode", path: record.id, errno: EINVAL)
        }
        try FileSystem.writeAtomically(Array(data) + [0x0a], to: path(of: record.id))
    }

    func delete(_ id: String) {
        FileSystem.remove(path(of: id))
    }

    func path(of id: String) -> String { Paths.join(directory, "\(id).json") }

    /// Every readable record, plus one warning per file that could not be read. Removes stale temporary files.
    func loadAll() -> (records: [JobRecord], warnings: [String]) {
        FileSystem.loadJSONRecords(JobRecord.self, in: directory, what: "job record")
    }
}
