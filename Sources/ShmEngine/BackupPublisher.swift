import CRenameNoReplace
import Glibc

/// Makes a finished backup visible, in this order: the manifest written under its pending name and synced, the
/// files renamed from their staging names (the base files last), the directory synced, the manifest renamed into
/// place, the directory synced again. `withdraw` undoes whatever of that happened.
final class BackupPublisher {
    let directory: String
    let createdDirectory: Bool
    private var renamed: [String] = []
    private var pendingWritten = false
    private var published = false

    init(directory: String, createdDirectory: Bool) {
        self.directory = directory
        self.createdDirectory = createdDirectory
    }

    func publish(
        _ manifest: BackupManifest, files: [BackupFileState], cancellation: CancellationToken
    ) throws(EngineError) {
        let pendingPath = directory + "/" + BackupStaging.pendingManifest
        let fd = open(pendingPath, O_CREAT | O_EXCL | O_WRONLY | O_NOFOLLOW | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw EngineError(.io, "cannot create \(pendingPath): \(errnoText())") }
        pendingWritten = true
        do throws(EngineError) {
            try FileIO.writeAll(fd, bytes: manifest.encoded(), at: 0, file: pendingPath)
            guard fsync(fd) == 0 else { throw EngineError(.io, "cannot fsync \(pendingPath): \(errnoText())") }
        } catch {
            close(fd)
            throw error
        }
        close(fd)
        try FileIO.fsyncDirectory(directory)
        if cancellation.isCancelled { throw EngineError(.canceled, "the job was cancelled") }
        let ordered = files.filter { $0.segment.kind != .base } + files.filter { $0.segment.kind == .base }
        for file in ordered {
            try Self.renameNew(file.stagingPath, to: file.path)
            renamed.append(file.path)
        }
        try FileIO.fsyncDirectory(directory)
        let manifestPath = directory + "/" + BackupManifest.fileName
        try Self.renameNew(pendingPath, to: manifestPath)
        pendingWritten = false
        published = true
        try FileIO.fsyncDirectory(directory)
        if createdDirectory { try FileIO.fsyncDirectory(FileIO.parent(of: directory)) }
    }

    /// After a failure: removes what was renamed (the base files first), the staging files and the pending
    /// manifest; the directory too when this backup created it and it is empty.
    func withdraw(_ files: [BackupFileState]) {
        if published { unlink(directory + "/" + BackupManifest.fileName) }
        for path in renamed.reversed() { unlink(path) }
        for file in files where file.created { unlink(file.stagingPath) }
        if pendingWritten { unlink(directory + "/" + BackupStaging.pendingManifest) }
        if createdDirectory && rmdir(directory) == 0 { return }
        // Best effort on the way out: the job already failed, and a later cleanup finds any leftover by its name.
        try? FileIO.fsyncDirectory(directory)
    }

    /// rename that refuses to replace an existing file (where the file system supports it).
    static func renameNew(_ from: String, to: String) throws(EngineError) {
        if crename_noreplace(from, to) == 0 { return }
        var code = errno
        if code == EINVAL || code == ENOSYS {
            if rename(from, to) == 0 { return }
            code = errno
        }
        if code == EEXIST { throw EngineError(.filesExist, "file \(to) appeared during the backup") }
        throw EngineError(.io, "cannot rename \(from) to \(to): \(errnoText(code))")
    }
}
