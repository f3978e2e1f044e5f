/// The kinds of Aerospike shared-memory segments.
public enum SegmentKind: String, Sendable, Codable, CaseIterable {
    case base = "pi-base"
    case treex = "pi-treex"
    case primaryStage = "pi-stage"
    case meta = "si-meta"
    case secondaryStage = "si-stage"
    case dataStage = "data-stage"

    /// Order in which asmt processes files, the order of the cases: base, treex, primary stages, meta, secondary
    /// stages, data.
    var order: Int { Self.allCases.firstIndex(of: self) ?? 0 }

    /// Base and meta are never compressed.
    package var compressible: Bool { self != .base && self != .meta }
}

/// A System V key of an Aerospike segment: `TYPE<<24 | INSTANCE<<20 | NSID<<12 | LOW`.
public struct SegmentKey: Hashable, Comparable, Sendable, Codable, CustomStringConvertible {
    package let rawValue: UInt32

    static let primaryType: UInt32 = 0xAE
    static let secondaryType: UInt32 = 0xA2
    static let dataType: UInt32 = 0xAD
    /// Stages use LOW 0x100..0x8FF (at most 2048).
    package static let maxStages = 0x800
    /// Data stages use LOW 0x000..0x0FF.
    package static let maxDataStages = 0x100

    /// nil when not a valid Aerospike key (type byte, nsid 1..32, low range).
    package init?(rawValue: UInt32) {
        let type = rawValue >> 24
        let nsid = (rawValue >> 12) & 0xFF
        let low = rawValue & 0xFFF
        guard (1...32).contains(nsid) else { return nil }
        switch type {
        case Self.primaryType, Self.secondaryType:
            guard low == 0 || (type == Self.primaryType && low == 1) || (0x100...0x8FF).contains(low) else {
                return nil
            }
        case Self.dataType:
            guard low <= 0xFF else { return nil }
        default:
            return nil
        }
        self.rawValue = rawValue
    }

    package init(kind: SegmentKind, instance: Int, nsid: Int, stage: Int = 0) {
        precondition((0...15).contains(instance), "instance out of range")
        precondition((1...32).contains(nsid), "nsid out of range")
        switch kind {
        case .base, .treex, .meta: break
        case .primaryStage, .secondaryStage: precondition((0..<Self.maxStages).contains(stage), "stage out of range")
        case .dataStage: precondition((0..<Self.maxDataStages).contains(stage), "data stage out of range")
        }
        let (type, low): (UInt32, UInt32) =
            switch kind {
            case .base: (Self.primaryType, 0)
            case .treex: (Self.primaryType, 1)
            case .primaryStage: (Self.primaryType, 0x100 + UInt32(stage))
            case .meta: (Self.secondaryType, 0)
            case .secondaryStage: (Self.secondaryType, 0x100 + UInt32(stage))
            case .dataStage: (Self.dataType, UInt32(stage))
            }
        rawValue = type << 24 | UInt32(instance) << 20 | UInt32(nsid) << 12 | low
    }

    private var low: UInt32 { rawValue & 0xFFF }

    public var kind: SegmentKind {
        switch rawValue >> 24 {
        case Self.primaryType:
            return low == 0 ? .base : low == 1 ? .treex : .primaryStage
        case Self.secondaryType:
            return low == 0 ? .meta : .secondaryStage
        default:
            return .dataStage
        }
    }

    public var instance: Int { Int((rawValue >> 20) & 0xF) }
    public var nsid: Int { Int((rawValue >> 12) & 0xFF) }

    /// Stage number; 0 for base, treex, meta.
    public var stage: Int {
        switch kind {
        case .base, .treex, .meta: 0
        case .primaryStage, .secondaryStage: Int(low) - 0x100
        case .dataStage: Int(low)
        }
    }

    public var hex: String { "0x" + hex8 }

    var hex8: String {
        let digits = String(rawValue, radix: 16)
        return String(repeating: "0", count: 8 - digits.count) + digits
    }

    public var description: String { hex }

    package func fileName(compressed: Bool) -> String { hex8 + (compressed ? ".dat.gz" : ".dat") }

    /// Parses `%08x.dat` / `%08x.dat.gz` (hex digits of either case). nil for anything else.
    static func parse(fileName: String) -> (key: SegmentKey, compressed: Bool)? {
        let utf8 = Array(fileName.utf8)
        guard utf8.count == 12 || utf8.count == 15 else { return nil }
        var value: UInt32 = 0
        for byte in utf8[0..<8] {
            let digit: UInt32
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = UInt32(byte - UInt8(ascii: "0"))
            case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = UInt32(byte - UInt8(ascii: "a") + 10)
            case UInt8(ascii: "A")...UInt8(ascii: "F"): digit = UInt32(byte - UInt8(ascii: "A") + 10)
            default: return nil
            }
            value = value << 4 | digit
        }
        let suffix = String(decoding: utf8[8...], as: UTF8.self)
        let compressed: Bool
        switch suffix {
        case ".dat": compressed = false
        case ".dat.gz": compressed = true
        default: return nil
        }
        guard let key = SegmentKey(rawValue: value) else { return nil }
        return (key, compressed)
    }

    public static func < (lhs: SegmentKey, rhs: SegmentKey) -> Bool {
        if lhs.kind.order != rhs.kind.order { return lhs.kind.order < rhs.kind.order }
        return lhs.rawValue < rhs.rawValue
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        let text = try container.decode(String.self)
        var digits = Substring(text)
        if digits.hasPrefix("0x") || digits.hasPrefix("0X") { digits = digits.dropFirst(2) }
        guard digits.count == 8, let value = UInt32(digits, radix: 16), let key = SegmentKey(rawValue: value) else {
            throw DecodingError.dataCorruptedError(
                in: container, debugDescription: "not an Aerospike segment key: \(text)")
        }
        self = key
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(hex)
    }
}

extension SegmentKey {
    /// From "0x%08x" (as `CreatedSegment` records it).
    init?(hex: String) {
        guard hex.hasPrefix("0x"), hex.utf8.count == 10, let value = UInt32(hex.dropFirst(2), radix: 16) else {
            return nil
        }
        self.init(rawValue: value)
    }
}
