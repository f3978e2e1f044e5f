import Foundation
import Glibc
import ShmEngine
import ShmSynthetic
import TestSupport
import Testing

/// A CLI `asmtd` child with its own runtime directory, optionally under `prlimit`. Its output goes to a file, not a
/// pipe: no dispatch source of the test process watches a descriptor of it (a pipe reader closed while its source is
/// still registered crashed this test process once in libdispatch, as in issue 8 point 7).
final class CLIChild: @unchecked Sendable {
    let process = Process()
    private let log: String

    init(_ arguments: [String], runtimeDir: String, openFiles: Int? = nil) throws {
        if let openFiles {
            process.executableURL = URL(fileURLWithPath: "/usr/bin/prlimit")
            process.arguments = ["--nofile=\(openFiles):\(openFiles)", AsmtdProcess.binary] + arguments
        } else {
            process.executableURL = URL(fileURLWithPath: AsmtdProcess.binary)
            process.arguments = arguments
        }
        process.environment = ProcessInfo.processInfo.environment.merging(["ASMTD_RUNTIME_DIR": runtimeDir]) { $1 }
        var template = Array("/tmp/asmtd-cli-log-XXXXXX".utf8CString)
        let fd = mkstemp(&template)
        guard fd >= 0 else { throw POSIXError(.EIO) }
        log = String(decoding: template.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        let handle = FileHandle(fileDescriptor: fd, closeOnDealloc: false)
        process.standardOutput = handle
        process.standardError = handle
        defer { close(fd) }
        try process.run()
    }

    static func start(_ arguments: [String], runtimeDir: String, openFiles: Int? = nil) throws -> CLIChild {
        try CLIChild(arguments, runtimeDir: runtimeDir, openFiles: openFiles)
    }

    /// What the child printed so far.
    var text: String { (try? String(contentsOfFile: log, encoding: .utf8)) ?? "" }

    /// Blocks until the child exits; returns its exit status.
    func waitAndDrain() -> Int32 {
        process.waitUntilExit()
        return process.terminationStatus
    }

    func signal(_ number: Int32) {
        if process.isRunning { kill(process.processIdentifier, number) }
    }

    deinit {
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        unlink(log)
    }

    /// Runs to the end on a Dispatch thread; returns the exit status and the output.
    static func run(
        _ arguments: [String], runtimeDir: String, openFiles: Int? = nil
    ) async throws -> (status: Int32, text: String) {
        let child = try start(arguments, runtimeDir: runtimeDir, openFiles: openFiles)
        return await blocking {
            let status = child.waitAndDrain()
            return (status, child.text)
        }
    }
}

/// Synthetic segments of instance 15 (nsids 1..19) or 14 (nsid 30), removed by `remove()`.
final class CrashSegments: @unchecked Sendable {
    let instance: Int
    let spec: SyntheticNamespace
    let created: [LiveSegment]

    init(instance: Int, _ spec: SyntheticNamespace) async throws {
        self.instance = instance
        self.spec = spec
        // Leftovers of an earlier crashed run of this very test would block it.
        created = try await TestSegmentMaker.make(instance: instance, spec, clearingLeftovers: true)
    }

    func remove() { SyntheticSegments.remove(created) }

    func fileName(_ segment: LiveSegment, compressed: Bool) -> String {
        segment.key.fileName(compressed: compressed && segment.key.kind.compressible)
    }

    var base: LiveSegment { created.first { $0.key.kind == .base }! }

    /// Four primary stages of 32 MiB and a data stage: a job of a second or so with one thread.
    static func fourStages(_ name: String, nsid: Int) -> SyntheticNamespace {
        SyntheticNamespace(
            name: name, nsid: nsid, primaryStages: 4, stageSize: 32 << 20, secondaryStages: 0, dataStages: 1,
            seed: UInt64(40 + nsid))
    }
}

/// Independent reader of a (plain) backup directory after a kill: nothing restorable as a complete primary index
/// unless it is complete. Returns true when the directory holds a complete backup, false when it holds no base file;
/// records an issue for anything else.
func checkAfterKill(_ directory: String, _ segments: CrashSegments, instant: String) -> Bool {
    let names = Set((try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? [])
    let baseName = segments.fileName(segments.base, compressed: false)
    let manifestPresent = names.contains(BackupManifest.fileName)
    guard names.contains(baseName) else {
        #expect(!manifestPresent, "\(instant): a manifest without the base file: \(names.sorted())")
        return false
    }
    // A base file: every file must be in place and hold exactly the segment's bytes.
    for segment in segments.created {
        let name = segments.fileName(segment, compressed: false)
        guard names.contains(name) else {
            Issue.record("\(instant): base file present but \(name) missing: \(names.sorted())")
            return true
        }
        let bytes = [UInt8]((try? Data(contentsOf: URL(fileURLWithPath: directory + "/" + name))) ?? Data())
        #expect(bytes == SharedMemoryReader.contents(segment), "\(instant): \(name) differs from its segment")
    }
    if manifestPresent {
        let manifest = try? BackupManifest.load(directory: directory)
        #expect(
            manifest?.segments.map(\.file).sorted()
                == segments.created.map { segments.fileName($0, compressed: false) }.sorted(),
            "\(instant): incomplete manifest")
    }
    return true
}

extension ShmTests {
    /// CLI backups killed, raced and refused (instance 15 nsids 1..4, instance 14 nsid 30).
    @Suite struct BackupCrashTests {
        @Test func aBackupKilledAtAnyInstantLeavesNothingRestorableHalfDone() async throws {
            let segments = try await CrashSegments(
                instance: 15,
                SyntheticNamespace(
                    name: "crash-b", nsid: 1, primaryStages: 48, stageSize: 2 << 20, secondaryStages: 2, dataStages: 2,
                    uid: 1234, gid: 2345, mode: 0o640, seed: 41))
            defer { segments.remove() }
            let temp = try TemporaryDirectory()
            let runtime = temp.path + "/run"
            let arguments = { (path: String) in
                ["backup", "--instance", "15", "--namespace", "crash-b", "--path", path, "--threads", "2"]
            }
            // The length of an uninterrupted run, process start included, spreads the kill instants over the job
            // (the second run: the first one warms the caches).
            var duration = 0.0
            for run in 0..<2 {
                let started = Date()
                let full = try await CLIChild.run(arguments(temp.path + "/full\(run)"), runtimeDir: runtime)
                duration = Date().timeIntervalSince(started)
                #expect(full.status == 0, "\(full.text)")
            }
            // Instants spread over the job and past its end, plus three taken when the directory shows a phase: the
            // first staging file, the pending manifest (the renames start), the base file (the manifest is next).
            let base = segments.fileName(segments.base, compressed: false)
            let phases = ["*.partial", "asmtd-manifest.json.partial", base]
            let fractions = (1...20).map { Double($0) / 21 } + [0.9, 0.95, 1.0, 1.1, 1.25, 1.5]
            var complete = 0
            var empty = 0
            for index in 0..<(fractions.count + phases.count) {
                let directory = temp.path + "/k\(index)"
                let phase = index >= fractions.count ? phases[index - fractions.count] : nil
                let delay = phase == nil ? fractions[index] * duration : 0
                let instant =
                    phase.map { "kill once \($0) exists" }
                    ?? String(format: "kill at %.0f%% (%.3f s of %.3f s)", fractions[index] * 100, delay, duration)
                let child = try CLIChild.start(arguments(directory), runtimeDir: runtime)
                await blocking {
                    if let phase {
                        while child.process.isRunning {
                            let names = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
                            let seen =
                                phase == "*.partial"
                                ? names.contains { $0.hasSuffix(".partial") } : names.contains(phase)
                            if seen { break }
                        }
                    } else {
                        usleep(UInt32(delay * 1_000_000))
                    }
                    child.signal(SIGKILL)
                    _ = child.waitAndDrain()
                }
                if checkAfterKill(directory, segments, instant: instant) {
                    complete += 1
                    // Complete: a new backup there is refused; the cleanup completes a publication that lacked only
                    // the manifest's rename.
                    let again = try await CLIChild.run(arguments(directory), runtimeDir: runtime)
                    #expect(again.status == 1 && again.text.contains("FILES_EXIST"), "\(instant): \(again.text)")
                    let removed = try Engine.removeStaging(directory: directory)
                    #expect(removed.allSatisfy { $0.hasSuffix(".partial") }, "\(instant): removed \(removed)")
                } else {
                    empty += 1
                    let again = try await CLIChild.run(arguments(directory), runtimeDir: runtime)
                    #expect(again.status == 0, "\(instant): \(again.text)")
                }
                let names = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
                #expect(!names.contains { $0.hasSuffix(".partial") }, "\(instant): leftovers \(names.sorted())")
                #expect(checkAfterKill(directory, segments, instant: instant + ", then a new backup"))
                #expect(names.contains(BackupManifest.fileName), "\(instant): \(names.sorted())")
                try? FileManager.default.removeItem(atPath: directory)
            }
            print(
                "backup kill test: \(fractions.count + phases.count) instants, \(complete) complete, \(empty) without base"
            )
            // Both outcomes were met, so the instants do span the job.
            #expect(complete > 0 && empty > 0, "complete \(complete), empty \(empty)")
        }

        @Test func aServerAttachingAfterTheCopyFailsTheBackupAndNothingIsPublished() async throws {
            let segments = try await CrashSegments(instance: 15, CrashSegments.fourStages("crash-attach", nsid: 2))
            defer { segments.remove() }
            let temp = try TemporaryDirectory()
            let directory = temp.path + "/b"
            let child = try CLIChild.start(
                ["backup", "--instance", "15", "--namespace", "crash-attach", "--path", directory, "--threads", "1"],
                runtimeDir: temp.path + "/run")
            // One thread copies the files in plan order: once the treex file exists, the base is copied and detached.
            let treex = try #require(segments.created.first { $0.key.kind == .treex })
            let marker = directory + "/" + treex.key.fileName(compressed: false) + ".partial"
            let base = segments.base
            // The address as an integer: raw pointers are not Sendable.
            let attached: Int = await blocking {
                while child.process.isRunning && !FileManager.default.fileExists(atPath: marker) { usleep(200) }
                guard let address = shmat(base.shmid, nil, SHM_RDONLY),
                    address != UnsafeMutableRawPointer(bitPattern: -1)
                else { return 0 }
                return Int(bitPattern: address)
            }
            defer { if let address = UnsafeMutableRawPointer(bitPattern: attached) { shmdt(address) } }
            #expect(attached != 0)
            let status = await blocking { child.waitAndDrain() }
            #expect(status == 1, "\(child.text)")
            #expect(child.text.contains("SERVER_RUNNING"), "\(child.text)")
            #expect(!FileManager.default.fileExists(atPath: directory), "published or left: \(directory)")
        }

        @Test func twoBackupsIntoOneDirectoryOneIsRefusedBackupBusy() async throws {
            let first = try await CrashSegments(instance: 15, CrashSegments.fourStages("crash-one", nsid: 3))
            defer { first.remove() }
            let second = try await CrashSegments(
                instance: 14, SyntheticNamespace(name: "crash-two", nsid: 30, stageSize: 1 << 20, seed: 44))
            defer { second.remove() }
            let temp = try TemporaryDirectory()
            let directory = temp.path + "/b"
            let runtime = temp.path + "/run"
            let running = try CLIChild.start(
                ["backup", "--instance", "15", "--namespace", "crash-one", "--path", directory, "--threads", "1"],
                runtimeDir: runtime)
            // Once a staging file exists, the first backup holds the directory's lock.
            let holding = await blocking {
                while running.process.isRunning {
                    let names = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
                    if names.contains(where: { $0.hasSuffix(".partial") }) { return true }
                    usleep(200)
                }
                return false
            }
            #expect(holding)
            let refused = try await CLIChild.run(
                ["backup", "--instance", "14", "--namespace", "crash-two", "--path", directory], runtimeDir: runtime)
            let status = await blocking { running.waitAndDrain() }
            #expect(status == 0, "\(running.text)")
            #expect(refused.status == 75, "\(refused.text)")
            #expect(refused.text.contains("BACKUP_BUSY"), "\(refused.text)")
            let manifest = try BackupManifest.load(directory: directory)
            #expect(manifest?.instance == 15)
            #expect(manifest?.segments.count == first.created.count)
        }

        @Test func aCLIJobOnABusyInstanceIsRefusedInstanceBusy() async throws {
            let segments = try await CrashSegments(
                instance: 15, SyntheticNamespace(name: "crash-busy", nsid: 4, stageSize: 1 << 20, seed: 45))
            defer { segments.remove() }
            let temp = try TemporaryDirectory()
            let runtime = temp.path + "/run"
            let held = try InstanceLock.acquire(instance: 15, runtimeDirectory: runtime, holder: "asmtd service job t1")
            for command in ["backup", "restore"] {
                let refused = try await CLIChild.run(
                    [command, "--instance", "15", "--namespace", "crash-busy", "--path", temp.path + "/b"],
                    runtimeDir: runtime)
                #expect(refused.status == 75, "\(refused.text)")
                #expect(refused.text.contains("INSTANCE_BUSY"), "\(refused.text)")
                #expect(refused.text.contains("pid \(getpid()): asmtd service job t1"), "\(refused.text)")
            }
            #expect(!FileManager.default.fileExists(atPath: temp.path + "/b"))
            held.release()
            let done = try await CLIChild.run(
                ["backup", "--instance", "15", "--namespace", "crash-busy", "--path", temp.path + "/b"],
                runtimeDir: runtime)
            #expect(done.status == 0, "\(done.text)")
        }

        /// The service and the CLI exclude each other through the same lock file.
        @Test func theServiceAndTheCLIShareTheInstanceLock() async throws {
            let segments = try await TestSegments.make(nsid: 16, name: "srv-cli", stages: 8, stageSize: 32 << 20)
            defer { segments.cleanUp() }
            let server = try await TestServer(namespaces: ["srv-cli"])
            defer { server.stopNow() }
            let runtime = server.directory.path + "/run"
            // A CLI job holding the instance: the service refuses.
            let cli = try InstanceLock.acquire(instance: 14, runtimeDirectory: runtime, holder: "asmtd backup (CLI)")
            let refused = try await server.request("POST", "/v1/backup", body: #"{"instance":14}"#)
            #expect(refused.status == 409)
            #expect(refused.errorCode == "INSTANCE_BUSY")
            #expect(refused.text.contains("asmtd backup (CLI)"), "\(refused.text)")
            cli.release()
            // A service job holding it: the CLI refuses, naming the job.
            let accepted = try await server.request("POST", "/v1/backup", body: #"{"instance":14,"threads":1}"#)
            #expect(accepted.status == 202, "\(accepted.text)")
            let id = try #require(accepted.json["id"] as? String)
            let busy = try await CLIChild.run(
                ["backup", "--instance", "14", "--namespace", "srv-cli", "--path", server.directory.path + "/cli"],
                runtimeDir: runtime)
            let job = try await server.waitForJob(id)
            #expect(job["state"] as? String == "success", "\(job)")
            #expect(busy.status == 75, "\(busy.text)")
            #expect(busy.text.contains("INSTANCE_BUSY") && busy.text.contains("job \(id)"), "\(busy.text)")
        }

        /// Thousands of small segments with 256 open files at most (soft and hard), plain and compressed.
        @Test func aBackupOfThousandsOfSegmentsNeedsFewOpenFiles() async throws {
            let segments = try await CrashSegments(
                instance: 15,
                SyntheticNamespace(
                    name: "crash-many", nsid: 5, primaryStages: 2048, stageSize: 4096, secondaryStages: 64,
                    dataStages: 100, seed: 46))
            defer { segments.remove() }
            #expect(segments.created.count >= 2000)
            let temp = try TemporaryDirectory()
            for compress in [false, true] {
                let directory = temp.path + (compress ? "/gz" : "/plain")
                let result = try await CLIChild.run(
                    ["backup", "--instance", "15", "--namespace", "crash-many", "--path", directory]
                        + (compress ? ["--compress"] : []),
                    runtimeDir: temp.path + "/run", openFiles: 256)
                #expect(result.status == 0, "\(result.text)")
                let manifest = try BackupManifest.load(directory: directory)
                #expect(manifest?.segments.count == segments.created.count)
            }
        }
    }
}
