import Testing

@testable import ShmEngine

/// asmt's rules over candidate values alone: no segment, no file.
@Suite struct NamespaceRulesTests {
    private static func key(_ kind: SegmentKind, _ stage: Int = 0, nsid: Int = 6) -> SegmentKey {
        SegmentKey(kind: kind, instance: 2, nsid: nsid, stage: stage)
    }

    /// A clean namespace, shuffled: base, treex, 2 primary stages, meta, 2 secondary stages, 2 data stages (one of
    /// another nsid).
    private static func namespace(
        version: UInt32 = 11, shutdown: UInt32 = 1, baseArenas: UInt32 = 2, metaArenas: UInt32 = 2,
        baseSize: UInt64 = 2156
    ) -> (base: CandidateSegment, group: [CandidateSegment]) {
        let base = CandidateSegment(
            key: key(.base), size: baseSize,
            facts: SegmentFacts(version: version, shutdownStatus: shutdown, arenas: baseArenas, namespace: "ns"))
        let group = [
            CandidateSegment(key: key(.dataStage, 1), size: 4096, facts: SegmentFacts(namespace: "ns")),
            CandidateSegment(key: key(.primaryStage, 1), size: 4096, facts: SegmentFacts()),
            CandidateSegment(key: key(.secondaryStage, 1), size: 4096, facts: SegmentFacts()),
            base,
            CandidateSegment(key: key(.meta), size: 24, facts: SegmentFacts(arenas: metaArenas)),
            CandidateSegment(key: key(.treex), size: 4096, facts: SegmentFacts()),
            CandidateSegment(key: key(.secondaryStage, 0), size: 4096, facts: SegmentFacts()),
            CandidateSegment(key: key(.primaryStage, 0), size: 4096, facts: SegmentFacts()),
            CandidateSegment(key: key(.dataStage, 0, nsid: 9), size: 4096, facts: SegmentFacts(namespace: "ns")),
        ]
        return (base, group)
    }

    private static func check(
        _ candidate: (base: CandidateSegment, group: [CandidateSegment])
    )
        -> Result<[SegmentKey], RuleViolation>
    {
        NamespaceRules.check(base: candidate.base, group: candidate.group).map { $0.map(\.key) }
    }

    /// Data stages come in key order, whatever their nsid.
    @Test func choosesInAsmtFileOrder() {
        #expect(
            Self.check(Self.namespace())
                == .success([
                    Self.key(.base), Self.key(.treex), Self.key(.primaryStage, 0), Self.key(.primaryStage, 1),
                    Self.key(.meta), Self.key(.secondaryStage, 0), Self.key(.secondaryStage, 1),
                    Self.key(.dataStage, 1), Self.key(.dataStage, 0, nsid: 9),
                ]))
    }

    @Test func baseRules() {
        #expect(Self.check(Self.namespace(baseSize: 2155)) == .failure(.baseTooSmall(size: 2155)))
        var unreadable = Self.namespace()
        unreadable.base.facts = nil
        #expect(Self.check(unreadable) == .failure(.baseTooSmall(size: 2156)))
        #expect(Self.check(Self.namespace(version: 9)) == .failure(.unsupportedVersion(9)))
        #expect(Self.check(Self.namespace(version: 13)) == .failure(.unsupportedVersion(13)))
        for version: UInt32 in [10, 12] {
            #expect(throws: Never.self) { try Self.check(Self.namespace(version: version)).get() }
        }
        #expect(Self.check(Self.namespace(shutdown: 0)) == .failure(.uncleanShutdown(status: 0)))
        #expect(Self.check(Self.namespace(shutdown: 2)) == .failure(.uncleanShutdown(status: 2)))
        #expect(Self.check(Self.namespace(baseArenas: 3)) == .failure(.primaryCount(counted: 3, found: 2)))
    }

    @Test func missingMembersNameTheFirstKeyMissing() {
        func key(_ kind: SegmentKind, _ stage: Int) -> SegmentKey { Self.key(kind, stage) }
        let cases: [([SegmentKey], RuleViolation)] = [
            ([key(.treex, 0)], .missing(key(.treex, 0))),
            ([key(.primaryStage, 0)], .missing(key(.primaryStage, 0))),
            ([key(.primaryStage, 0), key(.primaryStage, 1)], .missing(key(.primaryStage, 0))),
            ([key(.primaryStage, 1)], .primaryCount(counted: 2, found: 1)),
            ([key(.secondaryStage, 0)], .missing(key(.secondaryStage, 0))),
            ([key(.secondaryStage, 0), key(.secondaryStage, 1)], .missing(key(.secondaryStage, 0))),
            ([key(.secondaryStage, 1)], .secondaryCount(meta: key(.meta, 0), counted: 2, found: 1)),
        ]
        for (removed, violation) in cases {
            var candidate = Self.namespace()
            candidate.group.removeAll { removed.contains($0.key) }
            #expect(Self.check(candidate) == .failure(violation), "without \(removed)")
        }
        // Data stages are optional.
        var noData = Self.namespace()
        noData.group.removeAll { $0.key.kind == .dataStage }
        #expect((try? Self.check(noData).get())?.count == 7)
    }

    @Test func metaRules() {
        var small = Self.namespace()
        let meta = small.group.firstIndex { $0.key.kind == .meta }!
        small.group[meta].size = 23
        #expect(Self.check(small) == .failure(.metaTooSmall(meta: Self.key(.meta))))
        #expect(
            Self.check(Self.namespace(metaArenas: 3))
                == .failure(.secondaryCount(meta: Self.key(.meta), counted: 3, found: 2)))
        var unreadable = Self.namespace(metaArenas: 0)
        unreadable.group[meta].facts = nil
        #expect(
            Self.check(unreadable) == .failure(.secondaryCount(meta: Self.key(.meta), counted: 0, found: 2)))
        // Without a meta, secondary stages are left out whatever they are, like asmt.
        var noMeta = Self.namespace()
        noMeta.group.remove(at: meta)
        noMeta.group.removeAll { $0.key == Self.key(.secondaryStage, 0) }
        #expect(
            (try? Self.check(noMeta).get())
                == [
                    Self.key(.base), Self.key(.treex), Self.key(.primaryStage, 0), Self.key(.primaryStage, 1),
                    Self.key(.dataStage, 1), Self.key(.dataStage, 0, nsid: 9),
                ])
    }

    @Test func stageNumbering() {
        #expect(NamespaceRules.firstMissing([]) == nil)
        #expect(NamespaceRules.firstMissing([2, 0, 1]) == nil)
        #expect(NamespaceRules.firstMissing([1, 2]) == 0)
        #expect(NamespaceRules.firstMissing([0, 1, 3]) == 2)
    }

    @Test func namesCompareByteForByte() {
        #expect(sameName("ns", "ns"))
        #expect(!sameName(nil, "ns"))
        #expect(!sameName("NS", "ns"))
        // "é" precomposed and decomposed are equal Swift strings but different bytes.
        #expect(!sameName("\u{E9}", "e\u{301}"))
    }
}
