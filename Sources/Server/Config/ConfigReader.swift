/// Walks the YAML tree, collecting every error instead of stopping at the first.
struct ConfigReader {
    let file: String
    let baseDirectory: String
    var errors: [ConfigError] = []
    var lines: [String: Int] = [:]

    init(file: String, baseDirectory: String) {
        self.file = file
        self.baseDirectory = baseDirectory
    }

    mutating func error(_ node: YAMLNode?, _ path: String, _ message: String) {
        errors.append(ConfigError(file: file, line: node?.line ?? 0, path: path, message: message))
    }

    mutating func readConfig(_ root: YAMLNode) -> Config? {
        guard let top = fields(root, "", known: ["service", "instances"]) else { return nil }
        var service = ServiceSettings()
        service.stateDir = Paths.resolve("./var/state", against: baseDirectory)
        if let node = top["service"] { readService(node, into: &service) }
        var instances: [InstanceConfig] = []
        if let node = top["instances"] {
            instances = readInstances(node)
        } else {
            error(root, "instances", "is required: list at least one Aerospike instance")
        }
        return Config(file: file, service: service, instances: instances, authToken: nil, lines: lines)
    }

    mutating func readService(_ node: YAMLNode, into service: inout ServiceSettings) {
        let known = [
            "http", "auth", "logger", "state-dir", "runtime-dir", "jobs-kept", "shutdown-timeout", "watch-interval",
        ]
        guard let map = fields(node, "service", known: known) else { return }
        if let http = map["http"] {
            let keys = ["address", "port", "timeout", "idle-timeout", "max-connections", "max-body"]
            if let h = fields(http, "service.http", known: keys) {
                if let v = h["address"], let s = string(v, "service.http.address") {
                    if IPAddress.isLiteral(s) {
                        service.address = s
                    } else {
                        error(v, "service.http.address", "must be an IPv4 or IPv6 address such as 127.0.0.1 or ::1")
                    }
                }
                if let v = h["port"], let n = int(v, "service.http.port", 0...65535) { service.port = n }
                if let v = h["timeout"], let n = int(v, "service.http.timeout", 1...3_600_000) { service.timeoutMs = n }
                if let v = h["idle-timeout"], let n = int(v, "service.http.idle-timeout", 1...86_400_000) {
                    service.idleTimeoutMs = n
                }
                if let v = h["max-connections"], let n = int(v, "service.http.max-connections", 1...65536) {
                    service.maxConnections = n
                }
                if let v = h["max-body"], let n = int(v, "service.http.max-body", 1...(64 << 20)) {
                    service.maxBody = n
                }
            }
        }
        if let auth = map["auth"], let a = fields(auth, "service.auth", known: ["token-file"]) {
            if let v = a["token-file"], !isNull(v), let s = string(v, "service.auth.token-file"), !s.isEmpty {
                service.tokenFile = Paths.resolve(s, against: baseDirectory)
                lines["service.auth.token-file"] = v.line
            }
        }
        if let logger = map["logger"], let l = fields(logger, "service.logger", known: ["level", "format"]) {
            if let v = l["level"], let s = string(v, "service.logger.level") {
                if let level = LogLevelSetting(rawValue: s.uppercased()) {
                    service.logLevel = level
                } else {
                    let names = LogLevelSetting.allCases.map(\.rawValue).joined(separator: ", ")
                    error(v, "service.logger.level", "unknown level \"\(s)\"; use one of \(names)")
                }
            }
            if let v = l["format"], let s = string(v, "service.logger.format") {
                if let format = LogFormatSetting(rawValue: s.uppercased()) {
                    service.logFormat = format
                } else {
                    error(v, "service.logger.format", "unknown format \"\(s)\"; use PLAIN or JSON")
                }
            }
        }
        if let v = map["state-dir"], let s = nonEmptyString(v, "service.state-dir") {
            service.stateDir = Paths.resolve(s, against: baseDirectory)
            lines["service.state-dir"] = v.line
        }
        if let v = map["runtime-dir"], let s = nonEmptyString(v, "service.runtime-dir") {
            service.runtimeDir = Paths.resolve(s, against: baseDirectory)
            lines["service.runtime-dir"] = v.line
        }
        if let v = map["jobs-kept"], let n = int(v, "service.jobs-kept", 1...1_000_000) { service.jobsKept = n }
        if let v = map["shutdown-timeout"], let n = int(v, "service.shutdown-timeout", 0...86_400_000) {
            service.shutdownTimeoutMs = n
        }
        if let v = map["watch-interval"], let n = int(v, "service.watch-interval", 100...3_600_000) {
            service.watchIntervalMs = n
        }
    }

    mutating func readInstances(_ node: YAMLNode) -> [InstanceConfig] {
        guard case .sequence(let items, _) = node else {
            error(node, "instances", "expected a list of instances, got \(node.summary)")
            return []
        }
        if items.isEmpty { error(node, "instances", "is empty: list at least one Aerospike instance") }
        var result: [InstanceConfig] = []
        var seen: [Int: Int] = [:]  // instance → line
        var paths: [String: Int] = [:]  // backup path → instance
        for (index, item) in items.enumerated() {
            let path = "instances[\(index)]"
            let known = ["instance", "backup-path", "namespaces", "threads", "compress", "verify", "keep", "auto"]
            guard let map = fields(item, path, known: known) else { continue }
            var instance = InstanceConfig(instance: -1, backupPath: "", namespaces: [])
            var complete = true
            if let v = map["instance"], let n = int(v, "\(path).instance", 0...15) {
                if let first = seen[n] {
                    error(v, "\(path).instance", "instance \(n) is already configured on line \(first)")
                    complete = false
                } else {
                    seen[n] = v.line
                }
                instance.instance = n
            } else {
                if map["instance"] == nil { error(item, "\(path).instance", "is required (0..15)") }
                complete = false
            }
            if let v = map["backup-path"], let s = nonEmptyString(v, "\(path).backup-path") {
                let resolved = Paths.resolve(s, against: baseDirectory)
                if let other = paths[resolved] {
                    error(v, "\(path).backup-path", "\(resolved) is also the backup path of instance \(other)")
                } else {
                    paths[resolved] = instance.instance
                }
                instance.backupPath = resolved
                lines["\(path).backup-path"] = v.line
            } else {
                if map["backup-path"] == nil { error(item, "\(path).backup-path", "is required") }
                complete = false
            }
            if let v = map["namespaces"], let names = namespaces(v, "\(path).namespaces") {
                instance.namespaces = names
            } else {
                if map["namespaces"] == nil {
                    error(item, "\(path).namespaces", "is required: the namespaces this instance may back up")
                }
                complete = false
            }
            if let v = map["threads"], let n = int(v, "\(path).threads", 0...1024) { instance.threads = n }
            if let v = map["compress"], let b = bool(v, "\(path).compress") { instance.compress = b }
            if let v = map["verify"], let b = bool(v, "\(path).verify") { instance.verify = b }
            if let v = map["keep"], let n = int(v, "\(path).keep", 0...100_000) { instance.keep = n }
            if let v = map["auto"] { readAuto(v, "\(path).auto", into: &instance.auto) }
            if complete { result.append(instance) }
        }
        return result
    }

    mutating func readAuto(_ node: YAMLNode, _ path: String, into auto: inout AutoSettings) {
        let known = ["restore-on-start", "backup-on-stop", "restore-timeout"]
        guard let map = fields(node, path, known: known) else { return }
        if let v = map["restore-on-start"], let b = bool(v, "\(path).restore-on-start") { auto.restoreOnStart = b }
        if let v = map["backup-on-stop"], let b = bool(v, "\(path).backup-on-stop") { auto.backupOnStop = b }
        if let v = map["restore-timeout"], let n = int(v, "\(path).restore-timeout", 1000...86_400_000) {
            auto.restoreTimeoutMs = n
        }
    }

    mutating func namespaces(_ node: YAMLNode, _ path: String) -> [String]? {
        guard case .sequence(let items, _) = node else {
            error(node, path, "expected a list of namespace names, got \(node.summary)")
            return nil
        }
        if items.isEmpty {
            error(node, path, "is empty: name at least one namespace")
            return nil
        }
        var names: [String] = []
        var ok = true
        for (index, item) in items.enumerated() {
            guard let name = string(item, "\(path)[\(index)]") else {
                ok = false
                continue
            }
            if let problem = NamespaceName.problem(name) {
                error(item, "\(path)[\(index)]", problem)
                ok = false
            } else if names.contains(name) {
                error(item, "\(path)[\(index)]", "namespace \"\(name)\" is listed twice")
                ok = false
            } else {
                names.append(name)
            }
        }
        return ok ? names : nil
    }

    // MARK: typed accessors

    /// The mapping's values by key; reports a non-mapping, unknown keys (with a suggestion) and duplicates.
    mutating func fields(_ node: YAMLNode, _ path: String, known: [String]) -> [String: YAMLNode]? {
        guard case .mapping(let pairs, _) = node else {
            error(node, path, "expected a mapping, got \(node.summary)")
            return nil
        }
        var result: [String: YAMLNode] = [:]
        for pair in pairs {
            guard case .scalar(let key, _, _) = pair.key else {
                error(pair.key, path, "keys must be plain names, got \(pair.key.summary)")
                continue
            }
            let keyPath = path.isEmpty ? key : "\(path).\(key)"
            if !known.contains(key) {
                var message = "unknown key"
                if let suggestion = Suggestion.closest(to: key, in: known) {
                    message += "; did you mean \"\(suggestion)\"?"
                } else {
                    message += "; known keys: \(known.joined(separator: ", "))"
                }
                error(pair.key, keyPath, message)
            } else if let first = result[key] {
                error(pair.key, keyPath, "duplicate key (first on line \(first.line))")
            } else {
                result[key] = pair.value
            }
        }
        return result
    }

    func isNull(_ node: YAMLNode) -> Bool {
        if case .scalar(let value, let plain, _) = node, plain, ["", "~", "null", "Null", "NULL"].contains(value) {
            return true
        }
        return false
    }

    mutating func string(_ node: YAMLNode, _ path: String) -> String? {
        guard case .scalar(let value, _, _) = node, !isNull(node) || value.isEmpty else {
            error(node, path, "expected a string, got \(node.summary)")
            return nil
        }
        return value
    }

    mutating func nonEmptyString(_ node: YAMLNode, _ path: String) -> String? {
        guard let value = string(node, path) else { return nil }
        if value.isEmpty {
            error(node, path, "must not be empty")
            return nil
        }
        return value
    }

    mutating func int(_ node: YAMLNode, _ path: String, _ range: ClosedRange<Int>) -> Int? {
        guard case .scalar(let value, let plain, _) = node, plain, let number = Int(value) else {
            error(node, path, "expected an integer (\(range.lowerBound)..\(range.upperBound)), got \(node.summary)")
            return nil
        }
        guard range.contains(number) else {
            error(node, path, "\(number) is out of range \(range.lowerBound)..\(range.upperBound)")
            return nil
        }
        return number
    }

    mutating func bool(_ node: YAMLNode, _ path: String) -> Bool? {
        if case .scalar(let value, let plain, _) = node, plain {
            if value == "true" { return true }
            if value == "false" { return false }
        }
        error(node, path, "expected true or false, got \(node.summary)")
        return nil
    }
}
