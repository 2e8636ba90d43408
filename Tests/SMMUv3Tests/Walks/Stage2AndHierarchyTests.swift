import Testing
import Platform
@testable import SMMUv3
import SMMUv3Host
import Scenario

/// Stage-2 hardware updates (§3.13, STE.S2HA/S2HD/S2AFFD), aborts on hardware-update writes
/// (§7.3.12), STE.S2PTW (§5.2), stage-1 hierarchical attributes (VMSAv8-64 PXNTable, UXNTable,
/// APTable), the stage-2 contiguous hint, PAN on a TLB hit and STE.INSTCFG (§13.1.2).
@Suite struct Stage2AndHierarchyTests {
    // MARK: Descriptor bits (VMSAv8-64)

    static let af: UInt64 = 1 << 10
    /// S2AP[1] at stage 2, AP[2] at stage 1.
    static let bit7: UInt64 = 1 << 7

    static let fetch = AccessAttributes(read: true, instruction: true)
    static let privilegedFetch = AccessAttributes(read: true, instruction: true, privileged: true)
    static let privilegedRead = AccessAttributes(read: true, privileged: true)

    static func fault(_ type: EventType, _ address: UInt64, access: AccessAttributes = .dataRead, stage2: Bool = false, faultClass: FaultClass = .input, ipa: UInt64 = 0, ttRead: Bool = false, sid: UInt32 = 1) -> EventRecord {
        .translationFault(TranslationFault(type: type, streamID: sid, access: access, stage2: stage2, faultClass: faultClass, inputAddress: address, ipa: ipa, translationTableRead: ttRead))
    }

    // MARK: Stream builders

    /// Stream 1 as a stage-2-only stream (40-bit IPA, 4 KB granule).
    static func stage2Only(_ map: (PageTableBuilder) -> Void, adjust: (inout STEConfig.Stage2) -> Void = { _ in }) -> (TranslationRig, PageTableBuilder) {
        let t = TranslationRig()
        let s2 = t.table(.stage2, inputBits: 40)
        map(s2)
        t.stage2Stream(1, table: s2, vmid: 5) { adjust(&$0.stage2!) }
        return (t, s2)
    }

    /// Stream 1 as a stage-1-only stream with `cd` adjusted.
    static func stage1Only(cd adjust: (inout CDConfig) -> Void = { _ in }, ste adjustSTE: (inout STEConfig) -> Void = { _ in }, _ map: (PageTableBuilder) -> Void) -> (TranslationRig, PageTableBuilder) {
        let t = TranslationRig()
        let pt = t.table()
        map(pt)
        var cd = CDConfig(table0: pt, asid: 1)
        adjust(&cd)
        t.stage1Stream(1, cd: cd, adjust: adjustSTE)
        return (t, pt)
    }

    /// Makes stream 1 nested: the CD (IPA) is built now, then every page allocated so far
    /// (stage-1 tables, the CD) is identity-mapped at stage 2 with `tablePage(page)`.
    @discardableResult
    static func nestedStream(_ t: TranslationRig, s1: PageTableBuilder, s2: PageTableBuilder, cd: CDConfig? = nil, tablePage: (UInt64) -> MappingAttributes = { _ in .readWrite }, adjust: (inout STEConfig.Stage2) -> Void = { _ in }) -> CDTableBuilder {
        let cds = CDTableBuilder(memory: t.memory, arena: t.arena)
        cds.set(0, cd ?? CDConfig(table0: s1, asid: 2))
        var page = UInt64(0x8000_0000)
        while page < t.arena.next {
            s2.map(page, to: page, tablePage(page))
            page += 0x1000
        }
        var ste = STEConfig(config: .nested)
        ste.s1ContextPointer = cds.pointer
        ste.stage2 = STEConfig.Stage2(s2)
        ste.s2VMID = 3
        adjust(&ste.stage2!)
        t.streams.set(1, ste)
        return cds
    }

    static var deviceAttributes: MappingAttributes {
        var attributes = MappingAttributes.readWrite
        attributes.stage2MemoryAttributes = 0x1 // Device-nGnRE
        return attributes
    }

    static var accessFlagClear: MappingAttributes {
        var attributes = MappingAttributes.readWrite
        attributes.accessFlag = false
        return attributes
    }

    /// Writable-clean: read-only (AP[2] == 1 / S2AP[1] == 0) with DBM == 1.
    static var writableClean: MappingAttributes {
        var attributes = MappingAttributes.readOnly
        attributes.dirtyBitModifier = true
        return attributes
    }

    // MARK: 1. Stage-2 Access flag and dirty state (§3.13.2, §3.13.3, §5.2 S2HA/S2HD/S2AFFD)

    @Test func stage2HardwareAccessFlagSetsAFInTheStage2Descriptor() throws {
        let (t, s2) = Self.stage2Only({ $0.map(0x1000, to: 0x2000, Self.accessFlagClear) }, adjust: { $0.hardwareAccessFlag = true })
        let before = s2.descriptor(for: 0x1000)
        try #require(before & Self.af == 0)
        #expect(t.translate(1, 0x1010) == .translated(physicalAddress: 0x2010))
        #expect(s2.descriptor(for: 0x1000) == before | Self.af, "only AF is set, atomically, in memory")
        #expect(t.events().isEmpty)
    }

    @Test func stage2AccessFlagClearWithoutS2HAIsStage2FAccess() {
        let (t, s2) = Self.stage2Only { $0.map(0x1000, to: 0x2000, Self.accessFlagClear) }
        let before = s2.descriptor(for: 0x1000)
        #expect(t.translate(1, 0x1010, .dataWrite) == .aborted(.access))
        #expect(t.events() == [Self.fault(.access, 0x1010, access: .dataWrite, stage2: true, faultClass: .input, ipa: 0x1010)])
        #expect(s2.descriptor(for: 0x1000) == before, "no hardware update without S2HA")
    }

    @Test func stage2AccessFlagFaultDisableTranslatesWithoutUpdatingOrCaching() {
        let (t, s2) = Self.stage2Only({ $0.map(0x1000, to: 0x2000, Self.accessFlagClear) }, adjust: { $0.accessFlagFaultDisable = true })
        let before = s2.descriptor(for: 0x1000)
        #expect(t.translate(1, 0x1010) == .translated(physicalAddress: 0x2010), "S2AFFD: AF is considered to be 1")
        #expect(t.translate(1, 0x1020, .dataWrite) == .translated(physicalAddress: 0x2020))
        #expect(s2.descriptor(for: 0x1000) == before, "S2AFFD never writes the descriptor")
        #expect(t.smmu.tlb.count == 0, "the model does not cache AF == 0 translations (as for CD.AFFD)")
        #expect(t.events().isEmpty)
    }

    @Test func stage2HardwareAccessFlagTakesPrecedenceOverS2AFFD() {
        let (t, s2) = Self.stage2Only({ $0.map(0x1000, to: 0x2000, Self.accessFlagClear) }, adjust: {
            $0.hardwareAccessFlag = true
            $0.accessFlagFaultDisable = true
        })
        let before = s2.descriptor(for: 0x1000)
        #expect(t.translate(1, 0x1010) == .translated(physicalAddress: 0x2010))
        #expect(s2.descriptor(for: 0x1000) == before | Self.af, "S2AFFD is IGNORED when S2HA == 1")
        #expect(t.smmu.tlb.count == 1)
    }

    @Test func stage2HardwareDirtySetsS2AP1OnAWriteToAWritableCleanPage() {
        let (t, s2) = Self.stage2Only({ $0.map(0x1000, to: 0x2000, Self.writableClean) }, adjust: {
            $0.hardwareAccessFlag = true
            $0.hardwareDirty = true
        })
        let clean = s2.descriptor(for: 0x1000)
        #expect(t.translate(1, 0x1010) == .translated(physicalAddress: 0x2010), "the read caches a clean entry")
        #expect(s2.descriptor(for: 0x1000) == clean, "a read does not make the page dirty")
        #expect(t.translate(1, 0x1018, .dataWrite) == .translated(physicalAddress: 0x2018))
        #expect(s2.descriptor(for: 0x1000) == clean | Self.bit7, "S2AP[1] set: the page is writable-dirty; DBM kept")
        #expect(t.translate(1, 0x1020, .dataWrite) == .translated(physicalAddress: 0x2020))
        #expect(t.events().isEmpty)
    }

    @Test(arguments: [
        (false, true, true, "S2HA only: no dirty update"),
        (true, true, false, "S2HD with DBM == 0: genuinely read-only"),
        (true, false, true, "S2HD without S2HA: reserved, behaves as HTTU off"),
    ])
    func stage2WriteToANonWritablePageIsStage2FPermission(_ hd: Bool, _ ha: Bool, _ dbm: Bool, _ label: String) {
        var attributes = MappingAttributes.readOnly
        attributes.dirtyBitModifier = dbm
        let (t, s2) = Self.stage2Only({ $0.map(0x1000, to: 0x2000, attributes) }, adjust: {
            $0.hardwareAccessFlag = ha
            $0.hardwareDirty = hd
        })
        let before = s2.descriptor(for: 0x1000)
        #expect(t.translate(1, 0x1018, .dataWrite) == .aborted(.permission), "\(label)")
        #expect(t.events() == [Self.fault(.permission, 0x1018, access: .dataWrite, stage2: true, faultClass: .input, ipa: 0x1018)])
        #expect(s2.descriptor(for: 0x1000) == before)
    }

    @Test func stage2AccessFlagClearOnAStage1TablePageIsStage2FAccessWithClassTT() throws {
        let t = TranslationRig()
        let s2 = t.table(.stage2, inputBits: 40), s1 = t.table()
        s1.map(0x4000, to: 0x10_0000)
        s2.map(0x10_0000, to: 0x7_0000_0000)
        let descriptorIPA = try #require(s1.descriptorAddress(for: 0x4000, level: 3, create: false))
        Self.nestedStream(t, s1: s1, s2: s2, tablePage: { $0 == descriptorIPA & ~0xFFF ? Self.accessFlagClear : .readWrite })
        #expect(t.translate(1, 0x4123) == .aborted(.access))
        #expect(t.events() == [Self.fault(.access, 0x4123, stage2: true, faultClass: .translationTable, ipa: descriptorIPA)])
    }

    @Test func stage2HardwareAccessFlagCoversStage1TableFetches() throws {
        let t = TranslationRig()
        let s2 = t.table(.stage2, inputBits: 40), s1 = t.table()
        s1.map(0x4000, to: 0x10_0000)
        s2.map(0x10_0000, to: 0x7_0000_0000)
        let tablePage = try #require(s1.descriptorAddress(for: 0x4000, level: 3, create: false)) & ~0xFFF
        Self.nestedStream(t, s1: s1, s2: s2, tablePage: { $0 == tablePage ? Self.accessFlagClear : .readWrite }, adjust: { $0.hardwareAccessFlag = true })
        let before = s2.descriptor(for: tablePage)
        #expect(t.translate(1, 0x4123) == .translated(physicalAddress: 0x7_0000_0123))
        #expect(s2.descriptor(for: tablePage) == before | Self.af)
        #expect(t.events().isEmpty)
    }

    // MARK: 2. Hardware-update writes that abort (§7.3.12 F_WALK_EABT)

    @Test func stage2AccessFlagUpdateAbortIsStage2FWalkEABT() throws {
        let (t, s2) = Self.stage2Only({ $0.map(0x1000, to: 0x2000, Self.accessFlagClear) }, adjust: { $0.hardwareAccessFlag = true })
        let leaf = try #require(s2.descriptorAddress(for: 0x1000, level: 3, create: false))
        let before = s2.descriptor(for: 0x1000)
        t.system.bus.faults.injectAbort(leaf...(leaf + 7), on: .write)
        #expect(t.translate(1, 0x1010) == .aborted(.walkExternalAbort))
        // RnW describes the input transaction (a read), not the aborted descriptor write.
        #expect(t.events() == [.walkExternalAbort(streamID: 1, access: .dataRead, stage2: true, faultClass: .input, inputAddress: 0x1010, fetchAddress: leaf)])
        #expect(t.system.bus.faults.abortsInjected == 1)
        #expect(s2.descriptor(for: 0x1000) == before)
        #expect(t.smmu.tlb.count == 0)
    }

    @Test func stage2DirtyUpdateAbortIsStage2FWalkEABT() throws {
        let (t, s2) = Self.stage2Only({ $0.map(0x1000, to: 0x2000, Self.writableClean) }, adjust: {
            $0.hardwareAccessFlag = true
            $0.hardwareDirty = true
        })
        let leaf = try #require(s2.descriptorAddress(for: 0x1000, level: 3, create: false))
        let before = s2.descriptor(for: 0x1000)
        t.system.bus.faults.injectAbort(leaf...(leaf + 7), on: .write)
        #expect(t.translate(1, 0x1010) == .translated(physicalAddress: 0x2010), "a read needs no update")
        #expect(t.translate(1, 0x1018, .dataWrite) == .aborted(.walkExternalAbort))
        #expect(t.events() == [.walkExternalAbort(streamID: 1, access: .dataWrite, stage2: true, faultClass: .input, inputAddress: 0x1018, fetchAddress: leaf)])
        #expect(s2.descriptor(for: 0x1000) == before)
    }

    @Test func stage1AccessFlagUpdateAbortIsFWalkEABTWithClassTT() throws {
        let (t, pt) = Self.stage1Only(cd: { $0.hardwareAccessFlag = true }) { $0.map(0x1000, to: 0x2000, Self.accessFlagClear) }
        let leaf = try #require(pt.descriptorAddress(for: 0x1000, level: 3, create: false))
        let before = pt.descriptor(for: 0x1000)
        t.system.bus.faults.injectAbort(leaf...(leaf + 7), on: .write)
        #expect(t.translate(1, 0x1010, .dataWrite) == .aborted(.walkExternalAbort))
        #expect(t.events() == [.walkExternalAbort(streamID: 1, access: .dataWrite, stage2: false, faultClass: .translationTable, inputAddress: 0x1010, fetchAddress: leaf)])
        #expect(pt.descriptor(for: 0x1000) == before)
    }

    @Test func stage1DirtyUpdateAbortIsFWalkEABTWithClassTT() throws {
        let (t, pt) = Self.stage1Only(cd: { $0.hardwareAccessFlag = true; $0.hardwareDirty = true }) { $0.map(0x1000, to: 0x2000, Self.writableClean) }
        let leaf = try #require(pt.descriptorAddress(for: 0x1000, level: 3, create: false))
        let before = pt.descriptor(for: 0x1000)
        t.system.bus.faults.injectAbort(leaf...(leaf + 7), on: .write)
        #expect(t.translate(1, 0x1018, .dataWrite) == .aborted(.walkExternalAbort))
        #expect(t.events() == [.walkExternalAbort(streamID: 1, access: .dataWrite, stage2: false, faultClass: .translationTable, inputAddress: 0x1018, fetchAddress: leaf)])
        #expect(pt.descriptor(for: 0x1000) == before, "AP[2] still set: the page stays clean")
    }

    @Test func stage2AccessFlagUpdateAbortForAStage1TableFetchHasClassTT() throws {
        let t = TranslationRig()
        let s2 = t.table(.stage2, inputBits: 40), s1 = t.table()
        s1.map(0x4000, to: 0x10_0000)
        s2.map(0x10_0000, to: 0x7_0000_0000)
        let tablePage = try #require(s1.descriptorAddress(for: 0x4000, level: 3, create: false)) & ~0xFFF
        Self.nestedStream(t, s1: s1, s2: s2, tablePage: { $0 == tablePage ? Self.accessFlagClear : .readWrite }, adjust: { $0.hardwareAccessFlag = true })
        let s2Leaf = try #require(s2.descriptorAddress(for: tablePage, level: 3, create: false))
        t.system.bus.faults.injectAbort(s2Leaf...(s2Leaf + 7), on: .write)
        #expect(t.translate(1, 0x4123) == .aborted(.walkExternalAbort))
        #expect(t.events() == [.walkExternalAbort(streamID: 1, access: .dataRead, stage2: true, faultClass: .translationTable, inputAddress: 0x4123, fetchAddress: s2Leaf)])
    }

    // MARK: 3. STE.S2PTW (§5.2): stage-1 walks and CD fetches to stage-2 Device memory

    /// Stage 1 maps VA 0x4000 -> IPA 0x10_0000; stage 2 maps the page holding that level-3
    /// descriptor (`l3Page`) as Device, everything else Normal.
    static func deviceTablePage(s2PTW: Bool, blockOverTablePage: Bool = false) throws -> (t: TranslationRig, descriptorIPA: UInt64, blockVA: UInt64) {
        let t = TranslationRig()
        let s2 = t.table(.stage2, inputBits: 40), s1 = t.table()
        s1.map(0x4000, to: 0x10_0000)
        s2.map(0x10_0000, to: 0x7_0000_0000)
        let descriptorIPA = try #require(s1.descriptorAddress(for: 0x4000, level: 3, create: false))
        let l3Page = descriptorIPA & ~0xFFF
        // A 2 MB block at VA 0x4000_0000 whose IPA range covers the level-3 table page, so
        // that a data access can reach (and cache) that page's stage-2 translation.
        let blockVA: UInt64 = 0x4000_0000 + (l3Page & 0x1F_FFFF)
        if blockOverTablePage { s1.map(0x4000_0000, to: l3Page & ~0x1F_FFFF, size: 0x20_0000) }
        nestedStream(t, s1: s1, s2: s2, tablePage: { $0 == l3Page ? deviceAttributes : .readWrite }, adjust: { $0.checksDeviceWalks = s2PTW })
        return (t, descriptorIPA, blockVA)
    }

    @Test func s2PTWMakesAStage1WalkToStage2DeviceMemoryAStage2FPermission() throws {
        let (t, descriptorIPA, _) = try Self.deviceTablePage(s2PTW: true)
        #expect(t.translate(1, 0x4123) == .aborted(.permission))
        #expect(t.events() == [Self.fault(.permission, 0x4123, stage2: true, faultClass: .translationTable, ipa: descriptorIPA, ttRead: true)])
        let (allowed, _, _) = try Self.deviceTablePage(s2PTW: false)
        #expect(allowed.translate(1, 0x4123) == .translated(physicalAddress: 0x7_0000_0123), "S2PTW == 0: the walk may use Device memory")
        #expect(allowed.events().isEmpty)
    }

    @Test func s2PTWAppliesToACachedStage2DeviceEntry() throws {
        let (t, descriptorIPA, blockVA) = try Self.deviceTablePage(s2PTW: true, blockOverTablePage: true)
        let tablePage = descriptorIPA & ~0xFFF
        #expect(t.translate(1, blockVA) == .translated(physicalAddress: tablePage), "a data access to Device memory is allowed and caches its stage-2 entry")
        #expect(t.translate(1, 0x4123) == .aborted(.permission))
        #expect(t.events() == [Self.fault(.permission, 0x4123, stage2: true, faultClass: .translationTable, ipa: descriptorIPA, ttRead: true)])
    }

    @Test func s2PTWMakesACDFetchFromStage2DeviceMemoryAStage2FPermissionWithClassCD() throws {
        for s2PTW in [true, false] {
            let t = TranslationRig()
            let s2 = t.table(.stage2, inputBits: 40), s1 = t.table()
            s1.map(0x4000, to: 0x10_0000)
            s2.map(0x10_0000, to: 0x7_0000_0000)
            let cds = Self.nestedStream(t, s1: s1, s2: s2, adjust: { $0.checksDeviceWalks = s2PTW })
            // Remap the CD's page (it holds nothing else) as Device at stage 2.
            let cdAddress = cds.cdAddress(for: 0)
            let tablePage = try #require(s1.descriptorAddress(for: 0x4000, level: 3, create: false)) & ~0xFFF
            try #require(cdAddress & ~0xFFF > tablePage)
            s2.map(cdAddress & ~0xFFF, to: cdAddress & ~0xFFF, Self.deviceAttributes)
            if s2PTW {
                #expect(t.translate(1, 0x4123) == .aborted(.permission))
                #expect(t.events() == [Self.fault(.permission, 0x4123, stage2: true, faultClass: .contextDescriptor, ipa: cdAddress)])
            } else {
                #expect(t.translate(1, 0x4123) == .translated(physicalAddress: 0x7_0000_0123))
                #expect(t.events().isEmpty)
            }
        }
    }

    // MARK: 4. Hierarchical attributes (VMSAv8-64 table descriptors, CD.HAD0)

    static let pxnTable: UInt64 = 1 << 59
    static let uxnTable: UInt64 = 1 << 60
    static let apTable0: UInt64 = 1 << 61

    /// Stream 1 maps 0x1000 with `attributes`, with `bits` in its level-1 table descriptor.
    static func hierarchical(_ bits: UInt64, _ attributes: MappingAttributes = .readOnly, had: Bool = false, pan: Bool = false) -> TranslationRig {
        Self.stage1Only(cd: { $0.had0 = had; $0.pan = pan }) { pt in
            pt.map(0x1000, to: 0x2000, attributes)
            pt.setTableBits(bits, for: 0x1000, level: 1)
        }.0
    }

    @Test func pxnTableForbidsPrivilegedExecutionBelowIt() {
        let t = Self.hierarchical(Self.pxnTable)
        #expect(t.translate(1, 0x1000, Self.privilegedFetch) == .aborted(.permission))
        #expect(t.events() == [Self.fault(.permission, 0x1000, access: Self.privilegedFetch)])
        #expect(t.translate(1, 0x1000, Self.fetch) == .translated(physicalAddress: 0x2000), "PXNTable leaves EL0 execution alone")
        #expect(t.translate(1, 0x1000, Self.privilegedRead) == .translated(physicalAddress: 0x2000))
        let control = Self.hierarchical(0)
        #expect(control.translate(1, 0x1000, Self.privilegedFetch) == .translated(physicalAddress: 0x2000))
        let had = Self.hierarchical(Self.pxnTable, had: true)
        #expect(had.translate(1, 0x1000, Self.privilegedFetch) == .translated(physicalAddress: 0x2000), "HAD0 disables PXNTable")
        #expect(had.events().isEmpty)
    }

    @Test func uxnTableForbidsUnprivilegedExecutionBelowIt() {
        let t = Self.hierarchical(Self.uxnTable)
        #expect(t.translate(1, 0x1000, Self.fetch) == .aborted(.permission))
        #expect(t.events() == [Self.fault(.permission, 0x1000, access: Self.fetch)])
        #expect(t.translate(1, 0x1000, Self.privilegedFetch) == .translated(physicalAddress: 0x2000), "UXNTable leaves privileged execution alone")
        #expect(t.translate(1, 0x1000) == .translated(physicalAddress: 0x2000))
        let control = Self.hierarchical(0)
        #expect(control.translate(1, 0x1000, Self.fetch) == .translated(physicalAddress: 0x2000))
        let had = Self.hierarchical(Self.uxnTable, had: true)
        #expect(had.translate(1, 0x1000, Self.fetch) == .translated(physicalAddress: 0x2000), "HAD0 disables UXNTable")
    }

    @Test func apTable0ForbidsUnprivilegedAccessBelowIt() {
        let t = Self.hierarchical(Self.apTable0, .readWrite)
        #expect(t.translate(1, 0x1000) == .aborted(.permission))
        #expect(t.translate(1, 0x1000, .dataWrite) == .aborted(.permission))
        #expect(t.events() == [Self.fault(.permission, 0x1000), Self.fault(.permission, 0x1000, access: .dataWrite)])
        #expect(t.translate(1, 0x1000, Self.privilegedRead) == .translated(physicalAddress: 0x2000))
        #expect(t.translate(1, 0x1000, AccessAttributes(read: false, privileged: true)) == .translated(physicalAddress: 0x2000))
        // The page is no longer EL0-writable, so privileged execution is no longer forbidden.
        #expect(t.translate(1, 0x1000, Self.privilegedFetch) == .translated(physicalAddress: 0x2000))
        #expect(t.events().isEmpty)
        let had = Self.hierarchical(Self.apTable0, .readWrite, had: true)
        #expect(had.translate(1, 0x1000) == .translated(physicalAddress: 0x2000), "HAD0 disables APTable")
        #expect(had.translate(1, 0x1000, Self.privilegedFetch) == .aborted(.permission), "EL0-writable pages are PXN")
    }

    @Test func apTable0MakesAPageInvisibleToPAN() {
        // PAN applies to pages EL0 can access after the hierarchical controls (Arm ARM
        // AArch64.S1DirectBasePermissions): APTable[0] removes EL0 access, so PAN does not fault.
        let t = Self.hierarchical(Self.apTable0, .readWrite, pan: true)
        #expect(t.translate(1, 0x1000, Self.privilegedRead) == .translated(physicalAddress: 0x2000))
        let control = Self.hierarchical(0, .readWrite, pan: true)
        #expect(control.translate(1, 0x1000, Self.privilegedRead) == .aborted(.permission))
    }

    // MARK: 5. Stage-2 contiguous hint (Arm ARM: a misprogrammed group may give a TLB conflict)

    @Test func misprogrammedStage2ContiguousGroupIsStage2FTLBConflict() {
        let (t, _) = Self.stage2Only { pt in
            var attributes = MappingAttributes.readWrite
            attributes.contiguous = true
            for page in UInt64(0)..<16 { pt.map(0x10000 + page * 0x1000, to: 0x40000 + page * 0x1000, attributes) }
            pt.map(0x20000, to: 0x80000, attributes)
            for page in UInt64(1)..<16 { pt.map(0x20000 + page * 0x1000, to: 0x90000 + page * 0x1000, attributes) }
        }
        #expect(t.translate(1, 0x1F010) == .translated(physicalAddress: 0x4F010), "a consistent group translates")
        #expect(t.translate(1, 0x20010) == .aborted(.tlbConflict))
        #expect(t.events() == [.tlbConflict(streamID: 1, access: .dataRead, stage2: true, inputAddress: 0x20010, ipa: 0x20010)])
    }

    @Test func misprogrammedStage2ContiguousGroupOnANestedFinalIPAIsStage2FTLBConflict() {
        let t = TranslationRig()
        let s2 = t.table(.stage2, inputBits: 40), s1 = t.table()
        s1.map(0x4000, to: 0x21000)
        var attributes = MappingAttributes.readWrite
        attributes.contiguous = true
        s2.map(0x20000, to: 0x80000, attributes)
        for page in UInt64(1)..<16 { s2.map(0x20000 + page * 0x1000, to: 0x90000 + page * 0x1000, attributes) }
        Self.nestedStream(t, s1: s1, s2: s2)
        #expect(t.translate(1, 0x4008, .dataWrite) == .aborted(.tlbConflict))
        #expect(t.events() == [.tlbConflict(streamID: 1, access: .dataWrite, stage2: true, inputAddress: 0x4008, ipa: 0x21008)])
    }

    // MARK: 6. PAN on a TLB hit (CD.PAN)

    @Test func panFaultsAPrivilegedDataAccessOnACachedUserPage() {
        let (t, pt) = Self.stage1Only(cd: { $0.pan = true }) { $0.map(0x1000, to: 0x2000, .readWrite) }
        #expect(t.translate(1, 0x1000) == .translated(physicalAddress: 0x2000), "an EL0 read walks and caches the entry")
        // Remove the mapping without invalidation: any new walk would now be F_TRANSLATION,
        // so the outcomes below come from the cached entry.
        pt.unmap(0x1000)
        #expect(t.translate(1, 0x1008) == .translated(physicalAddress: 0x2008), "the entry is cached")
        #expect(t.translate(1, 0x1010, Self.privilegedRead) == .aborted(.permission))
        #expect(t.translate(1, 0x1018, AccessAttributes(read: false, privileged: true)) == .aborted(.permission))
        #expect(t.events() == [
            Self.fault(.permission, 0x1010, access: Self.privilegedRead),
            Self.fault(.permission, 0x1018, access: AccessAttributes(read: false, privileged: true)),
        ])
    }

    // MARK: 7. STE.INSTCFG (§5.2, §13.1.2): reads only; writes are always Data

    static func instCfgStream(_ instCfg: UInt8) -> TranslationRig {
        var attributes = MappingAttributes.readWrite
        attributes.unprivilegedExecuteNever = true
        return Self.stage1Only(ste: { $0.instCfg = instCfg }) { $0.map(0x1000, to: 0x2000, attributes) }.0
    }

    @Test func instCfgInstructionMakesDataReadsInstructionFetches() {
        let t = Self.instCfgStream(0b11)
        #expect(t.translate(1, 0x1000) == .aborted(.permission), "a data read of a UXN page is checked as a fetch")
        #expect(t.events() == [Self.fault(.permission, 0x1000, access: Self.fetch)], "InD is the post-override value")
        #expect(t.translate(1, 0x1008, .dataWrite) == .translated(physicalAddress: 0x2008), "writes stay Data")
        #expect(t.translate(1, 0x1010, AccessAttributes(read: false, instruction: true)) == .translated(physicalAddress: 0x2010))
        #expect(t.translate(1, 0x1018) == .aborted(.permission), "also with the entry cached by the writes")
        #expect(t.events() == [Self.fault(.permission, 0x1018, access: Self.fetch)])
        let incoming = Self.instCfgStream(0b00)
        #expect(incoming.translate(1, 0x1000) == .translated(physicalAddress: 0x2000))
        #expect(incoming.translate(1, 0x1000, Self.fetch) == .aborted(.permission))
    }

    @Test func instCfgDataMakesInstructionFetchesDataReads() {
        let t = Self.instCfgStream(0b10)
        #expect(t.translate(1, 0x1000, Self.fetch) == .translated(physicalAddress: 0x2000), "a fetch of a UXN page is checked as data")
        #expect(t.translate(1, 0x1008, Self.fetch) == .translated(physicalAddress: 0x2008), "also on a TLB hit")
        #expect(t.events().isEmpty)
        let reserved = Self.instCfgStream(0b01)
        #expect(reserved.translate(1, 0x1000, Self.fetch) == .aborted(.permission), "0b01 is reserved and behaves as 0b00")
    }

    @Test func instCfgOverridesAStage2ExecuteNeverCheck() {
        var attributes = MappingAttributes.readWrite
        attributes.stage2ExecuteNever = 0b10 // XN for both ELs
        let t = TranslationRig()
        let s2 = t.table(.stage2, inputBits: 40)
        s2.map(0x1000, to: 0x2000, attributes)
        for (sid, instCfg) in [(UInt32(1), UInt8(0b10)), (2, 0b11)] {
            t.stage2Stream(sid, table: s2, vmid: UInt16(sid)) { $0.instCfg = instCfg }
        }
        #expect(t.translate(1, 0x1000, Self.fetch) == .translated(physicalAddress: 0x2000))
        #expect(t.translate(2, 0x1000) == .aborted(.permission))
        #expect(t.events() == [Self.fault(.permission, 0x1000, access: Self.fetch, stage2: true, ipa: 0x1000, sid: 2)])
    }
}
