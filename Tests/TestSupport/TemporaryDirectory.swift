import Foundation

/// A fresh directory under /tmp, removed with everything in it when the value is deinitialised.
package final class TemporaryDirectory: Sendable {
    package let path: String

    package init() throws {
        var template = Array("/tmp/asmtd-test-XXXXXX".utf8CString)
        guard let result = mkdtemp(&template) else { throw TestFailure("mkdtemp failed: errno \(errno)") }
        path = String(cString: result)
    }

    deinit {
        try? FileManager.default.removeItem(atPath: path)
    }

    /// Runs `body` with the path of a fresh directory, removed afterwards.
    package static func with<T>(_ body: (String) throws -> T) throws -> T {
        let directory = try TemporaryDirectory()
        return try withExtendedLifetime(directory) { try body(directory.path) }
    }
}
