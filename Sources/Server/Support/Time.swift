import Glibc

/// Wall-clock time as Unix seconds, and RFC 3339 formatting (UTC, "Z"). The calendar is the C library's
/// (`gmtime_r`, `timegm`).
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

    /// "2026-11-22T02:25:00.123Z" (milliseconds, always UTC). Pure.
    static func rfc3339(_ seconds: Double) -> String {
        let totalMillis = Int64((seconds * 1000).rounded(.down))
        let millis = (totalMillis % 1000 + 1000) % 1000
        var wholeSeconds = time_t((totalMillis - millis) / 1000)
        var fields = tm()
        gmtime_r(&wholeSeconds, &fields)
        let (year, month, day) = (Int(fields.tm_year) + 1900, Int(fields.tm_mon) + 1, Int(fields.tm_mday))
        let (hour, minute, second) = (Int(fields.tm_hour), Int(fields.tm_min), Int(fields.tm_sec))
        return "\(pad(year, 4))-\(pad(month, 2))-\(pad(day, 2))T\(pad(hour, 2)):\(pad(minute, 2)):\(pad(second, 2))"
            + ".\(pad(millis, 3))Z"
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
        var fields = tm()
        fields.tm_year = Int32(year - 1900)
        fields.tm_mon = Int32(month - 1)
        fields.tm_mday = Int32(day)
        fields.tm_hour = Int32(hour)
        fields.tm_min = Int32(minute)
        fields.tm_sec = Int32(second)
        return Double(timegm(&fields)) + fraction
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
