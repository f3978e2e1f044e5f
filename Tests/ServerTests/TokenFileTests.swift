import Foundation
import TestSupport
import Testing

@testable import Server

struct TokenFileTests {
    @Test(
        arguments: [
            (S_IFREG | 0o600, 0, nil),
            (S_IFREG | 0o400, 500, nil),
            (
                S_IFREG | 0o640, 0,
                "/t has mode 0640; a token file must be 0600 or 0400 (no group or other permissions): chmod 600 /t"
            ),
            (
                S_IFREG | 0o604, 0,
                "/t has mode 0604; a token file must be 0600 or 0400 (no group or other permissions): chmod 600 /t"
            ),
            (
                S_IFREG | 0o620, 0,
                "/t has mode 0620; a token file must be 0600 or 0400 (no group or other permissions): chmod 600 /t"
            ),
            (
                S_IFREG | 0o700, 0,
                "/t has mode 0700; a token file must be 0600 or 0400 (no group or other permissions): chmod 600 /t"
            ),
            (
                S_IFREG | 0o4600, 0,
                "/t has mode 04600; a token file must be 0600 or 0400 (no group or other permissions): chmod 600 /t"
            ),
            (
                S_IFREG | 0o600, 1234,
                "/t is owned by uid 1234; a token file must be owned by root or by the service's user (uid 500)"
            ),
            (S_IFDIR | 0o600, 0, "/t is not a regular file"),
        ] as [(mode_t, uid_t, String?)])
    func theRules(mode: mode_t, owner: uid_t, problem: String?) {
        #expect(TokenFile.problem("/t", mode: mode, owner: owner, serviceUser: 500) == problem)
    }

    @Test func realFilesAreCheckedAsOpened() throws {
        let directory = try TemporaryDirectory()
        let path = directory.path + "/token"
        #expect(FileManager.default.createFile(atPath: path, contents: Data("  s3cret\n".utf8)))
        chmod(path, 0o600)
        #expect(try TokenFile.read(path, serviceUser: geteuid()).get() == "s3cret")
        chmod(path, 0o400)
        #expect(try TokenFile.read(path, serviceUser: geteuid()).get() == "s3cret")
        // A symlink to a good file is fine (Kubernetes mounts secrets that way); the file itself is checked.
        symlink(path, directory.path + "/link")
        #expect(try TokenFile.read(directory.path + "/link", serviceUser: geteuid()).get() == "s3cret")
        chmod(path, 0o660)
        #expect(throws: TokenFileError.self) {
            try TokenFile.read(directory.path + "/link", serviceUser: geteuid()).get()
        }
        chmod(path, 0o600)
        if geteuid() == 0 {
            // Owned by another user, the file is refused unless the service runs as that user.
            #expect(chown(path, 4321, 0) == 0)
            #expect(TokenFile.read(path, serviceUser: 4321) == .success("s3cret"))
            #expect(
                TokenFile.read(path, serviceUser: 0)
                    == .failure(
                        TokenFileError(
                            message: "\(path) is owned by uid 4321; a token file must be owned by root or by the "
                                + "service's user (uid 0)")))
        }
        let empty = directory.path + "/empty"
        #expect(FileManager.default.createFile(atPath: empty, contents: Data(" \n".utf8)))
        chmod(empty, 0o400)
        #expect(TokenFile.read(empty) == .failure(TokenFileError(message: "\(empty) is empty")))
    }
}
