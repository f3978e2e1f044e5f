import Foundation
import Logging
import ShmEngine
import ShmSynthetic
import Testing

@testable import Server

/// A temporary directory removed when the value is deinitialised.
final class TemporaryDirectory: @unchecked Sendable {
    let path: String

    init() throws {
        var template = Array("/tmp/asmtd-test-XXXXXX".utf8CString)
        guard let result = mkdtemp(&template) else { throw CocoaError(.fileWriteUnknown) }
        path = String(cString: result)
    }

    deinit {
        try? FileManager.default.removeItem(atPath: path)
    }
}

struct TestResponse: Sendable {
    var status: Int
    var headers: [String: String]  // lower-cased names
    var body: [UInt8]

    var text: String { String(decoding: body, as: UTF8.self) }

    var json: [String: Any] {
        (try? JSONSerialization.jsonObject(with: Data(body)) as? [String: Any]) ?? [:]
    }

    var errorCode: String? { (json["error"] as? [String: Any])?["code"] as? String }
}

/// A minimal HTTP/1.1 client over a loopback socket (one request per connection).
enum TestClient {
    static func request(
        port: Int, _ method: String, _ path: String, body: String? = nil, headers: [String: String] = [:]
    ) throws -> TestResponse {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw POSIXError(.EIO) }
        defer { close(fd) }
        var timeout = timeval(tv_sec: 120, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard connected == 0 else { throw POSIXError(.ECONNREFUSED) }
        var head = "\(method) \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
        for (name, value) in headers { head += "\(name): \(value)\r\n" }
        let payload = Array((body ?? "").utf8)
        if body != nil || method == "POST" { head += "Content-Length: \(payload.count)\r\n" }
        let bytes = Array((head + "\r\n").utf8) + payload
        var sent = 0
        while sent < bytes.count {
            let n = bytes.withUnsafeBytes { send(fd, $0.baseAddress! + sent, $0.count - sent, Int32(MSG_NOSIGNAL)) }
            guard n > 0 else { throw POSIXError(.EPIPE) }
            sent += n
        }
        var received: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n <= 0 { break }
            received += buffer[0..<n]
        }
        return try parse(received)
    }

    static func parse(_ bytes: [UInt8]) throws -> TestResponse {
        let separator: [UInt8] = [13, 10, 13, 10]
        guard let end = (0..<max(0, bytes.count - 3)).first(where: { Array(bytes[$0..<$0 + 4]) == separator }) else {
            throw POSIXError(.EBADMSG)
        }
        let head = String(decoding: bytes[..<end], as: UTF8.self).components(separatedBy: "\r\n")
        let statusParts = head[0].split(separator: " ")
        guard statusParts.count >= 2, let status = Int(statusParts[1]) else { throw POSIXError(.EBADMSG) }
        var headers: [String: String] = [:]
        for line in head.dropFirst() {
            guard let colon = line.firstIndex(of: ":") else { continue }
            headers[line[..<colon].lowercased()] = line[line.index(after: colon)...].trimmingCharacters(
                in: .whitespaces)
        }
        return TestResponse(status: status, headers: headers, body: Array(bytes[(end + 4)...]))
    }
}

/// A real `asmtd` subprocess on an ephemeral loopback port, with its own config, state dir and backup path.
///
/// A subprocess rather than an in-process server: the test process's cooperative thread pool (two threads
/// here) is shared with every other suite, and synchronous tests elsewhere would starve the handlers.
final class TestServer: @unchecked Sendable {
    let directory: TemporaryDirectory
    let process: AsmtdProcess
    let port: Int
    var backupPath: String { directory.path + "/backups" }
    var stateDir: String { directory.path + "/state" }

    init(
        instance: Int = 14, namespaces: [String], token: String? = nil, shutdownTimeoutMs: Int = 5000,
        maxBody: Int = 1 << 20, compress: Bool = false
    ) async throws {
        directory = try TemporaryDirectory()
        var auth = ""
        if let token {
            let file = directory.path + "/token"
            try token.write(toFile: file, atomically: true, encoding: .utf8)
            chmod(file, 0o600)
            auth = "  auth: {token-file: token}\n"
        }
        let names = namespaces.joined(separator: ", ")
        let yaml = """
            service:
              http: {port: 0, max-body: \(maxBody)}
            \(auth)  state-dir: state
              runtime-dir: run
              shutdown-timeout: \(shutdownTimeoutMs)
            instances:
              - instance: \(instance)
                backup-path: backups
                namespaces: [\(names)]
                threads: 2
                compress: \(compress)
            """
        try yaml.write(toFile: directory.path + "/asmtd.yml", atomically: true, encoding: .utf8)
        process = try AsmtdProcess(["serve", "-c", directory.path + "/asmtd.yml"])
        port = try await process.waitForPort()
    }

    func request(
        _ method: String, _ path: String, body: String? = nil, headers: [String: String] = [:]
    )
        async throws -> TestResponse
    {
        let port = self.port
        return try await withCheckedThrowingContinuation { continuation in
            DispatchQueue.global().async {
                continuation.resume(
                    with: Result { try TestClient.request(port: port, method, path, body: body, headers: headers) })
            }
        }
    }

    /// Polls a job until it finishes (or `seconds` pass); returns the last job object.
    func waitForJob(_ id: String, seconds: Double = 120) async throws -> [String: Any] {
        let deadline = Date().addingTimeInterval(seconds)
        while true {
            let job = try await request("GET", "/v1/jobs/\(id)").json
            if let state = job["state"] as? String, ["success", "failure", "canceled"].contains(state) { return job }
            if Date() > deadline { return job }
            try await Task.sleep(for: .milliseconds(50))
        }
    }

    /// SIGTERM and wait (blocking; for `defer`, which cannot await): the running job is finished or
    /// canceled and cleaned up before the test removes its segments.
    func stopNow() {
        process.signal(SIGTERM)
        process.process.waitUntilExit()
    }

    /// SIGTERM, then the exit status.
    @discardableResult
    func stop() async -> Int32? {
        process.signal(SIGTERM)
        return await process.waitForExit()
    }
}

/// Real shm segments for a test: instance 14, its own nsid (1..16) and namespace name, removed by shmid.
final class TestSegments: @unchecked Sendable {
    static let instance = 14
    let nsid: Int
    let name: String
    private(set) var created: [LiveSegment]

    init(
        nsid: Int, name: String, stages: Int = 2, stageSize: Int = 1 << 20, uid: UInt32 = 0, gid: UInt32 = 0,
        mode: UInt32 = 0o600
    ) throws {
        precondition((1...16).contains(nsid))
        self.nsid = nsid
        self.name = name
        // Leftovers of an earlier crashed run of this very test (same nsid and name) would block it.
        Self.removeAll(nsid: nsid)
        let spec = SyntheticNamespace(
            name: name, nsid: nsid, primaryStages: stages, stageSize: stageSize, secondaryStages: 1, dataStages: 1,
            uid: uid, gid: gid, mode: mode, seed: UInt64(nsid))
        created = try SyntheticSegments.create(instance: Self.instance, namespace: spec)
    }

    /// Creates them on a Dispatch thread: filling hundreds of MiB must not hold one of the two threads of the
    /// cooperative pool that every suite of this process shares.
    static func make(
        nsid: Int, name: String, stages: Int = 2, stageSize: Int = 1 << 20, uid: UInt32 = 0, gid: UInt32 = 0,
        mode: UInt32 = 0o600
    ) async throws -> TestSegments {
        try await withCheckedThrowingContinuation { continuation in
            DispatchQueue.global().async {
                continuation.resume(
                    with: Result {
                        try TestSegments(
                            nsid: nsid, name: name, stages: stages, stageSize: stageSize, uid: uid, gid: gid,
                            mode: mode)
                    })
            }
        }
    }

    /// The live segments of this test's nsid (the originals or the restored ones), listed without attaching
    /// them, so that the attach counts seen by jobs stay undisturbed.
    func live() throws -> [LiveSegment] {
        Self.walk().filter { $0.key.instance == Self.instance && $0.key.nsid == nsid }.sorted { $0.key < $1.key }
    }

    /// SHM_INFO / SHM_STAT walk of the Aerospike-keyed segments, attaching none.
    static func walk() -> [LiveSegment] {
        var info = shmid_ds()
        let maxIndex = shmctl(0, SHM_INFO, &info)
        guard maxIndex >= 0 else { return [] }
        var result: [LiveSegment] = []
        for index in 0...maxIndex {
            var ds = shmid_ds()
            let shmid = shmctl(index, SHM_STAT, &ds)
            guard shmid >= 0, let key = SegmentKey(rawValue: UInt32(bitPattern: ds.shm_perm.__key)) else { continue }
            result.append(
                LiveSegment(
                    key: key, shmid: shmid, size: UInt64(ds.shm_segsz), attachCount: Int(ds.shm_nattch),
                    uid: ds.shm_perm.uid, gid: ds.shm_perm.gid, mode: UInt32(ds.shm_perm.mode) & 0o777,
                    creatorPID: ds.shm_cpid))
        }
        return result
    }

    func removeOriginals() {
        SyntheticSegments.remove(created)
        created = []
    }

    /// Removes every segment of this nsid on instance 14 (originals and those a restore created).
    func cleanUp() {
        SyntheticSegments.remove(created)
        Self.removeAll(nsid: nsid)
    }

    static func removeAll(nsid: Int) {
        let left = walk().filter { $0.key.instance == instance && $0.key.nsid == nsid }
        for segment in left where segment.attachCount == 0 { shmctl(segment.shmid, IPC_RMID, nil) }
    }

    /// Bytes of a segment, read through a read-only attach.
    static func contents(_ segment: LiveSegment) -> [UInt8] {
        guard let address = shmat(segment.shmid, nil, SHM_RDONLY), address != UnsafeMutableRawPointer(bitPattern: -1)
        else { return [] }
        defer { shmdt(address) }
        return Array(UnsafeRawBufferPointer(start: address, count: Int(segment.size)))
    }
}

/// Every test that plans or runs jobs on instance 14 runs one at a time: their segments are hundreds of MiB
/// and the machine has two cores shared with the other suites.
@Suite(.serialized) struct ShmTests {}
