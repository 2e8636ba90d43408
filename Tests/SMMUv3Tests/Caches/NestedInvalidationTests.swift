import Testing
import Platform
@testable import SMMUv3
import SMMUv3Host
import Scenario

/// Named cached translations that a test caches, then makes stale by changing memory without
/// invalidating: each translates to `old` while its TLB entry survives and to `new` once the
/// right TLBI has removed it (the method of ``TLBInvalidationTests``).
final class StaleTranslations {
    struct Item {
        var stream: UInt32
        var address: UInt64
        var old: UInt64
        var new: UInt64
    }

    let t: TranslationRig
    private(set) var items: [String: Item] = [:]
    private var changes: [() -> Void] = []

    init(_ t: TranslationRig) { self.t = t }

    /// Adds an item; `change` edits memory so that a fresh walk gives `new`.
    func add(_ name: String, stream: UInt32, address: UInt64, old: UInt64, new: UInt64, change: @escaping () -> Void) {
        items[name] = Item(stream: stream, address: address, old: old, new: new)
        changes.append(change)
    }

    /// Each item's result now: its old or new address, or anything else (a fault) as nil.
    private func state(_ item: Item) -> Bool? {
        switch t.translate(item.stream, item.address) {
        case .translated(physicalAddress: item.old): false
        case .translated(physicalAddress: item.new): true
        default: nil
        }
    }

    /// Caches every item (checking each walks to its own old address), then changes memory
    /// for every item and checks that each still gives the old address (the cached one).
    func cacheAndChange(sourceLocation: SourceLocation = #_sourceLocation) {
        for (name, item) in items {
            #expect(t.translate(item.stream, item.address) == .translated(physicalAddress: item.old), "\(name) walks to its own mapping", sourceLocation: sourceLocation)
        }
        for change in changes { change() }
        for (name, item) in items {
            #expect(state(item) == false, "\(name) uses its cached translation", sourceLocation: sourceLocation)
        }
    }

    /// The items whose translation now gives the new address (every other item must still
    /// give the old one).
    func refreshed(sourceLocation: SourceLocation = #_sourceLocation) -> Set<String> {
        var result = Set<String>()
        for (name, item) in items {
            switch state(item) {
            case true?: result.insert(name)
            case false?: break
            case nil: Issue.record("\(name) translated to neither its old nor its new address", sourceLocation: sourceLocation)
            }
        }
        return result
    }
}

/// A stage-1 table mapping of `input` whose output moves by `delta` when changed.
private func moving(_ table: PageTableBuilder, _ input: UInt64, from output: UInt64, by delta: UInt64, size: UInt64? = nil, _ attributes: MappingAttributes = .readWrite) -> () -> Void {
    table.map(input, to: output, size: size, attributes)
    return { table.map(input, to: output + delta, size: size, attributes) }
}

/// Global (nG == 0) read-write attributes.
private let globalReadWrite: MappingAttributes = {
    var attributes = MappingAttributes.readWrite
    attributes.notGlobal = false
    return attributes
}()

/// A rig with nested (stage 1 + stage 2) streams. Stage 2 identity-maps the DMA arena (CDs and
/// stage-1 tables are IPAs) with a 1 GB block, and maps IPA 0x20_0000 (2 MB) to PA
/// 0x7_0000_0000 and IPA 0x40_0000 (2 MB) to PA 0x7_1000_0000: moving a stage-1 output by
/// 0x20_0000 moves the physical address by 0x1000_0000.
final class NestedRig {
    let t = TranslationRig()
    let s2: PageTableBuilder

    init(stage2Data: MappingAttributes = .readWrite) {
        s2 = t.table(.stage2, inputBits: 40)
        s2.map(0x8000_0000, to: 0x8000_0000, size: 0x4000_0000)
        s2.map(0x20_0000, to: 0x7_0000_0000, size: 0x20_0000, stage2Data)
        s2.map(0x40_0000, to: 0x7_1000_0000, size: 0x20_0000, stage2Data)
    }

    /// Makes `streamID` a nested stream with `cd` (SSID 0) and VMID `vmid`.
    func nestedStream(_ streamID: UInt32, vmid: UInt16, cd: CDConfig) {
        t.stage1Stream(streamID, cd: cd) { ste in
            ste.config = .nested
            ste.stage2 = STEConfig.Stage2(self.s2)
            ste.s2VMID = vmid
        }
    }
}

/// Nested (stage 1 + stage 2) TLB entries are "combined" entries (§4.4.3.1): tagged like
/// stage-1 NS-EL1 entries by VMID, ASID/global and VA (§3.17).
@Suite struct NestedInvalidationTests {
    /// n1, n2 (global) and n3 share VMID 3; n4 is VMID 5. Each stage-1 mapping moves to the
    /// other stage-2 block, so a fresh walk gives a new PA through an unchanged stage 2.
    static func stage1Scenario() -> StaleTranslations {
        let rig = NestedRig()
        let scenario = StaleTranslations(rig.t)
        let s1a = rig.t.table(), s1b = rig.t.table(), s1c = rig.t.table()
        scenario.add("n1", stream: 1, address: 0x1010, old: 0x7_0000_1010, new: 0x7_1000_1010, change: moving(s1a, 0x1000, from: 0x20_1000, by: 0x20_0000))
        scenario.add("n2", stream: 1, address: 0x3010, old: 0x7_0000_3010, new: 0x7_1000_3010, change: moving(s1a, 0x3000, from: 0x20_3000, by: 0x20_0000, globalReadWrite))
        scenario.add("n3", stream: 2, address: 0x1010, old: 0x7_0000_5010, new: 0x7_1000_5010, change: moving(s1b, 0x1000, from: 0x20_5000, by: 0x20_0000))
        scenario.add("n4", stream: 4, address: 0x1010, old: 0x7_0000_7010, new: 0x7_1000_7010, change: moving(s1c, 0x1000, from: 0x20_7000, by: 0x20_0000))
        rig.nestedStream(1, vmid: 3, cd: CDConfig(table0: s1a, asid: 2))
        rig.nestedStream(2, vmid: 3, cd: CDConfig(table0: s1b, asid: 4))
        rig.nestedStream(4, vmid: 5, cd: CDConfig(table0: s1c, asid: 2))
        return scenario
    }

    struct Case: CustomStringConvertible, Sendable {
        let commands: [Command]
        let refreshed: Set<String>
        var description: String { commands.map(\.description).joined(separator: " + ") }
        init(_ commands: Command..., refreshed: Set<String>) {
            self.commands = commands
            self.refreshed = refreshed
        }
    }

    static let stage1Changes: [Case] = [
        // §4.4.2.4: by VMID, ASID and VA, plus global entries by VMID and VA.
        Case(.tlbiNHVA(vmid: 3, asid: 2, address: 0x1000, scope: .single(leaf: true)), refreshed: ["n1"]),
        Case(.tlbiNHVA(vmid: 3, asid: 9, address: 0x3000, scope: .single()), refreshed: ["n2"]),
        Case(.tlbiNHVA(vmid: 3, asid: 9, address: 0x1000, scope: .single()), refreshed: []),
        Case(.tlbiNHVA(vmid: 5, asid: 2, address: 0x1000, scope: .single()), refreshed: ["n4"]),
        // The level hint is the stage-1 walk's (level 3, 4 KB granule).
        Case(.tlbiNHVA(vmid: 3, asid: 2, address: 0x1000, scope: TLBIScope(leaf: true, num: 0, scale: 0, granule: 1, ttl: 3)), refreshed: ["n1"]),
        Case(.tlbiNHVA(vmid: 3, asid: 2, address: 0x1000, scope: TLBIScope(leaf: true, num: 0, scale: 0, granule: 1, ttl: 2)), refreshed: []),
        // §4.4.2.3: by VA for every ASID of the VMID.
        Case(.tlbiNHVAA(vmid: 3, address: 0x1000, scope: .single()), refreshed: ["n1", "n3"]),
        // §4.4.2.2: non-global entries by ASID and VMID.
        Case(.tlbiNHASID(vmid: 3, asid: 2), refreshed: ["n1"]),
        Case(.tlbiNHASID(vmid: 3, asid: 0), refreshed: []),
        // §4.4.2.1: everything of the VMID, globals too.
        Case(.tlbiNHAll(vmid: 3), refreshed: ["n1", "n2", "n3"]),
        Case(.tlbiNHAll(vmid: 5), refreshed: ["n4"]),
        // §4.4.3.2: every stage of the VMID.
        Case(.tlbiS12VMAll(vmid: 3), refreshed: ["n1", "n2", "n3"]),
        Case(.tlbiS12VMAll(vmid: 5), refreshed: ["n4"]),
        // §4.4.4.1: all NS non-EL2 entries at all stages.
        Case(.tlbiNSNHAll, refreshed: ["n1", "n2", "n3", "n4"]),
        // §4.4.2.7: EL2 entries only.
        Case(.tlbiEL2All, refreshed: []),
        // §4.4.3.1: S2_IPA is not required to invalidate combined stage 1 + 2 entries; the model
        // keeps them (so that dropping them is a deliberate change).
        Case(.tlbiS2IPA(vmid: 3, address: 0x20_1000, scope: .single()), refreshed: []),
    ]

    @Test(arguments: stage1Changes)
    func stage1ChangeUnderNestedEntry(_ c: Case) {
        let scenario = NestedInvalidationTests.stage1Scenario()
        scenario.cacheAndChange()
        scenario.t.invalidate(c.commands)
        #expect(scenario.refreshed() == c.refreshed)
    }

    /// Stage 2 of both VMIDs changes (stage 1 does not): IPA 0x20_0000 now maps PA
    /// 0x7_2000_0000. The combined entries and the cached stage-2 entries of the nested walks
    /// are both stale.
    static func stage2Scenario() -> StaleTranslations {
        let rig = NestedRig()
        let scenario = StaleTranslations(rig.t)
        let s1a = rig.t.table(), s1c = rig.t.table()
        s1a.map(0x1000, to: 0x20_1000)
        s1c.map(0x1000, to: 0x20_7000)
        let s2 = rig.s2
        scenario.add("n1", stream: 1, address: 0x1010, old: 0x7_0000_1010, new: 0x7_2000_1010) {
            s2.map(0x20_0000, to: 0x7_2000_0000, size: 0x20_0000)
        }
        scenario.add("n4", stream: 4, address: 0x1010, old: 0x7_0000_7010, new: 0x7_2000_7010) {}
        rig.nestedStream(1, vmid: 3, cd: CDConfig(table0: s1a, asid: 2))
        rig.nestedStream(4, vmid: 5, cd: CDConfig(table0: s1c, asid: 2))
        return scenario
    }

    static let stage2Changes: [Case] = [
        // §4.4.3.1: S2_IPA alone need not reach combined entries ...
        Case(.tlbiS2IPA(vmid: 3, address: 0x20_1000, scope: .single(leaf: true)), refreshed: []),
        // ... and NH_VAA alone leaves the stage-2 information the next walk uses.
        Case(.tlbiNHVAA(vmid: 3, address: 0x1000, scope: .single()), refreshed: []),
        // The pairing §4.4.3.1 expects: S2_IPA with NH_VAA or NH_ALL.
        Case(.tlbiS2IPA(vmid: 3, address: 0x20_1000, scope: .single(leaf: true)), .tlbiNHVAA(vmid: 3, address: 0x1000, scope: .single()), refreshed: ["n1"]),
        Case(.tlbiS2IPA(vmid: 3, address: 0x20_1000, scope: .single()), .tlbiNHAll(vmid: 3), refreshed: ["n1"]),
        Case(.tlbiS2IPA(vmid: 5, address: 0x20_7000, scope: .single()), .tlbiNHVAA(vmid: 5, address: 0x1000, scope: .single()), refreshed: ["n4"]),
        // S2_IPA matches the VMID: VMID 3's does not remove VMID 5's stage-2 entry.
        Case(.tlbiS2IPA(vmid: 3, address: 0x20_7000, scope: .single()), .tlbiNHVAA(vmid: 5, address: 0x1000, scope: .single()), refreshed: []),
        // §4.4.3.2 / §4.4.4.1: all stages at once.
        Case(.tlbiS12VMAll(vmid: 3), refreshed: ["n1"]),
        Case(.tlbiS12VMAll(vmid: 5), refreshed: ["n4"]),
        Case(.tlbiNSNHAll, refreshed: ["n1", "n4"]),
        Case(.tlbiEL2All, refreshed: []),
    ]

    @Test(arguments: stage2Changes)
    func stage2ChangeUnderNestedEntry(_ c: Case) {
        let scenario = NestedInvalidationTests.stage2Scenario()
        scenario.cacheAndChange()
        scenario.t.invalidate(c.commands)
        #expect(scenario.refreshed() == c.refreshed)
    }

    /// A cached nested entry keeps the stage-2 permissions: a write to an S2AP read-only page
    /// first translated by a read is a stage-2 F_PERMISSION reporting the IPA (§3.13, §7.3.12).
    @Test func stage2PermissionFaultFromACachedNestedEntry() {
        var readOnly = MappingAttributes.readWrite
        readOnly.stage2Write = false
        let rig = NestedRig(stage2Data: readOnly)
        let s1 = rig.t.table()
        s1.map(0x1000, to: 0x20_1000)
        rig.nestedStream(1, vmid: 3, cd: CDConfig(table0: s1, asid: 2))
        #expect(rig.t.translate(1, 0x1234) == .translated(physicalAddress: 0x7_0000_1234))
        let hits = rig.t.smmu.tlb.hits
        #expect(rig.t.translate(1, 0x1234, .dataWrite) == .aborted(.permission))
        #expect(rig.t.smmu.tlb.hits > hits, "the write found the cached nested entry")
        #expect(rig.t.events() == [.translationFault(TranslationFault(type: .permission, streamID: 1, access: .dataWrite, stage2: true, faultClass: .input, inputAddress: 0x1234, ipa: 0x20_1234))])
        #expect(rig.t.translate(1, 0x1234) == .translated(physicalAddress: 0x7_0000_1234), "reads still translate")
    }

    /// Stage 1 is checked first: with both stages read-only, the write to a cached nested
    /// entry is a stage-1 F_PERMISSION.
    @Test func stage1PermissionOfACachedNestedEntryIsCheckedBeforeStage2() {
        var readOnly = MappingAttributes.readWrite
        readOnly.stage2Write = false
        let rig = NestedRig(stage2Data: readOnly)
        let s1 = rig.t.table()
        s1.map(0x1000, to: 0x20_1000, .readOnly)
        rig.nestedStream(1, vmid: 3, cd: CDConfig(table0: s1, asid: 2))
        #expect(rig.t.translate(1, 0x1234) == .translated(physicalAddress: 0x7_0000_1234))
        #expect(rig.t.translate(1, 0x1234, .dataWrite) == .aborted(.permission))
        #expect(rig.t.events() == [.translationFault(TranslationFault(type: .permission, streamID: 1, access: .dataWrite, stage2: false, faultClass: .input, inputAddress: 0x1234))])
    }
}

/// EL2-E2H StreamWorld (SMMU_CR2.E2H == 1, STE.STRW == 0b10): ASID-tagged EL2 entries with no
/// VMID (§3.17), invalidated only by TLBI_EL2_* (§4.4.2.7-10).
@Suite struct EL2HostInvalidationTests {
    /// p (ASID 1) and q (global) from EL2-E2H stream 1; r (ASID 2) from EL2-E2H stream 2;
    /// s (ASID 1) and u (global) from NS-EL1 stage-1 stream 3 with VMID 0: same ASIDs and VAs
    /// as the EL2-E2H entries, another StreamWorld.
    static func scenario() throws -> StaleTranslations {
        let t = TranslationRig()
        // CR2 may only be written with SMMUEN == 0 (§6.3.12); E2H is set before any STE is used.
        let cr0 = t.rig.read(.cr0)
        t.rig.write(.cr0, cr0 & ~1)
        t.rig.write(.cr2, t.rig.read(.cr2) | 1)
        t.rig.write(.cr0, cr0)
        try #require(t.rig.read(.cr2) & 1 == 1, "CR2.E2H is set")
        try #require(t.rig.read(.cr0Ack) == cr0, "SMMUEN is back on")
        let scenario = StaleTranslations(t)
        let e1 = t.table(), e2 = t.table(), el1 = t.table()
        scenario.add("p", stream: 1, address: 0x1000, old: 0x10_1000, new: 0x20_1000, change: moving(e1, 0x1000, from: 0x10_1000, by: 0x10_0000))
        scenario.add("q", stream: 1, address: 0x2000, old: 0x10_2000, new: 0x20_2000, change: moving(e1, 0x2000, from: 0x10_2000, by: 0x10_0000, globalReadWrite))
        scenario.add("r", stream: 2, address: 0x1000, old: 0x30_1000, new: 0x40_1000, change: moving(e2, 0x1000, from: 0x30_1000, by: 0x10_0000))
        scenario.add("s", stream: 3, address: 0x1000, old: 0x50_1000, new: 0x60_1000, change: moving(el1, 0x1000, from: 0x50_1000, by: 0x10_0000))
        scenario.add("u", stream: 3, address: 0x2000, old: 0x50_2000, new: 0x60_2000, change: moving(el1, 0x2000, from: 0x50_2000, by: 0x10_0000, globalReadWrite))
        t.stage1Stream(1, cd: CDConfig(table0: e1, asid: 1)) { $0.strw = 0b10 }
        t.stage1Stream(2, cd: CDConfig(table0: e2, asid: 2)) { $0.strw = 0b10 }
        t.stage1Stream(3, cd: CDConfig(table0: el1, asid: 1))
        return scenario
    }

    static let cases: [NestedInvalidationTests.Case] = [
        // §4.4.2.10: EL2-E2H non-global entries by ASID.
        .init(.tlbiEL2ASID(asid: 1), refreshed: ["p"]),
        .init(.tlbiEL2ASID(asid: 2), refreshed: ["r"]),
        .init(.tlbiEL2ASID(asid: 0), refreshed: []),
        // §4.4.2.8 with E2H == 1: ASID and VA, or global and VA.
        .init(.tlbiEL2VA(asid: 1, address: 0x1000, scope: .single(leaf: true)), refreshed: ["p"]),
        .init(.tlbiEL2VA(asid: 2, address: 0x1000, scope: .single()), refreshed: ["r"]),
        .init(.tlbiEL2VA(asid: 9, address: 0x1000, scope: .single()), refreshed: []),
        .init(.tlbiEL2VA(asid: 9, address: 0x2000, scope: .single()), refreshed: ["q"]),
        // §4.4.2.9 with E2H == 1: VA, every ASID.
        .init(.tlbiEL2VAA(address: 0x1000, scope: .single()), refreshed: ["p", "r"]),
        // §4.4.2.7: every EL2 entry, ASID-tagged or not.
        .init(.tlbiEL2All, refreshed: ["p", "q", "r"]),
        // §4.4.2.1-4, §4.4.3.2, §4.4.4.1: NS-EL1 only, never EL2-E2H.
        .init(.tlbiNHAll(vmid: 0), refreshed: ["s", "u"]),
        .init(.tlbiNHASID(vmid: 0, asid: 1), refreshed: ["s"]),
        .init(.tlbiNHVA(vmid: 0, asid: 1, address: 0x1000, scope: .single()), refreshed: ["s"]),
        .init(.tlbiNHVA(vmid: 0, asid: 1, address: 0x2000, scope: .single()), refreshed: ["u"]),
        .init(.tlbiNHVAA(vmid: 0, address: 0x1000, scope: .single()), refreshed: ["s"]),
        .init(.tlbiS12VMAll(vmid: 0), refreshed: ["s", "u"]),
        .init(.tlbiNSNHAll, refreshed: ["s", "u"]),
    ]

    @Test(arguments: cases)
    func invalidationScopeWithE2H(_ c: NestedInvalidationTests.Case) throws {
        let scenario = try EL2HostInvalidationTests.scenario()
        scenario.cacheAndChange()
        scenario.t.invalidate(c.commands)
        #expect(scenario.refreshed() == c.refreshed)
    }
}

/// CD.ASET (§3.17, §3.17.1): commands disregard ASET when matching ASIDs; global entries are
/// ASET-tagged for lookup, and ASID-scoped invalidation never removes global entries.
@Suite struct ASETInvalidationTests {
    /// g1 (global) and p1 from stream 1 (ASID 5, ASET 1); g0 (global, same VA as g1) from
    /// stream 2 (ASID 6, ASET 0). Both streams are NS-EL1 with VMID 0.
    static func scenario() -> StaleTranslations {
        let t = TranslationRig()
        let scenario = StaleTranslations(t)
        let private1 = t.table(), shared = t.table()
        scenario.add("g1", stream: 1, address: 0x3000, old: 0x10_3000, new: 0x20_3000, change: moving(private1, 0x3000, from: 0x10_3000, by: 0x10_0000, globalReadWrite))
        scenario.add("p1", stream: 1, address: 0x1000, old: 0x10_1000, new: 0x20_1000, change: moving(private1, 0x1000, from: 0x10_1000, by: 0x10_0000))
        scenario.add("g0", stream: 2, address: 0x3000, old: 0x30_3000, new: 0x40_3000, change: moving(shared, 0x3000, from: 0x30_3000, by: 0x10_0000, globalReadWrite))
        var cd = CDConfig(table0: private1, asid: 5)
        cd.aset = true
        t.stage1Stream(1, cd: cd)
        t.stage1Stream(2, cd: CDConfig(table0: shared, asid: 6))
        return scenario
    }

    static let cases: [NestedInvalidationTests.Case] = [
        // §4.4.2.4: global entries by VA whatever the ASID, of either ASET (§3.17).
        .init(.tlbiNHVA(vmid: 0, asid: 9, address: 0x3000, scope: .single()), refreshed: ["g1", "g0"]),
        .init(.tlbiNHVA(vmid: 0, asid: 5, address: 0x3000, scope: .single(leaf: true)), refreshed: ["g1", "g0"]),
        .init(.tlbiNHVA(vmid: 0, asid: 5, address: 0x1000, scope: .single()), refreshed: ["p1"]),
        .init(.tlbiNHVA(vmid: 0, asid: 6, address: 0x1000, scope: .single()), refreshed: []),
        .init(.tlbiNHVAA(vmid: 0, address: 0x3000, scope: .single()), refreshed: ["g1", "g0"]),
        // §4.4.2.2 / §3.17.1: ASIDE1 scope, non-global only; ASET 1 ASIDs match too.
        .init(.tlbiNHASID(vmid: 0, asid: 5), refreshed: ["p1"]),
        .init(.tlbiNHASID(vmid: 0, asid: 0), refreshed: []),
        .init(.tlbiNHAll(vmid: 0), refreshed: ["g1", "p1", "g0"]),
        .init(.tlbiNHAll(vmid: 1), refreshed: []),
    ]

    @Test(arguments: cases)
    func invalidationScopeWithASET(_ c: NestedInvalidationTests.Case) {
        let scenario = ASETInvalidationTests.scenario()
        scenario.cacheAndChange()
        scenario.t.invalidate(c.commands)
        #expect(scenario.refreshed() == c.refreshed)
    }
}

/// Range invalidation with a 16 KB granule (§4.4.1.1): TG and TTL select the entries by the
/// granule and level they were inserted with.
@Suite struct GranuleHintInvalidationTests {
    /// A stage-1 16 KB-granule stream: "page" is a level-3 16 KB page, "block" a level-2 32 MB
    /// block. Both lie in [0, 64 MB), which NUM 0, SCALE 12, TG 16 KB covers.
    static func scenario() -> StaleTranslations {
        let t = TranslationRig()
        let scenario = StaleTranslations(t)
        let table = t.table(granule: 14)
        scenario.add("page", stream: 1, address: 0x4010, old: 0x9_0000_4010, new: 0x9_1000_4010, change: moving(table, 0x4000, from: 0x9_0000_4000, by: 0x1000_0000))
        scenario.add("block", stream: 1, address: 0x210_0010, old: 0xA_0010_0010, new: 0xA_1010_0010, change: moving(table, 0x200_0000, from: 0xA_0000_0000, by: 0x1000_0000, size: 0x200_0000))
        t.stage1Stream(1, cd: CDConfig(table0: table, asid: 1))
        return scenario
    }

    static func range(granule: UInt8, ttl: UInt8) -> TLBIScope {
        TLBIScope(leaf: true, num: 0, scale: 12, granule: granule, ttl: ttl)
    }

    static let cases: [NestedInvalidationTests.Case] = [
        .init(.tlbiNHVAA(vmid: 0, address: 0, scope: range(granule: 2, ttl: 0)), refreshed: ["page", "block"]),
        .init(.tlbiNHVAA(vmid: 0, address: 0, scope: range(granule: 2, ttl: 3)), refreshed: ["page"]),
        .init(.tlbiNHVAA(vmid: 0, address: 0, scope: range(granule: 2, ttl: 2)), refreshed: ["block"]),
        .init(.tlbiNHVA(vmid: 0, asid: 1, address: 0, scope: range(granule: 2, ttl: 2)), refreshed: ["block"]),
        // Entries inserted with another granule are not in scope.
        .init(.tlbiNHVAA(vmid: 0, address: 0, scope: TLBIScope(leaf: true, num: 0, scale: 14, granule: 1, ttl: 0)), refreshed: []),
    ]

    @Test(arguments: cases)
    func sixteenKRangeWithLevelHint(_ c: NestedInvalidationTests.Case) {
        let scenario = GranuleHintInvalidationTests.scenario()
        scenario.cacheAndChange()
        scenario.t.invalidate(c.commands)
        #expect(scenario.refreshed() == c.refreshed)
    }

    /// With IDR5.DS == 0, TTL == 0b01 for a 16 KB TG is Reserved and "hardware treats TTL ==
    /// 0b01 as though TTL == 0b00" (§4.4.1.1): a range command with that hint is legal and
    /// removes leaf entries at any level.
    @Test(arguments: [
        Command.tlbiNHVAA(vmid: 0, address: 0, scope: range(granule: 2, ttl: 1)),
        .tlbiNHVA(vmid: 0, asid: 1, address: 0, scope: range(granule: 2, ttl: 1)),
    ])
    func sixteenKLevelOneHintWithoutDSMatchesEveryLevel(_ command: Command) {
        let scenario = GranuleHintInvalidationTests.scenario()
        scenario.cacheAndChange()
        scenario.t.invalidate([command])
        #expect(scenario.t.rig.read(.cmdqCons) >> 24 & 0x7F == 0)
        #expect(scenario.refreshed() == ["page", "block"])
    }
}
