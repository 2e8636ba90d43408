import Testing
import Platform
import SMMUv3

@Suite struct RegisterResetTests {
    /// Reset values (§6.3): ID registers from the default configuration, worked out by hand
    /// from the field positions (IDR3 = BBML 0x800 | RIL 0x400 | FWB 0x100 | PPS 0x20 | XNX 0x10 |
    /// HAD 0x4); everything
    /// else 0, GBPA = configured reset (0x1000).
    static let expected: [SMMURegister: UInt64] = [
        .idr0: 0x084D_7E9B, .idr1: 0x0E73_9D10, .idr2: 0, .idr3: 0x0000_0D34, .idr4: 0, .idr5: 0x0100_0475,
        .iidr: 0x5A30_0000, .aidr: 0x02, .gbpa: 0x0000_1000,
    ]

    @Test(arguments: SMMURegister.allCases)
    func registerHasItsResetValue(_ register: SMMURegister) {
        let rig = Rig()
        let value = register.is64Bit ? rig.read64(register) : UInt64(rig.read(register))
        #expect(value == RegisterResetTests.expected[register, default: 0], "\(register.name)")
    }

    @Test func identificationBlockHasTheComponentIDs() {
        let rig = Rig { $0.productID = 0x483; $0.implementer = 0x43B; $0.variant = 2; $0.revision = 1 }
        let words = (0..<12).map { rig.bus.read32(at: Rig.smmuBase + 0xFD0 + UInt64($0) * 4) }
        // PIDR4..7, PIDR0..3, CIDR0..3.
        #expect(words == [0x4, 0, 0, 0, 0x83, 0xB4, 0x2B, 0x10, 0x0D, 0xF0, 0x05, 0xB1])
        #expect(rig.read(.iidr) == 0x4832_143B)
    }

    @Test func stageOneOnlySMMUReportsNoStage2Features() {
        let rig = Rig { $0.stage2 = false; $0.hypervisor = false }
        let idr0 = rig.read(.idr0)
        #expect(idr0 & 0b11 == 0b10, "S1P=1, S2P=0")
        #expect(idr0 & (1 << 9) == 0, "Hyp")
        #expect(idr0 & (1 << 18) == 0, "VMID16")
    }

    @Test func smmuWithoutPRIOrStallsReportsNeither() {
        let rig = Rig { $0.pri = false; $0.stallModel = .terminateOnly }
        #expect(rig.read(.idr0) & (1 << 16) == 0)
        #expect((rig.read(.idr0) >> 24) & 3 == 1)
        #expect((rig.read(.idr1) >> 11) & 0x1F == 0, "PRIQS")
        #expect(rig.read(.idr5) >> 16 == 0, "STALL_MAX")
        #expect(rig.read(.idr3) & (1 << 5) == 0, "PPS")
    }

    @Test func queueSizesAndAddressSizesComeFromTheConfiguration() {
        let rig = Rig {
            $0.commandQueueMaxLog2 = 8
            $0.eventQueueMaxLog2 = 5
            $0.priQueueMaxLog2 = 3
            $0.streamIDBits = 6
            $0.twoLevelStreamTable = false
            $0.substreamIDBits = 0
            $0.outputAddressSize = .bits40
            $0.granule16K = false
        }
        let idr1 = rig.read(.idr1)
        #expect((idr1 >> 21) & 0x1F == 8)
        #expect((idr1 >> 16) & 0x1F == 5)
        #expect((idr1 >> 11) & 0x1F == 3)
        #expect((idr1 >> 6) & 0x1F == 0)
        #expect(idr1 & 0x3F == 6)
        #expect((rig.read(.idr0) >> 27) & 3 == 0, "ST_LEVEL linear only")
        #expect(rig.read(.idr5) & 0x77 == 0x52, "OAS=40 bits, 4K and 64K granules")
    }

    @Test func invalidConfigurationsAreRejected() {
        var configuration = SMMUConfiguration.default
        configuration.ats = false
        #expect(throws: SMMUConfiguration.Invalid.self) { try configuration.validate() }
        configuration = .default
        configuration.twoLevelStreamTable = false
        #expect(throws: SMMUConfiguration.Invalid.self) { try configuration.validate() }
        configuration = .default
        configuration.stallModel = .stallForced
        #expect(throws: SMMUConfiguration.Invalid.self) { try configuration.validate() }
        #expect(throws: SMMU.CreationError.self) { try SMMU(bus: Bus(), base: 0x1234) }
    }
}

@Suite struct RegisterAccessTests {
    @Test(arguments: [SMMURegister.idr0, .idr1, .idr5, .iidr, .aidr, .cr0Ack, .statusr, .irqCtrlAck, .gerror])
    func readOnlyRegistersIgnoreWrites(_ register: SMMURegister) {
        let rig = Rig()
        let before = rig.read(register)
        rig.write(register, 0xFFFF_FFFF)
        #expect(rig.read(register) == before)
        #expect(rig.smmu.diagnostics.last?.kind == .readOnlyWriteIgnored(register))
    }

    @Test(arguments: [UInt64(0x30), 0x100, 0x180, 0x200, 0xE00, 0xEFC, 0x4000, 0x8000, 0x1_0000, 0x1_0050, 0x1_0FD0, 0x1_FFFC])
    func reservedSpaceReadsZeroAndIgnoresWrites(_ offset: UInt64) {
        let rig = Rig()
        rig.bus.write32(0xFFFF_FFFF, at: Rig.smmuBase + offset)
        #expect(rig.bus.read32(at: Rig.smmuBase + offset) == 0)
        rig.bus.write64(.max, at: Rig.smmuBase + (offset & ~7))
        #expect(rig.bus.read64(at: Rig.smmuBase + (offset & ~7)) == 0)
    }

    @Test func sixtyFourBitRegisterTakesTwoThirtyTwoBitHalves() {
        let rig = Rig()
        rig.write(.strtabBase, 0x8765_4321)
        rig.bus.write32(0x4000_00AB, at: Rig.smmuBase + 0x84)
        // RA[62] and ADDR[55:6] are kept; bits [5:0] and [61:56] are RES0.
        #expect(rig.read64(.strtabBase) == 0x4000_00AB_8765_4300)
        #expect(rig.bus.read32(at: Rig.smmuBase + 0x84) == 0x4000_00AB)
        #expect(rig.read(.strtabBase) == 0x8765_4300)
    }

    @Test func sixtyFourBitAccessToARegisterPairIsTwoThirtyTwoBitAccesses() {
        let rig = Rig()
        rig.bus.write64(0x0000_0003_0000_0005, at: Rig.smmuBase + 0x98)
        #expect(rig.read(.cmdqProd) == 5)
        #expect(rig.read(.cmdqCons) == 1, "CMDQ_CONS keeps only index and wrap (LOG2SIZE 0: the wrap bit)")
        rig.write64(.cmdqBase, 0x4010_0000 | 4)
        rig.bus.write64(0x0000_0003_0000_0005, at: Rig.smmuBase + 0x98)
        #expect(rig.bus.read64(at: Rig.smmuBase + 0x98) == 0x0000_0003_0000_0005)
    }

    @Test(arguments: [1, 2])
    func narrowAccessesAreRAZWI(_ size: Int) {
        let rig = Rig()
        let address = Rig.smmuBase + SMMURegister.cmdqProd.offset
        if size == 1 { rig.bus.write8(0xFF, at: address) } else { rig.bus.write16(0xFFFF, at: address) }
        #expect(rig.read(.cmdqProd) == 0)
        let value = size == 1 ? UInt64(rig.bus.read8(at: Rig.smmuBase)) : UInt64(rig.bus.read16(at: Rig.smmuBase))
        #expect(value == 0, "IDR0 is not visible through a narrow read")
        #expect(rig.smmu.diagnostics.count == 2)
        #expect(rig.smmu.diagnostics.allSatisfy { if case .illegalAccess(_, size) = $0.kind { true } else { false } })
    }

    @Test func unalignedAccessesAreRAZWI() {
        let rig = Rig()
        #expect(rig.bus.read32(at: Rig.smmuBase + 2) == 0)
        rig.bus.write64(.max, at: Rig.smmuBase + 0x84)
        #expect(rig.read64(.strtabBase) == 0)
        #expect(rig.smmu.diagnostics.count == 2)
    }

    @Test func pageZeroAliasesArePlainReservedByDefault() {
        let rig = Rig()
        rig.write64(.eventqBase, 0x4020_0000 | 3)
        rig.bus.write32(5, at: Rig.smmuBase + 0xA8)
        #expect(rig.read(.eventqProd) == 0)
        #expect(rig.bus.read32(at: Rig.smmuBase + 0xA8) == 0)
    }

    @Test func pageZeroAliasesReachPageOneWhenConfigured() {
        let rig = Rig { $0.page0AliasesPage1Registers = true }
        rig.write64(.eventqBase, 0x4020_0000 | 3)
        rig.write64(.priqBase, 0x4030_0000 | 3)
        rig.bus.write32(5, at: Rig.smmuBase + 0xA8)
        rig.bus.write32(3, at: Rig.smmuBase + 0xCC)
        #expect(rig.read(.eventqProd) == 5)
        #expect(rig.read(.priqCons) == 3)
        #expect(rig.bus.read32(at: Rig.smmuBase + 0xA8) == 5)
    }

    @Test func controlRegistersKeepOnlyImplementedFields() {
        let rig = Rig()
        rig.write(.cr1, 0xFFFF_FFFF)
        #expect(rig.read(.cr1) == 0xFFF)
        rig.write(.cr2, 0xFFFF_FFFF)
        #expect(rig.read(.cr2) == 0b011, "E2H (Hyp) and RECINVSID; PTM needs BTM, REC_CFG_ATS needs ATSRECERR")
        rig.write(.strtabBaseCfg, 0xFFFF_FFFF)
        #expect(rig.read(.strtabBaseCfg) == 0x0003_07FF)
        let noHyp = Rig { $0.stage2 = false; $0.hypervisor = false }
        noHyp.write(.cr2, 0xF)
        #expect(noHyp.read(.cr2) == 0b010)
    }

    @Test func queueBaseAddressesAreTruncatedToOAS() {
        let rig = Rig { $0.outputAddressSize = .bits40 }
        rig.write64(.cmdqBase, 0xFFFF_FFFF_FFFF_FFFF)
        // RA[62] | ADDR[39:5] | LOG2SIZE[4:0].
        #expect(rig.read64(.cmdqBase) == 0x4000_00FF_FFFF_FFFF)
        rig.write64(.eventqIrqCfg0, 0xFFFF_FFFF_FFFF_FFFF)
        #expect(rig.read64(.eventqIrqCfg0) == 0x0000_00FF_FFFF_FFFC)
    }

    @Test func msiRegistersAreReservedWithoutMSISupport() {
        let rig = Rig { $0.msi = false }
        rig.write64(.gerrorIrqCfg0, 0x1000)
        rig.write(.eventqIrqCfg1, 5)
        rig.write(.priqIrqCfg2, 0x8000_0001)
        #expect(rig.read64(.gerrorIrqCfg0) == 0)
        #expect(rig.read(.eventqIrqCfg1) == 0)
        #expect(rig.read(.priqIrqCfg2) == 0x8000_0000, "LO works without MSIs (§6.3.36)")
    }
}
