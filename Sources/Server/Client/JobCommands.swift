import ArgumentParser
import Foundation

/// `asmtd job ...`: the service's client (submit, follow, list, cancel jobs) over HTTP.
struct JobCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "job", abstract: "Drive jobs of a running asmtd service (its REST API).",
        discussion: "The server is --server, else $ASMTD_SERVER, else \(ServerURL.defaultURL).\n\n" + SysExit.help,
        subcommands: [
            JobBackupCommand.self, JobRestoreCommand.self, JobListCommand.self, JobShowCommand.self,
            JobWaitCommand.self, JobCancelCommand.self,
        ])
}

struct ClientOptions: ParsableArguments {
    @Option(help: "The service, http://host:port (default: $ASMTD_SERVER, else \(ServerURL.defaultURL)).")
    var server: String?

    @Option(help: "A file holding the bearer token (service.auth.token-file of the service).")
    var tokenFile: String?

    func client() throws(ExitCode) -> JobClient {
        let text = ServerURL.choose(option: server, environment: ProcessInfo.processInfo.environment)
        let url: ServerURL
        do {
            url = try ServerURL.parse(text)
        } catch {
            throw ClientOutput.fail(ClientError(code: "USAGE", message: error.message))
        }
        var token: String?
        if let tokenFile {
            guard let data = FileManager.default.contents(atPath: tokenFile) else {
                throw ClientOutput.fail(
                    ClientError(code: "CONFIG_ERROR", message: "cannot read the token file \(tokenFile)"))
            }
            token = String(decoding: data, as: UTF8.self).trimmingWhitespace()
            if token?.isEmpty == true {
                throw ClientOutput.fail(
                    ClientError(code: "CONFIG_ERROR", message: "the token file \(tokenFile) is empty"))
            }
        }
        return JobClient(http: HTTPClient(server: url, token: token))
    }
}

/// `--wait`, `--progress` and `--json` of the commands that can follow a job to its end.
struct FollowOptions: ParsableArguments {
    @Flag(help: "Wait until the job ends; exit 0 on success, else the exit status of its error code.")
    var wait = false

    @Flag(help: "Show the progress line even when stderr is not a terminal (with --wait).")
    var progress = false

    @Flag(help: "Print the job (with --wait: the final job) as JSON, as the API answers it.")
    var json = false
}

enum ClientOutput {
    /// The value of a call, or its error printed and turned into the exit status.
    static func orExit<T>(_ body: () throws(ClientError) -> T) throws(ExitCode) -> T {
        do {
            return try body()
        } catch {
            throw fail(error)
        }
    }

    static func fail(_ error: ClientError) -> ExitCode {
        FileHandle.standardError.write(Data("asmtd: error: \(error.code): \(error.message)\n".utf8))
        return ExitCode(error.exitStatus.rawValue)
    }

    static func printBody(_ body: [UInt8]) {
        FileHandle.standardOutput.write(Data(body.last == 0x0a ? body : body + [0x0a]))
    }

    static func progressLine(_ job: JobResource, now: Date = Date()) -> String {
        let p = job.progress
        let eta = p.estimatedEndTime.flatMap(Time.parseRFC3339).map { max(0, $0 - now.timeIntervalSince1970) }
        return ProgressLine.render(
            label: job.type.rawValue, bytesDone: p.bytesDone, bytesTotal: p.bytesTotal, segmentsDone: p.segmentsDone,
            segmentsTotal: p.segmentsTotal, bytesPerSecond: p.bytesPerSecond, etaSeconds: eta)
    }

    /// One line about a job (pure).
    static func summary(_ job: JobResource) -> String {
        var line =
            "job \(job.id) \(job.state): \(job.type) of instance \(job.instance) (\(job.namespaces.joined(separator: ","))), "
            + "backup \(job.backup), \(job.progress.segmentsDone)/\(job.progress.segmentsTotal) segments, "
            + "\(EngineCLI.bytes(job.progress.bytesDone)) of \(EngineCLI.bytes(job.progress.bytesTotal))"
        if let error = job.error { line += ", error \(error.code): \(error.message)" }
        return line
    }

    /// Follows a job to its end (with `--wait`) or prints it as submitted; the exit status follows the job.
    static func follow(
        _ client: JobClient, submitted: JobResource, body: [UInt8], options: FollowOptions
    ) throws(ExitCode) {
        guard options.wait else {
            if options.json { printBody(body) } else { print(submitted.id) }
            return
        }
        let display = ProgressDisplay(force: options.progress)
        let final: (job: JobResource, body: [UInt8])
        do {
            final = try client.waitForEnd(submitted.id, often: display.enabled) { job in
                if job.state == .running && job.progress.bytesTotal > 0 { display.show(progressLine(job)) }
            }
        } catch {
            display.finish()
            throw fail(error)
        }
        display.finish()
        if options.json { printBody(final.body) } else if final.job.state == .success { print(summary(final.job)) }
        let status = final.job.exitStatus
        if status != .success {
            let code = final.job.error?.code ?? final.job.state.rawValue.uppercased()
            let message = final.job.error?.message ?? ""
            FileHandle.standardError.write(
                Data("asmtd: error: job \(final.job.id) \(final.job.state): \(code): \(message)\n".utf8))
            throw ExitCode(status.rawValue)
        }
    }

    /// A dry run's plan, as `asmtd analyze` prints it.
    static func printPlan(_ body: [UInt8], json: Bool) {
        if json {
            printBody(body)
            return
        }
        let object = (try? JSONSerialization.jsonObject(with: Data(body)) as? [String: Any]) ?? [:]
        var rows = [["KEY", "KIND", "NAMESPACE", "SIZE", "FILE", "OWNER", "MODE"]]
        for segment in object["segments"] as? [[String: Any]] ?? [] {
            let cells: [Any?] = [
                segment["key"], segment["kind"], segment["namespace"], segment["size"], segment["file"],
                "\(segment["uid"] ?? "-"):\(segment["gid"] ?? "-")", segment["mode"],
            ]
            rows.append(cells.map { $0.map { "\($0)" } ?? "-" })
        }
        EngineCLI.printTable(rows)
        let total = (object["total-bytes"] as? NSNumber)?.uint64Value ?? 0
        print(
            "dry run of a \(object["type"] ?? "job") of instance \(object["instance"] ?? "-") (\(object["path"] ?? "-")): "
                + "\(rows.count - 1) segments, \(EngineCLI.bytes(total)): OK")
    }
}

/// The body of POST /v1/backup and /v1/restore (absent fields take the service's defaults).
struct SubmissionBody: Encodable {
    var instance: Int
    var namespaces: [String]?
    var compress: Bool?
    var verify: Bool?
    var threads: Int?
    var backup: String?
    var dryRun: Bool?

    enum CodingKeys: String, CodingKey {
        case instance, namespaces, compress, verify, threads, backup, dryRun = "dry-run"
    }

    var bytes: [UInt8] { Array((try? JSONEncoder().encode(self)) ?? Data()) }
}

/// What `asmtd job backup` and `asmtd job restore` share: the service, the target, the settings both jobs take, and
/// following the job.
struct JobSubmitOptions: ParsableArguments {
    @OptionGroup var client: ClientOptions
    @Option(help: "Aerospike instance (0..15).") var instance: Int = 0
    @Option(help: "Namespaces, comma-separated (default: the instance's configured ones).") var namespace: String?
    @Flag(
        inversion: .prefixedNo,
        help: "Verify: a backup reads its files back, a restore checks CRC-32s (default: the instance's setting).")
    var verify: Bool?
    @Option(help: "I/O threads, and compression threads for backups (0 = one per core).") var threads: Int?
    @Flag(help: "Check and print the plan only.") var dryRun = false
    @OptionGroup var follow: FollowOptions

    var namespaces: [String]? { namespace?.commaSeparated }

    /// Submits; a dry run prints the plan, an accepted job is followed or printed.
    func submit(_ path: String, compress: Bool? = nil, backup: String? = nil) throws(ExitCode) {
        let body = SubmissionBody(
            instance: instance, namespaces: namespaces, compress: compress, verify: verify, threads: threads,
            backup: backup, dryRun: dryRun ? true : nil)
        let client = try client.client()
        let response = try ClientOutput.orExit { () throws(ClientError) in
            try client.call("POST", path, body: body.bytes)
        }
        if dryRun {
            ClientOutput.printPlan(response.body, json: follow.json)
            return
        }
        let job = try ClientOutput.orExit { () throws(ClientError) in try JobClient.decodeJob(response.body) }
        try ClientOutput.follow(client, submitted: job, body: response.body, options: follow)
    }
}

struct JobBackupCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "backup", abstract: "Start a backup on the service (POST /v1/backup).")

    @OptionGroup var job: JobSubmitOptions
    @Flag(inversion: .prefixedNo, help: "Compress stages (default: the instance's setting).") var compress: Bool?

    func run() throws {
        try job.submit("/v1/backup", compress: compress)
    }
}

struct JobRestoreCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "restore", abstract: "Start a restore on the service (POST /v1/restore).")

    @OptionGroup var job: JobSubmitOptions
    @Option(help: "The backup id (default: the newest complete backup holding the namespaces).") var backup: String?

    func run() throws {
        try job.submit("/v1/restore", backup: backup)
    }
}

struct JobListCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "list", abstract: "List jobs, newest first.")

    @OptionGroup var client: ClientOptions
    @Option(help: "backup, restore (comma-separated).") var type: String?
    @Option(help: "States, comma-separated; ! excludes (e.g. running,!failure).") var state: String?
    @Option(help: "At most this many (1..10000).") var limit: Int?
    @Flag(help: "Print JSON, as GET /v1/jobs answers it.") var json = false

    func run() throws {
        let client = try client.client()
        var query: [String] = []
        if let type { query.append("type=\(ServerURL.segment(type))") }
        if let state { query.append("state=\(ServerURL.segment(state))") }
        if let limit { query.append("limit=\(limit)") }
        let path = "/v1/jobs" + (query.isEmpty ? "" : "?" + query.joined(separator: "&"))
        let response = try ClientOutput.orExit { () throws(ClientError) in try client.call("GET", path) }
        if json {
            ClientOutput.printBody(response.body)
            return
        }
        struct List: Decodable { var jobs: [JobResource] }
        let list = (try? JSONDecoder().decode(List.self, from: Data(response.body)))?.jobs ?? []
        var rows = [["ID", "TYPE", "STATE", "INSTANCE", "NAMESPACES", "CREATED", "DONE", "ERROR"]]
        for job in list {
            let total = job.progress.bytesTotal
            let percent = total > 0 ? "\(job.progress.bytesDone * 100 / total)%" : "-"
            rows.append([
                job.id, job.type.rawValue, job.state.rawValue, "\(job.instance)", job.namespaces.joined(separator: ","),
                job.created,
                percent,
                job.error?.code ?? "",
            ])
        }
        EngineCLI.printTable(rows)
    }
}

/// The service, the job id and `--json` of the commands about one job.
struct OneJobOptions: ParsableArguments {
    @OptionGroup var client: ClientOptions
    @Argument(help: "The job id.") var id: String
    @Flag(help: "Print the job as JSON, as the API answers it (after a wait: the final job).") var json = false

    /// Prints the job: its JSON with `--json`, else one line.
    func show(_ job: JobResource, body: [UInt8]) {
        if json { ClientOutput.printBody(body) } else { print(ClientOutput.summary(job)) }
    }
}

struct JobShowCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "show", abstract: "Show one job.")

    @OptionGroup var job: OneJobOptions

    func run() throws {
        let client = try job.client.client()
        let answer = try ClientOutput.orExit { () throws(ClientError) in try client.job(job.id) }
        job.show(answer.job, body: answer.body)
    }
}

struct JobWaitCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "wait",
        abstract: "Wait for a job to end (long-poll); exit 0 on success, else the status of its error code.")

    @OptionGroup var job: OneJobOptions
    @Flag(help: "Show the progress line even when stderr is not a terminal.") var progress = false

    func run() throws {
        let client = try job.client.client()
        let answer = try ClientOutput.orExit { () throws(ClientError) in try client.job(job.id) }
        var options = FollowOptions()
        options.wait = true
        options.progress = progress
        options.json = job.json
        try ClientOutput.follow(client, submitted: answer.job, body: answer.body, options: options)
    }
}

struct JobCancelCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cancel", abstract: "Cancel a queued or running job (it removes what it wrote or created).")

    @OptionGroup var job: OneJobOptions
    @Flag(help: "Wait until the job has ended and cleaned up; exit 0 when it ends canceled.") var wait = false

    func run() throws {
        let client = try job.client.client()
        let id = job.id
        let response = try ClientOutput.orExit { () throws(ClientError) in
            try client.call("POST", "/v1/jobs/\(ServerURL.segment(id))/cancel")
        }
        guard wait else {
            if job.json { ClientOutput.printBody(response.body) } else { print("cancel requested for job \(id)") }
            return
        }
        let final = try ClientOutput.orExit { () throws(ClientError) in try client.waitForEnd(id, often: false) { _ in }
        }
        job.show(final.job, body: final.body)
        if final.job.state != .canceled && final.job.exitStatus != .success {
            throw ExitCode(final.job.exitStatus.rawValue)
        }
    }
}
