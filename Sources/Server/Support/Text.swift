extension StringProtocol {
    /// Without leading and trailing whitespace (Unicode's, newlines included). The one trim helper.
    func trimmingWhitespace() -> String {
        var s = Substring(self)
        while let c = s.first, c.isWhitespace { s.removeFirst() }
        while let c = s.last, c.isWhitespace { s.removeLast() }
        return String(s)
    }
}

extension String {
    /// The items of a comma-separated command-line value, empty ones dropped (`a,,b,` is a and b). The one place
    /// `--namespace` and `--path` lists are split.
    var commaSeparated: [String] { split(separator: ",").map(String.init) }
}
