import Foundation
import Glibc
import TestSupport
import Testing

@testable import ShmEngine

@Suite struct InstanceLockTests {
    @Test func oneHolderPerInstanceNamedInTheRefusal() throws {
        try TemporaryDirectory.with { temp in
            let runtime = temp + "/run"
            let first = try InstanceLock.acquire(instance: 15, runtimeDirectory: runtime, holder: "test job A")
            var st = stat()
            #expect(stat(runtime, &st) == 0 && st.st_mode & 0o777 == 0o700)
            #expect(stat(runtime + "/instance-15.lock", &st) == 0 && st.st_mode & 0o777 == 0o600)
            do throws(EngineError) {
                _ = try InstanceLock.acquire(instance: 15, runtimeDirectory: runtime, holder: "test job B")
                Issue.record("a second holder got the lock")
            } catch {
                #expect(error.code == .instanceBusy)
                #expect(error.message.contains("pid \(getpid()): test job A"), "\(error.message)")
            }
            // Other instances are independent.
            let other = try InstanceLock.acquire(instance: 14, runtimeDirectory: runtime, holder: "other")
            other.release()
            first.release()
            first.release()  // once only
            let again = try InstanceLock.acquire(instance: 15, runtimeDirectory: runtime, holder: "test job C")
            #expect(Fixture.fileBytes(runtime + "/instance-15.lock") == Array("pid \(getpid()): test job C\n".utf8))
            again.release()
            Fixture.expectCode(.invalidRequest) { _ = try InstanceLock.acquire(instance: 16, holder: "x") }
        }
    }

    @Test func theRuntimeDirectoryComesFromTheCallerThenTheEnvironment() {
        #expect(InstanceLock.runtimeDirectory("/x") == "/x")
        let saved = getenv("ASMTD_RUNTIME_DIR").map { String(cString: $0) }
        defer {
            if let saved { setenv("ASMTD_RUNTIME_DIR", saved, 1) } else { unsetenv("ASMTD_RUNTIME_DIR") }
        }
        setenv("ASMTD_RUNTIME_DIR", "/tmp/r", 1)
        #expect(InstanceLock.runtimeDirectory() == "/tmp/r")
        unsetenv("ASMTD_RUNTIME_DIR")
        #expect(InstanceLock.runtimeDirectory() == "/run/asmtd")
    }
}
