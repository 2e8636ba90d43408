import Kernel
import IOMMU

// SVA on the SMMU (the 2018 tree's arm-smmu-v3.c and arm-smmu-v3-context.c, reduced to a
// linear CD table): a bound process gets the CD at its PASID, pointing at the very page
// tables its CPU uses, with its ASID; unbinding clears the CD and invalidates what the SMMU
// and the device may have cached for the PASID.

/// The CPU's TCR for a process (arm64, 4 KB pages, 48-bit VA): TTBR0 walks inner-shareable
/// write-back, TTBR1 disabled, 48-bit IPA.
func arm_smmu_process_tcr() -> UInt64 {
    FIELD_PREP(ARM64_TCR_T0SZ, 16) | FIELD_PREP(ARM64_TCR_TG0, 0) | FIELD_PREP(ARM64_TCR_IRGN0, 1) | FIELD_PREP(ARM64_TCR_ORGN0, 1) |
        FIELD_PREP(ARM64_TCR_SH0, 3) | ARM64_TCR_EPD1 | FIELD_PREP(ARM64_TCR_IPS, 5)
}

/// The CPU's MAIR as the processes here use it: their pages use attribute index 0, Normal
/// write-back read/write-allocate.
let arm_smmu_process_mair: UInt64 = 0xff

/// `arm_smmu_sync_cd`: CFGI_CD for `ssid` on every StreamID of the domain's masters, then
/// CMD_SYNC.
func arm_smmu_sync_cd(_ smmu_domain: arm_smmu_domain, _ ssid: UInt32) async {
    ftrace("arm_smmu_sync_cd")
    guard let smmu = smmu_domain.smmu else { return }
    await smmu_domain.devices_lock.lock()
    let masters = smmu_domain.devices
    smmu_domain.devices_lock.unlock()
    for master in masters {
        for sid in master.dev?.iommu_fwspec?.ids ?? [] {
            var cmd = arm_smmu_cmdq_ent(opcode: CMDQ_OP_CFGI_CD)
            cmd.cfgi.sid = sid
            cmd.cfgi.ssid = ssid
            cmd.cfgi.leaf = true
            await arm_smmu_cmdq_issue_cmd(smmu, cmd)
        }
    }
    await arm_smmu_cmdq_issue_sync(smmu)
}

/// `arm_smmu_write_ctx_desc` for substream `ssid` (arm-smmu-v3-context.c): a new CD's words
/// 1-3 first, then word 0 with V, then CFGI_CD + CMD_SYNC; `cd` nil clears V (then the same
/// invalidation). -ERANGE beyond the table.
func arm_smmu_write_ctx_desc_ssid(_ smmu_domain: arm_smmu_domain, _ ssid: UInt32, _ cd: arm_smmu_ctx_desc?) async -> Int32 {
    ftrace("arm_smmu_write_ctx_desc_ssid")
    guard let smmu = smmu_domain.smmu, let table = smmu_domain.s1_cfg.cdptr else { return -ENODEV }
    guard ssid < (1 << smmu_domain.s1_cfg.s1cdmax) else { return -ERANGE }
    let cdptr = table.advanced(by: Int(ssid) * CTXDESC_CD_DWORDS)
    if let cd {
        cdptr[1] = cd.ttbr & CTXDESC_CD_1_TTB0_MASK
        cdptr[2] = 0
        cdptr[3] = cd.mair
        // The CD must be complete before it is valid.
        await dma_wmb()
        var val = arm_smmu_cpu_tcr_to_cd(cd.tcr) | CTXDESC_CD_0_R | CTXDESC_CD_0_A | CTXDESC_CD_0_AA64 | FIELD_PREP(CTXDESC_CD_0_ASID, UInt64(cd.asid)) | CTXDESC_CD_0_V
        if smmu.features & ARM_SMMU_FEAT_STALL_FORCE != 0 { val |= CTXDESC_CD_0_S }
        cdptr[0] = val
    } else {
        cdptr[0] = 0
    }
    await arm_smmu_sync_cd(smmu_domain, ssid)
    return 0
}

/// `arm_smmu_sva_device_init`: the master must be in a stage-1 domain with a CD table and the
/// SMMU must do PRI for page faults; its PASID range is the table's (PASID 0 is the domain's).
func arm_smmu_sva_device_init(_ dev: device, _ param: inout iommu_sva_param) async -> Int32 {
    ftrace("arm_smmu_sva_device_init")
    guard let master = dev.iommu_fwspec?.master, let smmu_domain = master.domain, smmu_domain.stage == .ARM_SMMU_DOMAIN_S1, smmu_domain.s1_cfg.s1cdmax > 0 else { return -ENODEV }
    let smmu = master.smmu
    param.min_pasid = max(param.min_pasid, 1)
    param.max_pasid = param.max_pasid == 0 ? (1 << smmu_domain.s1_cfg.s1cdmax) - 1 : min(param.max_pasid, (1 << smmu_domain.s1_cfg.s1cdmax) - 1)
    master.avail_contexts = param.max_pasid - param.min_pasid + 1
    if param.features & IOMMU_SVA_FEAT_IOPF != 0 {
        guard smmu.features & ARM_SMMU_FEAT_PRI != 0, let queue = arm_smmu_iopf_queue(smmu, smmu_domain) else { return -ENODEV }
        let ret = await iopf_queue_add_device(queue, dev, faults: smmu.pdev.faults)
        if ret != 0 { return ret }
        master.can_fault = true
    }
    return 0
}

/// The IOPF queue a device of `smmu_domain` reports to, by the SMMU's policy (a domain's
/// own is made on first use).
func arm_smmu_iopf_queue(_ smmu: arm_smmu_device, _ smmu_domain: arm_smmu_domain) -> iopf_queue? {
    ftrace("arm_smmu_iopf_queue")
    switch smmu.iopf_policy {
    case .global(let queue):
        return queue
    case .perFaultQueue:
        return smmu.priq.iopf
    case .perDomain:
        if let queue = smmu_domain.iopf { return queue }
        guard let scheduler = KernelScheduler.current,
              let queue = iopf_queue_alloc("\(smmu.dev.name)-domain\(smmu.domain_iopf_queues.count)", arm_smmu_iopf_queue_flush, nil,
                                           on: scheduler, pasids: smmu.pasids, faults: smmu.pdev.faults) else { return nil }
        smmu_domain.iopf = queue
        smmu.domain_iopf_queues.append(queue)
        return queue
    }
}

/// `arm_smmu_sva_device_shutdown`.
func arm_smmu_sva_device_shutdown(_ dev: device) async {
    ftrace("arm_smmu_sva_device_shutdown")
    _ = await iopf_queue_remove_device(dev)
}

/// `arm_smmu_mm_attach` (seed 001's `arm_smmu_bind_task`): a context for the master at the
/// process's PASID (holding a reference to it), and the CD pointing at the process's page
/// tables with its ASID (shared with the CPU, so not ASET).
func arm_smmu_mm_attach(_ domain: iommu_domain, _ dev: device, _ io_mm: io_mm) async -> Int32 {
    ftrace("arm_smmu_mm_attach")
    guard let smmu_domain = domain as? arm_smmu_domain, let mm = io_mm.mm, let master = dev.iommu_fwspec?.master else { return -EINVAL }
    let smmu = master.smmu
    await smmu.contexts_lock.lock()
    if master.contexts[io_mm.pasid] != nil {
        smmu.contexts_lock.unlock()
        return -EEXIST
    }
    let context = arm_smmu_context(ssid: io_mm.pasid, master: master, io_mm: io_mm)
    io_mm.get()
    master.contexts[io_mm.pasid] = context
    smmu.contexts_lock.unlock()
    var cd = arm_smmu_ctx_desc()
    cd.asid = mm.asid
    cd.ttbr = mm.table.base
    cd.tcr = arm_smmu_process_tcr()
    cd.mair = arm_smmu_process_mair
    return await arm_smmu_write_ctx_desc_ssid(smmu_domain, io_mm.pasid, cd)
}

/// `arm_smmu_detach_task`: clears the PASID's CD, then invalidates the process's TLB
/// entries (TLBI_NH_ASID) and the PASID in the devices' ATCs.
func arm_smmu_detach_task(_ context: arm_smmu_context) async {
    ftrace("arm_smmu_detach_task")
    guard !context.detached, let master = context.master, let smmu_domain = master.domain, let smmu = smmu_domain.smmu else { return }
    context.detached = true
    _ = await arm_smmu_write_ctx_desc_ssid(smmu_domain, context.ssid, nil)
    var cmd = arm_smmu_cmdq_ent(opcode: CMDQ_OP_TLBI_NH_ASID)
    cmd.tlbi.asid = context.asid
    await arm_smmu_cmdq_issue_cmd(smmu, cmd)
    await arm_smmu_cmdq_issue_sync(smmu)
    _ = await arm_smmu_atc_inv_domain(smmu_domain, context.ssid, 0, 0)
}

/// `arm_smmu_mm_detach`: seed 001's `arm_smmu_unbind_task`.
func arm_smmu_mm_detach(_ domain: iommu_domain, _ dev: device, _ io_mm: io_mm, _ flags: UInt32) async -> Int32 {
    ftrace("arm_smmu_mm_detach")
    guard let master = dev.iommu_fwspec?.master else { return -EINVAL }
    return await arm_smmu_unbind_task(master, io_mm.pasid, flags)
}
