import ShmEngine

/// Log levels accepted in `service.logger.level` (ABS names; TRACE is DEBUG, WARNING is WARN).
enum LogLevelSetting: String, Sendable, CaseIterable {
    case trace = "TRACE", debug = "DEBUG", info = "INFO", warn = "WARN", warning = "WARNING", error = "ERROR"
}

enum LogFormatSetting: String, Sendable, CaseIterable {
    case plain = "PLAIN", json = "JSON"
}

/// One Aerospike instance the service may back up and restore.
struct InstanceConfig: Sendable, Equatable {
    var instance: Int
    var backupPath: String
    var namespaces: [String]
    var threads: Int = 0
    var compress: Bool = false
    var verify: Bool = true
    /// Complete backups kept per instance after a successful backup; 0 = all.
    var keep: Int = 0
    var auto = AutoSettings()
}

/// `instances[].auto`: the automatic mode under systemd (README, "Warm reboots without a human").
struct AutoSettings: Sendable, Equatable {
    /// At start, before READY: restore a fresh backup when no segment of the namespaces exists.
    var restoreOnStart = false
    /// At stop: back up when asd stopped cleanly and no fresh backup covers the namespaces.
    var backupOnStop = false
    /// Milliseconds the start-up restore may take before it is canceled (its segments removed: asd cold-starts).
    var restoreTimeoutMs = 600_000
}

/// The `service:` block.
struct ServiceSettings: Sendable, Equatable {
    var address = "127.0.0.1"
    var port = 8080
    /// Request head and body timeout, milliseconds.
    var timeoutMs = 5000
    var idleTimeoutMs = 60000
    var maxConnections = 256
    var maxBody = 1 << 20
    /// Absolute path of the bearer token file; nil = no authentication.
    var tokenFile: String?
    var logLevel = LogLevelSetting.info
    var logFormat = LogFormatSetting.plain
    var stateDir = ""
    /// Where the per-instance lock files live (`InstanceLock`), shared with the CLI's jobs.
    var runtimeDir = InstanceLock.defaultRuntimeDirectory
    var jobsKept = 1000
    var shutdownTimeoutMs = 30000
    /// Milliseconds between two looks at the kernel's segment table (freshness of backups).
    var watchIntervalMs = 5000
}

/// The whole configuration, paths already absolute.
struct Config: Sendable {
    /// Absolute path of the file it was read from ("" when built in code).
    var file: String
    var service: ServiceSettings
    var instances: [InstanceConfig]
    /// The token read from `service.auth.token-file` (nil when authentication is off).
    var authToken: String?
    /// YAML path → line, for error messages about values checked after parsing.
    var lines: [String: Int] = [:]

    func instance(_ number: Int) -> InstanceConfig? {
        instances.first { $0.instance == number }
    }
}

/// One configuration error: where (file, line, YAML path) and what.
struct ConfigError: Error, Sendable, CustomStringConvertible, Equatable {
    var file: String
    var line: Int
    var path: String
    var message: String

    var description: String {
        let place = line > 0 ? "\(file):\(line)" : file
        return path.isEmpty ? "\(place): \(message)" : "\(place): \(path): \(message)"
    }
}

/// All the errors of a configuration, reported at once.
struct ConfigErrors: Error, Sendable, CustomStringConvertible {
    var errors: [ConfigError]
    var description: String { errors.map(\.description).joined(separator: "\n") }
}

extension Config {
    /// Parses and checks a configuration text (pure: touches no file).
    ///
    /// - Parameters:
    ///   - text: the YAML text.
    ///   - file: the file name used in messages and whose folder anchors relative paths.
    static func parse(_ text: String, file: String) -> Result<Config, ConfigErrors> {
        let baseDirectory = Paths.directory(of: file)
        var reader = ConfigReader(file: file, baseDirectory: baseDirectory)
        let root: YAMLNode?
        do {
            root = try YAML.parse(text)
        } catch {
            return .failure(
                ConfigErrors(errors: [
                    ConfigError(file: file, line: error.line, path: "", message: "YAML syntax error: \(error.message)")
                ]))
        }
        guard let root else {
            return .failure(
                ConfigErrors(errors: [ConfigError(file: file, line: 0, path: "", message: "the file is empty")]))
        }
        let config = reader.readConfig(root)
        if reader.errors.isEmpty, let config {
            return .success(config)
        }
        return .failure(ConfigErrors(errors: reader.errors))
    }
}
