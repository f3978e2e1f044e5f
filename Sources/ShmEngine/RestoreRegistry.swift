import Synchronization

/// Segments this process is restoring, by shmid. A segment listing in this process does not attach them (that
/// would count as a foreign attach at the commit check) and reports them as uncommitted.
enum RestoreRegistry {
    private static let restoring = Mutex<[Int32: String]>([:])

    static func register(_ shmid: Int32, namespace: String) {
        restoring.withLock { $0[shmid] = namespace }
    }

    static func unregister(_ shmids: [Int32]) {
        restoring.withLock { map in for shmid in shmids { map[shmid] = nil } }
    }

    /// The namespace of a segment being restored here, nil for any other segment.
    static func namespace(of shmid: Int32) -> String? { restoring.withLock { $0[shmid] } }
}
