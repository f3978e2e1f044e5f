import Foundation
import TestSupport
import Testing

@testable import Server

struct ConfigTests {
    func errors(_ yaml: String) -> [ConfigError] {
        if case .failure(let e) = Config.parse(yaml, file: "/etc/asmtd/asmtd.yml") { return e.errors }
        return []
    }

    @Test func minimalConfigGetsDefaultsAndAbsolutePaths() throws {
        let yaml = """
            instances:
              - instance: 3
                backup-path: backups/3
                namespaces: [test, bar]
            """
        let config = try Config.parse(yaml, file: "/etc/asmtd/asmtd.yml").get()
        let relative = try Config.parse("service: {runtime-dir: run}\n" + yaml, file: "/etc/asmtd/asmtd.yml").get()
        #expect(relative.service.runtimeDir == "/etc/asmtd/run")
        #expect(config.service.address == "127.0.0.1")
        #expect(config.service.port == 8080)
        #expect(config.service.stateDir == "/etc/asmtd/var/state")
        #expect(config.service.runtimeDir == "/run/asmtd")
        #expect(config.service.shutdownTimeoutMs == 30000)
        #expect(config.service.tokenFile == nil)
        #expect(
            config.instances == [
                InstanceConfig(instance: 3, backupPath: "/etc/asmtd/backups/3", namespaces: ["test", "bar"])
            ])
    }

    @Test func everyErrorIsReportedAtOnceWithPathAndLine() {
        let yaml = """
            service:
              http: {address: localhost, port: 99999, timeot: 5}
              logger: {level: LOUD}
              jobs-kept: many
            instances:
              - instance: 0
                backup-path: /b/0
                namespaces: [test]
                compress: yes
              - instance: 0
                backup-path: /b/0
                namespaces: []
              - backup-path: /b/2
                namespaces: [a, a]
            """
        let found = errors(yaml)
        let summary = found.map { "\($0.line) \($0.path)" }
        #expect(summary.contains("2 service.http.address"))
        #expect(summary.contains("2 service.http.port"))
        #expect(summary.contains("2 service.http.timeot"))
        #expect(summary.contains("3 service.logger.level"))
        #expect(summary.contains("4 service.jobs-kept"))
        #expect(summary.contains("9 instances[0].compress"))
        #expect(summary.contains("10 instances[1].instance"))
        #expect(summary.contains("11 instances[1].backup-path"))
        #expect(summary.contains("12 instances[1].namespaces"))
        #expect(summary.contains("13 instances[2].instance"))
        #expect(summary.contains("14 instances[2].namespaces[1]"))
        #expect(found.first { $0.path == "service.http.timeot" }?.message.contains("did you mean \"timeout\"") == true)
        #expect(found.count == 11)
    }

    @Test func syntaxErrorsHaveALine() {
        let found = errors("service:\n  http: [1, 2\ninstances: []\n")
        #expect(found.count == 1)
        #expect(found.first?.message.hasPrefix("YAML syntax error") == true)
        #expect((found.first?.line ?? 0) > 0)
    }

    @Test func emptyAndMissingInstancesAreErrors() {
        #expect(errors("").first?.message == "the file is empty")
        #expect(errors("service: {}\n").first?.path == "instances")
        #expect(errors("service: {}\ninstances: []\n").first?.path == "instances")
    }

    @Test func duplicateKeysAreErrors() {
        let found = errors("instances: []\ninstances: []\n")
        #expect(found.contains { $0.message.hasPrefix("duplicate key") && $0.line == 2 })
    }

    @Test func tokenFileAndUnusablePathsAreCheckedOnDisk() throws {
        let dir = try TemporaryDirectory()
        let token = dir.path + "/token"
        try "secret-token\n".write(toFile: token, atomically: true, encoding: .utf8)
        chmod(token, 0o600)
        try "x".write(toFile: dir.path + "/file", atomically: true, encoding: .utf8)
        let yaml = """
            service:
              auth: {token-file: token}
              state-dir: state
            instances:
              - {instance: 1, backup-path: file/sub, namespaces: [a]}
              - {instance: 2, backup-path: b2, namespaces: [a]}
            """
        try yaml.write(toFile: dir.path + "/asmtd.yml", atomically: true, encoding: .utf8)
        guard case .failure(let e) = ConfigLoader.load(path: dir.path + "/asmtd.yml") else {
            Issue.record("expected an error for a backup path below a file")
            return
        }
        #expect(e.errors.map(\.path) == ["instances[0].backup-path"])
        #expect(e.errors.first?.line == 5)

        try yaml.replacingOccurrences(of: "file/sub", with: "b1").write(
            toFile: dir.path + "/asmtd.yml", atomically: true, encoding: .utf8)
        let config = try ConfigLoader.load(path: dir.path + "/asmtd.yml").get()
        #expect(config.authToken == "secret-token")
        #expect(config.service.stateDir == dir.path + "/state")

        chmod(token, 0o644)
        guard case .failure(let e2) = ConfigLoader.load(path: dir.path + "/asmtd.yml") else {
            Issue.record("a token file readable by others must be refused")
            return
        }
        #expect(e2.errors.first?.path == "service.auth.token-file")
    }

    @Test func theExampleConfigLoads() throws {
        let file = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("config/asmtd.yml").path
        let config = try ConfigLoader.load(path: file).get()
        #expect(config.instances.map(\.instance) == [0, 15])
        #expect(config.service.address == "127.0.0.1")
        #expect(config.authToken == nil)
    }

    @Test func pathsAreNormalised() {
        #expect(Paths.resolve("../var/x", against: "/etc/asmtd/config") == "/etc/asmtd/var/x")
        #expect(Paths.resolve("/a//b/./c/", against: "/x") == "/a/b/c")
        #expect(Paths.directory(of: "/etc/asmtd.yml") == "/etc")
        #expect(Paths.directory(of: "asmtd.yml") == ".")
        #expect(Paths.isSafeName("20261122-022500-3f9a1c2b"))
        #expect(!Paths.isSafeName("../etc"))
        #expect(!Paths.isSafeName(".hidden"))
        #expect(!Paths.isSafeName("a/b"))
    }
}
