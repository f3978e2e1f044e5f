import Foundation

/// The one JSON encoding of what asmtd reports, for the API's answers and the CLI's `--json` alike: the
/// types carry the kebab-case keys and value formats, this fixes the layout (pretty, sorted keys, `/` as is).
enum JSONOutput {
    static func encode<T: Encodable>(_ value: T) -> Data? {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        return try? encoder.encode(value)
    }

    /// Writes the value and a newline to stdout (a CLI's `--json`).
    static func write<T: Encodable>(_ value: T) {
        FileHandle.standardOutput.write((encode(value) ?? Data("null".utf8)) + Data("\n".utf8))
    }
}
