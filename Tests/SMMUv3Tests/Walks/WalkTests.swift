import Testing
import Platform
@testable import SMMUv3
import SMMUv3Host
import Scenario

/// Stage 1 and stage 2 VMSAv8-64 walks at every granule, block and page mappings.
@Suite struct WalkGeometryTests {
    struct Case: CustomStringConvertible, Sendable {
        let granule: Int
        let inputBits: Int
        let size: UInt64
        let input: UInt64
        let output: UInt64
        var description: String { "\(1 << (granule - 10))K/\(inputBits)-bit/\(hex(size))" }
    }

    static let stage1Cases: [Case] = [
        Case(granule: 12, inputBits: 48, size: 0x1000, input: 0x7FFF_1234_5000, output: 0x8_7654_3000),
        Case(granule: 12, inputBits: 48, size: 0x20_0000, input: 0x40_0020_0000, output: 0x8_4000_0000),
        Case(granule: 12, inputBits: 48, size: 0x4000_0000, input: 0xC000_0000, output: 0x8_4000_0000),
        Case(granule: 12, inputBits: 39, size: 0x1000, input: 0x7F_FFFF_F000, output: 0x1000),
        Case(granule: 12, inputBits: 30, size: 0x1000, input: 0x3FFF_F000, output: 0x2000),
        Case(granule: 14, inputBits: 48, size: 0x4000, input: 0xFFFF_FFFF_C000, output: 0x9_0000_4000),
        Case(granule: 14, inputBits: 47, size: 0x200_0000, input: 0x7000_0200_0000, output: 0x9_0200_0000),
        Case(granule: 14, inputBits: 36, size: 0x4000, input: 0x8_0000_4000, output: 0x4000),
        Case(granule: 16, inputBits: 48, size: 0x1_0000, input: 0xFFFF_FFFF_0000, output: 0xA_0001_0000),
        Case(granule: 16, inputBits: 48, size: 0x2000_0000, input: 0x1234_2000_0000, output: 0xA_2000_0000),
        Case(granule: 16, inputBits: 42, size: 0x1_0000, input: 0x3FF_FFFF_0000, output: 0x1_0000),
    ]

    @Test(arguments: stage1Cases)
    func stage1MapsPagesAndBlocks(_ testCase: Case) {
        let t = TranslationRig()
        let pt = t.table(granule: testCase.granule, inputBits: testCase.inputBits)
        pt.map(testCase.input, to: testCase.output, size: testCase.size)
        var cd = CDConfig(table0: pt, asid: 1)
        cd.tg0 = testCase.granule == 12 ? 0 : (testCase.granule == 16 ? 1 : 2)
        t.stage1Stream(1, cd: cd)
        let offset = testCase.size / 2 + 8
        #expect(t.translate(1, testCase.input + offset) == .translated(physicalAddress: testCase.output + offset))
        #expect(t.translate(1, testCase.input) == .translated(physicalAddress: testCase.output), "a TLB hit gives the same answer")
        #expect(t.smmu.tlb.hits == 1)
        #expect(t.events().isEmpty)
    }

    static let stage2Cases: [Case] = [
        Case(granule: 12, inputBits: 40, size: 0x1000, input: 0xFF_FFFF_F000, output: 0x3_0000_0000),
        Case(granule: 12, inputBits: 40, size: 0x20_0000, input: 0x80_0020_0000, output: 0x3_0020_0000),
        Case(granule: 12, inputBits: 40, size: 0x4000_0000, input: 0x40_4000_0000, output: 0x3_4000_0000),
        Case(granule: 14, inputBits: 40, size: 0x4000, input: 0xFF_FFFF_C000, output: 0x4_0000_4000),
        Case(granule: 14, inputBits: 40, size: 0x200_0000, input: 0x10_0200_0000, output: 0x4_0200_0000),
        Case(granule: 16, inputBits: 42, size: 0x1_0000, input: 0x3FF_FFFF_0000, output: 0x5_0001_0000),
        Case(granule: 16, inputBits: 42, size: 0x2000_0000, input: 0x100_2000_0000, output: 0x5_2000_0000),
    ]

    @Test(arguments: stage2Cases)
    func stage2MapsPagesAndBlocksWithConcatenatedTables(_ testCase: Case) {
        let t = TranslationRig()
        let s2 = t.table(.stage2, granule: testCase.granule, inputBits: testCase.inputBits)
        s2.map(testCase.input, to: testCase.output, size: testCase.size)
        t.stage2Stream(2, table: s2, vmid: 7)
        #expect(t.translate(2, testCase.input + 0x18) == .translated(physicalAddress: testCase.output + 0x18))
        #expect(t.events().isEmpty)
    }

    @Test func fiftyTwoBitOutputUses64KDescriptorHighBits() {
        let t = TranslationRig { $0.outputAddressSize = .bits52 }
        let pt = t.table(granule: 16, inputBits: 52)
        pt.map(0xF_FFFF_FFFF_0000, to: 0xA_BCDE_F123_0000)
        pt.map(0x10_0000_0000_0000 - 0x400_0000_0000 * 2, to: 0xC_0000_0000_0000, size: 0x400_0000_0000)
        var cd = CDConfig(table0: pt)
        cd.tg0 = 0b01
        cd.ips = 0b110
        t.stage1Stream(1, cd: cd)
        #expect(t.translate(1, 0xF_FFFF_FFFF_0010) == .translated(physicalAddress: 0xA_BCDE_F123_0010))
        #expect(t.translate(1, 0xF_F800_0000_1000) == .translated(physicalAddress: 0xC_0000_0000_1000), "4 TB level-1 block with 52-bit output")
    }

    @Test func upperHalfUsesTTB1() {
        let t = TranslationRig()
        let low = t.table(), high = t.table(inputBits: 39)
        low.map(0x1000, to: 0x11000)
        high.map(0x7F_FFFF_F000, to: 0x22000)
        var cd = CDConfig(table0: low)
        cd.epd1 = false
        cd.t1sz = 25
        cd.ttb1 = high.root
        t.stage1Stream(1, cd: cd)
        #expect(t.translate(1, 0x1000) == .translated(physicalAddress: 0x11000))
        #expect(t.translate(1, 0xFFFF_FFFF_FFFF_F008) == .translated(physicalAddress: 0x22008))
    }

    @Test func topByteIgnoreAcceptsTaggedAddresses() {
        let t = TranslationRig()
        let pt = t.table()
        pt.map(0x5000, to: 0x9000)
        var cd = CDConfig(table0: pt)
        cd.tbi0 = true
        t.stage1Stream(1, cd: cd)
        #expect(t.translate(1, 0xAB00_0000_0000_5004) == .translated(physicalAddress: 0x9004))
        cd.tbi0 = false
        t.stage1Stream(2, cd: cd)
        #expect(t.translate(2, 0xAB00_0000_0000_5004) == .aborted(.translation))
    }
}

/// Translation-related faults (§7.3.12–§7.3.17), each record compared word by word.
@Suite struct WalkFaultTests {
    static func fault(_ type: EventType, _ address: UInt64, access: AccessAttributes = .dataRead, stage2: Bool = false, faultClass: FaultClass = .input, ipa: UInt64 = 0, ttRead: Bool = false, sid: UInt32 = 1) -> EventRecord {
        .translationFault(TranslationFault(type: type, streamID: sid, access: access, stage2: stage2, faultClass: faultClass, inputAddress: address, ipa: ipa, translationTableRead: ttRead))
    }

    func stage1(_ configure: (inout SMMUConfiguration) -> Void = { _ in }, cd adjust: (inout CDConfig) -> Void = { _ in }, map: (PageTableBuilder) -> Void) -> TranslationRig {
        let t = TranslationRig(configure)
        let pt = t.table()
        map(pt)
        var cd = CDConfig(table0: pt, asid: 1)
        adjust(&cd)
        t.stage1Stream(1, cd: cd)
        return t
    }

    @Test func invalidDescriptorIsFTranslation() {
        let t = stage1 { $0.map(0x1000, to: 0x2000) }
        #expect(t.translate(1, 0x3000) == .aborted(.translation))
        #expect(t.events() == [WalkFaultTests.fault(.translation, 0x3000)])
    }

    @Test func addressOutsideTxSZIsFTranslation() {
        let t = stage1(cd: { $0.t0sz = 25 }) { _ in }
        #expect(t.translate(1, 1 << 40) == .aborted(.translation))
        #expect(t.events() == [WalkFaultTests.fault(.translation, 1 << 40)])
    }

    @Test func disabledHalfIsFTranslationWithoutAWalk() {
        // TTB1 points at a valid table mapping the address, whose memory aborts every device
        // read: with EPD1 == 1 the result is F_TRANSLATION and the table is never read.
        let t = TranslationRig()
        let low = t.table(), high = t.table(inputBits: 39)
        high.map(0x7F_FFFF_F000, to: 0x22000)
        t.rig.bus.faults.injectAbort(high.root...(t.arena.next - 1), on: .read)
        var cd = CDConfig(table0: low)
        cd.t1sz = 25
        cd.ttb1 = high.root
        t.stage1Stream(1, cd: cd)
        #expect(t.translate(1, 0xFFFF_FFFF_FFFF_F008) == .aborted(.translation), "EPD1 == 1")
        #expect(t.events() == [WalkFaultTests.fault(.translation, 0xFFFF_FFFF_FFFF_F008)])
        #expect(t.rig.bus.faults.abortsInjected == 0, "no TTB1 descriptor was fetched")
        cd.epd1 = false
        t.stage1Stream(2, cd: cd)
        #expect(t.translate(2, 0xFFFF_FFFF_FFFF_F008) == .aborted(.walkExternalAbort), "with EPD1 == 0 the same table is walked")
        #expect(t.events() == [.walkExternalAbort(streamID: 2, access: .dataRead, stage2: false, faultClass: .translationTable, inputAddress: 0xFFFF_FFFF_FFFF_F008, fetchAddress: high.root + 511 * 8)])
    }

    @Test func levelZeroBlockIsFTranslation() {
        let t = stage1 { pt in
            pt.setDescriptor(0x8_0000_0000 | 0x401, for: 0, size: 1 << 39)
        }
        #expect(t.translate(1, 0x1000) == .aborted(.translation), "4 KB granule has no level-0 blocks")
    }

    @Test func outputBeyondIPSIsFAddrSize() {
        let t = stage1(cd: { $0.ips = 0b010 }) { $0.map(0x1000, to: 1 << 44) }
        #expect(t.translate(1, 0x1000) == .aborted(.addressSize))
        #expect(t.events() == [WalkFaultTests.fault(.addressSize, 0x1000)])
    }

    @Test func tableBeyondIPSIsFAddrSize() {
        let t = stage1(cd: { $0.ips = 0b010 }) { pt in
            pt.map(0x1000, to: 0x2000)
            let slot = pt.descriptorAddress(for: 0x1000, level: 1)!
            pt.memory.write64((1 << 43) | 0b11, at: slot)
        }
        #expect(t.translate(1, 0x1000) == .aborted(.addressSize))
    }

    @Test func clearAccessFlagIsFAccess() {
        let t = stage1 { pt in
            var attributes = MappingAttributes.readWrite
            attributes.accessFlag = false
            pt.map(0x1000, to: 0x2000, attributes)
        }
        #expect(t.translate(1, 0x1000) == .aborted(.access))
        #expect(t.events() == [WalkFaultTests.fault(.access, 0x1000)])
    }

    @Test func hardwareAccessFlagUpdateSetsAFInMemory() {
        var table: PageTableBuilder?
        let t = stage1(cd: { $0.hardwareAccessFlag = true }) { pt in
            var attributes = MappingAttributes.readWrite
            attributes.accessFlag = false
            pt.map(0x1000, to: 0x2000, attributes)
            table = pt
        }
        #expect(t.translate(1, 0x1000) == .translated(physicalAddress: 0x2000))
        #expect(table!.descriptor(for: 0x1000) & (1 << 10) != 0)
    }

    @Test func accessFlagFaultDisableSucceedsWithoutCaching() {
        let t = stage1(cd: { $0.accessFlagFaultDisable = true }) { pt in
            var attributes = MappingAttributes.readWrite
            attributes.accessFlag = false
            pt.map(0x1000, to: 0x2000, attributes)
        }
        #expect(t.translate(1, 0x1000) == .translated(physicalAddress: 0x2000))
        #expect(t.smmu.tlb.count == 0)
    }

    @Test func writeToReadOnlyPageIsFPermission() {
        let t = stage1 { $0.map(0x1000, to: 0x2000, .readOnly) }
        #expect(t.translate(1, 0x1000) == .translated(physicalAddress: 0x2000))
        #expect(t.translate(1, 0x1008, .dataWrite) == .aborted(.permission))
        #expect(t.events() == [WalkFaultTests.fault(.permission, 0x1008, access: .dataWrite)])
    }

    @Test func hardwareDirtyUpdateMakesAWritableCleanPageDirty() {
        var table: PageTableBuilder?
        let t = stage1(cd: { $0.hardwareAccessFlag = true; $0.hardwareDirty = true }) { pt in
            var attributes = MappingAttributes.readOnly
            attributes.dirtyBitModifier = true
            pt.map(0x1000, to: 0x2000, attributes)
            table = pt
        }
        #expect(t.translate(1, 0x1000) == .translated(physicalAddress: 0x2000), "the read caches a clean entry")
        #expect(t.translate(1, 0x1000, .dataWrite) == .translated(physicalAddress: 0x2000))
        #expect(table!.descriptor(for: 0x1000) & (1 << 7) == 0, "AP[2] cleared: the page is dirty")
        let noHD = stage1 { pt in
            var attributes = MappingAttributes.readOnly
            attributes.dirtyBitModifier = true
            pt.map(0x1000, to: 0x2000, attributes)
        }
        #expect(noHD.translate(1, 0x1000, .dataWrite) == .aborted(.permission))
    }

    struct PermissionCase: CustomStringConvertible, Sendable {
        let name: String
        let attributes: MappingAttributes
        let access: AccessAttributes
        let wxn: Bool
        let pan: Bool
        let allowed: Bool
        var description: String { name }
    }

    static var permissionCases: [PermissionCase] {
        var privilegedOnly = MappingAttributes.readWrite
        privilegedOnly.unprivileged = false
        var userExecuteNever = MappingAttributes.readWrite
        userExecuteNever.unprivilegedExecuteNever = true
        var userReadOnly = MappingAttributes.readOnly
        userReadOnly.privilegedExecuteNever = false
        let userWritable = MappingAttributes.readWrite
        let fetch = AccessAttributes(read: true, instruction: true)
        let privilegedFetch = AccessAttributes(read: true, instruction: true, privileged: true)
        let privilegedRead = AccessAttributes(read: true, privileged: true)
        return [
            PermissionCase(name: "unprivileged read of a privileged page", attributes: privilegedOnly, access: .dataRead, wxn: false, pan: false, allowed: false),
            PermissionCase(name: "privileged read of a privileged page", attributes: privilegedOnly, access: privilegedRead, wxn: false, pan: false, allowed: true),
            PermissionCase(name: "unprivileged fetch with UXN", attributes: userExecuteNever, access: fetch, wxn: false, pan: false, allowed: false),
            PermissionCase(name: "privileged fetch with UXN only", attributes: userExecuteNever, access: privilegedFetch, wxn: false, pan: false, allowed: false),
            PermissionCase(name: "privileged fetch of a user-read-only page", attributes: userReadOnly, access: privilegedFetch, wxn: false, pan: false, allowed: true),
            PermissionCase(name: "unprivileged fetch of a writable page with WXN", attributes: userWritable, access: fetch, wxn: true, pan: false, allowed: false),
            PermissionCase(name: "unprivileged fetch of a read-only page with WXN", attributes: .readOnly, access: fetch, wxn: true, pan: false, allowed: true),
            PermissionCase(name: "privileged data read of a user page with PAN", attributes: .readWrite, access: privilegedRead, wxn: false, pan: true, allowed: false),
            PermissionCase(name: "privileged fetch of a user page with PAN", attributes: .readOnly, access: privilegedFetch, wxn: false, pan: true, allowed: true),
        ]
    }

    @Test(arguments: permissionCases)
    func stage1PermissionModel(_ testCase: PermissionCase) {
        let t = stage1(cd: { $0.wxn = testCase.wxn; $0.pan = testCase.pan }) { $0.map(0x1000, to: 0x2000, testCase.attributes) }
        let outcome = t.translate(1, 0x1000, testCase.access)
        #expect(outcome == (testCase.allowed ? .translated(physicalAddress: 0x2000) : .aborted(.permission)))
        #expect(t.events() == (testCase.allowed ? [] : [WalkFaultTests.fault(.permission, 0x1000, access: testCase.access)]))
    }

    @Test func hierarchicalAPTableRemovesWriteUnlessHADIsSet() {
        let t = stage1 { pt in
            pt.map(0x1000, to: 0x2000)
            pt.setTableBits(1 << 62, for: 0x1000, level: 1)
        }
        #expect(t.translate(1, 0x1000, .dataWrite) == .aborted(.permission))
        let had = stage1(cd: { $0.had0 = true }) { pt in
            pt.map(0x1000, to: 0x2000)
            pt.setTableBits(1 << 62, for: 0x1000, level: 1)
        }
        #expect(had.translate(1, 0x1000, .dataWrite) == .translated(physicalAddress: 0x2000))
    }

    @Test func el2StreamWorldChecksEverythingAsPrivileged() {
        let t = TranslationRig()
        t.useEL2WithoutE2H()
        let pt = t.table()
        var attributes = MappingAttributes.readWrite
        attributes.unprivileged = false
        pt.map(0x1000, to: 0x2000, attributes)
        t.stage1Stream(1, cd: CDConfig(table0: pt)) { $0.strw = 0b10 }
        #expect(t.translate(1, 0x1000) == .translated(physicalAddress: 0x2000), "AP[1] is treated as 1 in EL2")
    }

    @Test func privilegeOverrideAppliesBeforeStage1AndIsReported() {
        let t = TranslationRig()
        let pt = t.table()
        var attributes = MappingAttributes.readWrite
        attributes.unprivileged = false
        pt.map(0x1000, to: 0x2000, attributes)
        t.stage1Stream(1, cd: CDConfig(table0: pt)) { $0.privCfg = 0b11 }
        t.stage1Stream(2, cd: CDConfig(table0: pt)) { $0.privCfg = 0b10 }
        #expect(t.translate(1, 0x1000) == .translated(physicalAddress: 0x2000))
        #expect(t.translate(2, 0x1000, AccessAttributes(read: true, privileged: true)) == .aborted(.permission))
        #expect(t.events() == [WalkFaultTests.fault(.permission, 0x1000, access: .dataRead, sid: 2)], "PnU is the post-override value")
    }

    @Test func descriptorFetchAbortIsFWalkEABT() {
        var table: PageTableBuilder?
        let t = stage1 { pt in
            pt.map(0x1000, to: 0x2000)
            table = pt
        }
        let leaf = table!.descriptorAddress(for: 0x1000, level: 3, create: false)!
        t.rig.bus.faults.injectAbort(leaf...(leaf + 7), on: .read)
        #expect(t.translate(1, 0x1000) == .aborted(.walkExternalAbort))
        #expect(t.events() == [.walkExternalAbort(streamID: 1, access: .dataRead, stage2: false, faultClass: .translationTable, inputAddress: 0x1000, fetchAddress: leaf)])
    }

    @Test func misprogrammedContiguousGroupIsFTLBConflict() {
        let t = stage1 { pt in
            var attributes = MappingAttributes.readWrite
            attributes.contiguous = true
            for page in UInt64(0)..<16 { pt.map(0x10000 + page * 0x1000, to: 0x40000 + page * 0x1000, attributes) }
            pt.map(0x20000, to: 0x80000, attributes)
            for page in UInt64(1)..<16 { pt.map(0x20000 + page * 0x1000, to: 0x90000 + page * 0x1000, attributes) }
        }
        #expect(t.translate(1, 0x1F000) == .translated(physicalAddress: 0x4F000))
        #expect(t.translate(1, 0x20000) == .aborted(.tlbConflict))
        #expect(t.events() == [.tlbConflict(streamID: 1, access: .dataRead, stage2: false, inputAddress: 0x20000)])
    }

    @Test func recordAndAbortBitsDecideWhatHappens() {
        let silent = stage1(cd: { $0.record = false }) { _ in }
        #expect(silent.translate(1, 0x5000) == .aborted(nil))
        #expect(silent.events().isEmpty)
        let raz = stage1(cd: { $0.abort = false }) { _ in }
        #expect(raz.translate(1, 0x5000) == .terminatedRAZ(.translation))
        #expect(raz.events() == [WalkFaultTests.fault(.translation, 0x5000)])
    }

    @Test func unsupportedTransactionIsFUUTWithIncomingAttributes() {
        let t = stage1 { _ in }
        let access = AccessAttributes(read: true, instruction: true, privileged: true)
        #expect(t.smmu.translate(InboundTransaction(streamID: 1, substreamID: 2, address: 0x77, access: access, kind: .unsupported(reason: 0x3))) == .aborted(.unsupportedUpstreamTransaction))
        #expect(t.events() == [.unsupportedUpstreamTransaction(streamID: 1, substreamID: 2, reason: 3, access: access, inputAddress: 0x77)])
    }
}

/// Stage-2 and nested translation faults (§7.3.13: CLASS and IPA).
@Suite struct Stage2FaultTests {
    func stage2Only(_ map: (PageTableBuilder) -> Void, adjust: (inout STEConfig.Stage2) -> Void = { _ in }) -> TranslationRig {
        let t = TranslationRig()
        let s2 = t.table(.stage2, inputBits: 40)
        map(s2)
        t.stage2Stream(1, table: s2) { adjust(&$0.stage2!) }
        return t
    }

    @Test func ipaBeyondS2T0SZIsStage2FTranslation() {
        let t = stage2Only { _ in }
        #expect(t.translate(1, 1 << 41) == .aborted(.translation))
        #expect(t.events() == [WalkFaultTests.fault(.translation, 1 << 41, stage2: true, ipa: 1 << 41)])
    }

    @Test func stage2WriteToReadOnlyIsStage2FPermission() {
        let t = stage2Only { $0.map(0x1000, to: 0x2000, .readOnly) }
        #expect(t.translate(1, 0x1010, .dataWrite) == .aborted(.permission))
        #expect(t.events() == [WalkFaultTests.fault(.permission, 0x1010, access: .dataWrite, stage2: true, ipa: 0x1010)])
    }

    @Test(arguments: [(UInt8(0b00), true, true), (0b01, false, true), (0b10, false, false), (0b11, true, false)])
    func stage2ExecuteNeverDistinguishesPrivilege(_ xn: UInt8, _ privileged: Bool, _ unprivileged: Bool) {
        let t = stage2Only { pt in
            var attributes = MappingAttributes.readWrite
            attributes.stage2ExecuteNever = xn
            pt.map(0x1000, to: 0x2000, attributes)
        }
        let privilegedOutcome = t.translate(1, 0x1000, AccessAttributes(read: true, instruction: true, privileged: true))
        let unprivilegedOutcome = t.translate(1, 0x1000, AccessAttributes(read: true, instruction: true))
        #expect(privilegedOutcome == (privileged ? .translated(physicalAddress: 0x2000) : .aborted(.permission)))
        #expect(unprivilegedOutcome == (unprivileged ? .translated(physicalAddress: 0x2000) : .aborted(.permission)))
    }

    @Test func stage2RecordBitDecidesWhetherAFaultIsRecorded() {
        let t = stage2Only({ _ in }, adjust: { $0.record = false })
        #expect(t.translate(1, 0x5000) == .aborted(nil))
        #expect(t.events().isEmpty)
    }

    /// A nested stream whose stage 2 identity-maps the table memory and maps data pages.
    func nested(s2Adjust: (PageTableBuilder, PageTableBuilder, CDTableBuilder) -> Void = { _, _, _ in }) -> (TranslationRig, PageTableBuilder, PageTableBuilder, CDTableBuilder) {
        let t = TranslationRig()
        let s2 = t.table(.stage2, inputBits: 40)
        let s1 = t.table()
        s1.map(0x4000, to: 0x10_0000)
        s2.map(0x10_0000, to: 0x7_0000_0000)
        let cds = CDTableBuilder(memory: t.memory, arena: t.arena)
        cds.set(0, CDConfig(table0: s1, asid: 2))
        // Identity-map every table page the builders allocated so far (and the CD).
        var page = UInt64(0x8000_0000)
        while page < t.arena.next { s2.map(page, to: page); page += 0x1000 }
        s2Adjust(s2, s1, cds)
        var ste = STEConfig(config: .nested)
        ste.s1ContextPointer = cds.pointer
        ste.stage2 = STEConfig.Stage2(s2)
        ste.s2VMID = 3
        t.streams.set(1, ste)
        return (t, s2, s1, cds)
    }

    @Test func nestedTranslationGoesThroughBothStages() {
        let (t, _, _, _) = nested()
        #expect(t.translate(1, 0x4123) == .translated(physicalAddress: 0x7_0000_0123))
        #expect(t.translate(1, 0x4123) == .translated(physicalAddress: 0x7_0000_0123))
        #expect(t.events().isEmpty)
    }

    @Test func stage2FaultOnTheCDFetchHasClassCD() {
        var cdAddress: UInt64 = 0
        let (t, _, _, _) = nested { s2, _, cds in
            cdAddress = cds.cdAddress(for: 0)
            s2.unmap(cdAddress & ~0xFFF)
        }
        #expect(t.translate(1, 0x4123) == .aborted(.translation))
        #expect(t.events() == [WalkFaultTests.fault(.translation, 0x4123, stage2: true, faultClass: .contextDescriptor, ipa: cdAddress, ttRead: true)])
    }

    @Test func stage2FaultOnAStage1TableHasClassTT() {
        var descriptorIPA: UInt64 = 0
        let (t, _, _, _) = nested { s2, s1, _ in
            descriptorIPA = s1.descriptorAddress(for: 0x4000, level: 3, create: false)!
            s2.unmap(descriptorIPA & ~0xFFF)
        }
        #expect(t.translate(1, 0x4123) == .aborted(.translation))
        #expect(t.events() == [WalkFaultTests.fault(.translation, 0x4123, stage2: true, faultClass: .translationTable, ipa: descriptorIPA, ttRead: true)])
    }

    @Test func stage2FaultOnTheFinalIPAHasClassIN() {
        let (t, _, _, _) = nested { s2, _, _ in s2.unmap(0x10_0000) }
        #expect(t.translate(1, 0x4123) == .aborted(.translation))
        #expect(t.events() == [WalkFaultTests.fault(.translation, 0x4123, stage2: true, faultClass: .input, ipa: 0x10_0123)])
    }

    @Test func stage1AccessFlagUpdateNeedsStage2WritePermission() {
        var descriptorIPA: UInt64 = 0
        let t = TranslationRig()
        let s2 = t.table(.stage2, inputBits: 40)
        let s1 = t.table()
        var attributes = MappingAttributes.readWrite
        attributes.accessFlag = false
        s1.map(0x4000, to: 0x10_0000, attributes)
        s2.map(0x10_0000, to: 0x7_0000_0000)
        let cds = CDTableBuilder(memory: t.memory, arena: t.arena)
        var cd = CDConfig(table0: s1, asid: 2)
        cd.hardwareAccessFlag = true
        cds.set(0, cd)
        descriptorIPA = s1.descriptorAddress(for: 0x4000, level: 3, create: false)!
        var page = UInt64(0x8000_0000)
        while page < t.arena.next {
            s2.map(page, to: page, page == descriptorIPA & ~0xFFF ? .readOnly : .readWrite)
            page += 0x1000
        }
        var ste = STEConfig(config: .nested)
        ste.s1ContextPointer = cds.pointer
        ste.stage2 = STEConfig.Stage2(s2)
        t.streams.set(1, ste)
        #expect(t.translate(1, 0x4000) == .aborted(.permission))
        #expect(t.events() == [WalkFaultTests.fault(.permission, 0x4000, stage2: true, faultClass: .translationTable, ipa: descriptorIPA, ttRead: false)])
    }
}
