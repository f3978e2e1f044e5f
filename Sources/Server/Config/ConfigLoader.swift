import Glibc

/// Reads a config file, parses it, then checks what only the file system can tell
/// (usable directories, the token file). Every error is collected.
enum ConfigLoader {
    static func load(path: String) -> Result<Config, ConfigErrors> {
        let absolute = Paths.resolve(path, against: FileSystem.currentDirectory())
        let bytes: [UInt8]
        do {
            bytes = try FileSystem.readFile(absolute, limit: 1 << 20)
        } catch {
            return .failure(
                ConfigErrors(errors: [
                    ConfigError(file: path, line: 0, path: "", message: "cannot read the config file: \(error)")
                ]))
        }
        guard let text = String(validating: bytes, as: UTF8.self) else {
            return .failure(
                ConfigErrors(errors: [ConfigError(file: path, line: 0, path: "", message: "the file is not UTF-8")]))
        }
        switch Config.parse(text, file: absolute) {
        case .failure(let errors):
            return .failure(errors)
        case .success(var config):
            let errors = checkEnvironment(&config)
            return errors.isEmpty ? .success(config) : .failure(ConfigErrors(errors: errors))
        }
    }

    /// Checks directories and reads the token; fills `config.authToken`.
    static func checkEnvironment(_ config: inout Config) -> [ConfigError] {
        var errors: [ConfigError] = []
        func add(_ path: String, _ message: String) {
            errors.append(ConfigError(file: config.file, line: config.lines[path] ?? 0, path: path, message: message))
        }
        if let problem = FileSystem.directoryProblem(config.service.stateDir) {
            add("service.state-dir", problem)
        }
        for (index, instance) in config.instances.enumerated() {
            if let problem = FileSystem.directoryProblem(instance.backupPath) {
                add("instances[\(index)].backup-path", problem)
            }
            if instance.backupPath == config.service.stateDir
                || instance.backupPath.hasPrefix(config.service.stateDir + "/")
            {
                add("instances[\(index)].backup-path", "must not be inside service.state-dir")
            }
        }
        if let tokenFile = config.service.tokenFile {
            switch TokenFile.read(tokenFile) {
            case .success(let token): config.authToken = token
            case .failure(let error): add("service.auth.token-file", error.message)
            }
        }
        return errors
    }
}
