/// The checks every request passes before any planning: instance, threads, directory and namespace names.
enum RequestValidation {
    static func check(
        instance: Int, namespaces: [String], directory: String, threads: Int
    ) throws(EngineError)
        -> [String]
    {
        guard (0...15).contains(instance) else {
            throw EngineError(.invalidRequest, "instance \(instance) is out of range 0..15")
        }
        guard (0...1024).contains(threads) else {
            throw EngineError(.invalidRequest, "threads \(threads) is out of range 0..1024 (0 = one per core)")
        }
        guard !directory.isEmpty else { throw EngineError(.invalidRequest, "no directory given") }
        var names: [String] = []
        for name in namespaces {
            guard !name.isEmpty else { throw EngineError(.invalidRequest, "empty namespace name") }
            guard name.utf8.count <= Layout.nameLength, !name.utf8.contains(0) else {
                throw EngineError(.invalidRequest, "invalid namespace name \"\(name)\" (1 to 32 bytes, no NUL)")
            }
            if !names.contains(name) { names.append(name) }
        }
        guard !names.isEmpty else { throw EngineError(.invalidRequest, "no namespace given") }
        return names
    }
}
