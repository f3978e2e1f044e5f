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

    /// Runs a job with a progress line on a TTY; SIGINT and SIGTERM cancel it.
    static func withProgress<T: Sendable>(
        _ label: String, progress: JobProgress, token: CancellationToken,
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
        let tty = isatty(STDERR_FILENO) == 1
        let started = Date()
        var timer: (any DispatchSourceTimer)?
        if tty {
            let source = DispatchSource.makeTimerSource(queue: .global())
            timer = source
            source.schedule(deadline: .now() + 0.5, repeating: 0.5)
            source.setEventHandler {
                let snap = progress.snapshot()
                guard snap.bytesTotal > 0 else { return }
                let percent = Double(snap.bytesDone) * 100 / Double(snap.bytesTotal)
                let line = String(
                    format: "\r%@ %5.1f%% %@ / %@, %d/%d segments, %@   ", label, percent, bytes(snap.bytesDone),
                    bytes(snap.bytesTotal), snap.segmentsDone, snap.segmentsTotal, rate(snap.bytesDone, since: started))
                FileHandle.standardError.write(Data(line.utf8))
            }
            source.resume()
        }
        defer {
            timer?.cancel()
            if tty { FileHandle.standardError.write(Data("\r\u{1B}[K".utf8)) }
            for source in sources { source.cancel() }
            signal(SIGINT, SIG_DFL)
            signal(SIGTERM, SIG_DFL)
        }
        return try await blocking(body)
    }

    /// The instance's lock for a CLI job (runtime directory from `ASMTD_RUNTIME_DIR`, else /run/asmtd): the
    /// service and other asmtd commands then refuse the instance with INSTANCE_BUSY until this job ends.
    static func lockInstance(_ instance: Int, job: String) throws(EngineError) -> InstanceLock {
        try InstanceLock.acquire(instance: instance, holder: "asmtd \(job) (CLI)")
    }

    /// Prints one error line and returns the exit code to throw.
    static func fail(_ error: EngineError) -> ExitCode {
        FileHandle.standardError.write(Data("asmtd: error: \(error.code.rawValue): \(error.message)\n".utf8))
        switch error.code {
        case .canceled: return ExitCode(130)
        // EX_TEMPFAIL: another job holds the instance or the directory; retrying later can succeed.
        case .instanceBusy, .backupBusy: return ExitCode(75)
        default: return ExitCode(1)
        }
    }

    static func warn(_ warnings: [String]) {
        for warning in warnings { FileHandle.standardError.write(Data("asmtd: warning: \(warning)\n".utf8)) }
    }

    static func fail(message: String) -> ExitCode {
        FileHandle.standardError.write(Data("asmtd: error: \(message)\n".utf8))
        return ExitCode(1)
    }

    static func json<T: Encodable>(_ value: T) -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        return ((try? encoder.encode(value)) ?? Data()) + Data("\n".utf8)
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
