import Foundation
import Synchronization

/// The progress line of a running job on stderr, the same for the local commands and `asmtd job`:
/// `backup  45.2% 1.2 GiB / 2.6 GiB, 3/8 segments, 850 MB/s, ETA 0:02`.
enum ProgressLine {
    /// Seconds left, from the fraction done and the time spent: nil until 1 % is done (pure).
    static func eta(done: UInt64, total: UInt64, elapsed: Double) -> Double? {
        guard total > 0, done > 0, elapsed > 0 else { return nil }
        let fraction = Double(done) / Double(total)
        guard fraction >= 0.01 else { return nil }
        return max(0, elapsed * (1 - fraction) / fraction)
    }

    /// `0:07`, `12:30`, `1:02:03` (pure).
    static func clock(_ seconds: Double) -> String {
        let whole = Int(seconds.rounded(.up))
        let (hours, minutes, secs) = (whole / 3600, whole % 3600 / 60, whole % 60)
        return hours > 0
            ? String(format: "%d:%02d:%02d", hours, minutes, secs) : String(format: "%d:%02d", minutes, secs)
    }

    /// The line (pure).
    static func render(
        label: String, bytesDone: UInt64, bytesTotal: UInt64, segmentsDone: Int, segmentsTotal: Int,
        bytesPerSecond: Double, etaSeconds: Double?
    ) -> String {
        let percent = bytesTotal > 0 ? Double(bytesDone) * 100 / Double(bytesTotal) : 0
        return String(
            format: "%@ %5.1f%% %@ / %@, %d/%d segments, %.0f MB/s, ETA %@", label, percent,
            EngineCLI.bytes(bytesDone), EngineCLI.bytes(bytesTotal), segmentsDone, segmentsTotal,
            bytesPerSecond / 1_000_000, etaSeconds.map(clock) ?? "-")
    }
}

/// Where the progress line goes: rewritten in place on a terminal; with `--progress` and stderr not a
/// terminal (a log, a pipe), one plain line every few seconds.
final class ProgressDisplay: Sendable {
    let terminal: Bool
    let enabled: Bool
    /// When the last plain line was written, and whether a terminal line is shown: one writer at a time.
    private let state = Mutex((lastPlain: Date.distantPast, shown: false))

    init(force: Bool) {
        terminal = isatty(STDERR_FILENO) == 1
        enabled = terminal || force
    }

    /// Seconds between refreshes of the line.
    var interval: Double { terminal ? 0.5 : 2 }

    func show(_ line: String) {
        guard enabled else { return }
        state.withLock { state in
            if terminal {
                FileHandle.standardError.write(Data("\r\(line)\u{1B}[K".utf8))
                state.shown = true
            } else if Date().timeIntervalSince(state.lastPlain) >= interval - 0.05 {
                FileHandle.standardError.write(Data((line + "\n").utf8))
                state.lastPlain = Date()
            }
        }
    }

    /// Clears the line on a terminal before the result is printed.
    func finish() {
        state.withLock { state in
            if terminal && state.shown { FileHandle.standardError.write(Data("\r\u{1B}[K".utf8)) }
            state.shown = false
        }
    }
}
