import Testing
import Platform
import SMMUv3
import SMMUv3Host
import Scenario

/// Eight cached translations that differ in the tags TLBI commands match on.
final class TLBScenario {
    enum Item: String, CaseIterable, Sendable {
        case a, b, c, d, e, f, g, h
    }

    let t: TranslationRig
    var tables: [Item: (PageTableBuilder, UInt64, UInt64, MappingAttributes)] = [:]
    static let streamFor: [Item: UInt32] = [.a: 1, .b: 1, .c: 1, .d: 1, .e: 2, .f: 3, .g: 4, .h: 5]
    static let addressFor: [Item: UInt64] = [.a: 0x1000, .b: 0x2000, .c: 0x3000, .d: 0x20_5000, .e: 0x1000, .f: 0x1000, .g: 0x1000, .h: 0x1000]

    init(checked: Bool = false) {
        t = TranslationRig()
        // Item h is an EL2 stream; the scopes below are those of the EL2 (not EL2-E2H) regime.
        t.useEL2WithoutE2H()
        t.smmu.checkedMode = checked
        let sid1 = t.table(), sid2 = t.table(), sid3 = t.table(), s2 = t.table(.stage2, inputBits: 40), el2 = t.table()
        var global = MappingAttributes.readWrite
        global.notGlobal = false
        tables[.a] = (sid1, 0x1000, 0x10_1000, .readWrite)
        tables[.b] = (sid1, 0x2000, 0x10_2000, .readWrite)
        tables[.c] = (sid1, 0x3000, 0x10_3000, global)
        tables[.d] = (sid1, 0x20_0000, 0x40_0000, .readWrite)
        tables[.e] = (sid2, 0x1000, 0x20_1000, .readWrite)
        tables[.f] = (sid3, 0x1000, 0x30_1000, .readWrite)
        tables[.g] = (s2, 0x1000, 0x40_1000, .readWrite)
        tables[.h] = (el2, 0x1000, 0x50_1000, .readWrite)
        for (item, (table, input, output, attributes)) in tables {
            table.map(input, to: output, size: item == .d ? 0x20_0000 : nil, attributes)
        }
        t.stage1Stream(1, cd: CDConfig(table0: sid1, asid: 1)) { $0.s2VMID = 1 }
        t.stage1Stream(2, cd: CDConfig(table0: sid2, asid: 2)) { $0.s2VMID = 1 }
        t.stage1Stream(3, cd: CDConfig(table0: sid3, asid: 1)) { $0.s2VMID = 2 }
        t.stage2Stream(4, table: s2, vmid: 1)
        t.stage1Stream(5, cd: CDConfig(table0: el2)) { $0.strw = 0b10 }
    }

    func oldAddress(_ item: Item) -> UInt64 {
        let (_, input, output, _) = tables[item]!
        return output + (TLBScenario.addressFor[item]! - input)
    }

    func translate(_ item: Item) -> TransactionOutcome { t.translate(TLBScenario.streamFor[item]!, TLBScenario.addressFor[item]!) }

    /// Caches every translation, then moves every mapping by 0x1000_0000 without invalidating.
    func cacheAndChangeEverything() {
        for item in Item.allCases { _ = translate(item) }
        for (item, (table, input, output, attributes)) in tables {
            table.map(input, to: output + 0x1000_0000, size: item == .d ? 0x20_0000 : nil, attributes)
        }
    }

    /// The items whose translation now gives the new address.
    func refreshed() -> Set<Item> {
        Set(Item.allCases.filter { translate($0) == .translated(physicalAddress: oldAddress($0) + 0x1000_0000) })
    }
}

@Suite struct TLBInvalidationTests {
    @Test func staleTranslationIsUsedUntilInvalidated() {
        let scenario = TLBScenario()
        scenario.cacheAndChangeEverything()
        for item in TLBScenario.Item.allCases {
            #expect(scenario.translate(item) == .translated(physicalAddress: scenario.oldAddress(item)), "\(item) uses the cached translation")
        }
        #expect(scenario.refreshed().isEmpty)
    }

    struct ScopeCase: CustomStringConvertible, Sendable {
        let command: Command
        let refreshed: Set<TLBScenario.Item>
        var description: String { command.description }
    }

    static let scopes: [ScopeCase] = [
        ScopeCase(command: .tlbiNHAll(vmid: 1), refreshed: [.a, .b, .c, .d, .e]),
        ScopeCase(command: .tlbiNHASID(vmid: 1, asid: 1), refreshed: [.a, .b, .d]),
        // §3.17.1: ASID-scoped invalidation never removes global entries (c), whatever the ASID.
        ScopeCase(command: .tlbiNHASID(vmid: 1, asid: 0), refreshed: []),
        ScopeCase(command: .tlbiNHVA(vmid: 1, asid: 1, address: 0x1000, scope: .single(leaf: true)), refreshed: [.a]),
        ScopeCase(command: .tlbiNHVA(vmid: 1, asid: 9, address: 0x3000, scope: .single()), refreshed: [.c]),
        ScopeCase(command: .tlbiNHVA(vmid: 1, asid: 1, address: 0x20_7000, scope: .single()), refreshed: [.d]),
        ScopeCase(command: .tlbiNHVAA(vmid: 1, address: 0x1000, scope: .single()), refreshed: [.a, .e]),
        ScopeCase(command: .tlbiNHVA(vmid: 1, asid: 1, address: 0, scope: TLBIScope(leaf: true, num: 3, scale: 0, granule: 1, ttl: 0)), refreshed: [.a, .b, .c]),
        ScopeCase(command: .tlbiNHVA(vmid: 1, asid: 1, address: 0x20_0000, scope: TLBIScope(leaf: true, num: 0, scale: 0, granule: 1, ttl: 3)), refreshed: []),
        ScopeCase(command: .tlbiNHVA(vmid: 1, asid: 1, address: 0x20_0000, scope: TLBIScope(leaf: true, num: 0, scale: 0, granule: 1, ttl: 2)), refreshed: [.d]),
        ScopeCase(command: .tlbiNHVA(vmid: 1, asid: 1, address: 0x1000, scope: TLBIScope(leaf: true, num: 0, scale: 0, granule: 3, ttl: 3)), refreshed: []),
        ScopeCase(command: .tlbiNHVAA(vmid: 1, address: 0, scope: TLBIScope(leaf: false, num: 1, scale: 9, granule: 1, ttl: 0)), refreshed: [.a, .b, .c, .d, .e]),
        ScopeCase(command: .tlbiEL2All, refreshed: [.h]),
        ScopeCase(command: .tlbiEL2VA(asid: 0, address: 0x1000, scope: .single()), refreshed: [.h]),
        // §4.4.2.8: with CR2.E2H == 0 the ASID parameter is ignored.
        ScopeCase(command: .tlbiEL2VA(asid: 7, address: 0x1000, scope: .single()), refreshed: [.h]),
        ScopeCase(command: .tlbiEL2VAA(address: 0x1000, scope: .single()), refreshed: [.h]),
        ScopeCase(command: .tlbiS12VMAll(vmid: 1), refreshed: [.a, .b, .c, .d, .e, .g]),
        ScopeCase(command: .tlbiS12VMAll(vmid: 2), refreshed: [.f]),
        ScopeCase(command: .tlbiS2IPA(vmid: 1, address: 0x1000, scope: .single(leaf: true)), refreshed: [.g]),
        ScopeCase(command: .tlbiS2IPA(vmid: 2, address: 0x1000, scope: .single()), refreshed: []),
        ScopeCase(command: .tlbiNSNHAll, refreshed: [.a, .b, .c, .d, .e, .f, .g]),
    ]

    @Test(arguments: scopes)
    func invalidationRemovesExactlyItsScope(_ scope: ScopeCase) {
        let scenario = TLBScenario()
        scenario.cacheAndChangeEverything()
        scenario.t.invalidate([scope.command])
        #expect(scenario.refreshed() == scope.refreshed)
    }

    @Test func configurationInvalidationLeavesTheTLBAlone() {
        let scenario = TLBScenario()
        scenario.cacheAndChangeEverything()
        scenario.t.invalidate([.cfgiAll])
        #expect(scenario.refreshed().isEmpty, "CFGI_* never touch TLBs (§4.3)")
    }
}

@Suite struct ConfigurationCacheTests {
    func rig() -> (TranslationRig, PageTableBuilder, PageTableBuilder) {
        let t = TranslationRig()
        let first = t.table(), second = t.table()
        first.map(0x1000, to: 0x11000)
        second.map(0x1000, to: 0x22000)
        for sid in UInt32(0)...5 { t.stage1Stream(sid, cd: CDConfig(table0: first, asid: 1)) }
        return (t, first, second)
    }

    @Test func changedSTEIsIgnoredUntilCFGISTE() {
        let (t, _, _) = rig()
        #expect(t.translate(1, 0x1000) == .translated(physicalAddress: 0x11000))
        t.streams.set(1, STEConfig(config: .bypass))
        #expect(t.translate(1, 0x1000) == .translated(physicalAddress: 0x11000), "stale STE still used")
        t.invalidate([.cfgiSTE(streamID: 1, leaf: true)])
        #expect(t.translate(1, 0x1000) == .translated(physicalAddress: 0x1000))
    }

    @Test func invalidSTEIsCachedToo() {
        let t = TranslationRig()
        t.invalidSTE(1)
        #expect(t.translate(1, 0x1000) == .aborted(.badSTE))
        t.streams.set(1, STEConfig(config: .bypass))
        #expect(t.translate(1, 0x1000) == .aborted(.badSTE), "V 0 -> 1 needs CFGI_STE (§3.21.3.1)")
        t.invalidate([.cfgiSTE(streamID: 1, leaf: true)])
        #expect(t.translate(1, 0x1000) == .translated(physicalAddress: 0x1000))
    }

    @Test(arguments: [(Command.cfgiSTERange(streamID: 2, range: 1), Set<UInt32>([0, 1, 2, 3])), (.cfgiSTERange(streamID: 5, range: 0), Set<UInt32>([4, 5])), (.cfgiAll, Set<UInt32>([0, 1, 2, 3, 4, 5])), (.cfgiSTE(streamID: 3, leaf: false), Set<UInt32>([3]))])
    func steRangeInvalidationCoversItsAlignedBlock(_ command: Command, _ refreshed: Set<UInt32>) {
        let (t, _, _) = rig()
        for sid in UInt32(0)...5 { _ = t.translate(sid, 0x1000) }
        for sid in UInt32(0)...5 { t.streams.set(sid, STEConfig(config: .bypass)) }
        t.invalidate([command])
        let bypassed = Set((UInt32(0)...5).filter { t.translate($0, 0x1000) == .translated(physicalAddress: 0x1000) })
        #expect(bypassed == refreshed)
    }

    @Test func changedCDIsIgnoredUntilCFGICD() {
        let (t, _, second) = rig()
        let cds = t.stage1Stream(1, cd: CDConfig(table0: t.table(), asid: 1), cdMax: 2, ssids: [])
        var cd = CDConfig(table0: second, asid: 4)
        cds.set(2, CDConfig(table0: t.table(), asid: 1))
        cd.asid = 4
        _ = t.translate(1, 0x1000, ssid: 2)
        cds.set(2, cd)
        #expect(t.translate(1, 0x1000, ssid: 2) == .aborted(.translation), "stale CD, empty table")
        t.invalidate([.cfgiCD(streamID: 1, substreamID: 2, leaf: true)])
        #expect(t.translate(1, 0x1000, ssid: 2) == .translated(physicalAddress: 0x22000))
    }

    /// With S1DSS == 0b10 a transaction without a SubstreamID uses CD 0 (§5.2), so CMD_CFGI_CD
    /// of SubstreamID 0 must also refresh what those transactions see.
    @Test func cfgiCDOfSubstreamZeroRefreshesTransactionsWithoutASubstreamID() {
        let (t, first, second) = rig()
        let cds = t.stage1Stream(1, cd: CDConfig(table0: first, asid: 1), cdMax: 2, ssids: [0]) { $0.s1DSS = 0b10 }
        #expect(t.translate(1, 0x1000) == .translated(physicalAddress: 0x11000))
        cds.set(0, CDConfig(table0: second, asid: 5))
        #expect(t.translate(1, 0x1000) == .translated(physicalAddress: 0x11000), "CD 0 stays cached until CFGI_CD")
        t.invalidate([.cfgiCD(streamID: 1, substreamID: 0, leaf: true)])
        #expect(t.translate(1, 0x1000) == .translated(physicalAddress: 0x22000))
    }

    @Test(arguments: [Command.cfgiCDAll(streamID: 1), .cfgiSTE(streamID: 1, leaf: true), .cfgiCD(streamID: 1, substreamID: 3, leaf: false)])
    func cdInvalidationScopes(_ command: Command) {
        let (t, _, second) = rig()
        let cds = t.stage1Stream(1, cd: CDConfig(table0: t.table(), asid: 1), cdMax: 2, ssids: [1, 3])
        _ = t.translate(1, 0x1000, ssid: 1)
        _ = t.translate(1, 0x1000, ssid: 3)
        cds.set(1, CDConfig(table0: second, asid: 5))
        cds.set(3, CDConfig(table0: second, asid: 6))
        t.invalidate([command])
        let refreshed = [UInt32(1), 3].filter { t.translate(1, 0x1000, ssid: $0) == .translated(physicalAddress: 0x22000) }
        #expect(refreshed == (command.opcode == .cfgiCD ? [3] : [1, 3]))
    }
}

/// Checked mode (off by default): cache hits compared with memory, and every change that was
/// not followed by the invalidation it needs is reported.
@Suite struct CheckedModeTests {
    @Test func missingTLBIIsReportedWithTheCommandThatWasNeeded() {
        let scenario = TLBScenario(checked: true)
        scenario.cacheAndChangeEverything()
        #expect(scenario.translate(.a) == .translated(physicalAddress: 0x10_1000), "the stale entry is still used")
        let diagnostic = scenario.t.smmu.diagnostics.last
        #expect(diagnostic?.kind == .staleTranslation(streamID: 1))
        // RW/rwx: an EL0-writable page is implicitly privileged-execute-never.
        #expect(diagnostic?.message == "TLB entry for SID 0x1 VA 0x1000 (ASID 1, VMID 1) maps 0x101000 with RW/rwx, but the tables now give 0x10101000 with RW/rwx: missing CMD_TLBI_NH_VA (or NH_VAA/NH_ASID/NH_ALL)")
        _ = scenario.translate(.a)
        #expect(scenario.t.smmu.diagnostics.count == 1, "reported once per entry")
        _ = scenario.translate(.g)
        #expect(scenario.t.smmu.diagnostics.last?.message.hasSuffix("missing CMD_TLBI_S2_IPA (or CMD_TLBI_S12_VMALL)") == true)
    }

    @Test func properlyInvalidatedChangesAreNotReported() {
        let scenario = TLBScenario(checked: true)
        scenario.cacheAndChangeEverything()
        scenario.t.invalidate([.tlbiNSNHAll, .tlbiEL2All])
        for item in TLBScenario.Item.allCases { _ = scenario.translate(item) }
        #expect(scenario.t.smmu.diagnostics.isEmpty)
        #expect(scenario.refreshed().count == 8)
    }

    @Test func unmappedPageIsReportedAsNoTranslation() {
        let scenario = TLBScenario(checked: true)
        _ = scenario.translate(.b)
        scenario.tables[.b]!.0.unmap(0x2000)
        _ = scenario.translate(.b)
        #expect(scenario.t.smmu.diagnostics.last?.kind == .staleTranslation(streamID: 1))
        #expect(scenario.t.smmu.diagnostics.last?.message.contains("but the tables now give no translation") == true)
    }

    @Test func missingCFGISTEIsReported() {
        let t = TranslationRig()
        t.smmu.checkedMode = true
        t.streams.set(6, STEConfig(config: .bypass))
        _ = t.translate(6, 0x1000)
        var ste = STEConfig(config: .bypass)
        ste.privCfg = 0b11
        t.streams.set(6, ste)
        _ = t.translate(6, 0x1000)
        let address = t.streams.steAddress(for: 6)
        #expect(t.smmu.diagnostics.map(\.message) == ["STE for SID 0x6 at \(hex(address)) changed since it was cached (dw1 was 0x0000100000000000, now 0x0003100000000000) without CMD_CFGI_STE"])
    }

    @Test func missingCFGICDIsReported() {
        let t = TranslationRig()
        t.smmu.checkedMode = true
        let pt = t.table()
        pt.map(0x1000, to: 0x2000)
        let cds = t.stage1Stream(1, cd: CDConfig(table0: pt, asid: 1))
        _ = t.translate(1, 0x1000)
        cds.set(0, CDConfig(table0: pt, asid: 2))
        _ = t.translate(1, 0x1000)
        #expect(t.smmu.diagnostics.map(\.kind) == [.staleConfiguration(streamID: 1)])
        #expect(t.smmu.diagnostics.first?.message.contains("without CMD_CFGI_CD") == true)
    }

    @Test func missingNonLeafCFGIAfterAnL1STDChangeIsReported() {
        let t = TranslationRig(log2Size: 12, split: 6)
        t.smmu.checkedMode = true
        t.streams.set(0x45, STEConfig(config: .bypass))
        _ = t.translate(0x45, 0x1000)
        let l1 = t.streams.l1Address(for: 0x45)!
        t.memory.write64(0, at: l1)
        _ = t.translate(0x45, 0x1000)
        #expect(t.smmu.diagnostics.map(\.kind) == [.staleConfiguration(streamID: 0x45)])
        #expect(t.smmu.diagnostics.first?.message.contains("L1STD for SID 0x45") == true)
    }

    @Test func checkedModeIsOffByDefault() {
        let scenario = TLBScenario()
        scenario.cacheAndChangeEverything()
        _ = scenario.translate(.a)
        #expect(scenario.t.smmu.diagnostics.isEmpty)
    }
}
