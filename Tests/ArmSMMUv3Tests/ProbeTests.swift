import Testing
import Platform
import Kernel
import SMMUv3
import IOMMU
import ArmSMMUv3
import Scenario

/// arm_smmu_device_probe against the model: the state it leaves, the order of its register
/// writes, and unwinding when an allocation fails.
@Suite struct ProbeTests {
    @Test func probeAndResetLeaveEveryRegisterAndQueueAsLinuxExpects() throws {
        let rig = try DriverRig()
        #expect(rig.probe() == 0)
        let smmu = try #require(rig.driver)
        let model = rig.model
        #expect(model.peek(.cr0) == CR0_SMMUEN | CR0_ATSCHK | CR0_EVTQEN | CR0_PRIQEN | CR0_CMDQEN)
        #expect(model.peek(.cr0Ack) == model.peek(.cr0))
        #expect(model.peek(.cr1) == 0xD75, "tables and queues inner-shareable, write-back")
        #expect(model.peek(.cr2) == CR2_RECINVSID | CR2_E2H, "PTM written, but RES0 without IDR0.BTM (§6.3.12)")
        #expect(model.peek(.irqCtrl) == IRQ_CTRL_EVTQ_IRQEN | IRQ_CTRL_PRIQ_IRQEN | IRQ_CTRL_GERROR_IRQEN)
        #expect(model.peek(.irqCtrlAck) == model.peek(.irqCtrl))
        #expect(model.peek(.strtabBase) == smmu.strtab_cfg.strtab_base && smmu.strtab_cfg.strtab_base & STRTAB_BASE_RA != 0)
        #expect(model.peek(.strtabBaseCfg) == FIELD_PREP(STRTAB_BASE_CFG_FMT, STRTAB_BASE_CFG_FMT_2LVL) | FIELD_PREP(STRTAB_BASE_CFG_SPLIT, 8) | FIELD_PREP(STRTAB_BASE_CFG_LOG2SIZE, 16))
        #expect(model.peek(.cmdqBase) == smmu.cmdq.q.q_base)
        #expect(model.peek(.eventqBase) == smmu.evtq.q.q_base && model.peek(.priqBase) == smmu.priq.q.q_base)
        // Every command the reset issued was consumed, and the shadow indices agree.
        #expect(model.peek(.cmdqCons) == model.peek(.cmdqProd))
        #expect(UInt64(smmu.cmdq.q.prod) == model.peek(.cmdqProd))
        #expect(model.peek(.eventqProd) == 0 && model.peek(.eventqCons) == 0)
        #expect(model.peek(.gerror) == model.peek(.gerrorn), "no global error")
        // MSIs: each source's doorbell, payload and Device-nGnRE attributes.
        #expect(smmu.evtq.q.irq != 0 && smmu.gerr_irq != 0 && smmu.priq.q.irq != 0)
        #expect(model.peek(.eventqIrqCfg0) == 0x0800_0040 && model.peek(.eventqIrqCfg2) == ARM_SMMU_MEMATTR_DEVICE_nGnRE)
        #expect(model.peek(.eventqIrqCfg1) == UInt64(smmu.evtq.q.irq) && model.peek(.gerrorIrqCfg1) == UInt64(smmu.gerr_irq))
        // The level-1 stream table is all invalid: L2 tables come with devices.
        let strtab = try #require(smmu.strtab_cfg.strtab)
        #expect((0..<Int(smmu.strtab_cfg.num_l1_ents)).allSatisfy { strtab[$0] == 0 })
        #expect(rig.messages(atMost: .warning).isEmpty, "\(rig.messages())")
    }

    @Test func theRegisterWritesFollowLinuxsResetOrder() throws {
        let rig = try DriverRig(trace: .mmio)
        #expect(rig.probe() == 0)
        let writes = rig.bus.trace.lines.map(\.text).filter { $0.hasPrefix("W") }.compactMap { line -> String? in
            let fields = line.split(separator: " ")
            return fields.count > 2 ? String(fields[2]) : nil
        }
        var collapsed: [String] = []
        for name in writes where name != "CMDQ_PROD" || collapsed.last != "CMDQ_PROD" { collapsed.append(name) }
        #expect(collapsed == [
            "CR0", "CR1", "CR2", "STRTAB_BASE", "STRTAB_BASE_CFG", "CMDQ_BASE", "CMDQ_PROD", "CMDQ_CONS", "CR0",
            "CMDQ_PROD",  // CFGI_ALL, CMD_SYNC, TLBI_EL2_ALL, TLBI_NSNH_ALL, CMD_SYNC
            "EVENTQ_BASE", "EVENTQ_PROD", "EVENTQ_CONS", "CR0",
            "PRIQ_BASE", "PRIQ_PROD", "PRIQ_CONS", "CR0",
            "CR0",  // ATSCHK
            "IRQ_CTRL", "GERROR_IRQ_CFG0", "EVENTQ_IRQ_CFG0", "PRIQ_IRQ_CFG0",
            "EVENTQ_IRQ_CFG0", "EVENTQ_IRQ_CFG1", "EVENTQ_IRQ_CFG2",
            "GERROR_IRQ_CFG0", "GERROR_IRQ_CFG1", "GERROR_IRQ_CFG2",
            "PRIQ_IRQ_CFG0", "PRIQ_IRQ_CFG1", "PRIQ_IRQ_CFG2",
            "IRQ_CTRL", "CR0",
        ])
        let smmu = try #require(rig.driver)
        #expect(smmu.cmdq.q.prod == 5, "CFGI_ALL, CMD_SYNC, TLBI_EL2_ALL, TLBI_NSNH_ALL, CMD_SYNC")
    }

    @Test func withoutAnMSIDomainTheWiredLinesAreUsed() throws {
        let rig = try DriverRig(msi: false)
        #expect(rig.probe() == 0)
        let smmu = try #require(rig.driver)
        #expect(rig.messages(atMost: .info).contains("msi_domain absent - falling back to wired irqs"))
        #expect(smmu.evtq.q.irq == rig.pdev.namedIRQs["eventq"] && smmu.gerr_irq == rig.pdev.namedIRQs["gerror"])
        #expect(rig.model.peek(.eventqIrqCfg0) == 0 && rig.model.peek(.gerrorIrqCfg0) == 0)
    }

    @Test(arguments: 0..<8)
    func anAllocationFailureAnywhereInProbeUnwindsEverything(failing attempt: Int) throws {
        let faults = AllocationFaults()
        faults.failAttempt(attempt)
        var configuration = SMMUConfiguration.default
        configuration.streamIDBits = 8  // a linear table: one allocation
        let rig = try DriverRig(configuration: configuration, faults: faults)
        let result = rig.probe()
        if faults.failures == 0 {
            #expect(result == 0, "past the last allocation")
            return
        }
        // Allocations in order: the device, the command and event queues (which shrink rather
        // than fail), the IOPF queue, the PRI queue, sync_count, the linear stream table.
        #expect(result == ([0, 3, 5, 6].contains(attempt) ? -ENOMEM : 0))
        if result != 0 {
            #expect(rig.pdev.managedResources.isEmpty, "devres released")
            #expect(rig.pdev.dma.bytesInUse == 0)
            #expect(rig.driver == nil)
            #expect(rig.model.peek(.cr0) == 0, "the SMMU was never enabled")
        }
    }

    @Test func removeDisablesTheSMMUAndReleasesItsMemory() throws {
        let rig = try DriverRig()
        #expect(rig.probe() == 0)
        #expect(rig.pdev.dma.bytesInUse > 0)
        rig.run("rmmod") { [pdev = rig.pdev] in await device_release_driver(pdev, arm_smmu_device_remove) }
        #expect(rig.model.peek(.cr0) == 0 && rig.model.peek(.cr0Ack) == 0)
        #expect(rig.pdev.dma.bytesInUse == 0 && rig.pdev.managedResources.isEmpty)
    }

    @Test func theProbePollsThroughTheModelsAcknowledgeLatency() throws {
        var configuration = SMMUConfiguration.default
        configuration.acknowledgeLatency = 5
        let rig = try DriverRig(configuration: configuration)
        #expect(rig.probe() == 0)
        #expect(rig.model.peek(.cr0Ack) == CR0_SMMUEN | CR0_ATSCHK | CR0_EVTQEN | CR0_PRIQEN | CR0_CMDQEN)
    }

    @Test func anAcknowledgeThatNeverComesFailsTheProbeWithLinuxsMessage() throws {
        var configuration = SMMUConfiguration.default
        configuration.acknowledgeLatency = 5000
        let rig = try DriverRig(configuration: configuration)
        #expect(rig.probe() == -ETIMEDOUT)
        #expect(rig.messages(atMost: .error) == ["failed to enable command queue"])
        #expect(rig.pdev.managedResources.isEmpty)
    }

    @Test func aStage1OnlySMMUWithoutPRIOrHypGetsNoPRIQueueAndNoEL2Invalidation() throws {
        var configuration = SMMUConfiguration.default
        configuration.stage2 = false
        configuration.hypervisor = false
        configuration.pri = false
        configuration.ats = false
        let rig = try DriverRig(configuration: configuration, trace: .command)
        #expect(rig.probe() == 0)
        #expect(rig.model.peek(.cr0Ack) == CR0_SMMUEN | CR0_EVTQEN | CR0_CMDQEN)
        #expect(rig.model.peek(.irqCtrlAck) == IRQ_CTRL_EVTQ_IRQEN | IRQ_CTRL_GERROR_IRQEN)
        #expect(!rig.bus.trace.texts().contains { $0.contains("TLBI_EL2_ALL") })
        #expect(rig.model.peek(.cmdqCons) == 4, "CFGI_ALL, CMD_SYNC, TLBI_NSNH_ALL, CMD_SYNC")
    }

    @Test func probingAnEnabledSMMUWarnsAndResetsIt() throws {
        let rig = try DriverRig()
        #expect(rig.probe() == 0)
        let (second, log) = makePlatformDevice(bus: rig.bus, scheduler: rig.scheduler)
        var result: Int32 = 1
        rig.run { result = await driver_probe_device(second, arm_smmu_device_probe) }
        #expect(result == 0)
        #expect(log.texts(atMost: .warning) == ["arm-smmu-v3 arm-smmu-v3.0.auto: SMMU currently enabled! Resetting..."])
        #expect(rig.model.peek(.cr0Ack) == CR0_SMMUEN | CR0_ATSCHK | CR0_EVTQEN | CR0_PRIQEN | CR0_CMDQEN)
    }

    @Test func aHugeStreamIDSizeFailsTheLinearTableAllocationInsteadOfTrapping() throws {
        let bus = Bus()
        let registers = HardwareProbeTests.IDRegisters()
        registers.idr0 = HardwareProbeTests.usableIDR0
        registers.idr1 = UInt32(FIELD_PREP(IDR1_CMDQS, 8) | FIELD_PREP(IDR1_EVTQS, 7) | FIELD_PREP(IDR1_SIDSIZE, 63))
        registers.idr5 = UInt32(IDR5_GRAN4K | FIELD_PREP(IDR5_OAS, IDR5_OAS_48_BIT))
        try bus.map(registers, at: 0x0900_0000, size: 0x2_0000)
        let scheduler = KernelScheduler()
        let (pdev, log) = makePlatformDevice(bus: bus, scheduler: scheduler)
        var result: Int32 = 1
        scheduler.spawn("modprobe") { result = await driver_probe_device(pdev, arm_smmu_device_probe) }
        scheduler.run()
        #expect(result == -ENOMEM)
        #expect(log.texts(atMost: .error).last?.hasSuffix("failed to allocate linear stream table (0 bytes)") == true, "\(log.texts())")
    }
}

/// Firmware description checks and the driver's BUG() on a corrupt STE.
@Suite struct FirmwareAndCorruptionTests {
    @Test func firmwareOptionsAndABadIOMMUCellsValueAreReported() throws {
        let rig = try DriverRig(trace: .command)
        rig.pdev.iommuCells = 2
        rig.pdev.properties = ["hisilicon,broken-prefetch-cmd"]
        #expect(rig.probe() == 0, "disable_bypass: the SMMU is enabled anyway")
        #expect(rig.messages(atMost: .notice).prefix(2) == ["invalid #iommu-cells value (2)", "option hisilicon,broken-prefetch-cmd"])
        let smmu = try #require(rig.driver)
        #expect(smmu.options & ARM_SMMU_OPT_SKIP_PREFETCH != 0)
        let dev = device(name: "0000:00:02.0", log: rig.log, smmu_pdev: rig.pdev, ids: [0x10])
        let domain = try #require(arm_smmu_domain_alloc(rig.faults, .IOMMU_DOMAIN_UNMANAGED))
        rig.run { _ = await arm_smmu_add_device(dev); _ = await arm_smmu_attach_dev(domain, dev) }
        #expect(!rig.bus.trace.texts().contains { $0.contains("PREFETCH_CFG") }, "the broken prefetch is never issued")
    }

    @Test func aTooSmallRegisterRegionIsRefused() throws {
        let bus = Bus()
        let scheduler = KernelScheduler()
        let log = KernelLog(clock: scheduler.clock)
        let irqs = KernelIRQs(bus: bus, scheduler: scheduler, msiDoorbell: 0x0800_0040)
        let pdev = platform_device(driver: "arm-smmu-v3", name: "arm-smmu-v3.0.auto", log: log, resource: KernelResource(start: 0x0900_0000, size: 0x1_0000), bus: bus, irqs: irqs, dma: CoherentMemory(memory: bus.memory, range: 0x8000_0000...0x80FF_FFFF))
        var result: Int32 = 1
        scheduler.spawn("modprobe") { result = await driver_probe_device(pdev, arm_smmu_device_probe) }
        scheduler.run()
        #expect(result == -EINVAL)
        #expect(log.texts(atMost: .error) == ["arm-smmu-v3 arm-smmu-v3.0.auto: MMIO region too small (0x9000000-0x900ffff)"])
    }

    @Test func aCorruptLiveSTEIsABugNotACrash() throws {
        let rig = try DriverRig()
        #expect(rig.probe() == 0)
        let smmu = try #require(rig.driver)
        let dev = device(name: "0000:00:02.0", log: rig.log, smmu_pdev: rig.pdev, ids: [0x10])
        let domain = try #require(arm_smmu_domain_alloc(rig.faults, .IOMMU_DOMAIN_UNMANAGED))
        rig.run { _ = await arm_smmu_add_device(dev) }
        let ste = try #require(arm_smmu_get_step_for_sid(smmu, 0x10))
        ste[0] = STRTAB_STE_0_V | FIELD_PREP(STRTAB_STE_0_CFG, 0b111)  // a reserved Config
        rig.run { _ = await arm_smmu_attach_dev(domain, dev) }
        #expect(rig.log.lines.contains { $0.level == .emergency && $0.text == "kernel BUG at arm_smmu_write_strtab_ent (STE corruption, SID 16)!" })
        #expect(ste[0] == STRTAB_STE_0_V | FIELD_PREP(STRTAB_STE_0_CFG, 0b111), "the STE is left alone")
    }
}
