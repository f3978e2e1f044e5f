import ShmEngine

/// A System V segment as GET /v1/segments and `asmtd segments --json` show it.
struct SegmentView: Encodable, Sendable {
    var key: String
    var kind: String
    var instance: Int
    var nsid: Int
    var stage: Int
    var namespace: String?
    var size: UInt64
    var shmid: Int32
    var attached: Int
    var uid, gid: UInt32
    var mode: String
    var creatorPID: Int32
    /// The base of its instance and nsid is missing or has version word 0 (an unfinished restore's).
    var uncommitted: Bool

    enum CodingKeys: String, CodingKey {
        case key, kind, instance, nsid, stage, namespace, size, shmid, attached, uid, gid, mode, uncommitted
        case creatorPID = "creator-pid"
    }

    init(_ s: LiveSegment) {
        key = s.key.hex
        kind = s.key.kind.rawValue
        instance = s.key.instance
        nsid = s.key.nsid
        stage = s.key.stage
        namespace = s.namespace
        size = s.size
        shmid = s.shmid
        attached = s.attachCount
        uid = s.uid
        gid = s.gid
        mode = "0" + String(s.mode, radix: 8)
        creatorPID = s.creatorPID
        uncommitted = s.uncommitted
    }
}

struct SegmentList: Encodable, Sendable { var segments: [SegmentView] }
