/// A parsed JSON value (see `JSONParser`), used to check request bodies strictly before trusting them.
enum JSONValue: Sendable, Equatable {
    case null
    case bool(Bool)
    case int(Int)
    case double(Double)
    case string(String)
    case array([JSONValue])
    case object([String: JSONValue])

    /// Parses a body; the error message is meant for a client.
    static func parse(_ bytes: [UInt8]) throws(APIError) -> JSONValue {
        if bytes.allSatisfy({ $0 == 0x20 || $0 == 0x0a || $0 == 0x0d || $0 == 0x09 }) {
            throw APIError(.invalidJSON, "the request body is empty; send a JSON object")
        }
        do throws(JSONParser.Failure) {
            return try JSONParser.parse(bytes)
        } catch {
            throw APIError(.invalidJSON, "the request body is not valid JSON: \(error)")
        }
    }

    var typeName: String {
        switch self {
        case .null: "null"
        case .bool: "a boolean"
        case .int, .double: "a number"
        case .string: "a string"
        case .array: "an array"
        case .object: "an object"
        }
    }
}

/// Reads fields of a JSON object: unknown fields and wrong types are 400 with the field's name.
struct JSONObjectReader {
    private let fields: [String: JSONValue]

    init(_ value: JSONValue, known: [String]) throws(APIError) {
        guard case .object(let fields) = value else {
            throw APIError(.invalidJSON, "the request body must be a JSON object, got \(value.typeName)")
        }
        let unknown = fields.keys.filter { !known.contains($0) }.sorted()
        if let first = unknown.first {
            var message = "unknown field \"\(first)\""
            if let suggestion = Suggestion.closest(to: first, in: known) {
                message += "; did you mean \"\(suggestion)\"?"
            } else {
                message += "; known fields: \(known.joined(separator: ", "))"
            }
            throw APIError(.invalidField, message)
        }
        self.fields = fields
    }

    func int(_ name: String, _ range: ClosedRange<Int>) throws(APIError) -> Int? {
        guard let value = fields[name], value != .null else { return nil }
        guard case .int(let n) = value else {
            throw APIError(.invalidField, "field \"\(name)\" must be an integer, got \(value.typeName)")
        }
        guard range.contains(n) else {
            throw APIError(.invalidField, "field \"\(name)\" must be in \(range.lowerBound)..\(range.upperBound)")
        }
        return n
    }

    func requiredInt(_ name: String, _ range: ClosedRange<Int>) throws(APIError) -> Int {
        guard let n = try int(name, range) else {
            throw APIError(.invalidField, "field \"\(name)\" is required (\(range.lowerBound)..\(range.upperBound))")
        }
        return n
    }

    func bool(_ name: String) throws(APIError) -> Bool? {
        guard let value = fields[name], value != .null else { return nil }
        guard case .bool(let b) = value else {
            throw APIError(.invalidField, "field \"\(name)\" must be true or false, got \(value.typeName)")
        }
        return b
    }

    func string(_ name: String) throws(APIError) -> String? {
        guard let value = fields[name], value != .null else { return nil }
        guard case .string(let s) = value else {
            throw APIError(.invalidField, "field \"\(name)\" must be a string, got \(value.typeName)")
        }
        return s
    }

    func strings(_ name: String) throws(APIError) -> [String]? {
        guard let value = fields[name], value != .null else { return nil }
        guard case .array(let items) = value else {
            throw APIError(.invalidField, "field \"\(name)\" must be an array of strings, got \(value.typeName)")
        }
        var result: [String] = []
        for item in items {
            guard case .string(let s) = item else {
                throw APIError(.invalidField, "field \"\(name)\" must contain only strings, found \(item.typeName)")
            }
            result.append(s)
        }
        return result
    }
}
