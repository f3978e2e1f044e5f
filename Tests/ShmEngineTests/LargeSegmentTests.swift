import Foundation
import Glibc
import ShmSynthetic
import TestSupport
import Testing

@testable import ShmEngine

/// One segment larger than 4 GiB, in both formats (asmt's hazard 2). Mostly zero pages, with markers near
/// the start, around the 4 GiB boundary and at the end. Heavy: one test, serialized.
@Suite(.serialized) struct LargeSegmentTests {
    static let size = (4 << 30) + 8192
    static let boundary = 4 << 30
    static let marker = Array("4GiB-boundary-marker".utf8)

    @Test func segmentOver4GiBRoundTripsInBothFormats() throws {
        var spec = SyntheticNamespace(
            name: "huge", nsid: 32, primaryStages: 1, stageSize: Self.size, secondaryStages: 0, dataStages: 0,
            uid: 1234, gid: 2345, mode: 0o640, seed: 32)
        spec.sparse = true
        try TemporaryDirectory.with { temp in
            var created = try TestSegmentMaker.create(instance: 14, spec)
            defer { SyntheticSegments.remove(created) }
            let stage = try #require(created.first { $0.key.kind == .primaryStage })
            let attachment = try SharedMemory.attach(
                shmid: stage.shmid, key: stage.key, size: stage.size, readOnly: false)
            for (index, byte) in Self.marker.enumerated() {
                attachment.bytes[Self.boundary - 10 + index] = byte
            }
            let crc = CRC32.update(0, UnsafeRawBufferPointer(attachment.bytes))
            let head = Array(UnsafeRawBufferPointer(rebasing: attachment.bytes[0..<4096]))
            SharedMemory.detach(attachment)

            var manifests: [BackupManifest] = []
            for compress in [false, true] {
                let request = BackupRequest(
                    instance: 14, namespaces: ["huge"], directory: temp + (compress ? "/gz" : "/plain"),
                    compress: compress)
                manifests.append(
                    try Engine.backup(
                        try Engine.planBackup(request), request: request, progress: JobProgress(),
                        cancellation: CancellationToken()))
            }
            for manifest in manifests {
                let entry = try #require(manifest.segments.first { $0.key == stage.key })
                #expect(entry.size == UInt64(Self.size))
                #expect(entry.crc32 == crc)
            }
            // The compressed file states the full 64-bit size; the trailer holds ISIZE mod 2^32.
            let gzPath = temp + "/gz/" + stage.key.fileName(compressed: true)
            let fd = open(gzPath, O_RDONLY)
            defer { close(fd) }
            let header = try FileIO.read(fd, count: 24, at: 0, file: gzPath)
            #expect(Fixture.le64(header, 8) == UInt64(Self.size))
            #expect(Fixture.le64(header, 16) == UInt64(crc))
            var st = stat()
            #expect(fstat(fd, &st) == 0 && st.st_size > 44)
            let trailer = try FileIO.read(fd, count: 8, at: UInt64(st.st_size - 8), file: gzPath)
            #expect(Fixture.le32(trailer, 0) == crc)
            #expect(Fixture.le32(trailer, 4) == UInt32(Self.size % (1 << 32)))

            let keys = created.map(\.key)
            SyntheticSegments.remove(created)
            created = []
            for directory in [temp + "/plain", temp + "/gz"] {
                defer { Fixture.removeRestored(keys) }
                let request = RestoreRequest(instance: 14, namespaces: ["huge"], directory: directory)
                try Engine.restore(
                    try Engine.planRestore(request), request: request, progress: JobProgress(),
                    cancellation: CancellationToken())
                let restored = try #require(
                    try Fixture.live(instance: 14, nsid: 32, name: "huge").first { $0.key == stage.key })
                #expect(restored.size == UInt64(Self.size))
                #expect(restored.uid == 1234 && restored.gid == 2345 && restored.mode == 0o640)
                let view = try SharedMemory.attach(
                    shmid: restored.shmid, key: restored.key, size: restored.size, readOnly: true)
                defer { SharedMemory.detach(view) }
                #expect(Array(UnsafeRawBufferPointer(rebasing: view.bytes[0..<4096])) == head)
                let around = Array(
                    UnsafeRawBufferPointer(rebasing: view.bytes[(Self.boundary - 10)..<(Self.boundary + 10)]))
                #expect(around == Self.marker)
                let tail = Array(UnsafeRawBufferPointer(rebasing: view.bytes[(Self.size - 16)...]))
                #expect(tail == SyntheticSegments.marker)
                #expect(CRC32.update(0, UnsafeRawBufferPointer(view.bytes)) == crc)
            }
        }
    }
}
