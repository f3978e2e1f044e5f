import Glibc

/// Namespace name rules shared by the config and the API.
enum NamespaceName {
    /// nil when the name is acceptable, else why not.
    static func problem(_ name: String) -> String? {
        if name.isEmpty { return "namespace names must not be empty" }
        if name.utf8.count > 31 { return "namespace \"\(name)\" is longer than 31 bytes" }
        if name.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7f }) {
            return "namespace names must not contain control characters"
        }
        return nil
    }
}

/// "Did you mean" for unknown keys: the closest known key within a small edit distance.
enum Suggestion {
    static func closest(to word: String, in candidates: [String]) -> String? {
        var best: (String, Int)?
        for candidate in candidates {
            let d = distance(Array(word.lowercased()), Array(candidate))
            if d <= max(2, candidate.count / 3), best == nil || d < best!.1 { best = (candidate, d) }
        }
        return best?.0
    }

    static func distance(_ a: [Character], _ b: [Character]) -> Int {
        if a.isEmpty { return b.count }
        if b.isEmpty { return a.count }
        var previous = Array(0...b.count)
        for i in 1...a.count {
            var current = [i] + Array(repeating: 0, count: b.count)
            for j in 1...b.count {
                let cost = a[i - 1] == b[j - 1] ? 0 : 1
                current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + cost)
            }
            previous = current
        }
        return previous[b.count]
    }
}

enum IPAddress {
    static func isLiteral(_ text: String) -> Bool {
        var v4 = in_addr()
        var v6 = in6_addr()
        return inet_pton(AF_INET, text, &v4) == 1 || inet_pton(AF_INET6, text, &v6) == 1
    }
}
