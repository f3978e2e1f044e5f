import Glibc
import HTTP1

/// GET /ready: the checks (also the `asmtd_ready` metric).
extension API {
    struct Check: Encodable, Sendable {
        var name: String
        var ok: Bool
        var message: String
    }

    struct Readiness: Encodable, Sendable {
        var status: String
        var checks: [Check]
    }

    func ready() async -> HTTPResponse {
        let readiness = self.readiness()
        return Responses.json(readiness.status == "ready" ? 200 : 503, readiness)
    }

    /// The checks of GET /ready (also the `asmtd_ready` metric).
    func readiness() -> Readiness {
        var checks: [Check] = [Check(name: "config", ok: true, message: "loaded from \(config.file)")]
        checks.append(
            Check(
                name: "accepting-jobs", ok: jobs.isAccepting,
                message: jobs.isAccepting ? "taking jobs" : "shutting down"))
        let state = config.service.stateDir
        let stateOK = FileSystem.isWritableDirectory(state) && FileSystem.isWritableDirectory(jobs.store.directory)
        checks.append(
            Check(name: "state-dir", ok: stateOK, message: stateOK ? "\(state) writable" : "\(state) not writable"))
        let unsaved = jobs.unsavedJobs
        checks.append(
            Check(
                name: "job-records", ok: unsaved.isEmpty,
                message: unsaved.isEmpty
                    ? "every record on disk"
                    : "final record not on disk yet for job(s) \(unsaved.joined(separator: ", "))"))
        for instance in config.instances {
            let ok = FileSystem.isWritableDirectory(instance.backupPath)
            checks.append(
                Check(
                    name: "backup-path-\(instance.instance)", ok: ok,
                    message: ok ? "\(instance.backupPath) writable" : "\(instance.backupPath) not writable"))
        }
        // SHM_INFO only: a walk that attaches segments to read their names would disturb a running backup.
        var info = shmid_ds()
        if shmctl(0, SHM_INFO, &info) >= 0 {
            checks.append(Check(name: "shm", ok: true, message: "shm calls permitted"))
        } else {
            checks.append(
                Check(name: "shm", ok: false, message: "shmctl(SHM_INFO) failed: \(String(cString: strerror(errno)))"))
        }
        let root = geteuid() == 0
        checks.append(
            Check(
                name: "privileges", ok: root,
                message: root ? "running as root" : "not root: restores cannot give segments their owners"))
        let ok = checks.allSatisfy(\.ok)
        return Readiness(status: ok ? "ready" : "not-ready", checks: checks)
    }
}
