import Foundation
import ShmEngine

/// The `--json` result of a local `asmtd backup` / `restore`: the API's job object (same keys, value
/// formats and encoder), filled from the local run. It has no `links`: no service knows this job.
enum LocalJobReport {
    struct Run: Sendable {
        var type: JobType
        var request: JobRequest
        var directory: String
        var segments: [PlannedSegment]
        var started: Double
    }

    /// The job object of a finished local run (pure).
    static func resource(
        _ run: Run, progress: ProgressSnapshot, finished: Double, error: EngineError?
    )
        -> JobResource
    {
        let state: JobState = error == nil ? .success : (error?.code == .canceled ? .canceled : .failure)
        var record = JobRecord(
            id: JobID.make(now: run.started), type: run.type, state: state, request: run.request,
            backup: run.directory.split(separator: "/").last.map(String.init) ?? run.directory, path: run.directory,
            created: run.started, started: run.started, finished: finished, pid: getpid(),
            progress: ProgressRecord(
                bytesTotal: run.segments.reduce(0) { $0 + $1.size }, segmentsTotal: run.segments.count),
            segments: run.segments.map(SegmentRecord.init),
            error: error.map { JobErrorRecord(code: $0.code.rawValue, message: $0.message) })
        record.apply(progress)
        if state != .success {
            for index in record.segments.indices where record.segments[index].state != .done {
                record.segments[index].state = state == .canceled ? .canceled : .failed
            }
        }
        var resource = JobResource(record, now: finished)
        resource.links = [:]
        return resource
    }
}
