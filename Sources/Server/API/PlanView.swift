import ShmEngine

/// A dry run's answer: the pre-flight plan, nothing written.
struct PlanView: Encodable, Sendable {
    struct Namespace: Encodable, Sendable {
        var name: String
        var nsid: Int
    }
    struct Segment: Encodable, Sendable {
        var key: String
        var kind: String
        var namespace: String
        var size: UInt64
        var file: String
        var compressed: Bool
        var uid, gid: UInt32
        var mode: String
    }
    var dryRun = true
    var type: String
    var instance: Int
    var path: String
    var namespaces: [Namespace]
    var segments: [Segment]
    var totalBytes: UInt64

    enum CodingKeys: String, CodingKey {
        case dryRun = "dry-run", type, instance, path, namespaces, segments, totalBytes = "total-bytes"
    }

    init(
        type: String, instance: Int, path: String, namespaces: [PlannedNamespace], segments: [PlannedSegment],
        totalBytes: UInt64
    ) {
        self.type = type
        self.instance = instance
        self.path = path
        self.namespaces = namespaces.map { Namespace(name: $0.name, nsid: $0.nsid) }
        self.segments = segments.map {
            Segment(
                key: $0.key.hex, kind: $0.kind.rawValue, namespace: $0.namespace, size: $0.size, file: $0.file,
                compressed: $0.compressed, uid: $0.uid, gid: $0.gid, mode: "0" + String($0.mode, radix: 8))
        }
        self.totalBytes = totalBytes
    }

    init(backup plan: BackupPlan) {
        self.init(
            type: "backup", instance: plan.instance, path: plan.directory, namespaces: plan.namespaces,
            segments: plan.segments, totalBytes: plan.totalBytes)
    }

    init(restore plan: RestorePlan) {
        self.init(
            type: "restore", instance: plan.instance, path: plan.directory, namespaces: plan.namespaces,
            segments: plan.segments, totalBytes: plan.totalBytes)
    }
}
