import Foundation
import Logging

/// Writes one line per record to stderr (journald under systemd): PLAIN logfmt or JSON.
///
/// Numbers and booleans given as `.stringConvertible` metadata (`.stringConvertible(bytes)`) stay typed in JSON;
/// values given as strings stay strings.
struct ServiceLogHandler: LogHandler {
    var metadataProvider: Logger.MetadataProvider?
    var metadata: Logger.Metadata = [:]
    var logLevel: Logger.Level
    let label: String
    let json: Bool

    init(label: String, level: Logger.Level, json: Bool) {
        self.label = label
        self.logLevel = level
        self.json = json
    }

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        var all = metadata
        if let provided = metadataProvider?.get() { all.merge(provided) { $1 } }
        if let extra = event.metadata { all.merge(extra) { $1 } }
        let line = Self.format(
            time: Time.now(), level: event.level, message: event.message.description, metadata: all, json: json)
        FileHandle.standardError.write(Data(line.utf8))
    }

    /// One log line (pure).
    static func format(
        time: Double, level: Logger.Level, message: String, metadata: Logger.Metadata, json: Bool
    )
        -> String
    {
        let levelName = level.rawValue.uppercased()
        let keys = metadata.keys.sorted()
        if json {
            var fields = [
                "\"time\":\(quote(Time.rfc3339(time)))", "\"level\":\(quote(levelName))", "\"msg\":\(quote(message))",
            ]
            for key in keys { fields.append("\(quote(key)):\(jsonValue(metadata[key]!))") }
            return "{" + fields.joined(separator: ",") + "}\n"
        }
        // A control character in the message would break the line: then it is escaped as in a quoted value.
        let safeMessage =
            message.unicodeScalars.contains { $0.value < 0x20 || $0.value == 0x7f }
            ? String(quote(message).dropFirst().dropLast()) : message
        var line = "\(Time.rfc3339(time)) \(levelName) \(safeMessage)"
        for key in keys { line += " \(logfmtKey(key))=\(logfmtValue(plainText(metadata[key]!)))" }
        return line + "\n"
    }

    /// A metadata value as JSON: typed numbers and booleans bare, everything else a string, arrays and
    /// dictionaries as JSON arrays and objects.
    static func jsonValue(_ value: Logger.MetadataValue) -> String {
        switch value {
        case .string(let text):
            return quote(text)
        case .stringConvertible(let convertible):
            return typedLiteral(convertible) ?? quote(convertible.description)
        case .array(let items):
            return "[" + items.map(jsonValue).joined(separator: ",") + "]"
        case .dictionary(let entries):
            let fields = entries.keys.sorted().map { "\(quote($0)):\(jsonValue(entries[$0]!))" }
            return "{" + fields.joined(separator: ",") + "}"
        }
    }

    /// The bare JSON literal of a number or boolean; nil for anything else (and non-finite numbers).
    static func typedLiteral(_ value: any CustomStringConvertible) -> String? {
        switch value {
        case let flag as Bool: return flag ? "true" : "false"
        case let integer as any BinaryInteger: return "\(integer)"
        case let number as Double: return number.isFinite ? "\(number)" : nil
        case let number as Float: return number.isFinite ? "\(number)" : nil
        case let decimal as LogDecimal: return decimal.value.isFinite ? decimal.description : nil
        default: return nil
        }
    }

    /// A value's text in a PLAIN line, before logfmt quoting.
    static func plainText(_ value: Logger.MetadataValue) -> String {
        switch value {
        case .string(let text): text
        case .stringConvertible(let convertible): convertible.description
        case .array(let items): items.map(plainText).joined(separator: ",")
        case .dictionary(let entries):
            "{" + entries.keys.sorted().map { "\($0)=\(plainText(entries[$0]!))" }.joined(separator: " ") + "}"
        }
    }

    /// logfmt: a value is bare unless it is empty or holds a space, `"`, `=`, `\` or a control character;
    /// then it is quoted with `\"`, `\\`, `\n`, `\r`, `\t` and `\u00XX` escapes.
    static func logfmtValue(_ text: String) -> String {
        let needsQuotes =
            text.isEmpty
            || text.unicodeScalars.contains { scalar in
                scalar == " " || scalar == "\"" || scalar == "=" || scalar == "\\" || scalar.value < 0x20
                    || scalar.value == 0x7f || scalar.properties.isWhitespace
            }
        return needsQuotes ? quote(text) : text
    }

    /// Keys are ours and plain; anything outside `[A-Za-z0-9_.-]` becomes `_`, so a key never breaks a line.
    static func logfmtKey(_ key: String) -> String {
        let safe = key.unicodeScalars.map { scalar -> String in
            let allowed =
                ("a"..."z").contains(scalar) || ("A"..."Z").contains(scalar) || ("0"..."9").contains(scalar)
                || scalar == "_" || scalar == "-" || scalar == "."
            return allowed ? String(scalar) : "_"
        }
        return safe.isEmpty ? "_" : safe.joined()
    }

    static func quote(_ s: String) -> String {
        var out = "\""
        for scalar in s.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            default:
                if scalar.value < 0x20 || scalar.value == 0x7f {
                    let hex = String(scalar.value, radix: 16)
                    out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
                } else {
                    out.unicodeScalars.append(scalar)
                }
            }
        }
        return out + "\""
    }
}

/// A number with a fixed count of decimals (`seconds=1.250`), typed as a number in JSON logs.
struct LogDecimal: CustomStringConvertible, Sendable {
    var value: Double
    var places: Int

    init(_ value: Double, places: Int = 3) {
        self.value = value
        self.places = places
    }

    var description: String { String(format: "%.\(places)f", value) }
}

extension Logger.MetadataValue {
    /// A number or boolean that JSON logs keep typed.
    static func typed(_ value: some CustomStringConvertible & Sendable) -> Logger.MetadataValue {
        .stringConvertible(value)
    }
}

extension LogLevelSetting {
    var loggerLevel: Logger.Level {
        switch self {
        case .trace: .trace
        case .debug: .debug
        case .info: .info
        case .warn, .warning: .warning
        case .error: .error
        }
    }
}
