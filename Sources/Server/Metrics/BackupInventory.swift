/// The backups of the configured instances as the metrics show them: counts by state and the newest complete
/// backup's time. Pure; the API builds it from the backup catalog at scrape time.
struct BackupInventory: Sendable, Equatable {
    static let states = ["complete", "incomplete", "invalid"]

    /// instance → state → count; every configured instance has every state (0 when none).
    private(set) var counts: [Int: [String: Int]] = [:]
    /// instance → Unix time of its newest complete backup (absent when it has none).
    private(set) var newestComplete: [Int: Double] = [:]

    init(instances: [Int], backups: [(instance: Int, state: String, created: String)]) {
        for instance in instances {
            counts[instance] = Dictionary(uniqueKeysWithValues: Self.states.map { ($0, 0) })
        }
        for backup in backups where counts[backup.instance] != nil {
            counts[backup.instance, default: [:]][backup.state, default: 0] += 1
            if backup.state == "complete", let time = Time.parseRFC3339(backup.created) {
                newestComplete[backup.instance] = max(newestComplete[backup.instance] ?? time, time)
            }
        }
    }
}
