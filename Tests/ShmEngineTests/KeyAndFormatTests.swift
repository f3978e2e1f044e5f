import CISAL
import Foundation
import Testing

@testable import ShmEngine

@Suite struct KeyTests {
    @Test func encodesTheDocumentedExamples() {
        #expect(SegmentKey(kind: .base, instance: 0, nsid: 1).rawValue == 0xae00_1000)
        #expect(SegmentKey(kind: .treex, instance: 0, nsid: 1).rawValue == 0xae00_1001)
        #expect(SegmentKey(kind: .primaryStage, instance: 0, nsid: 1, stage: 0).rawValue == 0xae00_1100)
        #expect(SegmentKey(kind: .meta, instance: 0, nsid: 1).rawValue == 0xa200_1000)
        #expect(SegmentKey(kind: .secondaryStage, instance: 0, nsid: 1, stage: 2).rawValue == 0xa200_1102)
        #expect(SegmentKey(kind: .dataStage, instance: 0, nsid: 1, stage: 0).rawValue == 0xad00_1000)
        #expect(SegmentKey(kind: .base, instance: 7, nsid: 5).rawValue == 0xae70_5000)
    }

    @Test func decodesEveryKindBothWays() throws {
        for instance in [0, 7, 15] {
            for nsid in [1, 17, 32] {
                let keys: [(SegmentKind, Int)] = [
                    (.base, 0), (.treex, 0), (.primaryStage, 0), (.primaryStage, 2047), (.meta, 0),
                    (.secondaryStage, 5), (.dataStage, 0), (.dataStage, 1), (.dataStage, 255),
                ]
                for (kind, stage) in keys {
                    let key = SegmentKey(kind: kind, instance: instance, nsid: nsid, stage: stage)
                    let decoded = try #require(SegmentKey(rawValue: key.rawValue))
                    #expect(decoded.kind == kind)
                    #expect(decoded.instance == instance)
                    #expect(decoded.nsid == nsid)
                    #expect(decoded.stage == stage)
                }
            }
        }
    }

    @Test func dataStageLowOneIsADataStage() throws {
        let key = try #require(SegmentKey(rawValue: 0xad00_1001))
        #expect(key.kind == .dataStage)
        #expect(key.stage == 1)
    }

    @Test func rejectsKeysAsmtWouldNotUse() {
        for raw: UInt32 in [
            0xae00_0000, 0xae02_1000, 0xab00_1000, 0xae00_1002, 0xae00_10ff, 0xae00_1900, 0xa200_1001,
            0xad00_1100, 0x0000_0000,
        ] {
            #expect(SegmentKey(rawValue: raw) == nil, "0x\(String(raw, radix: 16))")
        }
    }

    @Test func fileNamesRoundTrip() throws {
        let key = SegmentKey(kind: .primaryStage, instance: 0, nsid: 1, stage: 0)
        #expect(key.fileName(compressed: false) == "ae001100.dat")
        #expect(key.fileName(compressed: true) == "ae001100.dat.gz")
        #expect(key.hex == "0xae001100")
        let parsed = try #require(SegmentKey.parse(fileName: "AE001100.dat.gz"))
        #expect(parsed.key == key)
        #expect(parsed.compressed)
        #expect(SegmentKey.parse(fileName: "ae001100.dat")?.compressed == false)
        for bad in ["unrelated.txt", "ae001100.dat.bak", "ae001100.gz", "ae00110.dat", "ae0011000.dat", "xe001100.dat"]
        {
            #expect(SegmentKey.parse(fileName: bad) == nil, "\(bad)")
        }
        #expect(SegmentKey.parse(fileName: "ae000100.dat") == nil)  // nsid 0
    }

    @Test func codableAsHexString() throws {
        let key = SegmentKey(kind: .dataStage, instance: 13, nsid: 3, stage: 1)
        let data = try JSONEncoder().encode([key])
        #expect(String(decoding: data, as: UTF8.self) == "[\"0xadd03001\"]")
        #expect(try JSONDecoder().decode([SegmentKey].self, from: data) == [key])
        #expect(throws: (any Error).self) { try JSONDecoder().decode([SegmentKey].self, from: Data("[\"0x12\"]".utf8)) }
    }

    @Test func sortsInAsmtFileOrder() {
        let keys = [
            SegmentKey(kind: .dataStage, instance: 1, nsid: 1), SegmentKey(kind: .meta, instance: 1, nsid: 1),
            SegmentKey(kind: .primaryStage, instance: 1, nsid: 1, stage: 1),
            SegmentKey(kind: .treex, instance: 1, nsid: 1),
            SegmentKey(kind: .primaryStage, instance: 1, nsid: 1, stage: 0),
            SegmentKey(kind: .base, instance: 1, nsid: 1),
            SegmentKey(kind: .secondaryStage, instance: 1, nsid: 1),
        ]
        #expect(
            keys.sorted().map(\.kind) == [
                .base, .treex, .primaryStage, .primaryStage, .meta, .secondaryStage, .dataStage,
            ])
    }
}

@Suite struct FormatTests {
    @Test func asmtHeaderBytes() throws {
        let header = ASMTHeader(segmentSize: 0x1_0000_2000, crc32: 0xDEAD_BEEF)
        let bytes = header.encoded()
        #expect(bytes.count == 24)
        #expect(Array(bytes[0..<4]) == Array("ASMT".utf8))
        #expect(Fixture.le32(bytes, 4) == 1)
        #expect(Fixture.le64(bytes, 8) == 0x1_0000_2000)
        #expect(Fixture.le64(bytes, 16) == 0xDEAD_BEEF)
        #expect(try ASMTHeader.decode(bytes).get() == header)
    }

    @Test func asmtHeaderRejections() {
        var swapped = ASMTHeader(segmentSize: 10, crc32: 1).encoded()
        swapped.replaceSubrange(0..<4, with: Array("TMSA".utf8))
        #expect((try? ASMTHeader.decode(swapped).get())?.segmentSize == 10)
        var badMagic = swapped
        badMagic[0] = 0
        #expect(throws: ASMTHeader.DecodeError.self) { try ASMTHeader.decode(badMagic).get() }
        var badVersion = ASMTHeader(segmentSize: 10, crc32: 1).encoded()
        badVersion[4] = 2
        #expect(throws: ASMTHeader.DecodeError.badVersion(2)) { try ASMTHeader.decode(badVersion).get() }
        #expect(throws: ASMTHeader.DecodeError.short) { try ASMTHeader.decode([1, 2, 3]).get() }
    }

    @Test func gzipHeaderParser() {
        #expect(GzipFraming.parseHeader(GzipFraming.header) == .ok(length: 10))
        let named: [UInt8] = [0x1F, 0x8B, 8, 0x08, 0, 0, 0, 0, 0, 3] + Array("name".utf8) + [0, 0xAA]
        #expect(GzipFraming.parseHeader(named) == .ok(length: 15))
        #expect(GzipFraming.parseHeader(Array(named.prefix(12))) == .needMore)
        #expect(GzipFraming.parseHeader([0x1F, 0x8C, 8, 0, 0, 0, 0, 0, 0, 3]) == .invalid("not a gzip member"))
    }

    @Test func crcMatchesZlibAndCombines() {
        let first = (0..<100_000).map { UInt8(truncatingIfNeeded: $0 &* 31) }
        let second = (0..<77_777).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ 3) }
        let whole = Fixture.zlibCRC(first + second)
        #expect(CRC32.checksum(first + second) == whole)
        #expect(
            CRC32.combine(CRC32.checksum(first), CRC32.checksum(second), secondLength: UInt64(second.count)) == whole)
    }

    static func deflaters() throws -> [(String, any PieceDeflater)] {
        var result: [(String, any PieceDeflater)] = [("zlib", try ZlibDeflater())]
        if Codec.usesISAL, let handle = cisal_deflater_new() { result.append(("isa-l", ISALDeflater(handle))) }
        return result
    }

    static func inflaters() throws -> [(String, any StreamInflater)] {
        var result: [(String, any StreamInflater)] = [("zlib", try ZlibInflater())]
        if Codec.usesISAL, let handle = cisal_inflater_new() { result.append(("isa-l", ISALInflater(handle))) }
        return result
    }

    @Test func isalIsAvailableWhereItIsInstalled() {
        if FileManager.default.fileExists(atPath: "/usr/include/isa-l.h") {
            #expect(Codec.usesISAL)
            #expect(Engine.codecName == "isa-l")
        }
    }

    /// Chunks compressed independently and sync-flushed form one gzip member any reader accepts,
    /// whichever codec wrote it and whichever codec reads it.
    @Test func chunkedDeflateIsOneValidGzipMember() throws {
        let data = (0..<(3 << 20) + 12345).map { UInt8(truncatingIfNeeded: ($0 / 7) &* ($0 % 13)) }
        for (name, deflater) in try Self.deflaters() {
            var member = GzipFraming.header
            let chunk = 1 << 20
            var output = [UInt8](repeating: 0, count: Codec.deflateBound(chunk))
            var offset = 0
            while offset < data.count {
                let end = min(data.count, offset + chunk)
                let length = try data[offset..<end].withUnsafeBytes { input in
                    try output.withUnsafeMutableBytes { out in
                        try deflater.compress(input, into: out, last: end == data.count)
                    }
                }
                member += output.prefix(try #require(length))
                offset = end
            }
            member += GzipFraming.trailer(crc32: CRC32.checksum(data), size: UInt64(data.count))
            #expect(Fixture.gunzip(member) == data, "written by \(name)")
            for (reader, inflater) in try Self.inflaters() {
                inflater.reset()
                var restored = [UInt8](repeating: 0, count: data.count + 16)
                let body = Array(member[10..<(member.count - 8)])
                let result = try body.withUnsafeBytes { input in
                    try restored.withUnsafeMutableBytes { out in try inflater.inflate(input, into: out) }
                }
                #expect(result.finished && result.produced == data.count, "\(name) -> \(reader)")
                #expect(result.consumed == body.count, "\(name) -> \(reader)")
                #expect(Array(restored.prefix(data.count)) == data, "\(name) -> \(reader)")
            }
        }
    }

    /// Whatever the input pieces, the bytes after the deflate data (the gzip trailer) can be recovered:
    /// `held` plus the unconsumed input. The output buffer is exactly the data size.
    @Test(arguments: [1, 3, 7, 8, 9, 64, 4093, 1 << 20])
    func inflatersReportWhereTheDeflateDataEnds(piece: Int) throws {
        let data = Array(repeating: UInt8(7), count: 100_000) + (0..<5000).map { UInt8(truncatingIfNeeded: $0 &* 97) }
        let member = Fixture.gzip(data)
        let body = Array(member[10...])  // deflate data, then the 8-byte trailer
        for (reader, inflater) in try Self.inflaters() {
            inflater.reset()
            var restored = [UInt8](repeating: 0, count: data.count)
            var position = 0
            var produced = 0
            var after: [UInt8]?
            var calls = 0
            while position < body.count && after == nil && calls < 1_000_000 {
                calls += 1
                let end = min(body.count, position + piece)
                let chunk = Array(body[position..<end])
                let step = try chunk.withUnsafeBytes { input in
                    try restored.withUnsafeMutableBytes { out in
                        try inflater.inflate(input, into: UnsafeMutableRawBufferPointer(rebasing: out[produced...]))
                    }
                }
                produced += step.produced
                if step.finished {
                    after = step.held + Array(chunk[step.consumed...]) + Array(body[end...])
                } else {
                    #expect(step.held.isEmpty)
                    position += step.consumed
                }
            }
            #expect(after == Array(body.suffix(8)), "\(reader), pieces of \(piece)")
            #expect(produced == data.count && restored == data, "\(reader), pieces of \(piece)")
        }
    }

    @Test func corruptDeflateDataThrows() throws {
        var member = Fixture.gzip((0..<200_000).map { UInt8(truncatingIfNeeded: $0 &* 31 >> 3) })
        for index in stride(from: 20, to: 60, by: 1) { member[index] = 0xFF }
        for (reader, inflater) in try Self.inflaters() {
            inflater.reset()
            var out = [UInt8](repeating: 0, count: 300_000)
            let body = Array(member[10...])
            #expect(throws: EngineError.self, "\(reader)") {
                _ = try body.withUnsafeBytes { input in
                    try out.withUnsafeMutableBytes { raw in try inflater.inflate(input, into: raw) }
                }
            }
        }
    }
}
