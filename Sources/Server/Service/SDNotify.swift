import Glibc

/// systemd's notification protocol, by hand: newline-separated `KEY=VALUE` datagrams to the AF_UNIX socket named
/// in `$NOTIFY_SOCKET` (a leading `@` names an abstract socket). Without the variable every send is a no-op.
struct SDNotify: Sendable {
    /// The socket address as given, nil when not under a notify-aware service manager.
    let socketPath: String?

    init(environment value: String? = getenv("NOTIFY_SOCKET").map { String(cString: $0) }) {
        socketPath = value.flatMap { $0.isEmpty ? nil : $0 }
    }

    var enabled: Bool { socketPath != nil }

    /// Sends one message (several fields joined by newlines). Returns false when it could not be sent.
    @discardableResult
    func send(_ fields: [(String, String)]) -> Bool {
        guard let socketPath else { return false }
        let text = fields.map { "\($0.0)=\($0.1.replacingNewlines())" }.joined(separator: "\n")
        return Self.send(Array(text.utf8), to: socketPath)
    }

    func ready(status: String) { send([("READY", "1"), ("STATUS", status)]) }
    func status(_ text: String) { send([("STATUS", text)]) }
    func stopping(status: String) { send([("STOPPING", "1"), ("STATUS", status)]) }
    /// Asks for `seconds` more before the current start, runtime or stop timeout fires (systemd 236+).
    func extendTimeout(seconds: Double) {
        send([("EXTEND_TIMEOUT_USEC", "\(UInt64(max(0, seconds) * 1_000_000))")])
    }

    /// The `sockaddr_un` for a path or an `@abstract` name (pure), with its length; nil when too long.
    static func address(_ path: String) -> (sockaddr_un, socklen_t)? {
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        var bytes = Array(path.utf8)
        let abstract = bytes.first == UInt8(ascii: "@")
        if abstract { bytes[0] = 0 }
        let capacity = MemoryLayout.size(ofValue: address.sun_path)
        guard !bytes.isEmpty, bytes.count < capacity else { return nil }
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            raw.copyBytes(from: bytes)
        }
        let base = MemoryLayout<sockaddr_un>.offset(of: \sockaddr_un.sun_path)!
        // Abstract names are exactly their bytes long; paths carry their terminating NUL.
        let length = base + bytes.count + (abstract ? 0 : 1)
        return (address, socklen_t(length))
    }

    static func send(_ payload: [UInt8], to path: String) -> Bool {
        guard let (target, length) = address(path) else { return false }
        var address = target
        let fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        let sent = withUnsafePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { sockaddrPointer in
                payload.withUnsafeBytes {
                    sendto(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL), sockaddrPointer, length)
                }
            }
        }
        return sent == payload.count
    }
}

extension String {
    fileprivate func replacingNewlines() -> String {
        String(map { $0 == "\n" || $0 == "\r" ? " " : $0 })
    }
}
