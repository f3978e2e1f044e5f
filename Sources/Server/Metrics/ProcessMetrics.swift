import Glibc

/// The standard `process_*` metrics, read from /proc/self.
struct ProcessStats: Sendable, Equatable {
    var cpuSeconds: Double
    var startTimeSeconds: Double
    var virtualBytes: Double
    var residentBytes: Double

    /// Parses /proc/self/stat (pure). Fields after the command name, which may contain spaces and ')'.
    static func parse(stat: String, bootTime: Double, ticksPerSecond: Double, pageSize: Double) -> ProcessStats? {
        guard let close = stat.lastIndex(of: ")") else { return nil }
        let fields = stat[stat.index(after: close)...].split(separator: " ", omittingEmptySubsequences: true)
        // fields[0] is field 3 (state) of proc(5); utime = 14, stime = 15, starttime = 22, vsize = 23, rss = 24.
        guard fields.count > 21, let utime = Double(fields[11]), let stime = Double(fields[12]),
            let start = Double(fields[19]), let vsize = Double(fields[20]), let rss = Double(fields[21])
        else { return nil }
        return ProcessStats(
            cpuSeconds: (utime + stime) / ticksPerSecond, startTimeSeconds: bootTime + start / ticksPerSecond,
            virtualBytes: vsize, residentBytes: rss * pageSize)
    }

    /// `btime` from /proc/stat (pure).
    static func bootTime(procStat: String) -> Double? {
        for line in procStat.split(separator: "\n") where line.hasPrefix("btime ") {
            return Double(line.dropFirst(6).trimmingWhitespace())
        }
        return nil
    }

    static func read() -> ProcessStats? {
        guard let stat = try? FileSystem.readFile("/proc/self/stat"),
            let procStat = try? FileSystem.readFile("/proc/stat"),
            let boot = bootTime(procStat: String(decoding: procStat, as: UTF8.self))
        else { return nil }
        return parse(
            stat: String(decoding: stat, as: UTF8.self), bootTime: boot,
            ticksPerSecond: Double(sysconf(Int32(_SC_CLK_TCK))), pageSize: Double(sysconf(Int32(_SC_PAGESIZE))))
    }

    static func openFileDescriptors() -> Int {
        max(0, FileSystem.list("/proc/self/fd").count - 1)  // minus the one reading the folder
    }

    static func maxFileDescriptors() -> Double {
        var limit = rlimit()
        guard getrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &limit) == 0 else { return 0 }
        return limit.rlim_cur == rlim_t.max ? Double(Int64.max) : Double(limit.rlim_cur)
    }
}
