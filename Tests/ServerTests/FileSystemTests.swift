import Foundation
import TestSupport
import Testing

@testable import Server

struct FileSystemTests {
    @Test func aDirectoryFsyncFailureIsAnError() throws {
        let directory = try TemporaryDirectory()
        try FileSystem.syncDirectory(directory.path)
        // procfs has no fsync: the kernel answers EINVAL, which must reach the caller.
        do {
            try FileSystem.syncDirectory("/proc/self")
            Issue.record("fsync of /proc/self reported success")
        } catch {
            #expect(error.operation == "fsync" && error.errno == EINVAL, "\(error)")
        }
        do {
            try FileSystem.syncDirectory(directory.path + "/missing")
            Issue.record("fsync of a missing directory reported success")
        } catch {
            #expect(error.operation == "open" && error.errno == ENOENT, "\(error)")
        }
    }

    @Test func anAtomicWriteIsInPlaceAndPrivate() throws {
        let directory = try TemporaryDirectory()
        let path = directory.path + "/f.json"
        try FileSystem.writeAtomically(Array("{}\n".utf8), to: path)
        #expect(try FileSystem.readFile(path) == Array("{}\n".utf8))
        var st = stat()
        #expect(stat(path, &st) == 0 && st.st_mode & 0o777 == 0o600)
        #expect(FileSystem.list(directory.path) == ["f.json"])
    }
}

struct TextTests {
    @Test func oneTrimForStringsAndSubstrings() {
        #expect(" \t a b \n".trimmingWhitespace() == "a b")
        #expect("btime 12 \n".dropFirst(6).trimmingWhitespace() == "12")
        #expect("  ".trimmingWhitespace() == "")
    }

    @Test func commaListsDropEmptyItems() {
        #expect("a,,b,".commaSeparated == ["a", "b"])
        #expect("test".commaSeparated == ["test"])
        #expect(",".commaSeparated.isEmpty)
    }
}
