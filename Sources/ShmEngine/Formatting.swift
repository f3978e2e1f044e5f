import Foundation

/// The text of an errno value, for error messages.
func errnoText(_ code: Int32 = errno) -> String { String(cString: strerror(code)) }

/// A CRC-32 as "0x%08x", for error messages.
func hex32(_ value: UInt32) -> String {
    let digits = String(value, radix: 16)
    return "0x" + String(repeating: "0", count: 8 - digits.count) + digits
}

/// RFC 3339 UTC to the second, as manifests record times.
func rfc3339(_ date: Date = Date()) -> String {
    let formatter = ISO8601DateFormatter()
    formatter.formatOptions = [.withInternetDateTime]
    formatter.timeZone = TimeZone(identifier: "UTC")
    return formatter.string(from: date)
}
