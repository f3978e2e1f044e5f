/// The body of `POST /v1/backup` or `POST /v1/restore`: the fields both take, and `Options`, the ones of its type.
/// An absent field takes the instance's setting.
struct JobSubmission<Options: JobTypeOptions>: Sendable, Equatable {
    var instance: Int
    var namespaces: [String]? = nil
    var verify: Bool? = nil
    var threads: Int? = nil
    var dryRun = false
    var options: Options

    static func decode(_ body: [UInt8]) throws(APIError) -> Self {
        let known = ["instance", "namespaces"] + Options.fields + ["verify", "threads", "dry-run"]
        let reader = try JSONObjectReader(try JSONValue.parse(body), known: known)
        let instance = try reader.requiredInt("instance", 0...15)
        return Self(
            instance: instance, namespaces: try checkedNamespaces(reader.strings("namespaces")),
            verify: try reader.bool("verify"), threads: try reader.int("threads", 0...1024),
            dryRun: try reader.bool("dry-run") ?? false, options: try Options(reader))
    }
}

/// The fields of one job type's submission.
protocol JobTypeOptions: Sendable, Equatable {
    static var fields: [String] { get }
    init(_ reader: JSONObjectReader) throws(APIError)
}

typealias BackupSubmission = JobSubmission<BackupOptions>
typealias RestoreSubmission = JobSubmission<RestoreOptions>

struct BackupOptions: JobTypeOptions {
    var compress: Bool?

    static let fields = ["compress"]

    init(compress: Bool? = nil) {
        self.compress = compress
    }

    init(_ reader: JSONObjectReader) throws(APIError) {
        compress = try reader.bool("compress")
    }
}

struct RestoreOptions: JobTypeOptions {
    /// The backup id; nil for the newest complete backup holding the namespaces.
    var backup: String?
    /// Restore a stale backup anyway (logged at WARN, kept in the job record).
    var force: Bool

    static let fields = ["backup", "force"]

    init(backup: String? = nil, force: Bool = false) {
        self.backup = backup
        self.force = force
    }

    init(_ reader: JSONObjectReader) throws(APIError) {
        backup = try reader.string("backup")
        if let backup, !Paths.isSafeName(backup) {
            throw APIError(.invalidField, "field \"backup\" is not a backup id")
        }
        force = try reader.bool("force") ?? false
    }
}

private func checkedNamespaces(_ names: [String]?) throws(APIError) -> [String]? {
    guard let names else { return nil }
    if names.isEmpty { throw APIError(.invalidField, "field \"namespaces\" must not be empty; omit it for all") }
    var seen: Set<String> = []
    for name in names {
        if let problem = NamespaceName.problem(name) { throw APIError(.invalidField, problem) }
        if !seen.insert(name).inserted { throw APIError(.invalidField, "namespace \"\(name)\" is listed twice") }
    }
    return names
}
