/// An optional that the JSON always shows: `null` when absent. The synthesized `Encodable` leaves an absent
/// optional out, which is right for fields the API documents as optional (`error`, `warnings`) and wrong for
/// those it documents as present and nullable (`started`, `used-by`, ...); these are declared
/// `@Nullable var started: String?` and keep the synthesized coding.
@propertyWrapper
struct Nullable<Value> {
    var wrappedValue: Value?

    init(wrappedValue: Value?) { self.wrappedValue = wrappedValue }
}

extension Nullable: Sendable where Value: Sendable {}
extension Nullable: Equatable where Value: Equatable {}

extension Nullable: Encodable where Value: Encodable {
    func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        if let wrappedValue { try container.encode(wrappedValue) } else { try container.encodeNil() }
    }
}

extension Nullable: Decodable where Value: Decodable {
    init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        wrappedValue = container.decodeNil() ? nil : try container.decode(Value.self)
    }
}

extension KeyedDecodingContainer {
    /// A missing key decodes as absent too (the synthesized `Decodable` picks this over the generic `decode`).
    func decode<Value: Decodable>(_ type: Nullable<Value>.Type, forKey key: Key) throws -> Nullable<Value> {
        Nullable(wrappedValue: try decodeIfPresent(Value.self, forKey: key))
    }
}
