import Foundation
import Glibc
import ShmSynthetic
import TestSupport
import Testing

@testable import ShmEngine

/// What a restore reads from a backup directory: no symlink followed, the manifest authoritative for owner and
/// mode, no I/O error swallowed. Instance 13, nsids 30..31.
@Suite struct RestoreInputTests {
    private func withBackup(_ spec: SyntheticNamespace, _ body: (String) throws -> Void) throws {
        try TemporaryDirectory.with { temp in
            let directory = temp + "/backup"
            try Fixture.withSegments(instance: 13, spec) { _ in
                let request = BackupRequest(instance: 13, namespaces: [spec.name], directory: directory)
                let plan = try Engine.planBackup(request)
                _ = try Engine.backup(
                    plan, request: request, progress: JobProgress(), cancellation: CancellationToken())
            }
            try body(directory)
        }
    }

    /// A stage file replaced by a symlink to a copy of itself is refused at planning (INVALID_BACKUP), with and
    /// without a manifest; the run's own open refuses a symlink too.
    @Test func symlinksInTheBackupDirectoryAreRefused() throws {
        let spec = SyntheticNamespace(name: "link30", nsid: 30, primaryStages: 2, stageSize: 64 << 10, seed: 30)
        try withBackup(spec) { directory in
            let stage =
                directory + "/" + SegmentKey(kind: .primaryStage, instance: 13, nsid: 30).fileName(compressed: false)
            let elsewhere = directory + "/../elsewhere.dat"
            #expect(rename(stage, elsewhere) == 0)
            #expect(symlink(elsewhere, stage) == 0)
            let request = RestoreRequest(instance: 13, namespaces: [spec.name], directory: directory)
            Fixture.expectCode(.invalidBackup) { _ = try Engine.planRestore(request) }
            unlink(directory + "/" + BackupManifest.fileName)
            Fixture.expectCode(.invalidBackup) { _ = try Engine.planRestore(request) }
            Fixture.expectCode(.invalidBackup) { _ = try RestoreFileState.openChecked(stage, identity: nil) }
            Fixture.expectCode(.invalidBackup) { _ = try FileIO.readPrefix(path: stage, length: 16) }
            let left = try Fixture.live(instance: 13, nsid: 30, name: spec.name)
            #expect(left.isEmpty)
        }
    }

    /// With a manifest, owner, group and mode come from it: a file chmod-ed 0777 is reported, not used.
    @Test func theManifestDecidesOwnerAndMode() throws {
        let spec = SyntheticNamespace(
            name: "owner31", nsid: 31, primaryStages: 2, stageSize: 64 << 10, uid: 1234, gid: 2345, mode: 0o640,
            seed: 31)
        try withBackup(spec) { directory in
            let key = SegmentKey(kind: .primaryStage, instance: 13, nsid: 31, stage: 1)
            let path = directory + "/" + key.fileName(compressed: false)
            #expect(chmod(path, 0o777) == 0 && chown(path, 0, 0) == 0)
            let request = RestoreRequest(instance: 13, namespaces: [spec.name], directory: directory)
            let plan = try Engine.planRestore(request)
            #expect(plan.warnings.count == 1 && plan.warnings.first?.contains(key.fileName(compressed: false)) == true)
            #expect(plan.segments.allSatisfy { $0.uid == 1234 && $0.gid == 2345 && $0.mode == 0o640 })
            defer { Fixture.removeRestored(plan.segments.map(\.key)) }
            try Engine.restore(plan, request: request, progress: JobProgress(), cancellation: CancellationToken())
            let restored = try Fixture.live(instance: 13, nsid: 31, name: spec.name)
            #expect(restored.count == plan.segments.count)
            #expect(restored.allSatisfy { $0.uid == 1234 && $0.gid == 2345 && $0.mode == 0o640 })
        }
    }

    /// A file that cannot be read is an error, not an empty prefix.
    @Test func unreadableFilesAreErrors() throws {
        try TemporaryDirectory.with { temp in
            Fixture.expectCode(.io) { _ = try FileIO.readPrefix(path: temp + "/missing.dat", length: 16) }
            Fixture.writeFile(temp + "/short.dat", [1, 2, 3])
            let prefix = try FileIO.readPrefix(path: temp + "/short.dat", length: 16)
            #expect(prefix == [1, 2, 3])
        }
    }
}
