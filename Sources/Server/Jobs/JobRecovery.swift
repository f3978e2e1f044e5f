import Logging
import ShmEngine

/// Start-up recovery: a job that a dead process left queued or running is finished here, on the evidence
/// on disk and in shared memory. A backup whose manifest is there completed (`success`); otherwise its
/// incomplete directory is removed. A restore's segments are settled by the engine. Everything else becomes
/// `failure` / INTERRUPTED with a message saying what was cleaned up.
struct JobRecovery: Sendable {
    let config: Config
    let engine: any JobEngine
    let logger: Logger

    /// Finishes `record` (unfinished when called).
    func recover(_ record: inout JobRecord) {
        let pid = record.pid.map { "pid \($0)" } ?? "an earlier asmtd"
        var message = "\(pid) stopped while the job was \(record.state.rawValue)"
        var success = false
        switch record.type {
        case .backup:
            switch engine.backupEvidence(directory: record.path) {
            case .complete:
                success = true
            case .unreadable(let why):
                message += "; its backup directory \(record.path) was left in place: \(why)"
            case .incomplete:
                guard FileSystem.kind(record.path) == .directory, isBelowBackupPath(record) else { break }
                do {
                    try FileSystem.removeTree(record.path)
                    message += "; its incomplete backup directory \(record.path) was removed"
                } catch {
                    message += "; removing its incomplete backup directory failed: \(error)"
                }
            }
        case .restore:
            switch engine.recoverRestore(record) {
            case .committed:
                success = true
                for index in record.segments.indices { record.segments[index].state = .done }
                record.progress.bytesDone = record.progress.bytesTotal
                record.progress.segmentsDone = record.progress.segmentsTotal
            case .removed(let count, let stuck):
                message += "; removed \(count) uncommitted segment(s) it had created"
                if !stuck.isEmpty {
                    message +=
                        "; \(stuck.count) attached segment(s) could not be removed: "
                        + stuck.joined(separator: ", ")
                }
            case .nothingCreated:
                message += "; it had not started creating segments"
            case .kept(let reason):
                message += "; its segments were left in place: \(reason)"
            }
        }
        record.finished = Time.now()
        if success {
            record.state = .success
            record.error = nil
            logger.warning(
                "job finished its \(record.type.rawValue) before the process stopped; marked success",
                metadata: ["job": "\(record.id)"])
        } else {
            record.state = .failure
            record.error = JobErrorRecord(code: APIError.Code.interrupted.rawValue, message: message)
            for index in record.segments.indices where record.segments[index].state != .done {
                record.segments[index].state = .failed
            }
            logger.warning("job interrupted", metadata: ["job": "\(record.id)", "detail": "\(message)"])
        }
    }

    /// Only a directory the job itself named below its instance's backup path is ever removed.
    private func isBelowBackupPath(_ record: JobRecord) -> Bool {
        guard let instance = config.instance(record.request.instance) else { return false }
        return Paths.directory(of: record.path) == instance.backupPath && Paths.isSafeName(record.backup)
    }
}
