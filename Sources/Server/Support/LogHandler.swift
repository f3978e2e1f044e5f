import Foundation
import Logging

/// Writes one line per record to stderr (journald under systemd), PLAIN or JSON.
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
            for key in keys { fields.append("\(quote(key)):\(quote("\(metadata[key]!)"))") }
            return "{" + fields.joined(separator: ",") + "}\n"
        }
        var line = "\(Time.rfc3339(time)) \(levelName) \(message)"
        for key in keys { line += " \(key)=\(metadata[key]!)" }
        return line + "\n"
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
                if scalar.value < 0x20 {
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
