import Foundation
import Testing

/// The alert rules and the dashboard name only metrics that /metrics really exposes.
struct MonitoringTests {
    /// Named by deploy/ but not asmtd's: `up` comes from Prometheus, `asmtd_warm_restart_ready` with the
    /// warm-restart work (issue 9).
    static let exposedElsewhere: Set<String> = ["up", "asmtd_warm_restart_ready"]

    static func metricNames(in text: String) throws -> Set<String> {
        let pattern = try Regex(#"\b(?:asmtd|process)_[a-z0-9_]+\b|\bup\b(?=\{)"#)
        return Set(text.matches(of: pattern).map { String(text[$0.range]) })
    }

    /// Family names from the `# TYPE` lines, with the series names of histograms.
    static func exposedNames(_ exposition: String) -> Set<String> {
        var names: Set<String> = []
        for line in exposition.split(separator: "\n") where line.hasPrefix("# TYPE ") {
            let parts = line.split(separator: " ")
            guard parts.count == 4 else { continue }
            let name = String(parts[2])
            names.insert(name)
            if parts[3] == "histogram" { for suffix in ["_bucket", "_sum", "_count"] { names.insert(name + suffix) } }
        }
        return names
    }

    @Test func rulesAndDashboardNameExposedMetrics() async throws {
        let server = try await TestServer(namespaces: ["mon-names"])
        defer { server.stopNow() }
        let metrics = try await server.request("GET", "/metrics")
        #expect(metrics.status == 200)
        let exposed = Self.exposedNames(metrics.text)
        #expect(exposed.contains("asmtd_backups") && exposed.contains("asmtd_ready"))
        let deploy = OpenAPITests.repository.appendingPathComponent("deploy")
        for file in ["prometheus/asmtd-rules.yml", "grafana/asmtd-dashboard.json"] {
            let text = try String(contentsOf: deploy.appendingPathComponent(file), encoding: .utf8)
            let named = try Self.metricNames(in: text)
            #expect(named.count >= 5, "\(file) names \(named.sorted())")
            let missing = named.subtracting(exposed).subtracting(Self.exposedElsewhere)
            #expect(missing.isEmpty, "\(file) names metrics /metrics does not expose: \(missing.sorted())")
        }
    }

    @Test func theNameScannerFindsMetricNames() throws {
        let names = try Self.metricNames(in: #"up{job="x"} == 0 and rate(asmtd_bytes_total[5m]) / process_max_fds"#)
        #expect(names == ["up", "asmtd_bytes_total", "process_max_fds"])
        #expect(try Self.metricNames(in: "set up the asmtd_ready gauge").contains("up") == false)
    }
}
