import Foundation

/// A temporary directory removed when the value is deinitialised.
final class TemporaryDirectory: @unchecked Sendable {
    let path: String

    init() throws {
        var template = Array(("/tmp/asmtd-test-XXXXXX").utf8CString)
        guard let result = mkdtemp(&template) else { throw CocoaError(.fileWriteUnknown) }
        path = String(cString: result)
    }

    deinit {
        try? FileManager.default.removeItem(atPath: path)
    }
}
