import ArgumentParser
import Foundation
import ShmEngine
import ShmSynthetic
import Synchronization

// Local commands that run the engine without the service: analyze, backup, restore, segments, demo.

struct EngineJobOptions: ParsableArguments {
    @Option(help: "Aerospike instance (0..15).")
    var instance: Int = 0

    @Option(help: "Namespace names, comma-separated.")
    var namespace: String

    @Option(help: "Backup directory.")
    var path: String

    @Option(help: "I/O and compression threads (0 = one per core).")
    var threads: Int = 0

    var namespaces: [String] { namespace.commaSeparated }
}

/// `--compress` of the commands that write or plan backup files.
struct CompressOption: ParsableArguments {
    @Flag(help: "Compress stages (.dat.gz); base and meta stay plain.")
    var compress = false
}

struct AnalyzeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "analyze", abstract: "Check a backup or restore without writing anything and print the plan.")

    @OptionGroup var options: EngineJobOptions

    @Flag(help: "Analyze a restore from --path instead of a backup into it.")
    var restore = false

    @OptionGroup var format: CompressOption

    @Flag(help: "Print the plan as JSON (as the API's dry run answers it).")
    var json = false

    func run() async throws {
        try EngineCLI.requireRoot("analyze")
        let options = options
        let restore = restore
        let compress = format.compress
        let plan: (instance: Int, directory: String, segments: [PlannedSegment], total: UInt64, data: Data?)
        do {
            plan = try await EngineCLI.blocking { () throws(EngineError) in
                if restore {
                    let request = RestoreRequest(
                        instance: options.instance, namespaces: options.namespaces, directory: options.path,
                        threads: options.threads)
                    let plan = try Engine.planRestore(request)
                    EngineCLI.warn(plan.warnings)
                    let view = JSONOutput.encode(PlanView(restore: plan))
                    return (plan.instance, plan.directory, plan.segments, plan.totalBytes, view)
                }
                let request = BackupRequest(
                    instance: options.instance, namespaces: options.namespaces, directory: options.path,
                    compress: compress, threads: options.threads)
                let plan = try Engine.planBackup(request)
                let view = JSONOutput.encode(PlanView(backup: plan))
                return (plan.instance, plan.directory, plan.segments, plan.totalBytes, view)
            }
        } catch {
            throw EngineCLI.fail(error)
        }
        if json {
            FileHandle.standardOutput.write((plan.data ?? Data()) + Data("\n".utf8))
            return
        }
        EngineCLI.printPlan(plan.segments)
        print(
            "\(restore ? "restore" : "backup") of instance \(plan.instance) \(restore ? "from" : "to") "
                + "\(plan.directory): \(plan.segments.count) segments, \(EngineCLI.bytes(plan.total)): OK")
    }
}

struct BackupCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "backup", abstract: "Back up the segments of stopped namespaces to files.")

    @OptionGroup var options: EngineJobOptions

    @OptionGroup var format: CompressOption

    @Flag(inversion: .prefixedNo, help: "Read the files back and check them against the segments.")
    var verify = true

    @OptionGroup var output: JobOutputOptions

    func run() async throws {
        try EngineCLI.requireRoot("backup")
        let compress = format.compress
        let request = BackupRequest(
            instance: options.instance, namespaces: options.namespaces, directory: options.path, compress: compress,
            verify: verify, threads: options.threads)
        let started = Date()
        let lock = try EngineCLI.lockInstance(request.instance, job: "backup to \(request.directory)")
        defer { lock.release() }
        let manifest = try await EngineCLI.runJob(
            .backup,
            request: JobRequest(
                instance: request.instance, namespaces: request.namespaces, compress: compress, verify: verify,
                threads: request.threads),
            directory: request.directory, output: output
        ) { () throws(EngineError) in
            try Engine.planBackup(request)
        } segments: {
            $0.segments
        } run: { (plan, progress, token) throws(EngineError) in
            try Engine.backup(plan, request: request, progress: progress, cancellation: token)
        }.output
        if output.json { return }
        let total = manifest.segments.reduce(UInt64(0)) { $0 + $1.size }
        let files = manifest.segments.reduce(UInt64(0)) { $0 + $1.fileSize }
        print(
            "backed up \(manifest.segments.count) segments (\(EngineCLI.bytes(total)), files "
                + "\(EngineCLI.bytes(files))) to \(request.directory) in \(EngineCLI.elapsed(since: started)), "
                + EngineCLI.rate(total, since: started) + " (codec \(Engine.codecName))")
    }
}

struct RestoreCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "restore", abstract: "Recreate segments from a backup directory (asmt's or asmtd's).")

    @OptionGroup var options: EngineJobOptions

    @Flag(inversion: .prefixedNo, help: "Check CRC-32s against the file headers and the manifest.")
    var verify = true

    @Flag(help: .hidden)
    var compress = false

    @OptionGroup var output: JobOutputOptions

    func run() async throws {
        try EngineCLI.requireRoot("restore")
        if compress {
            FileHandle.standardError.write(
                Data("asmtd: note: --compress is not needed: restore decides per file\n".utf8))
        }
        var request = RestoreRequest(
            instance: options.instance, namespaces: options.namespaces, directory: options.path, verify: verify,
            threads: options.threads)
        // The journal names exactly the segments this restore creates, for `asmtd cleanup` after a kill.
        let journaled = Mutex(false)
        let journal = RestoreJournal(
            instance: request.instance, namespaces: request.namespaces, directory: request.directory, created: [])
        request.onCreated = { created throws(EngineError) in
            var entry = journal
            entry.created = created
            try entry.save()
            journaled.withLock { $0 = true }
        }
        let lock = try EngineCLI.lockInstance(request.instance, job: "restore from \(request.directory)")
        defer { lock.release() }
        let started = Date()
        let plan: RestorePlan
        do {
            plan = try await EngineCLI.runJob(
                .restore,
                request: JobRequest(
                    instance: request.instance, namespaces: request.namespaces, compress: nil, verify: request.verify,
                    threads: request.threads),
                directory: request.directory, output: output
            ) { [request] () throws(EngineError) in
                let plan = try Engine.planRestore(request)
                EngineCLI.warn(plan.warnings)
                return plan
            } segments: {
                $0.segments
            } run: { [request] (plan, progress, token) throws(EngineError) in
                try Engine.restore(plan, request: request, progress: progress, cancellation: token)
            }.plan
        } catch {
            // A failed restore removed what it created: the journal has nothing left to name.
            if journaled.withLock({ $0 }) { RestoreJournal.remove(instance: journal.instance) }
            throw error
        }
        if journaled.withLock({ $0 }) { RestoreJournal.remove(instance: journal.instance) }
        if output.json { return }
        print(
            "restored \(plan.segments.count) segments (\(EngineCLI.bytes(plan.totalBytes))) from \(request.directory) "
                + "in \(EngineCLI.elapsed(since: started)), " + EngineCLI.rate(plan.totalBytes, since: started)
                + " (codec \(Engine.codecName))")
    }
}

struct SegmentsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "segments", abstract: "List the live Aerospike shared-memory segments.")

    @Option(help: "Only this instance (0..15).")
    var instance: Int?

    @Flag(help: "Print JSON (as GET /v1/segments answers it).")
    var json = false

    func run() async throws {
        let instance = instance
        let segments: [LiveSegment]
        do {
            segments = try await EngineCLI.blocking { () throws(EngineError) in
                if let instance, !(0...15).contains(instance) {
                    throw EngineError(.invalidRequest, "instance \(instance) is out of range 0..15")
                }
                return try SharedMemory.segments(instance: instance)
            }
        } catch {
            throw EngineCLI.fail(error)
        }
        if json {
            JSONOutput.write(SegmentList(segments: segments.sorted { $0.key < $1.key }.map(SegmentView.init)))
            return
        }
        var rows = [["KEY", "SHMID", "KIND", "NAMESPACE", "SIZE", "ATTACHED", "OWNER", "MODE", "STATE"]]
        for segment in segments {
            rows.append([
                segment.key.hex, String(segment.shmid), segment.key.kind.rawValue, segment.namespace ?? "-",
                String(segment.size), String(segment.attachCount), "\(segment.uid):\(segment.gid)",
                "0" + String(segment.mode, radix: 8), segment.uncommitted ? "uncommitted" : "committed",
            ])
        }
        EngineCLI.printTable(rows)
    }
}

struct DemoCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "demo", abstract: "Create or remove Aerospike-shaped demo segments (instances 13..15).",
        subcommands: [DemoCreateCommand.self, DemoRemoveCommand.self])
}

struct DemoCreateCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "create", abstract: "Create a demo namespace.")

    @Option(help: "Instance (13..15).") var instance: Int = 15
    @Option(help: "Namespace name.") var namespace: String = "demo"
    @Option(help: "Namespace id (1..32).") var nsid: Int = 1
    @Option(help: "Primary index stages.") var stages: Int = 2
    @Option(help: "Stage size, e.g. 256MiB.") var stageSize: String = "16MiB"
    @Option(help: "Secondary index stages (0 = no meta).") var secondaryStages: Int = 1
    @Option(help: "Data stages.") var dataStages: Int = 1
    @Option(help: "Owner uid.") var uid: UInt32 = 0
    @Option(help: "Owner gid.") var gid: UInt32 = 0
    @Option(help: "Permission bits, octal.") var mode: String = "600"
    @Option(help: "Content seed.") var seed: UInt64 = 1

    func run() async throws {
        guard (13...15).contains(instance) else { throw EngineCLI.fail(message: "demo segments use instances 13..15") }
        guard let size = EngineCLI.parseSize(stageSize), size >= 4096 else {
            throw EngineCLI.fail(message: "invalid --stage-size \(stageSize) (e.g. 4096, 64KiB, 256MiB, 1GiB)")
        }
        guard let permissions = UInt32(mode, radix: 8), permissions <= 0o777 else {
            throw EngineCLI.fail(message: "invalid --mode \(mode) (octal, e.g. 640)")
        }
        let spec = SyntheticNamespace(
            name: namespace, nsid: nsid, primaryStages: stages, stageSize: size, secondaryStages: secondaryStages,
            dataStages: dataStages, uid: uid, gid: gid, mode: permissions, seed: seed)
        let instance = instance
        let created: [LiveSegment]
        do {
            created = try await EngineCLI.blocking { () throws(EngineError) in
                try SyntheticSegments.create(instance: instance, namespace: spec)
            }
        } catch {
            throw EngineCLI.fail(error)
        }
        let total = created.reduce(UInt64(0)) { $0 + $1.size }
        print(
            "created \(created.count) segments (\(EngineCLI.bytes(total))) of namespace \(namespace) on instance \(instance)"
        )
    }
}

struct DemoRemoveCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "remove", abstract: "Remove the demo segments of a namespace (only unattached, marked ones).")

    @Option(help: "Instance (13..15).") var instance: Int = 15
    @Option(help: "Namespace name.") var namespace: String = "demo"

    func run() async throws {
        guard (13...15).contains(instance) else { throw EngineCLI.fail(message: "demo segments use instances 13..15") }
        let instance = instance
        let namespace = namespace
        let found: [LiveSegment]
        do {
            found = try await EngineCLI.blocking { () throws(EngineError) in
                let found = try SyntheticSegments.find(instance: instance, namespace: namespace)
                SyntheticSegments.remove(found)
                return found
            }
        } catch {
            throw EngineCLI.fail(error)
        }
        print("removed \(found.count) demo segments of namespace \(namespace) on instance \(instance)")
    }
}
