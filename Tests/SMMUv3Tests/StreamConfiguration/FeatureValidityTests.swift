import Testing
import Platform
import SMMUv3
import SMMUv3Host
import Scenario

/// STE and CD fields that are ILLEGAL (or ignored) depending on what the SMMU implements
/// (§5.2, §5.4, §5.5 and the SteIllegal()/CdIllegal() pseudocode), each checked both with and
/// without the feature.
@Suite struct FeatureValidityTests {
    /// Stream 1 is a stage-1 stream mapping VA 0x4000 to 0x9000 (through `cd` and `ste`
    /// adjustments) on an SMMU configured by `configure`; returns what a read of 0x4008 gives.
    static func stage1Outcome(_ configure: @escaping (inout SMMUConfiguration) -> Void, cd adjustCD: (inout CDConfig) -> Void = { _ in }, ste adjustSTE: (inout STEConfig) -> Void = { _ in }, granule: Int = 12) -> TransactionOutcome {
        let t = TranslationRig(configure)
        let pt = t.table(granule: granule)
        pt.map(0x4000 & ~UInt64((1 << granule) - 1), to: 0x8000 & ~UInt64((1 << granule) - 1) + (granule == 12 ? 0x1000 : 0))
        var cd = CDConfig(table0: pt, asid: 1)
        cd.tg0 = granule == 12 ? 0b00 : (granule == 14 ? 0b10 : 0b01)
        adjustCD(&cd)
        t.stage1Stream(1, cd: cd, adjust: adjustSTE)
        return t.translate(1, 0x4008)
    }

    /// Stream 2 is a stage-2 stream mapping IPA 0x4000 on an SMMU configured by `configure`.
    static func stage2Outcome(_ configure: @escaping (inout SMMUConfiguration) -> Void, ste adjust: @escaping (inout STEConfig) -> Void = { _ in }, granule: Int = 12) -> TransactionOutcome {
        let t = TranslationRig(configure)
        let s2 = t.table(.stage2, granule: granule, inputBits: 40)
        s2.map(0, to: 0x20_0000)
        t.stage2Stream(2, table: s2, vmid: 1, adjust: adjust)
        return t.translate(2, 0x8)
    }

    static let translated = TransactionOutcome.translated(physicalAddress: 0x9008)

    // MARK: Stages (§5.2 Config)

    @Test func configSelectingStage1IsIllegalWithoutStage1() {
        let noStage1: (inout SMMUConfiguration) -> Void = { $0.stage1 = false; $0.hypervisor = false }
        #expect(Self.stage1Outcome(noStage1) == .aborted(.badSTE))
        #expect(Self.stage1Outcome({ _ in }) == Self.translated)
        let t = TranslationRig(noStage1)
        var ste = STEConfig(config: .nested)
        ste.stage2 = STEConfig.Stage2(t.table(.stage2, inputBits: 40))
        t.streams.set(3, ste)
        #expect(t.translate(3, 0x1000) == .aborted(.badSTE), "nested needs stage 1 too")
        #expect(Self.stage2Outcome(noStage1) == .translated(physicalAddress: 0x20_0008), "stage 2 alone is fine")
    }

    @Test func configSelectingStage2IsIllegalWithoutStage2() {
        let noStage2: (inout SMMUConfiguration) -> Void = { $0.stage2 = false; $0.hypervisor = false }
        #expect(Self.stage2Outcome(noStage2) == .aborted(.badSTE))
        #expect(Self.stage2Outcome({ _ in }) == .translated(physicalAddress: 0x20_0008))
        #expect(Self.stage1Outcome(noStage2) == Self.translated, "stage 1 alone is fine")
    }

    // MARK: StreamWorld (§5.2 STRW)

    @Test func strwEL2SelectsTheEL2RegimeOnlyWithHyp() {
        // With IDR0.Hyp the stream is EL2: NH invalidations do not reach its entries.
        for hyp in [true, false] {
            let t = TranslationRig { if !hyp { $0.stage2 = false; $0.hypervisor = false } }
            let pt = t.table()
            pt.map(0x4000, to: 0x9000)
            t.stage1Stream(1, cd: CDConfig(table0: pt, asid: 1)) { $0.strw = 0b10 }
            #expect(t.translate(1, 0x4008) == Self.translated, "STRW 0b10 is legal (hyp \(hyp))")
            pt.map(0x4000, to: 0xA000)
            t.invalidate([.tlbiNHAll(vmid: 0)])
            let expected: UInt64 = hyp ? 0x9008 : 0xA008
            #expect(t.translate(1, 0x4008) == .translated(physicalAddress: expected), "hyp \(hyp): NH_ALL \(hyp ? "misses EL2 entries" : "reaches the EL1 entry")")
        }
        #expect(Self.stage1Outcome({ $0.stage2 = false; $0.hypervisor = false }, ste: { $0.strw = 0b01 }) == .aborted(.badSTE), "0bx1 stays ILLEGAL")
    }

    // MARK: ATS (§5.2 EATS)

    @Test func eatsIsIgnoredWithoutATS() {
        let noATS: (inout SMMUConfiguration) -> Void = { $0.ats = false; $0.pri = false }
        #expect(Self.stage1Outcome(noATS, ste: { $0.eats = 0b10 }) == Self.translated)
        #expect(Self.stage1Outcome({ _ in }, ste: { $0.eats = 0b10 }) == .aborted(.badSTE))
    }

    // MARK: Stall model (§5.5)

    @Test func s1StallDIsIllegalUnlessStallsAndTerminationAreBothSupported() {
        #expect(Self.stage1Outcome({ $0.stallModel = .terminateOnly }, ste: { $0.s1StallDisable = true }) == .aborted(.badSTE))
        #expect(Self.stage1Outcome({ _ in }, ste: { $0.s1StallDisable = true }) == Self.translated)
    }

    @Test func s2SMustMatchTheStallModel() {
        #expect(Self.stage2Outcome({ $0.stallModel = .terminateOnly }, ste: { $0.stage2?.stall = true }) == .aborted(.badSTE))
        #expect(Self.stage2Outcome({ $0.stallModel = .stallForced; $0.ats = false; $0.pri = false }, ste: { $0.stage2?.stall = false }) == .aborted(.badSTE))
        #expect(Self.stage2Outcome({ $0.stallModel = .stallForced; $0.ats = false; $0.pri = false }, ste: { $0.stage2?.stall = true }) == .translated(physicalAddress: 0x20_0008))
        #expect(Self.stage2Outcome({ _ in }, ste: { $0.stage2?.stall = true }) == .translated(physicalAddress: 0x20_0008))
    }

    @Test func cdSMustMatchTheStallModel() {
        #expect(Self.stage1Outcome({ $0.stallModel = .terminateOnly }, cd: { $0.stall = true }) == .aborted(.badCD))
        #expect(Self.stage1Outcome({ $0.stallModel = .stallForced; $0.ats = false; $0.pri = false }, cd: { $0.stall = false }) == .aborted(.badCD))
        #expect(Self.stage1Outcome({ $0.stallModel = .stallForced; $0.ats = false; $0.pri = false }, cd: { $0.stall = true }) == Self.translated)
        #expect(Self.stage1Outcome({ _ in }, cd: { $0.stall = true }) == Self.translated)
    }

    @Test func cdAMustBeSetWhenTerminationAlwaysAborts() {
        #expect(Self.stage1Outcome({ $0.terminateAlwaysAborts = true }, cd: { $0.abort = false }) == .aborted(.badCD))
        #expect(Self.stage1Outcome({ $0.terminateAlwaysAborts = true }, cd: { $0.abort = true }) == Self.translated)
        #expect(Self.stage1Outcome({ _ in }, cd: { $0.abort = false }) == Self.translated)
    }

    // MARK: Hardware updates (§3.13, IDR0.HTTU)

    @Test(arguments: [SMMUConfiguration.HardwareUpdate.none, .accessFlag, .accessFlagAndDirty])
    func hardwareUpdateFieldsNeedTheirHTTULevel(_ httu: SMMUConfiguration.HardwareUpdate) {
        let ha = Self.stage1Outcome({ $0.hardwareUpdate = httu }, cd: { $0.hardwareAccessFlag = true })
        let hd = Self.stage1Outcome({ $0.hardwareUpdate = httu }, cd: { $0.hardwareAccessFlag = true; $0.hardwareDirty = true })
        let s2ha = Self.stage2Outcome({ $0.hardwareUpdate = httu }, ste: { $0.stage2?.hardwareAccessFlag = true })
        let s2hd = Self.stage2Outcome({ $0.hardwareUpdate = httu }, ste: { $0.stage2?.hardwareAccessFlag = true; $0.stage2?.hardwareDirty = true })
        #expect(ha == (httu == .none ? .aborted(.badCD) : Self.translated))
        #expect(hd == (httu == .accessFlagAndDirty ? Self.translated : .aborted(.badCD)))
        #expect(s2ha == (httu == .none ? .aborted(.badSTE) : .translated(physicalAddress: 0x20_0008)))
        #expect(s2hd == (httu == .accessFlagAndDirty ? .translated(physicalAddress: 0x20_0008) : .aborted(.badSTE)))
    }

    // MARK: Granules (IDR5.GRAN*)

    @Test(arguments: [12, 14, 16])
    func aGranuleIsUsableOnlyWhenAdvertised(_ granule: Int) {
        let without: (inout SMMUConfiguration) -> Void = { config in
            switch granule {
            case 12: config.granule4K = false
            case 14: config.granule16K = false
            default: config.granule64K = false; config.outputAddressSize = .bits48
            }
        }
        let expectedStage1 = TransactionOutcome.translated(physicalAddress: granule == 12 ? 0x9008 : 0x4008 + (0x8000 & ~UInt64((1 << granule) - 1)) - (0x4000 & ~UInt64((1 << granule) - 1)))
        #expect(Self.stage1Outcome(without, granule: granule) == .aborted(.badCD), "TG0 for a \(1 << (granule - 10)) KB granule without it")
        #expect(Self.stage1Outcome({ _ in }, granule: granule) == expectedStage1)
        #expect(Self.stage2Outcome(without, granule: granule) == .aborted(.badSTE), "S2TG for a \(1 << (granule - 10)) KB granule without it")
        #expect(Self.stage2Outcome({ _ in }, granule: granule) == .translated(physicalAddress: 0x20_0008))
    }

    // MARK: ASID and VMID width

    @Test func wideASIDsAndVMIDsNeedTheir16BitSupport() {
        #expect(Self.stage1Outcome({ $0.asid16 = false }, cd: { $0.asid = 0x100 }) == .aborted(.badCD))
        #expect(Self.stage1Outcome({ _ in }, cd: { $0.asid = 0x100 }) == Self.translated)
        #expect(Self.stage2Outcome({ $0.vmid16 = false }, ste: { $0.s2VMID = 0x100 }) == .aborted(.badSTE))
        #expect(Self.stage2Outcome({ _ in }, ste: { $0.s2VMID = 0x100 }) == .translated(physicalAddress: 0x20_0008))
        #expect(Self.stage1Outcome({ $0.vmid16 = false }, ste: { $0.s2VMID = 0x100; $0.strw = 0b10 }) == Self.translated, "S2VMID is IGNORED for an EL2 stream")
    }

    // MARK: Substreams (IDR0.CD2L, IDR1.SSIDSIZE)

    @Test func twoLevelCDTablesNeedCD2L() {
        for cd2l in [true, false] {
            let t = TranslationRig { $0.twoLevelContextDescriptorTable = cd2l }
            let pt = t.table()
            pt.map(0x4000, to: 0x9000)
            t.stage1Stream(1, cd: CDConfig(table0: pt, asid: 1), cdMax: 8, format: .twoLevel4K, ssids: [0, 1])
            #expect(t.translate(1, 0x4008, ssid: 1) == (cd2l ? Self.translated : .aborted(.badSTE)))
        }
    }

    @Test func s1CDMaxMayNotExceedSSIDSIZE() {
        #expect(Self.stage1Outcome({ $0.substreamIDBits = 4 }, ste: { $0.s1CDMax = 5; $0.s1DSS = 0b10 }) == .aborted(.badSTE))
        #expect(Self.stage1Outcome({ $0.substreamIDBits = 4 }, ste: { $0.s1CDMax = 4; $0.s1DSS = 0b10 }) == Self.translated)
    }

    // MARK: Virtual address size (IDR5.VAX)

    @Test func t0szOf12NeedsFiftyTwoBitVAs() {
        #expect(Self.stage1Outcome({ $0.largeVirtualAddresses = false }, cd: { $0.t0sz = 12 }, granule: 16) == .aborted(.badCD))
        #expect(Self.stage1Outcome({ _ in }, cd: { $0.t0sz = 12 }, granule: 16) == .translated(physicalAddress: 0x4008))
    }

    // MARK: S2FWB (IDR3.FWB, mandatory in SMMUv3.2)

    @Test func s2FWBChangesWhichStage2MemoryTypesAreDevice() throws {
        // MemAttr 0b1001 is Normal memory in the ordinary encoding, Device with S2FWB (MemAttr[2]
        // == 0); S2PTW makes a CD fetch from Device memory a stage-2 Permission fault.
        for forced in [false, true] {
            let t = TranslationRig()
            let s2 = t.table(.stage2, inputBits: 40), s1 = t.table()
            s1.map(0x4000, to: 0x10_0000)
            s2.map(0x10_0000, to: 0x7_0000_0000)
            let cds = Stage2AndHierarchyTests.nestedStream(t, s1: s1, s2: s2, adjust: { $0.checksDeviceWalks = true; $0.forcedWriteBack = forced })
            let cdPage = cds.cdAddress(for: 0) & ~0xFFF
            var attributes = MappingAttributes.readWrite
            attributes.stage2MemoryAttributes = 0b1001
            s2.map(cdPage, to: cdPage, attributes)
            #expect(t.translate(1, 0x4123) == (forced ? .aborted(.permission) : .translated(physicalAddress: 0x7_0000_0123)), "S2FWB \(forced)")
        }
    }
}

/// Consistency rules between ID register fields (§6.3.1–§6.3.8): SMMUConfiguration.validate()
/// rejects a contradiction, or the dependent field is derived.
@Suite struct IdentificationConsistencyTests {
    @Test func fiftyTwoBitOutputAddressesNeedThe64KBGranule() {
        var configuration = SMMUConfiguration.default
        configuration.outputAddressSize = .bits52
        configuration.granule64K = false
        #expect(throws: SMMUConfiguration.Invalid.self) { try configuration.validate() }
        configuration.granule64K = true
        #expect(throws: Never.self) { try configuration.validate() }
    }

    @Test func fiftyTwoBitVirtualAddressesAreReportedOnlyWithThe64KBGranule() {
        var configuration = SMMUConfiguration.default
        #expect(Reg.IDR5.vax.extract(UInt64(configuration.idr5)) == 0b01)
        configuration.granule64K = false
        #expect(Reg.IDR5.vax.extract(UInt64(configuration.idr5)) == 0b00)
    }

    @Test func splitStageATSFlagIsRES0WithoutATSOrBothStages() {
        var configuration = SMMUConfiguration.default
        #expect(Reg.IDR0.ns1ats.isSet(UInt64(configuration.idr0)))
        configuration.stage2 = false
        configuration.hypervisor = false
        #expect(!Reg.IDR0.ns1ats.isSet(UInt64(configuration.idr0)))
        configuration = .default
        configuration.ats = false
        configuration.pri = false
        #expect(!Reg.IDR0.ns1ats.isSet(UInt64(configuration.idr0)))
    }

    @Test func ppsIsRES0WithoutPRIOrSubstreams() {
        var configuration = SMMUConfiguration.default
        #expect(Reg.IDR3.pps.isSet(UInt64(configuration.idr3)))
        configuration.substreamIDBits = 0
        #expect(!Reg.IDR3.pps.isSet(UInt64(configuration.idr3)))
        configuration = .default
        configuration.pri = false
        #expect(!Reg.IDR3.pps.isSet(UInt64(configuration.idr3)))
        // Without stage 1 there are no SubstreamIDs either.
        configuration = .default
        configuration.stage1 = false
        configuration.hypervisor = false
        #expect(!Reg.IDR3.pps.isSet(UInt64(configuration.idr3)))
    }

    @Test func smmuV32MandatoryFeaturesAreReported() {
        let idr3 = UInt64(SMMUConfiguration.default.idr3)
        #expect(Reg.IDR3.ril.isSet(idr3))
        #expect(Reg.IDR3.fwb.isSet(idr3))
        #expect(Reg.IDR3.bbml.extract(idr3) == 0b01)
        #expect(Reg.IDR3.had.isSet(idr3) && Reg.IDR3.xnx.isSet(idr3))
        #expect(SMMUConfiguration.default.aidr == 0x02)
    }

    @Test(arguments: ["no stage", "Hyp without both stages", "both stages without Hyp", "PRI without ATS", "forced stalls on PCIe",
                      "SIDSIZE >= 7 without 2-level tables", "SSIDSIZE > 20", "queue size > 19", "no granule",
                      "52-bit OAS without 64 KB granules", "cache capacity above 2^30", "negative diagnostics capacity"])
    func contradictoryIdentificationIsRejected(_ rule: String) {
        var c = SMMUConfiguration.default
        // Each case is rejected by its own rule.
        let broken: SMMUConfiguration.Invalid.Rule
        switch rule {
        case "no stage": c.stage1 = false; c.stage2 = false; c.hypervisor = false; broken = .noTranslationStage
        case "Hyp without both stages": c.stage2 = false; broken = .hypervisorWithoutBothStages
        case "both stages without Hyp": c.hypervisor = false; broken = .bothStagesWithoutHypervisor
        case "PRI without ATS": c.ats = false; broken = .priWithoutATS
        case "forced stalls on PCIe": c.stallModel = .stallForced; broken = .forcedStallsWithATS
        case "SIDSIZE >= 7 without 2-level tables": c.twoLevelStreamTable = false; broken = .twoLevelStreamTableRequired
        case "SSIDSIZE > 20": c.substreamIDBits = 21; broken = .substreamIDBitsOutOfRange
        case "queue size > 19": c.eventQueueMaxLog2 = 20; broken = .queueSizeOutOfRange(.event)
        case "52-bit OAS without 64 KB granules": c.outputAddressSize = .bits52; c.granule64K = false; broken = .outputAddressSize52WithoutGranule64K
        case "cache capacity above 2^30": c.tlbCapacity = (1 << 30) + 1; broken = .cacheCapacityOutOfRange
        case "negative diagnostics capacity": c.diagnosticsCapacity = -1; broken = .negativeDiagnosticsCapacity
        default: c.granule4K = false; c.granule16K = false; c.granule64K = false; broken = .noTranslationGranule
        }
        let error = #expect(throws: SMMUConfiguration.Invalid.self, "\(rule)") { try c.validate() }
        #expect(error?.rule == broken, "\(rule): \(String(describing: error))")
    }
}
