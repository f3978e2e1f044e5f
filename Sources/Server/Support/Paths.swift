/// Pure path arithmetic (no file system access).
enum Paths {
    /// The folder holding `file` ("." when it has none).
    static func directory(of file: String) -> String {
        guard let slash = file.lastIndex(of: "/") else { return "." }
        if slash == file.startIndex { return "/" }
        return String(file[..<slash])
    }

    /// `path` made absolute against `base` (itself absolute or relative to the working directory), normalised.
    static func resolve(_ path: String, against base: String, workingDirectory: String? = nil) -> String {
        if path.hasPrefix("/") { return normalize(path) }
        let anchor = base.hasPrefix("/") ? base : join(workingDirectory ?? currentDirectory(), base)
        return normalize(join(anchor, path))
    }

    static func join(_ a: String, _ b: String) -> String {
        if b.hasPrefix("/") { return b }
        if a.hasSuffix("/") { return a + b }
        return a + "/" + b
    }

    /// Removes `.`, empty components and resolves `..` lexically.
    static func normalize(_ path: String) -> String {
        var parts: [Substring] = []
        for part in path.split(separator: "/", omittingEmptySubsequences: true) {
            switch part {
            case ".": continue
            case "..": if !parts.isEmpty { parts.removeLast() }
            default: parts.append(part)
            }
        }
        return "/" + parts.joined(separator: "/")
    }

    static func currentDirectory() -> String {
        FileSystem.currentDirectory()
    }

    /// A name safe to use as one path component (job and backup ids).
    static func isSafeName(_ name: String) -> Bool {
        guard !name.isEmpty, name.utf8.count <= 128, !name.hasPrefix(".") else { return false }
        return name.utf8.allSatisfy { c in
            (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a) || c == 0x2d || c == 0x5f
                || c == 0x2e
        }
    }
}
