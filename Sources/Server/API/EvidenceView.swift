/// What asmtd recorded at the end of a backup and concluded since, per namespace.
struct EvidenceView: Sendable, Encodable {
    struct Segment: Sendable, Encodable {
        var key: String
        var shmid: Int32
        var nattch: Int
        var cpid, lpid: Int32
        var atime, dtime, ctime: Int64
    }

    struct Namespace: Sendable, Encodable {
        var name: String
        var nsid: Int
        var freshness: String
        var since: String?
        var reason: String?
        var segments: [Segment]
    }

    var bootID: String
    var observed: String
    var namespaces: [Namespace]

    enum CodingKeys: String, CodingKey { case bootID = "boot-id", observed, namespaces }

    init(_ tracks: BackupTracks) {
        bootID = tracks.bootID
        observed = Time.rfc3339(tracks.observed)
        namespaces = tracks.namespaces.map { ns in
            Namespace(
                name: ns.name, nsid: ns.nsid, freshness: ns.freshness.name, since: ns.freshness.since.map(Time.rfc3339),
                reason: ns.freshness.reason,
                segments: ns.evidence.map {
                    Segment(
                        key: $0.key.hex, shmid: $0.shmid, nattch: $0.nattch, cpid: $0.cpid, lpid: $0.lpid,
                        atime: $0.atime, dtime: $0.dtime, ctime: $0.ctime)
                })
        }
    }
}
