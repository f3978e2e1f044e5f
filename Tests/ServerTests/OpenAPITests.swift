import Foundation
import HTTP1
import Logging
import Testing

@testable import Server

struct OpenAPITests {
    static var repository: URL {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
    }

    static func documentText() throws -> String {
        try String(contentsOf: repository.appendingPathComponent("openapi.yaml"), encoding: .utf8)
    }

    static func value(_ key: String, in node: YAMLNode) -> YAMLNode? {
        guard case .mapping(let entries, _) = node else { return nil }
        return entries.first { if case .scalar(key, _, _) = $0.key { true } else { false } }?.value
    }

    /// "METHOD path" → the operation's node, for every operation of the document's `paths`.
    func documentedOperations() throws -> [String: YAMLNode] {
        let top = try #require(try YAML.parse(Self.documentText()))
        guard case .mapping(let entries, _) = try #require(Self.value("paths", in: top)) else { return [:] }
        var operations: [String: YAMLNode] = [:]
        let methods = ["get", "put", "post", "delete", "patch", "head", "options", "trace"]
        for entry in entries {
            guard case .scalar(let path, _, _) = entry.key, case .mapping(let items, _) = entry.value else { continue }
            for item in items {
                if case .scalar(let method, _, _) = item.key, methods.contains(method) {
                    operations["\(method.uppercased()) \(path)"] = item.value
                }
            }
        }
        return operations
    }

    func router() -> Router {
        let config = Config(
            file: "", service: ServiceSettings(),
            instances: [InstanceConfig(instance: 14, backupPath: "/nonexistent", namespaces: ["x"])], authToken: nil)
        let metrics = Metrics(version: "test")
        let jobs = JobQueue(config: config, metrics: metrics, logger: Logger(label: "test"))
        return API(config: config, jobs: jobs, metrics: metrics).router()
    }

    @Test func everyRouteIsDocumentedAndNothingElse() throws {
        let served = Set(router().routes.map { "\($0.method) \($0.pattern)" })
        let documented = Set(try documentedOperations().keys)
        #expect(served.subtracting(documented).isEmpty, "not in openapi.yaml: \(served.subtracting(documented))")
        #expect(documented.subtracting(served).isEmpty, "documented but not served: \(documented.subtracting(served))")
        #expect(served.count == 16)
    }

    @Test func everyOperationHasAUniqueOperationIdAndATag() throws {
        var ids: [String: String] = [:]
        for (route, operation) in try documentedOperations() {
            guard
                case .scalar(let id, _, _) = Self.value("operationId", in: operation)
                    ?? .scalar("", plain: true, line: 0),
                !id.isEmpty
            else {
                Issue.record("\(route) has no operationId")
                continue
            }
            #expect(ids[id] == nil, "operationId \(id) of \(route) is also used by \(ids[id] ?? "")")
            ids[id] = route
            guard case .sequence(let tags, _) = Self.value("tags", in: operation) ?? .sequence([], line: 0) else {
                Issue.record("\(route): tags is not a list")
                continue
            }
            #expect(!tags.isEmpty, "\(route) has no tag")
        }
        #expect(ids.count == 16)
    }

    @Test func everyErrorCodeIsDocumented() throws {
        let text = try Self.documentText()
        for code in APIError.Code.allCases where ![.canceled, .interrupted].contains(code) {
            #expect(text.contains(code.rawValue), "\(code.rawValue) is not in openapi.yaml")
        }
    }

    /// The document is embedded at build time (EmbedOpenAPI plugin); APITests checks what the binary serves.
    @Test func theEmbeddedDocumentIsOpenAPIYAML() throws {
        #expect(OpenAPIDocument.text == (try Self.documentText()))
        #expect(OpenAPIDocument.text.hasPrefix("openapi: 3."))
    }

    @Test func bodiesMustBeJSON() {
        #expect(API.isJSONMediaType(nil))
        #expect(API.isJSONMediaType("application/json"))
        #expect(API.isJSONMediaType("Application/JSON; charset=utf-8"))
        #expect(API.isJSONMediaType(" application/json ;charset=UTF-8"))
        #expect(!API.isJSONMediaType("text/plain"))
        #expect(!API.isJSONMediaType("application/x-www-form-urlencoded"))
        #expect(!API.isJSONMediaType("application/jsonx"))
        #expect(!API.isJSONMediaType(""))
    }
}
