import Foundation
import Glibc
import ShmSynthetic
import TestSupport
import Testing

@testable import ShmEngine

/// Backs up `spec` on `instance`, removes the originals, restores, and checks bytes, owner and mode.
private func roundTrip(
    instance: Int, spec: SyntheticNamespace, compress: Bool, threads: Int = 0, access: SegmentAccess = .automatic
) throws {
    try TemporaryDirectory.with { temp in
        let directory = temp + "/backup"
        var created = try TestSegmentMaker.create(instance: instance, spec)
        defer { SyntheticSegments.remove(created) }
        let before = Fixture.snapshot(created)
        var request = BackupRequest(
            instance: instance, namespaces: [spec.name], directory: directory, compress: compress, threads: threads)
        request.segmentAccess = access
        let plan = try Engine.planBackup(request)
        #expect(plan.segments.count == created.count)
        let progress = JobProgress()
        let manifest = try Engine.backup(plan, request: request, progress: progress, cancellation: CancellationToken())
        let snapshot = progress.snapshot()
        #expect(snapshot.bytesDone == plan.totalBytes && snapshot.bytesTotal == plan.totalBytes)
        #expect(snapshot.segmentsDone == created.count)
        #expect(snapshot.segments.allSatisfy { $0.state == .done })

        var st = stat()
        #expect(stat(directory, &st) == 0 && st.st_mode & 0o777 == 0o700)
        #expect(try BackupManifest.load(directory: directory) == manifest)
        for segment in manifest.segments {
            #expect(segment.compressed == (compress && segment.kind.compressible))
            #expect(stat(directory + "/" + segment.file, &st) == 0)
            #expect(st.st_uid == spec.uid && st.st_gid == spec.gid && st.st_mode & 0o7777 == spec.mode)
            #expect(UInt64(st.st_size) == segment.fileSize)
            #expect(segment.crc32 == Fixture.zlibCRC(before[segment.key] ?? []))
            // Compressed files carry their chunk index; every chunk's CRC-32 is that of its segment bytes.
            #expect((segment.chunks != nil) == segment.compressed)
            if let chunks = segment.chunks, let bytes = before[segment.key] {
                #expect(chunks.fits(size: segment.size, fileSize: segment.fileSize))
                for (index, crc) in chunks.crc32.enumerated() {
                    let start = index * chunks.size
                    #expect(crc == Fixture.zlibCRC(Array(bytes[start..<min(start + chunks.size, bytes.count)])))
                }
            }
        }
        let keys = created.map(\.key)
        SyntheticSegments.remove(created)
        created = []

        var restoreRequest = RestoreRequest(
            instance: instance, namespaces: [spec.name], directory: directory, threads: threads)
        restoreRequest.segmentAccess = access
        let restorePlan = try Engine.planRestore(restoreRequest)
        defer { Fixture.removeRestored(keys) }
        let restoreProgress = JobProgress()
        try Engine.restore(
            restorePlan, request: restoreRequest, progress: restoreProgress, cancellation: CancellationToken())
        #expect(restoreProgress.snapshot().bytesDone == restorePlan.totalBytes)
        #expect(restoreProgress.snapshot().segmentsDone == keys.count)
        let restored = try Fixture.live(instance: instance, nsid: spec.nsid, name: spec.name)
        #expect(Set(restored.map(\.key)) == Set(keys))
        for segment in restored {
            #expect(segment.uid == spec.uid && segment.gid == spec.gid && segment.mode == spec.mode)
            #expect(segment.attachCount == 0)
            #expect(Fixture.contents(segment) == before[segment.key], "\(segment.key)")
        }
    }
}

@Suite struct RoundTripTests {
    @Test func plainRoundTripIsByteIdentical() throws {
        let spec = SyntheticNamespace(
            name: "rt-plain", nsid: 1, primaryStages: 3, stageSize: (1 << 20) + 12_345, secondaryStages: 2,
            dataStages: 3, uid: 1234, gid: 2345, mode: 0o640, seed: 11)
        try roundTrip(instance: 13, spec: spec, compress: false)
    }

    /// Where the segment's shmem file cannot be opened (not root), the bytes go through the mapping.
    @Test func plainRoundTripThroughTheMapping() throws {
        let spec = SyntheticNamespace(
            name: "rt-map", nsid: 17, primaryStages: 2, stageSize: (2 << 20) + 777, secondaryStages: 1,
            dataStages: 1, uid: 1234, gid: 2345, mode: 0o640, seed: 16)
        try roundTrip(instance: 13, spec: spec, compress: false, threads: 2, access: .mapping)
    }

    /// The fast path: with CAP_SYS_ADMIN (root), a segment's shmem file opens and holds exactly the mapped bytes,
    /// also when the size is not a whole number of pages, and bytes written into it show in the mapping.
    /// Without the capability it does not open, and the engine uses the mapping.
    @Test func segmentFileHoldsTheMappedBytes() throws {
        let spec = SyntheticNamespace(
            name: "rt-file", nsid: 18, primaryStages: 1, stageSize: (1 << 20) + 4_099, secondaryStages: 0,
            dataStages: 0, uid: 1234, gid: 2345, mode: 0o640, seed: 17)
        try Fixture.withSegments(instance: 13, spec) { created in
            let stage = try #require(created.first { $0.key.kind == .primaryStage })
            let shmid = try #require(SharedMemory.lookup(stage.key))
            let attachment = try SharedMemory.attach(shmid: shmid, key: stage.key, size: stage.size, readOnly: false)
            defer { SharedMemory.detach(attachment) }
            guard Fixture.hasSysAdminCapability else {
                #expect(SharedMemory.openFile(attachment, key: stage.key, writable: true) == nil)
                return
            }
            let fd = try #require(
                SharedMemory.openFile(attachment, key: stage.key, writable: true),
                "with CAP_SYS_ADMIN, /proc/self/map_files opens")
            defer { close(fd) }
            // The file is checked to be that segment's: asked for another key, it does not open.
            let other = SegmentKey(kind: .primaryStage, instance: 13, nsid: 18, stage: 1)
            #expect(SharedMemory.openFile(attachment, key: other, writable: true) == nil)
            var bytes = [UInt8](repeating: 0, count: Int(stage.size) + 10)
            let got = bytes.withUnsafeMutableBytes { pread(fd, $0.baseAddress, $0.count, 0) }
            #expect(got == Int(stage.size))
            #expect(Array(bytes.prefix(Int(stage.size))) == Array(UnsafeRawBufferPointer(attachment.bytes)))
            let marker: [UInt8] = [0xA5, 0x5A, 0x00, 0xFF]
            // Across a page boundary (the segment's tail holds the fixture's marker: left alone).
            let put = marker.withUnsafeBytes { pwrite(fd, $0.baseAddress, $0.count, 4094) }
            #expect(put == 4)
            #expect(Array(UnsafeRawBufferPointer(attachment.bytes)[4094..<4098]) == marker)
        }
    }

    /// One stage of six deflate chunks and two workers: the chunks of one file restore in parallel, through
    /// the mapping here (compressedRoundTripIsByteIdentical goes through the segments' files).
    @Test func compressedRoundTripThroughTheMapping() throws {
        let spec = SyntheticNamespace(
            name: "rt-gzmap", nsid: 19, primaryStages: 1, stageSize: (40 << 20) + 12_345, secondaryStages: 0,
            dataStages: 0, uid: 1234, gid: 2345, mode: 0o640, seed: 19)
        try roundTrip(instance: 13, spec: spec, compress: true, threads: 2, access: .mapping)
    }

    @Test func compressedRoundTripIsByteIdentical() throws {
        // Stages larger than the 8 MiB deflate chunk, with an odd tail.
        let spec = SyntheticNamespace(
            name: "rt-gz", nsid: 2, primaryStages: 2, stageSize: (17 << 20) + 4_097, secondaryStages: 1,
            dataStages: 2, uid: 1234, gid: 2345, mode: 0o640, seed: 12)
        try roundTrip(instance: 13, spec: spec, compress: true)
    }

    @Test func singleThreadCompressedRoundTripWithoutMeta() throws {
        let spec = SyntheticNamespace(
            name: "rt-one", nsid: 3, primaryStages: 1, stageSize: 300_000, secondaryStages: 0, dataStages: 0,
            uid: 1234, gid: 2345, mode: 0o640, seed: 13)
        try roundTrip(instance: 13, spec: spec, compress: true, threads: 1)
    }

    /// Two namespaces in one request: one manifest, both restored.
    @Test func twoNamespacesInOneBackup() throws {
        let first = SyntheticNamespace(
            name: "two-a", nsid: 11, primaryStages: 1, stageSize: 200_000, dataStages: 1, uid: 1234, gid: 2345,
            mode: 0o640, seed: 21)
        let second = SyntheticNamespace(
            name: "two-b", nsid: 12, primaryStages: 2, stageSize: 150_000, secondaryStages: 0, dataStages: 2,
            uid: 2345, gid: 1234, mode: 0o600, seed: 22)
        try TemporaryDirectory.with { temp in
            let directory = temp + "/b"
            var keys: [SegmentKey] = []
            var before: [SegmentKey: [UInt8]] = [:]
            try Fixture.withSegments(instance: 13, first) { a in
                try Fixture.withSegments(instance: 13, second) { b in
                    before = Fixture.snapshot(a + b)
                    keys = (a + b).map(\.key)
                    let request = BackupRequest(
                        instance: 13, namespaces: ["two-a", "two-b"], directory: directory, compress: true)
                    let manifest = try Engine.backup(
                        try Engine.planBackup(request), request: request, progress: JobProgress(),
                        cancellation: CancellationToken())
                    #expect(manifest.namespaces.map(\.nsid) == [11, 12])
                    #expect(manifest.segments.count == a.count + b.count)
                }
            }
            defer { Fixture.removeRestored(keys) }
            let request = RestoreRequest(instance: 13, namespaces: ["two-b", "two-a"], directory: directory)
            try Engine.restore(
                try Engine.planRestore(request), request: request, progress: JobProgress(),
                cancellation: CancellationToken())
            let restored =
                try Fixture.live(instance: 13, nsid: 11, name: "two-a")
                + Fixture.live(instance: 13, nsid: 12, name: "two-b")
            #expect(Set(restored.map(\.key)) == Set(keys))
            for segment in restored { #expect(Fixture.contents(segment) == before[segment.key]) }
        }
    }

    /// An independent reader parses what the engine wrote: names, header fields, one gzip member.
    @Test func filesAreReadableWithoutTheEngine() throws {
        let spec = SyntheticNamespace(
            name: "reader", nsid: 4, primaryStages: 2, stageSize: (9 << 20) + 1, secondaryStages: 1, dataStages: 2,
            uid: 1234, gid: 2345, mode: 0o640, seed: 14)
        try Fixture.withSegments(instance: 13, spec) { created in
            try TemporaryDirectory.with { temp in
                let directory = temp + "/b"
                let request = BackupRequest(instance: 13, namespaces: ["reader"], directory: directory, compress: true)
                _ = try Engine.backup(
                    try Engine.planBackup(request), request: request, progress: JobProgress(),
                    cancellation: CancellationToken())
                let names = try FileManager.default.contentsOfDirectory(atPath: directory).sorted()
                var expected = created.map { segment -> String in
                    let hex = String(segment.key.rawValue, radix: 16)
                    let plain = segment.key.kind == .base || segment.key.kind == .meta
                    return String(repeating: "0", count: 8 - hex.count) + hex + (plain ? ".dat" : ".dat.gz")
                }
                expected.append("asmtd-manifest.json")
                #expect(names == expected.sorted())
                for segment in created {
                    let data = Fixture.contents(segment)
                    let hex = String(segment.key.rawValue, radix: 16)
                    let plainName = directory + "/" + String(repeating: "0", count: 8 - hex.count) + hex + ".dat"
                    if segment.key.kind == .base || segment.key.kind == .meta {
                        #expect(Fixture.fileBytes(plainName) == data)
                        continue
                    }
                    let file = Fixture.fileBytes(plainName + ".gz")
                    #expect(file.count > 24 + 18)
                    #expect(Array(file[0..<4]) == [0x41, 0x53, 0x4D, 0x54])
                    #expect(Fixture.le32(file, 4) == 1)
                    #expect(Fixture.le64(file, 8) == segment.size)
                    #expect(Fixture.le64(file, 16) == UInt64(Fixture.zlibCRC(data)))
                    #expect(Array(file[24..<26]) == [0x1F, 0x8B])
                    #expect(Fixture.gunzip(Array(file[24...])) == data, "\(segment.key)")
                }
            }
        }
    }

    /// A directory laid out as asmt writes it (zlib level 1, no manifest) restores.
    @Test func restoresAnAsmtDirectory() throws {
        let instance = 13
        let nsid = 5
        let name = "asmt-dir"
        var contents: [(SegmentKey, [UInt8])] = []
        var base = [UInt8](repeating: 0, count: 4096)
        base.replaceSubrange(0..<4, with: [11, 0, 0, 0])
        base.replaceSubrange(4..<8, with: [1, 0, 0, 0])
        base.replaceSubrange(1024..<1024 + name.utf8.count, with: Array(name.utf8))
        base.replaceSubrange(2152..<2156, with: [2, 0, 0, 0])
        contents.append((SegmentKey(kind: .base, instance: instance, nsid: nsid), base))
        func pattern(_ size: Int, _ seed: Int) -> [UInt8] {
            (0..<size).map {
                UInt8(truncatingIfNeeded: ($0 &* 2_654_435_761 &+ seed) >> 13) & (($0 % 5 == 0) ? 0 : 0xFF)
            }
        }
        contents.append((SegmentKey(kind: .treex, instance: instance, nsid: nsid), pattern(70_000, 1)))
        contents.append(
            (SegmentKey(kind: .primaryStage, instance: instance, nsid: nsid, stage: 0), pattern(300_001, 2)))
        contents.append(
            (SegmentKey(kind: .primaryStage, instance: instance, nsid: nsid, stage: 1), pattern(200_000, 3)))
        var meta = [UInt8](repeating: 0, count: 1024)
        meta[20] = 1
        contents.append((SegmentKey(kind: .meta, instance: instance, nsid: nsid), meta))
        contents.append(
            (SegmentKey(kind: .secondaryStage, instance: instance, nsid: nsid, stage: 0), pattern(100_000, 4)))
        for stage in 0..<3 {
            var data = pattern(50_000 + stage, 5 + stage)
            data.replaceSubrange(12..<44, with: Array(name.utf8) + [UInt8](repeating: 0, count: 32 - name.utf8.count))
            contents.append((SegmentKey(kind: .dataStage, instance: instance, nsid: nsid, stage: stage), data))
        }
        try TemporaryDirectory.with { directory in
            for (key, data) in contents {
                let hex = String(key.rawValue, radix: 16)
                let stem = directory + "/" + String(repeating: "0", count: 8 - hex.count) + hex
                let path: String
                if key.kind == .base || key.kind == .meta {
                    path = stem + ".dat"
                    Fixture.writeFile(path, data)
                } else {
                    path = stem + ".dat.gz"
                    var header: [UInt8] = [0x41, 0x53, 0x4D, 0x54, 1, 0, 0, 0]
                    header += (0..<8).map { UInt8(truncatingIfNeeded: UInt64(data.count) >> (8 * UInt64($0))) }
                    let crc = Fixture.zlibCRC(data)
                    header += (0..<8).map { UInt8(truncatingIfNeeded: UInt64(crc) >> (8 * UInt64($0))) }
                    Fixture.writeFile(path, header + Fixture.gzip(data))
                }
                #expect(chown(path, 1234, 2345) == 0 && chmod(path, 0o640) == 0)
            }
            let keys = contents.map(\.0)
            defer { Fixture.removeRestored(keys) }
            let request = RestoreRequest(instance: instance, namespaces: [name], directory: directory)
            let plan = try Engine.planRestore(request)
            #expect(plan.segments.count == contents.count)
            try Engine.restore(plan, request: request, progress: JobProgress(), cancellation: CancellationToken())
            let restored = try Fixture.live(instance: instance, nsid: nsid, name: name)
            #expect(restored.count == contents.count)
            for (key, data) in contents {
                let segment = try #require(restored.first { $0.key == key })
                #expect(segment.size == UInt64(data.count))
                #expect(Fixture.contents(segment) == data, "\(key)")
                #expect(segment.uid == 1234 && segment.gid == 2345 && segment.mode == 0o640)
            }
        }
    }
}
