import Foundation
import Logging
import Testing

@testable import Server

struct OpenAPITests {
    static var repository: URL {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
    }

    /// (METHOD, path) pairs of the document's `paths`.
    func documentedRoutes() throws -> Set<String> {
        let text = try String(contentsOf: Self.repository.appendingPathComponent("openapi.yaml"), encoding: .utf8)
        guard case .mapping(let top, _) = try #require(try YAML.parse(text)) else {
            Issue.record("openapi.yaml is not a mapping")
            return []
        }
        let paths = try #require(top.first { if case .scalar("paths", _, _) = $0.key { true } else { false } }?.value)
        guard case .mapping(let entries, _) = paths else { return [] }
        var routes: Set<String> = []
        let methods = ["get", "put", "post", "delete", "patch", "head", "options"]
        for entry in entries {
            guard case .scalar(let path, _, _) = entry.key, case .mapping(let operations, _) = entry.value else {
                continue
            }
            for operation in operations {
                if case .scalar(let method, _, _) = operation.key, methods.contains(method) {
                    routes.insert("\(method.uppercased()) \(path)")
                }
            }
        }
        return routes
    }

    @Test func everyRouteIsDocumentedAndNothingElse() throws {
        let config = Config(
            file: "", service: ServiceSettings(),
            instances: [InstanceConfig(instance: 14, backupPath: "/nonexistent", namespaces: ["x"])], authToken: nil)
        let metrics = Metrics(version: "test")
        let jobs = JobQueue(config: config, metrics: metrics, logger: Logger(label: "test"))
        let router = API(config: config, jobs: jobs, metrics: metrics).router()
        let served = Set(router.routes.map { "\($0.method) \($0.pattern)" })
        let documented = try documentedRoutes()
        #expect(served.subtracting(documented).isEmpty, "not in openapi.yaml: \(served.subtracting(documented))")
        #expect(documented.subtracting(served).isEmpty, "documented but not served: \(documented.subtracting(served))")
        #expect(served.count == 15)
    }

    @Test func everyErrorCodeIsDocumented() throws {
        let text = try String(contentsOf: Self.repository.appendingPathComponent("openapi.yaml"), encoding: .utf8)
        for code in APIError.Code.allCases where ![.canceled, .interrupted].contains(code) {
            #expect(text.contains(code.rawValue), "\(code.rawValue) is not in openapi.yaml")
        }
    }
}
