import Glibc

/// Wall-clock time as Unix seconds, and RFC 3339 formatting (UTC, "Z").
enum Time {
    static func now() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
    }

    /// Monotonic seconds, for durations.
    static func monotonic() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
    }

    /// "2026-11-22T02:25:00.123Z" (milliseconds, always UTC; the calendar is the C library's). Pure.
    static func rfc3339(_ seconds: Double) -> String {
        let totalMillis = Int64((seconds * 1000).rounded(.down))
        var whole = time_t(totalMillis / 1000)
        var millis = totalMillis % 1000
        if millis < 0 {
            millis += 1000
            whole -= 1
        }
        var t = tm()
        gmtime_r(&whole, &t)
        let date = "\(pad(Int(t.tm_year) + 1900, 4))-\(pad(t.tm_mon + 1, 2))-\(pad(t.tm_mday, 2))"
        return date + "T\(pad(t.tm_hour, 2)):\(pad(t.tm_min, 2)):\(pad(t.tm_sec, 2)).\(pad(millis, 3))Z"
    }

    /// Unix seconds of "YYYY-MM-DDTHH:MM:SS[.fraction]Z" (as `rfc3339` writes it; "+00:00" too), else nil. Pure.
    static func parseRFC3339(_ text: String) -> Double? {
        let b = Array(text.utf8)
        func number(_ from: Int, _ count: Int) -> Int? {
            guard from + count <= b.count else { return nil }
            var value = 0
            for c in b[from..<from + count] {
                guard c >= 0x30, c <= 0x39 else { return nil }
                value = value * 10 + Int(c - 0x30)
            }
            return value
        }
        guard b.count >= 20, b[4] == 0x2d, b[7] == 0x2d, b[10] == 0x54 || b[10] == 0x74, b[13] == 0x3a,
            b[16] == 0x3a, let year = number(0, 4), let month = number(5, 2), let day = number(8, 2),
            let hour = number(11, 2), let minute = number(14, 2), let second = number(17, 2),
            (1...12).contains(month), (1...31).contains(day), hour < 24, minute < 60, second < 61
        else { return nil }
        var index = 19
        var fraction = 0.0
        if b[index] == 0x2e {
            var scale = 0.1
            index += 1
            let start = index
            while index < b.count, b[index] >= 0x30, b[index] <= 0x39 {
                fraction += Double(b[index] - 0x30) * scale
                scale /= 10
                index += 1
            }
            if index == start { return nil }
        }
        let zone = String(decoding: b[index...], as: UTF8.self)
        guard zone == "Z" || zone == "z" || zone == "+00:00" else { return nil }
        var t = tm()
        (t.tm_year, t.tm_mon, t.tm_mday) = (Int32(year - 1900), Int32(month - 1), Int32(day))
        (t.tm_hour, t.tm_min, t.tm_sec) = (Int32(hour), Int32(minute), Int32(second))
        return Double(timegm(&t)) + fraction
    }

    /// "20261122-022500" for ids (UTC). Pure.
    static func compact(_ seconds: Double) -> String {
        let s = rfc3339(seconds)
        let digits = s.prefix(19).filter { $0.isNumber }
        return String(digits.prefix(8)) + "-" + String(digits.dropFirst(8))
    }

    private static func pad(_ value: some BinaryInteger, _ width: Int) -> String {
        let s = String(value)
        return s.count >= width ? s : String(repeating: "0", count: width - s.count) + s
    }
}
