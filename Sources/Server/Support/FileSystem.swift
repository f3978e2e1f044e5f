import Foundation
import Glibc

/// An errno-carrying file system error with the path and the failing operation.
struct FileSystemError: Error, Sendable, CustomStringConvertible {
    var operation: String
    var path: String
    var errno: Int32
    var description: String { "\(operation) \(path): \(String(cString: strerror(errno)))" }
}

/// The few file operations the service needs, on plain POSIX calls.
enum FileSystem {
    static func currentDirectory() -> String {
        var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        guard getcwd(&buffer, buffer.count) != nil else { return "/" }
        return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    enum Kind { case missing, directory, file, other }

    static func kind(_ path: String) -> Kind {
        var st = stat()
        guard stat(path, &st) == 0 else { return .missing }
        switch st.st_mode & S_IFMT {
        case S_IFDIR: return .directory
        case S_IFREG: return .file
        default: return .other
        }
    }

    static func isWritableDirectory(_ path: String) -> Bool {
        kind(path) == .directory && access(path, W_OK | X_OK) == 0
    }

    /// Why `path` cannot serve as a directory the service writes into, or nil when it can
    /// (it exists and is writable, or its nearest existing ancestor is a writable directory).
    static func directoryProblem(_ path: String) -> String? {
        switch kind(path) {
        case .directory:
            return access(path, W_OK | X_OK) == 0 ? nil : "\(path) is not writable"
        case .file, .other:
            return "\(path) exists and is not a directory"
        case .missing:
            var ancestor = Paths.directory(of: path)
            while kind(ancestor) == .missing && ancestor != "/" { ancestor = Paths.directory(of: ancestor) }
            if kind(ancestor) != .directory { return "\(ancestor) is not a directory, cannot create \(path)" }
            if access(ancestor, W_OK | X_OK) != 0 { return "cannot create \(path): \(ancestor) is not writable" }
            return nil
        }
    }

    /// mkdir -p with `mode` for the directories it creates.
    static func createDirectories(_ path: String, mode: mode_t = 0o700) throws(FileSystemError) {
        if kind(path) == .directory { return }
        let parent = Paths.directory(of: path)
        if parent != path { try createDirectories(parent, mode: mode) }
        if mkdir(path, mode) != 0 && errno != EEXIST {
            throw FileSystemError(operation: "mkdir", path: path, errno: errno)
        }
    }

    static func readFile(_ path: String, limit: Int = 16 << 20) throws(FileSystemError) -> [UInt8] {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw FileSystemError(operation: "open", path: path, errno: errno) }
        defer { close(fd) }
        var result: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n < 0 {
                if errno == EINTR { continue }
                throw FileSystemError(operation: "read", path: path, errno: errno)
            }
            if n == 0 { break }
            result += chunk[0..<n]
            if result.count > limit { throw FileSystemError(operation: "read", path: path, errno: EFBIG) }
        }
        return result
    }

    /// Writes `bytes` to `path` atomically: a temporary file in the same folder, fsync, rename, fsync of the folder.
    static func writeAtomically(_ bytes: [UInt8], to path: String, mode: mode_t = 0o600) throws(FileSystemError) {
        let directory = Paths.directory(of: path)
        let temporary = "\(path).tmp-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode)
        guard fd >= 0 else { throw FileSystemError(operation: "create", path: temporary, errno: errno) }
        var ok = false
        defer {
            if !ok { unlink(temporary) }
        }
        var offset = 0
        while offset < bytes.count {
            let n = bytes.withUnsafeBytes { write(fd, $0.baseAddress! + offset, $0.count - offset) }
            if n < 0 {
                if errno == EINTR { continue }
                let e = errno
                close(fd)
                throw FileSystemError(operation: "write", path: temporary, errno: e)
            }
            offset += n
        }
        if fsync(fd) != 0 {
            let e = errno
            close(fd)
            throw FileSystemError(operation: "fsync", path: temporary, errno: e)
        }
        if close(fd) != 0 { throw FileSystemError(operation: "close", path: temporary, errno: errno) }
        if rename(temporary, path) != 0 { throw FileSystemError(operation: "rename", path: path, errno: errno) }
        ok = true
        // The file is in place but not yet durable: a failure here is the caller's failure too.
        try syncDirectory(directory)
    }

    /// fsync of a directory, which makes the names created, renamed or removed in it durable.
    static func syncDirectory(_ path: String) throws(FileSystemError) {
        let fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { throw FileSystemError(operation: "open", path: path, errno: errno) }
        defer { close(fd) }
        if fsync(fd) != 0 { throw FileSystemError(operation: "fsync", path: path, errno: errno) }
    }

    /// Names in a directory (no "." and ".."); empty when it cannot be read.
    /// Decodes every `*.json` file of a directory of records written by `writeAtomically`, plus one warning per
    /// file that could not be read (`what` names the kind). Removes the temporary files a crash left.
    static func loadJSONRecords<T: Decodable>(
        _ type: T.Type, in directory: String, what: String
    ) -> (
        records: [T], warnings: [String]
    ) {
        var records: [T] = []
        var warnings: [String] = []
        for name in list(directory).sorted() {
            let file = Paths.join(directory, name)
            if name.contains(".json.tmp-") {
                remove(file)
                continue
            }
            guard name.hasSuffix(".json") else { continue }
            do {
                records.append(try JSONDecoder().decode(T.self, from: Data(readFile(file))))
            } catch {
                warnings.append("ignoring unreadable \(what) \(file): \(error)")
            }
        }
        return (records, warnings)
    }

    static func list(_ path: String) -> [String] {
        guard let dir = opendir(path) else { return [] }
        defer { closedir(dir) }
        var names: [String] = []
        while let entry = readdir(dir) {
            let name = withUnsafePointer(to: entry.pointee.d_name) {
                $0.withMemoryRebound(to: CChar.self, capacity: 256) { String(cString: $0) }
            }
            if name != "." && name != ".." { names.append(name) }
        }
        return names
    }

    static func remove(_ path: String) {
        unlink(path)
    }

    /// rm -r of one directory tree (does not follow symbolic links).
    static func removeTree(_ path: String) throws(FileSystemError) {
        var st = stat()
        guard lstat(path, &st) == 0 else {
            if errno == ENOENT { return }
            throw FileSystemError(operation: "lstat", path: path, errno: errno)
        }
        if st.st_mode & S_IFMT == S_IFDIR {
            for name in list(path) { try removeTree(Paths.join(path, name)) }
            if rmdir(path) != 0 && errno != ENOENT {
                throw FileSystemError(operation: "rmdir", path: path, errno: errno)
            }
        } else if unlink(path) != 0 && errno != ENOENT {
            throw FileSystemError(operation: "unlink", path: path, errno: errno)
        }
    }

    /// Total size of the regular files directly in `path`, and their count.
    static func sizeOfFiles(in path: String) -> (bytes: UInt64, files: Int) {
        var bytes: UInt64 = 0
        var files = 0
        for name in list(path) {
            var st = stat()
            if lstat(Paths.join(path, name), &st) == 0, st.st_mode & S_IFMT == S_IFREG {
                bytes += UInt64(st.st_size)
                files += 1
            }
        }
        return (bytes, files)
    }
}
