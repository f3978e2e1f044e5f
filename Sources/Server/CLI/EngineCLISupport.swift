import ArgumentParser
import Dispatch
import Foundation
import ShmEngine

/// Helpers shared by the engine subcommands.
enum EngineCLI {
    /// Runs blocking engine work off the cooperative thread pool.
    static func blocking<T: Sendable>(
        _ body: @escaping @Sendable () throws(EngineError) -> T
    ) async throws(EngineError)
        -> T
    {
        let result = await Blocking.run(body)
        return try result.get()
    }

    /// Runs a job with a progress line (on a terminal, or forced by `--progress`); SIGINT and SIGTERM cancel it.
    static func withProgress<T: Sendable>(
        _ label: String, progress: JobProgress, token: CancellationToken, display: ProgressDisplay,
        _ body: @escaping @Sendable () throws(EngineError) -> T
    ) async throws(EngineError) -> T {
        var sources: [any DispatchSourceSignal] = []
        for signalNumber in [SIGINT, SIGTERM] {
            signal(signalNumber, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: signalNumber, queue: .global())
            source.setEventHandler { token.cancel() }
            source.resume()
            sources.append(source)
        }
        let started = Date()
        var timer: (any DispatchSourceTimer)?
        if display.enabled {
            let source = DispatchSource.makeTimerSource(queue: .global())
            timer = source
            source.schedule(deadline: .now() + display.interval, repeating: display.interval)
            source.setEventHandler {
                let snap = progress.snapshot()
                guard snap.bytesTotal > 0 else { return }
                let elapsed = Date().timeIntervalSince(started)
                display.show(
                    ProgressLine.render(
                        label: label, bytesDone: snap.bytesDone, bytesTotal: snap.bytesTotal,
                        segmentsDone: snap.segmentsDone, segmentsTotal: snap.segmentsTotal,
                        bytesPerSecond: Double(snap.bytesDone) / max(elapsed, 0.001),
                        etaSeconds: ProgressLine.eta(done: snap.bytesDone, total: snap.bytesTotal, elapsed: elapsed)))
            }
            source.resume()
        }
        defer {
            timer?.cancel()
            display.finish()
            for source in sources { source.cancel() }
            signal(SIGINT, SIG_DFL)
            signal(SIGTERM, SIG_DFL)
        }
        return try await blocking(body)
    }

    /// The instance's lock for a CLI job (runtime directory from `ASMTD_RUNTIME_DIR`, else /run/asmtd): the
    /// service and other asmtd commands then refuse the instance with INSTANCE_BUSY until this job ends. A refusal
    /// is printed and exits with its status.
    static func lockInstance(_ instance: Int, job: String) throws(ExitCode) -> InstanceLock {
        do {
            return try InstanceLock.acquire(instance: instance, holder: "asmtd \(job) (CLI)")
        } catch {
            throw fail(error)
        }
    }

    /// A local backup or restore: plans (a refusal exits at once with its status), runs with the progress
    /// line, prints the job object with `--json` (of a failed run too), and exits with the run's status when
    /// it failed.
    static func runJob<Plan: Sendable, Output: Sendable>(
        _ type: JobType, request: JobRequest, directory: String, output: JobOutputOptions,
        plan: @escaping @Sendable () throws(EngineError) -> Plan,
        segments: (Plan) -> [PlannedSegment],
        run: @escaping @Sendable (Plan, JobProgress, CancellationToken) throws(EngineError) -> Output
    ) async throws(ExitCode) -> (plan: Plan, output: Output) {
        let progress = JobProgress()
        let token = CancellationToken()
        let started = Time.now()
        let display = ProgressDisplay(force: output.progress)
        let planned: Plan
        let result: Result<Output, EngineError>
        do {
            (planned, result) = try await withProgress(
                type.rawValue, progress: progress, token: token, display: display
            ) {
                () throws(EngineError) in
                let planned = try plan()
                return (planned, Result { () throws(EngineError) in try run(planned, progress, token) })
            }
        } catch {
            throw fail(error)
        }
        if output.json {
            let report = LocalJobReport.Run(
                type: type, request: request, directory: directory, segments: segments(planned), started: started)
            JSONOutput.write(
                LocalJobReport.resource(
                    report, progress: progress.snapshot(), finished: Time.now(), error: result.failure))
        }
        switch result {
        case .success(let value): return (planned, value)
        case .failure(let error): throw fail(error)
        }
    }

    /// The engine commands work on asd's segments, which are root's, and a restore sets their owners: as
    /// another user they would only find nothing, so they refuse at once with 77 (EX_NOPERM).
    static func requireRoot(_ command: String) throws(ExitCode) {
        if geteuid() != 0 {
            throw fail(
                message: "asmtd \(command) must run as root (shared memory of asd, owners of segments)",
                status: .noPermission)
        }
    }

    /// Prints one error line and returns the exit code to throw (``SysExit``).
    static func fail(_ error: EngineError) -> ExitCode {
        FileHandle.standardError.write(Data("asmtd: error: \(error.code.rawValue): \(error.message)\n".utf8))
        return ExitCode(SysExit.of(error).rawValue)
    }

    static func warn(_ warnings: [String]) {
        for warning in warnings { FileHandle.standardError.write(Data("asmtd: warning: \(warning)\n".utf8)) }
    }

    static func fail(message: String, status: SysExit = .usage) -> ExitCode {
        FileHandle.standardError.write(Data("asmtd: error: \(message)\n".utf8))
        return ExitCode(status.rawValue)
    }

    static func printPlan(_ segments: [PlannedSegment]) {
        var rows = [["KEY", "KIND", "NAMESPACE", "SIZE", "FILE", "OWNER", "MODE"]]
        for segment in segments {
            rows.append([
                segment.key.hex, segment.kind.rawValue, segment.namespace, String(segment.size), segment.file,
                "\(segment.uid):\(segment.gid)", "0" + String(segment.mode, radix: 8),
            ])
        }
        printTable(rows)
    }

    static func printTable(_ rows: [[String]]) {
        guard let first = rows.first else { return }
        var widths = first.map(\.count)
        for row in rows {
            for (index, cell) in row.enumerated() { widths[index] = max(widths[index], cell.count) }
        }
        for row in rows {
            let line = row.enumerated().map { index, cell in
                cell.padding(toLength: widths[index], withPad: " ", startingAt: 0)
            }.joined(separator: "  ")
            print(line.trimmingWhitespace())
        }
    }

    static func bytes(_ count: UInt64) -> String {
        let units = ["B", "KiB", "MiB", "GiB", "TiB"]
        var value = Double(count)
        var unit = 0
        while value >= 1024 && unit < units.count - 1 {
            value /= 1024
            unit += 1
        }
        return unit == 0 ? "\(count) B" : String(format: "%.1f %@", value, units[unit])
    }

    static func elapsed(since start: Date) -> String { String(format: "%.2fs", Date().timeIntervalSince(start)) }

    static func rate(_ count: UInt64, since start: Date) -> String {
        let seconds = max(Date().timeIntervalSince(start), 0.001)
        return String(format: "%.0f MB/s", Double(count) / seconds / 1_000_000)
    }

    /// "4096", "64KiB", "256MiB", "1GiB", "2G", "16M", "4k".
    static func parseSize(_ text: String) -> Int? {
        let lower = text.lowercased()
        let digits = lower.prefix { $0.isNumber }
        guard let value = Int(digits) else { return nil }
        let multiplier: Int
        switch lower.dropFirst(digits.count) {
        case "", "b": multiplier = 1
        case "k", "kb", "kib": multiplier = 1 << 10
        case "m", "mb", "mib": multiplier = 1 << 20
        case "g", "gb", "gib": multiplier = 1 << 30
        default: return nil
        }
        let (result, overflow) = value.multipliedReportingOverflow(by: multiplier)
        return overflow ? nil : result
    }
}

extension Result {
    fileprivate var failure: Failure? {
        if case .failure(let error) = self { return error }
        return nil
    }
}
