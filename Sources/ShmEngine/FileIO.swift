import Glibc

/// Thin wrappers over the POSIX file calls the engine uses.
enum FileIO {
    static let maxCall = 1 << 30
    /// Largest single pwrite. Buffered writes of 2 MiB and more are much slower on Linux 6.x ext4 than 1 MiB
    /// writes: one writer copying a 256 MiB segment into a file took 0.12 s in 1 MiB writes, 0.25 to 0.75 s in
    /// writes of 2 to 256 MiB (measured on the 2-core machines the benchmarks run on).
    static let maxWrite = 1 << 20

    /// Writes all of `buffer` at `offset`, in pieces of at most `maxWrite` bytes.
    static func writeAll(
        _ fd: Int32, _ buffer: UnsafeRawBufferPointer, at offset: UInt64, file: String
    )
        throws(EngineError)
    {
        let done = try inPieces(buffer.count, of: maxWrite, file: file, action: "write") { done, length in
            pwrite(fd, buffer.baseAddress! + done, length, off_t(offset) + off_t(done))
        }
        if done < buffer.count { throw EngineError(.io, "cannot write \(file): no progress") }
    }

    /// Reads until `buffer` is full or end of file; returns the byte count.
    static func readFull(
        _ fd: Int32, _ buffer: UnsafeMutableRawBufferPointer, at offset: UInt64, file: String
    )
        throws(EngineError) -> Int
    {
        try inPieces(buffer.count, of: maxCall, file: file, action: "read") { done, length in
            pread(fd, buffer.baseAddress! + done, length, off_t(offset) + off_t(done))
        }
    }

    /// Calls `call(done, length)` with pieces of at most `piece` bytes until `count` bytes are done or a call
    /// transfers nothing (end of file); retries EINTR. Returns the bytes done.
    private static func inPieces(
        _ count: Int, of piece: Int, file: String, action: String, _ call: (_ done: Int, _ length: Int) -> Int
    ) throws(EngineError) -> Int {
        var done = 0
        while done < count {
            let moved = call(done, min(piece, count - done))
            if moved < 0 {
                if errno == EINTR { continue }
                throw EngineError(.io, "cannot \(action) \(file): \(errnoText())")
            }
            if moved == 0 { break }
            done += moved
        }
        return done
    }

    /// Up to `length` leading bytes of a regular file, opened without following a symlink. An unreadable file is an
    /// error, never an empty prefix.
    static func readPrefix(path: String, length: Int) throws(EngineError) -> [UInt8] {
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)
        guard fd >= 0 else {
            let code = errno
            if code == ELOOP { throw EngineError(.invalidBackup, "\(path) is a symbolic link") }
            throw EngineError(.io, "cannot open \(path): \(errnoText(code))")
        }
        defer { close(fd) }
        return try read(fd, count: length, at: 0, file: path)
    }

    static func fsyncDirectory(_ path: String) throws(EngineError) {
        let fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { throw EngineError(.io, "cannot open directory \(path): \(errnoText())") }
        defer { close(fd) }
        guard fsync(fd) == 0 else { throw EngineError(.io, "cannot fsync directory \(path): \(errnoText())") }
    }

    static func list(_ path: String) throws(EngineError) -> [String] {
        guard let dir = opendir(path) else {
            throw EngineError(.io, "cannot read directory \(path): \(errnoText())")
        }
        defer { closedir(dir) }
        var names: [String] = []
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
            }
            if name != "." && name != ".." { names.append(name) }
        }
        return names.sorted()
    }

    enum Kind { case missing, directory, other }

    static func kind(_ path: String) throws(EngineError) -> Kind {
        var st = stat()
        if stat(path, &st) != 0 {
            if errno == ENOENT { return .missing }
            throw EngineError(.io, "cannot stat \(path): \(errnoText())")
        }
        return (st.st_mode & S_IFMT) == S_IFDIR ? .directory : .other
    }

    static func parent(of path: String) -> String {
        var trimmed = Substring(path)
        while trimmed.count > 1 && trimmed.hasSuffix("/") { trimmed = trimmed.dropLast() }
        guard let slash = trimmed.lastIndex(of: "/") else { return "." }
        return slash == trimmed.startIndex ? "/" : String(trimmed[..<slash])
    }
}

extension FileIO {
    static func writeAll(_ fd: Int32, bytes: [UInt8], at offset: UInt64, file: String) throws(EngineError) {
        let result: Result<Void, EngineError> = bytes.withUnsafeBytes { raw in
            Result { () throws(EngineError) in try writeAll(fd, raw, at: offset, file: file) }
        }
        try result.get()
    }

    /// Reads up to `count` bytes at `offset` (fewer at end of file).
    static func read(_ fd: Int32, count: Int, at offset: UInt64, file: String) throws(EngineError) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: count)
        let result: Result<Int, EngineError> = bytes.withUnsafeMutableBytes { raw in
            Result { () throws(EngineError) in try readFull(fd, raw, at: offset, file: file) }
        }
        let got = try result.get()
        return Array(bytes.prefix(got))
    }
}
