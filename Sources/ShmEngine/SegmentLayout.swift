/// Byte layouts of the things asmt reads and writes. Pure code, no I/O.
package enum Layout {
    package static let baseVersionOffset = 0
    package static let baseShutdownOffset = 4
    package static let baseNameOffset = 1024
    package static let baseArenasOffset = 2152
    /// Smallest base asmt accepts (the n_arenas field must fit).
    static let baseMinimumSize = 2156
    package static let metaArenasOffset = 20
    static let metaMinimumSize = 24
    package static let dataNameOffset = 12
    package static let nameLength = 32
    static let acceptedBaseVersions: ClosedRange<UInt32> = 10...12
}

/// Facts read from the first bytes of a segment or file.
struct SegmentFacts: Sendable, Equatable {
    var version: UInt32?
    var shutdownStatus: UInt32?
    var arenas: UInt32?
    var namespace: String?

    static func read(kind: SegmentKind, prefix: [UInt8]) -> SegmentFacts {
        var facts = SegmentFacts()
        switch kind {
        case .base:
            facts.version = prefix.u32(at: Layout.baseVersionOffset)
            facts.shutdownStatus = prefix.u32(at: Layout.baseShutdownOffset)
            facts.arenas = prefix.u32(at: Layout.baseArenasOffset)
            facts.namespace = prefix.name(at: Layout.baseNameOffset)
        case .meta:
            facts.arenas = prefix.u32(at: Layout.metaArenasOffset)
        case .dataStage:
            facts.namespace = prefix.name(at: Layout.dataNameOffset)
        default:
            break
        }
        return facts
    }

    /// How many leading bytes `read` needs for a kind.
    static func prefixLength(kind: SegmentKind) -> Int {
        switch kind {
        case .base: Layout.baseArenasOffset + 4
        case .meta: Layout.metaArenasOffset + 4
        case .dataStage: Layout.dataNameOffset + Layout.nameLength
        default: 0
        }
    }
}

extension Array where Element == UInt8 {
    /// A NUL-padded name of at most 32 bytes; nil when missing or empty.
    func name(at offset: Int) -> String? {
        guard offset + Layout.nameLength <= count else { return nil }
        var bytes = self[offset..<offset + Layout.nameLength]
        if let nul = bytes.firstIndex(of: 0) { bytes = bytes[offset..<nul] }
        guard !bytes.isEmpty else { return nil }
        return String(decoding: bytes, as: UTF8.self)
    }
}
