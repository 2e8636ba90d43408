import Kernel
import IOMMU

// Probing, initialisation and reset (arm_smmu_device_probe and what it calls), ported from
// Linux v4.17.

/// `arm_smmu_init_structures`: the queues, the stream table, and the word CMD_SYNC MSIs write
/// (Linux keeps `sync_count` inside the device structure and hands the SMMU its physical
/// address; here it is a coherent allocation, since only bus memory is visible to the SMMU).
public func arm_smmu_init_structures(_ smmu: arm_smmu_device) async -> Int32 {
    ftrace("arm_smmu_init_structures")
    await smmu.sync_nr.set(0)
    var ret = arm_smmu_init_queues(smmu)
    if ret != 0 { return ret }
    guard let sync_count = dmam_alloc_coherent(smmu.pdev, 8, alignment: 8) else {
        dev_err(smmu.dev, "failed to allocate sync_count")
        return -ENOMEM
    }
    smmu.sync_count = sync_count
    ret = await arm_smmu_init_strtab(smmu)
    return ret
}

/// `arm_smmu_device_reset`: brings the SMMU from any state to enabled (or to bypass when
/// `bypass`), in Linux's order — disable and wait for CR0ACK; CR1 and CR2; the stream table;
/// the command queue, enabled alone; CFGI_ALL, TLBI_EL2_ALL (with HYP), TLBI_NSNH_ALL, each
/// batch with a CMD_SYNC; the event queue; the PRI queue; ATSCHK with ATS (Linux v5.2);
/// interrupts; finally SMMUEN (or GBPA cleared of ABORT, for bypass).
public func arm_smmu_device_reset(_ smmu: arm_smmu_device, _ bypass: Bool) async -> Int32 {
    ftrace("arm_smmu_device_reset")
    // Clear CR0 and sync (disables SMMU and queue processing).
    var reg = UInt64(await readl_relaxed(smmu.base.advanced(by: ARM_SMMU_CR0)))
    if reg & CR0_SMMUEN != 0 {
        dev_warn(smmu.dev, "SMMU currently enabled! Resetting...")
    }

    var ret = await arm_smmu_device_disable(smmu)
    if ret != 0 { return ret }

    // CR1 (table and queue memory attributes)
    reg = FIELD_PREP(CR1_TABLE_SH, ARM_SMMU_SH_ISH) | FIELD_PREP(CR1_TABLE_OC, CR1_CACHE_WB) | FIELD_PREP(CR1_TABLE_IC, CR1_CACHE_WB) |
        FIELD_PREP(CR1_QUEUE_SH, ARM_SMMU_SH_ISH) | FIELD_PREP(CR1_QUEUE_OC, CR1_CACHE_WB) | FIELD_PREP(CR1_QUEUE_IC, CR1_CACHE_WB)
    await writel_relaxed(UInt32(reg), smmu.base.advanced(by: ARM_SMMU_CR1))

    // CR2 (random crap)
    reg = CR2_PTM | CR2_RECINVSID | CR2_E2H
    await writel_relaxed(UInt32(reg), smmu.base.advanced(by: ARM_SMMU_CR2))

    // Stream table
    await writeq_relaxed(smmu.strtab_cfg.strtab_base, smmu.base.advanced(by: ARM_SMMU_STRTAB_BASE))
    await writel_relaxed(smmu.strtab_cfg.strtab_base_cfg, smmu.base.advanced(by: ARM_SMMU_STRTAB_BASE_CFG))

    // Command queue
    await writeq_relaxed(smmu.cmdq.q.q_base, smmu.base.advanced(by: ARM_SMMU_CMDQ_BASE))
    await writel_relaxed(smmu.cmdq.q.prod, smmu.base.advanced(by: ARM_SMMU_CMDQ_PROD))
    await writel_relaxed(smmu.cmdq.q.cons, smmu.base.advanced(by: ARM_SMMU_CMDQ_CONS))

    var enables = UInt32(CR0_CMDQEN)
    ret = await arm_smmu_write_reg_sync(smmu, enables, ARM_SMMU_CR0, ARM_SMMU_CR0ACK)
    if ret != 0 {
        dev_err(smmu.dev, "failed to enable command queue")
        return ret
    }

    // Invalidate any cached configuration.
    await arm_smmu_cmdq_issue_cmd(smmu, arm_smmu_cmdq_ent(opcode: CMDQ_OP_CFGI_ALL))
    await arm_smmu_cmdq_issue_sync(smmu)

    // Invalidate any stale TLB entries.
    if smmu.features & ARM_SMMU_FEAT_HYP != 0 {
        await arm_smmu_cmdq_issue_cmd(smmu, arm_smmu_cmdq_ent(opcode: CMDQ_OP_TLBI_EL2_ALL))
    }
    await arm_smmu_cmdq_issue_cmd(smmu, arm_smmu_cmdq_ent(opcode: CMDQ_OP_TLBI_NSNH_ALL))
    await arm_smmu_cmdq_issue_sync(smmu)

    // Event queue
    await writeq_relaxed(smmu.evtq.q.q_base, smmu.base.advanced(by: ARM_SMMU_EVTQ_BASE))
    await writel_relaxed(smmu.evtq.q.prod, arm_smmu_page1_fixup(ARM_SMMU_EVTQ_PROD, smmu))
    await writel_relaxed(smmu.evtq.q.cons, arm_smmu_page1_fixup(ARM_SMMU_EVTQ_CONS, smmu))

    enables |= UInt32(CR0_EVTQEN)
    ret = await arm_smmu_write_reg_sync(smmu, enables, ARM_SMMU_CR0, ARM_SMMU_CR0ACK)
    if ret != 0 {
        dev_err(smmu.dev, "failed to enable event queue")
        return ret
    }

    // PRI queue
    if smmu.features & ARM_SMMU_FEAT_PRI != 0 {
        await writeq_relaxed(smmu.priq.q.q_base, smmu.base.advanced(by: ARM_SMMU_PRIQ_BASE))
        await writel_relaxed(smmu.priq.q.prod, arm_smmu_page1_fixup(ARM_SMMU_PRIQ_PROD, smmu))
        await writel_relaxed(smmu.priq.q.cons, arm_smmu_page1_fixup(ARM_SMMU_PRIQ_CONS, smmu))

        enables |= UInt32(CR0_PRIQEN)
        ret = await arm_smmu_write_reg_sync(smmu, enables, ARM_SMMU_CR0, ARM_SMMU_CR0ACK)
        if ret != 0 {
            dev_err(smmu.dev, "failed to enable PRI queue")
            return ret
        }
    }

    // ATS checking of Translated traffic (Linux v5.2, with ATS support).
    if smmu.features & ARM_SMMU_FEAT_ATS != 0 {
        enables |= UInt32(CR0_ATSCHK)
        ret = await arm_smmu_write_reg_sync(smmu, enables, ARM_SMMU_CR0, ARM_SMMU_CR0ACK)
        if ret != 0 {
            dev_err(smmu.dev, "failed to enable ATS check")
            return ret
        }
    }

    ret = await arm_smmu_setup_irqs(smmu)
    if ret != 0 {
        dev_err(smmu.dev, "failed to setup irqs")
        return ret
    }

    // Enable the SMMU interface, or ensure bypass.
    if !bypass || smmu.disable_bypass {
        enables |= UInt32(CR0_SMMUEN)
    } else {
        ret = await arm_smmu_update_gbpa(smmu, 0, UInt32(GBPA_ABORT))
        if ret != 0 { return ret }
    }
    ret = await arm_smmu_write_reg_sync(smmu, enables, ARM_SMMU_CR0, ARM_SMMU_CR0ACK)
    if ret != 0 {
        dev_err(smmu.dev, "failed to enable SMMU interface")
        return ret
    }
    return 0
}

/// `arm_smmu_options`: firmware properties that set driver options.
let arm_smmu_options: [(opt: UInt32, prop: String)] = [
    (ARM_SMMU_OPT_SKIP_PREFETCH, "hisilicon,broken-prefetch-cmd"),
    (ARM_SMMU_OPT_PAGE0_REGS_ONLY, "cavium,cn9900-broken-page1-regspace"),
]

/// `parse_driver_options`.
func parse_driver_options(_ smmu: arm_smmu_device) {
    ftrace("parse_driver_options")
    for option in arm_smmu_options where smmu.pdev.properties.contains(option.prop) {
        smmu.options |= option.opt
        dev_notice(smmu.dev, "option \(option.prop)")
    }
}

/// `arm_smmu_device_dt_probe`: `#iommu-cells` must be 1 (otherwise the SMMU is left in bypass),
/// driver options, and DMA coherency.
func arm_smmu_device_dt_probe(_ smmu: arm_smmu_device) -> Int32 {
    ftrace("arm_smmu_device_dt_probe")
    var ret = -EINVAL
    if let cells = smmu.pdev.iommuCells {
        if cells != 1 {
            dev_err(smmu.dev, "invalid #iommu-cells value (\(cells))")
        } else {
            ret = 0
        }
    } else {
        dev_err(smmu.dev, "missing #iommu-cells property")
    }
    parse_driver_options(smmu)
    if smmu.pdev.dmaCoherent { smmu.features |= ARM_SMMU_FEAT_COHERENCY }
    return ret
}

/// `arm_smmu_resource_size`.
func arm_smmu_resource_size(_ smmu: arm_smmu_device) -> UInt64 {
    smmu.options & ARM_SMMU_OPT_PAGE0_REGS_ONLY != 0 ? SZ_64K : 2 * SZ_64K
}

/// `arm_smmu_device_probe`: firmware description, MMIO region, interrupt lines, ID registers,
/// in-memory structures, reset. The driver data is set before the reset, as in Linux. Run it
/// through `driver_probe_device` so that a failure releases what it allocated.
public func arm_smmu_device_probe(_ pdev: platform_device) async -> Int32 {
    ftrace("arm_smmu_device_probe")
    guard let smmu = devm_kzalloc(pdev, { arm_smmu_device(pdev: pdev) }) else {
        dev_err(pdev.dev, "failed to allocate arm_smmu_device")
        return -ENOMEM
    }

    // Set bypass mode according to the firmware probing result.
    let bypass = arm_smmu_device_dt_probe(smmu) != 0

    // Base address
    if pdev.resource.size + 1 < arm_smmu_resource_size(smmu) {
        dev_err(pdev.dev, "MMIO region too small (0x\(String(pdev.resource.start, radix: 16))-0x\(String(pdev.resource.start &+ pdev.resource.size &- 1, radix: 16)))")
        return -EINVAL
    }

    // Interrupt lines
    var irq = platform_get_irq_byname(pdev, "combined")
    if irq > 0 {
        smmu.combined_irq = irq
    } else {
        irq = platform_get_irq_byname(pdev, "eventq")
        if irq > 0 { smmu.evtq.q.irq = irq }
        irq = platform_get_irq_byname(pdev, "priq")
        if irq > 0 { smmu.priq.q.irq = irq }
        irq = platform_get_irq_byname(pdev, "gerror")
        if irq > 0 { smmu.gerr_irq = irq }
    }

    // Probe the h/w
    var ret = await arm_smmu_device_hw_probe(smmu)
    if ret != 0 { return ret }

    // Initialise in-memory data structures
    ret = await arm_smmu_init_structures(smmu)
    if ret != 0 { return ret }

    // Record the private device structure
    pdev.drvdata = smmu

    // Reset the device
    ret = await arm_smmu_device_reset(smmu, bypass)
    if ret != 0 { return ret }
    return 0
}

/// `arm_smmu_device_remove`: disables the SMMU (the managed resources go afterwards).
public func arm_smmu_device_remove(_ pdev: platform_device) async -> Int32 {
    ftrace("arm_smmu_device_remove")
    guard let smmu = pdev.drvdata as? arm_smmu_device else { return 0 }
    _ = await arm_smmu_device_disable(smmu)
    return 0
}
