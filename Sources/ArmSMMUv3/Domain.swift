import Kernel
import IOMMU

// The IOMMU API side of the driver (domains, attach/detach, map/unmap, TLB maintenance
// callbacks), ported from Linux v4.17, with the small part of the IOMMU core it is called by.

extension iommu_fwspec {
    /// `fwspec->iommu_priv` as the SMMU driver's master data.
    var master: arm_smmu_master_data? { iommu_priv as? arm_smmu_master_data }
}

/// `struct arm_smmu_master_data` (with Linux v5.2's `dev`, `domain` and ATS state).
public final class arm_smmu_master_data {
    public let smmu: arm_smmu_device
    /// The master's device (weak: the device owns its fwspec, which owns this).
    public private(set) weak var dev: device?
    public var ste = arm_smmu_strtab_ent()
    /// The domain attached (`master->domain`).
    public weak var domain: arm_smmu_domain?
    /// Seed 001: the master's SVA contexts by PASID (an rb-tree in Linux), under the SMMU's
    /// `contexts_lock`.
    public var contexts: [UInt32: arm_smmu_context] = [:]
    /// The master sends page requests (PRI), so stale PASIDs may still be in the pipe.
    public var can_fault = false
    /// PASIDs the master can use.
    public var avail_contexts: UInt32 = 0
    /// Contexts unbound but not yet known to be clean.
    public var stale_contexts: UInt32 = 0
    /// `sweep_contexts`.
    public private(set) lazy var sweep_contexts = WorkItem("arm_smmu_sweep_contexts") { [weak self] in
        if let self { await arm_smmu_sweep_contexts(self) }
    }
    init(smmu: arm_smmu_device, dev: device) {
        self.smmu = smmu
        self.dev = dev
    }
}

/// `STALE_CONTEXTS_LIMIT(master)`: the sweeper runs when a fourth of the contexts are stale.
func STALE_CONTEXTS_LIMIT(_ master: arm_smmu_master_data) -> UInt32 { master.avail_contexts / 4 }

/// `enum arm_smmu_domain_stage`.
public enum arm_smmu_domain_stage: Sendable {
    case ARM_SMMU_DOMAIN_S1
    case ARM_SMMU_DOMAIN_S2
    case ARM_SMMU_DOMAIN_NESTED
    case ARM_SMMU_DOMAIN_BYPASS
}

/// `struct arm_smmu_domain`, an `iommu_domain` with the SMMU's state.
public final class arm_smmu_domain: iommu_domain {
    public var smmu: arm_smmu_device?
    /// Protects `smmu`.
    public let init_mutex = KernelMutex("arm_smmu_domain.init_mutex")
    public var pgtbl_ops: arm_lpae_io_pgtable?
    public var stage = arm_smmu_domain_stage.ARM_SMMU_DOMAIN_S1
    public let s1_cfg = arm_smmu_s1_cfg()
    public let s2_cfg = arm_smmu_s2_cfg()
    /// `domain.geometry.aperture_end`.
    public var aperture_end: UInt64 = 0
    /// The domain's IOPF queue under the per-domain policy.
    public var iopf: iopf_queue?
    /// The masters attached (`devices`, under `devices_lock`).
    public var devices: [arm_smmu_master_data] = []
    public let devices_lock = SpinLock("arm_smmu_domain.devices_lock")

    init(type: iommu_domain_type) {
        super.init(type: type, ops: arm_smmu_ops)
    }
}

/// `arm_smmu_ops`: what the IOMMU core calls through a domain.
public let arm_smmu_ops: iommu_ops = {
    var ops = iommu_ops(
        attach_dev: { domain, dev in
            guard let smmu_domain = domain as? arm_smmu_domain else { return -EINVAL }
            return await arm_smmu_attach_dev(smmu_domain, dev)
        },
        detach_dev: { _, dev in await arm_smmu_detach_dev(dev) },
        page_response: { dev, resp in await arm_smmu_page_response(dev, resp) })
    ops.sva_device_init = { dev, param in await arm_smmu_sva_device_init(dev, &param) }
    ops.sva_device_shutdown = { dev in await arm_smmu_sva_device_shutdown(dev) }
    ops.mm_attach = { domain, dev, io_mm in await arm_smmu_mm_attach(domain, dev, io_mm) }
    ops.mm_detach = { domain, dev, io_mm, flags in await arm_smmu_mm_detach(domain, dev, io_mm, flags) }
    return ops
}()

/// log2 of the PASIDs a stage-1 domain's CD table holds (Linux sizes it from the master's
/// PASID width; 256 CDs here, 16 KB).
public let ARM_SMMU_SVA_SSID_BITS: UInt32 = 8

/// `VA_BITS` of the CPU (arm64 with 4K pages and four levels).
public let VA_BITS: UInt64 = 48

// MARK: io-pgtable callbacks

/// `__arm_smmu_tlb_sync`.
func __arm_smmu_tlb_sync(_ smmu: arm_smmu_device) async {
    ftrace("__arm_smmu_tlb_sync")
    await arm_smmu_cmdq_issue_sync(smmu)
}

/// `arm_smmu_tlb_inv_context`: TLBI_NH_ASID (stage 1) or TLBI_S12_VMALL (stage 2), then sync.
func arm_smmu_tlb_inv_context(_ smmu_domain: arm_smmu_domain) async {
    ftrace("arm_smmu_tlb_inv_context")
    guard let smmu = smmu_domain.smmu else { return }
    var cmd: arm_smmu_cmdq_ent
    if smmu_domain.stage == .ARM_SMMU_DOMAIN_S1 {
        cmd = arm_smmu_cmdq_ent(opcode: CMDQ_OP_TLBI_NH_ASID)
        cmd.tlbi.asid = smmu_domain.s1_cfg.cd.asid
        cmd.tlbi.vmid = 0
    } else {
        cmd = arm_smmu_cmdq_ent(opcode: CMDQ_OP_TLBI_S12_VMALL)
        cmd.tlbi.vmid = smmu_domain.s2_cfg.vmid
    }
    await arm_smmu_cmdq_issue_cmd(smmu, cmd)
    await __arm_smmu_tlb_sync(smmu)
}

/// `arm_smmu_tlb_inv_range_nosync`: one TLBI_NH_VA or TLBI_S2_IPA per `granule` of the range.
func arm_smmu_tlb_inv_range_nosync(_ iova: UInt64, _ size: UInt64, _ granule: UInt64, _ leaf: Bool, _ smmu_domain: arm_smmu_domain) async {
    ftrace("arm_smmu_tlb_inv_range_nosync")
    guard let smmu = smmu_domain.smmu, granule > 0 else { return }
    var cmd: arm_smmu_cmdq_ent
    if smmu_domain.stage == .ARM_SMMU_DOMAIN_S1 {
        cmd = arm_smmu_cmdq_ent(opcode: CMDQ_OP_TLBI_NH_VA)
        cmd.tlbi.asid = smmu_domain.s1_cfg.cd.asid
    } else {
        cmd = arm_smmu_cmdq_ent(opcode: CMDQ_OP_TLBI_S2_IPA)
        cmd.tlbi.vmid = smmu_domain.s2_cfg.vmid
    }
    cmd.tlbi.leaf = leaf
    cmd.tlbi.addr = iova
    var remaining = size
    repeat {
        await arm_smmu_cmdq_issue_cmd(smmu, cmd)
        cmd.tlbi.addr &+= granule
        remaining = remaining > granule ? remaining - granule : 0
    } while remaining > 0
}

/// `arm_smmu_gather_ops` for `smmu_domain` (the cookie).
func arm_smmu_gather_ops(_ smmu_domain: arm_smmu_domain) -> iommu_gather_ops {
    iommu_gather_ops(
        tlb_flush_all: { [weak smmu_domain] in if let smmu_domain { await arm_smmu_tlb_inv_context(smmu_domain) } },
        tlb_add_flush: { [weak smmu_domain] iova, size, granule, leaf in if let smmu_domain { await arm_smmu_tlb_inv_range_nosync(iova, size, granule, leaf, smmu_domain) } },
        tlb_sync: { [weak smmu_domain] in if let smmu = smmu_domain?.smmu { await __arm_smmu_tlb_sync(smmu) } })
}

// MARK: IOMMU API

/// `arm_smmu_domain_alloc`: UNMANAGED, DMA and IDENTITY domains; nothing is set up until a
/// master attaches.
public func arm_smmu_domain_alloc(_ faults: AllocationFaults, _ type: iommu_domain_type) -> arm_smmu_domain? {
    ftrace("arm_smmu_domain_alloc")
    guard type == .IOMMU_DOMAIN_UNMANAGED || type == .IOMMU_DOMAIN_DMA || type == .IOMMU_DOMAIN_IDENTITY else { return nil }
    return kzalloc(faults) { arm_smmu_domain(type: type) }
}

/// `arm_smmu_bitmap_alloc`: the first free identifier of `span` bits; -ENOSPC when none.
func arm_smmu_bitmap_alloc(_ map: KernelBitmap, _ span: UInt32) -> Int {
    let size = 1 << Int(span)
    var idx: Int
    repeat {
        idx = map.find_first_zero_bit(size)
        if idx == size { return -Int(ENOSPC) }
    } while map.test_and_set_bit(idx)
    return idx
}

/// `arm_smmu_bitmap_free`.
func arm_smmu_bitmap_free(_ map: KernelBitmap, _ idx: Int) {
    map.clear_bit(idx)
}

/// `arm_smmu_domain_free`: the page tables (after invalidating their TLB entries), and the CD
/// and ASID or the VMID.
public func arm_smmu_domain_free(_ smmu_domain: arm_smmu_domain) async {
    ftrace("arm_smmu_domain_free")
    await free_io_pgtable_ops(smmu_domain.pgtbl_ops)
    smmu_domain.pgtbl_ops = nil
    guard let smmu = smmu_domain.smmu else { return }
    // Its IOPF queue (per-domain policy) goes with it, once no device reports to it.
    if let queue = smmu_domain.iopf, iopf_queue_free(queue) {
        smmu.domain_iopf_queues.removeAll { $0 === queue }
        smmu_domain.iopf = nil
    }
    // Free the CD and ASID, if they were allocated.
    if smmu_domain.stage == .ARM_SMMU_DOMAIN_S1 {
        let cfg = smmu_domain.s1_cfg
        if let cdptr = cfg.cdptr {
            dmam_free_coherent(smmu.pdev, cdptr)
            cfg.cdptr = nil
            arm_smmu_bitmap_free(smmu.asid_map, Int(cfg.cd.asid))
        }
    } else if smmu_domain.s2_cfg.vmid != 0 {
        arm_smmu_bitmap_free(smmu.vmid_map, Int(smmu_domain.s2_cfg.vmid))
    }
}

/// `arm_smmu_domain_finalise_s1`: an ASID and a CD for the table.
func arm_smmu_domain_finalise_s1(_ smmu_domain: arm_smmu_domain, _ pgtbl_cfg: io_pgtable_cfg) -> Int32 {
    ftrace("arm_smmu_domain_finalise_s1")
    guard let smmu = smmu_domain.smmu else { return -EINVAL }
    let cfg = smmu_domain.s1_cfg
    let asid = arm_smmu_bitmap_alloc(smmu.asid_map, smmu.asid_bits)
    if asid < 0 { return Int32(asid) }

    // A linear CD table when the SMMU has substreams (SVA binds processes at other indices).
    cfg.s1cdmax = min(smmu.ssid_bits, ARM_SMMU_SVA_SSID_BITS)
    let tableSize = UInt64(CTXDESC_CD_DWORDS << 3) << UInt64(cfg.s1cdmax)
    guard let cdptr = dmam_alloc_coherent(smmu.pdev, tableSize, alignment: max(64, tableSize)) else {
        dev_warn(smmu.dev, "failed to allocate context descriptor")
        arm_smmu_bitmap_free(smmu.asid_map, asid)
        return -ENOMEM
    }
    cfg.cdptr = cdptr
    cfg.cdptr_dma = cdptr.address
    cfg.cd.asid = UInt16(asid)
    cfg.cd.ttbr = pgtbl_cfg.s1_ttbr[0]
    cfg.cd.tcr = pgtbl_cfg.s1_tcr
    cfg.cd.mair = pgtbl_cfg.s1_mair[0]
    return 0
}

/// `arm_smmu_domain_finalise_s2`: a VMID for the table.
func arm_smmu_domain_finalise_s2(_ smmu_domain: arm_smmu_domain, _ pgtbl_cfg: io_pgtable_cfg) -> Int32 {
    ftrace("arm_smmu_domain_finalise_s2")
    guard let smmu = smmu_domain.smmu else { return -EINVAL }
    let vmid = arm_smmu_bitmap_alloc(smmu.vmid_map, smmu.vmid_bits)
    if vmid < 0 { return Int32(vmid) }
    smmu_domain.s2_cfg.vmid = UInt16(vmid)
    smmu_domain.s2_cfg.vttbr = pgtbl_cfg.s2_vttbr
    smmu_domain.s2_cfg.vtcr = pgtbl_cfg.s2_vtcr
    return 0
}

/// `arm_smmu_domain_finalise`: the stage the SMMU supports, a page table for it, and its
/// identifiers.
func arm_smmu_domain_finalise(_ smmu_domain: arm_smmu_domain) async -> Int32 {
    ftrace("arm_smmu_domain_finalise")
    guard let smmu = smmu_domain.smmu else { return -EINVAL }
    if smmu_domain.type == .IOMMU_DOMAIN_IDENTITY {
        smmu_domain.stage = .ARM_SMMU_DOMAIN_BYPASS
        return 0
    }

    // Restrict the stage to what the SMMU supports.
    if smmu.features & ARM_SMMU_FEAT_TRANS_S1 == 0 { smmu_domain.stage = .ARM_SMMU_DOMAIN_S2 }
    if smmu.features & ARM_SMMU_FEAT_TRANS_S2 == 0 { smmu_domain.stage = .ARM_SMMU_DOMAIN_S1 }

    let ias: UInt64, oas: UInt64, fmt: io_pgtable_fmt
    switch smmu_domain.stage {
    case .ARM_SMMU_DOMAIN_S1:
        ias = min(smmu.features & ARM_SMMU_FEAT_VAX != 0 ? 52 : 48, VA_BITS)
        oas = smmu.ias
        fmt = .ARM_64_LPAE_S1
    case .ARM_SMMU_DOMAIN_NESTED, .ARM_SMMU_DOMAIN_S2:
        ias = smmu.ias
        oas = smmu.oas
        fmt = .ARM_64_LPAE_S2
    case .ARM_SMMU_DOMAIN_BYPASS:
        return -EINVAL
    }

    var pgtbl_cfg = io_pgtable_cfg(pgsize_bitmap: smmu.pgsize_bitmap, ias: UInt32(ias), oas: UInt32(oas), tlb: arm_smmu_gather_ops(smmu_domain), iommu_dev: smmu.pdev)
    if smmu.features & ARM_SMMU_FEAT_COHERENCY != 0 { pgtbl_cfg.quirks = IO_PGTABLE_QUIRK_NO_DMA }

    guard let pgtbl_ops = alloc_io_pgtable_ops(fmt, &pgtbl_cfg) else { return -ENOMEM }

    smmu_domain.pgsize_bitmap = pgtbl_cfg.pgsize_bitmap
    smmu_domain.aperture_end = (UInt64(1) << UInt64(pgtbl_cfg.ias)) - 1

    let ret = fmt == .ARM_64_LPAE_S1 ? arm_smmu_domain_finalise_s1(smmu_domain, pgtbl_cfg) : arm_smmu_domain_finalise_s2(smmu_domain, pgtbl_cfg)
    if ret < 0 {
        pgtbl_ops.free()
        return ret
    }
    smmu_domain.pgtbl_ops = pgtbl_ops
    return 0
}

/// `arm_smmu_install_ste_for_dev`: writes the master's STE for each of its StreamIDs (once
/// per distinct ID: bridged PCI devices may repeat one).
func arm_smmu_install_ste_for_dev(_ fwspec: iommu_fwspec) async {
    ftrace("arm_smmu_install_ste_for_dev")
    guard let master = fwspec.master else { return }
    let smmu = master.smmu
    for (index, sid) in fwspec.ids.enumerated() where !fwspec.ids[..<index].contains(sid) {
        guard let step = arm_smmu_get_step_for_sid(smmu, sid) else { continue }
        await arm_smmu_write_strtab_ent(smmu, sid, step, master.ste)
    }
}

/// `arm_smmu_detach_dev`: the master leaves its domain's list, its STEs go back to
/// bypass/abort, and ATS is disabled (after invalidating the device's whole ATC).
public func arm_smmu_detach_dev(_ dev: device) async {
    ftrace("arm_smmu_detach_dev")
    guard let fwspec = dev.iommu_fwspec, let master = fwspec.master else { return }
    // Seed 001: SVA contexts go stale first (their CDs live in the domain's table).
    if !master.contexts.isEmpty { await arm_smmu_detach_contexts(master) }
    if let smmu_domain = master.domain {
        await smmu_domain.devices_lock.lock()
        smmu_domain.devices.removeAll { $0 === master }
        smmu_domain.devices_lock.unlock()
        master.domain = nil
    }
    master.ste.assigned = false
    await arm_smmu_install_ste_for_dev(fwspec)
    await arm_smmu_disable_ats(master)
}

// MARK: ATS (Linux v5.2; v4.17 predates it)

/// `arm_smmu_atc_inv_to_cmd`: a CMD_ATC_INV covering `size` bytes at `iova` (all of the
/// address space when `size` is 0) as one naturally aligned power-of-two range of 4 KB pages.
public func arm_smmu_atc_inv_to_cmd(_ ssid: UInt32, _ iova: UInt64, _ size: UInt64) -> arm_smmu_cmdq_ent {
    ftrace("arm_smmu_atc_inv_to_cmd")
    var cmd = arm_smmu_cmdq_ent(opcode: CMDQ_OP_ATC_INV)
    cmd.substream_valid = ssid != 0
    cmd.atc.ssid = ssid
    if size == 0 {
        cmd.atc.size = UInt8(ATC_INV_SIZE_ALL)
        return cmd
    }
    // ATC invalidations are always on 4096-byte pages.
    let inval_grain_shift: UInt64 = 12
    var page_start = iova >> inval_grain_shift
    let page_end = (iova &+ size &- 1) >> inval_grain_shift
    // The range must be aligned on its size, a power of two number of pages: over-invalidate.
    let log2_span = UInt64(64 - (page_start ^ page_end).leadingZeroBitCount)
    let span_mask = (UInt64(1) << log2_span) &- 1
    page_start &= ~span_mask
    cmd.atc.addr = page_start << inval_grain_shift
    cmd.atc.size = UInt8(log2_span)
    return cmd
}

/// `arm_smmu_atc_inv_master`: the command for each of the master's StreamIDs, then a sync.
func arm_smmu_atc_inv_master(_ master: arm_smmu_master_data, _ cmd: arm_smmu_cmdq_ent) async -> Int32 {
    ftrace("arm_smmu_atc_inv_master")
    guard master.ste.ats_enabled, let fwspec = master.dev?.iommu_fwspec else { return 0 }
    var cmd = cmd
    for sid in fwspec.ids {
        cmd.atc.sid = sid
        await arm_smmu_cmdq_issue_cmd(master.smmu, cmd)
    }
    return await arm_smmu_cmdq_issue_sync(master.smmu)
}

/// `arm_smmu_atc_inv_domain`: invalidates the range in the ATC of every master of the domain.
func arm_smmu_atc_inv_domain(_ smmu_domain: arm_smmu_domain, _ ssid: UInt32, _ iova: UInt64, _ size: UInt64) async -> Int32 {
    ftrace("arm_smmu_atc_inv_domain")
    guard let smmu = smmu_domain.smmu, smmu.features & ARM_SMMU_FEAT_ATS != 0 else { return 0 }
    let cmd = arm_smmu_atc_inv_to_cmd(ssid, iova, size)
    var ret: Int32 = 0
    await smmu_domain.devices_lock.lock()
    for master in smmu_domain.devices { ret |= await arm_smmu_atc_inv_master(master, cmd) }
    smmu_domain.devices_lock.unlock()
    return ret != 0 ? -ETIMEDOUT : 0
}

/// `arm_smmu_enable_ats`: for a PCI master with ATS behind an SMMU and root complex that
/// support it, enables ATS at the function with the SMMU's smallest granule as STU.
func arm_smmu_enable_ats(_ master: arm_smmu_master_data) -> Int32 {
    ftrace("arm_smmu_enable_ats")
    let smmu = master.smmu
    guard smmu.features & ARM_SMMU_FEAT_ATS != 0, let pdev = master.dev?.pci, let fwspec = master.dev?.iommu_fwspec, fwspec.flags & IOMMU_FWSPEC_PCI_RC_ATS != 0 else { return -ENXIO }
    if pdev.untrusted { return -EPERM }
    // Smallest Translation Unit: log2 of the smallest supported granule.
    let stu = smmu.pgsize_bitmap.trailingZeroBitCount
    let ret = pdev.pci_enable_ats(stu)
    if ret != 0 { return ret }
    master.ste.ats_enabled = true
    return 0
}

/// `arm_smmu_disable_ats`: invalidates the whole ATC of the master, then disables ATS.
func arm_smmu_disable_ats(_ master: arm_smmu_master_data) async {
    ftrace("arm_smmu_disable_ats")
    guard master.ste.ats_enabled, let pdev = master.dev?.pci else { return }
    _ = await arm_smmu_atc_inv_master(master, arm_smmu_atc_inv_to_cmd(0, 0, 0))
    master.ste.ats_enabled = false
    pdev.pci_disable_ats()
}

/// `arm_smmu_attach_dev`: detaches from any previous domain, finalises the domain on its
/// first master (under its init mutex), writes the CD for stage 1, and installs the STEs.
public func arm_smmu_attach_dev(_ smmu_domain: arm_smmu_domain, _ dev: device) async -> Int32 {
    ftrace("arm_smmu_attach_dev")
    guard let fwspec = dev.iommu_fwspec, let master = fwspec.master else { return -ENOENT }
    let smmu = master.smmu

    // Already attached to a different domain?
    if master.ste.assigned { await arm_smmu_detach_dev(dev) }

    await smmu_domain.init_mutex.lock()
    defer { smmu_domain.init_mutex.unlock() }

    if smmu_domain.smmu == nil {
        smmu_domain.smmu = smmu
        let ret = await arm_smmu_domain_finalise(smmu_domain)
        if ret != 0 {
            smmu_domain.smmu = nil
            return ret
        }
    } else if smmu_domain.smmu !== smmu {
        dev_err(dev.kernelDevice, "cannot attach to SMMU \(smmu_domain.smmu?.dev.name ?? "?") (upstream of \(smmu.dev.name))")
        return -ENXIO
    }

    master.ste.assigned = true
    master.domain = smmu_domain
    await smmu_domain.devices_lock.lock()
    smmu_domain.devices.append(master)
    smmu_domain.devices_lock.unlock()
    if smmu_domain.stage != .ARM_SMMU_DOMAIN_BYPASS { _ = arm_smmu_enable_ats(master) }

    switch smmu_domain.stage {
    case .ARM_SMMU_DOMAIN_BYPASS:
        master.ste.s1_cfg = nil
        master.ste.s2_cfg = nil
    case .ARM_SMMU_DOMAIN_S1:
        master.ste.s1_cfg = smmu_domain.s1_cfg
        master.ste.s2_cfg = nil
        arm_smmu_write_ctx_desc(smmu, smmu_domain.s1_cfg)
    case .ARM_SMMU_DOMAIN_S2, .ARM_SMMU_DOMAIN_NESTED:
        master.ste.s1_cfg = nil
        master.ste.s2_cfg = smmu_domain.s2_cfg
    }
    await arm_smmu_install_ste_for_dev(fwspec)
    return 0
}

/// `arm_smmu_map`.
public func arm_smmu_map(_ smmu_domain: arm_smmu_domain, _ iova: UInt64, _ paddr: UInt64, _ size: UInt64, _ prot: Int32) async -> Int32 {
    ftrace("arm_smmu_map")
    guard let ops = smmu_domain.pgtbl_ops else { return -ENODEV }
    return await ops.map(iova, paddr, size, prot)
}

/// `arm_smmu_unmap`: unmaps and queues the TLB invalidation (`arm_smmu_iotlb_sync` waits),
/// then invalidates the range in the ATCs of the domain's masters (Linux v5.2); 0 when that
/// times out.
public func arm_smmu_unmap(_ smmu_domain: arm_smmu_domain, _ iova: UInt64, _ size: UInt64) async -> UInt64 {
    ftrace("arm_smmu_unmap")
    guard let ops = smmu_domain.pgtbl_ops else { return 0 }
    let ret = await ops.unmap(iova, size)
    if ret != 0, await arm_smmu_atc_inv_domain(smmu_domain, 0, iova, size) != 0 { return 0 }
    return ret
}

/// `arm_smmu_iotlb_sync` (also `flush_iotlb_all`).
public func arm_smmu_iotlb_sync(_ smmu_domain: arm_smmu_domain) async {
    ftrace("arm_smmu_iotlb_sync")
    if let smmu = smmu_domain.smmu { await __arm_smmu_tlb_sync(smmu) }
}

/// `arm_smmu_iova_to_phys`.
public func arm_smmu_iova_to_phys(_ smmu_domain: arm_smmu_domain, _ iova: UInt64) -> UInt64 {
    ftrace("arm_smmu_iova_to_phys")
    if smmu_domain.type == .IOMMU_DOMAIN_IDENTITY { return iova }
    return smmu_domain.pgtbl_ops?.iova_to_phys(iova) ?? 0
}

/// `arm_smmu_add_device`: checks the master's StreamIDs against the stream table, creating
/// the level-2 tables they need.
public func arm_smmu_add_device(_ dev: device) async -> Int32 {
    ftrace("arm_smmu_add_device")
    guard let fwspec = dev.iommu_fwspec else { return -ENODEV }
    let master: arm_smmu_master_data
    if let existing = fwspec.master {
        master = existing
    } else {
        guard let smmu = fwspec.iommu_fwnode.drvdata as? arm_smmu_device else { return -ENODEV }
        guard let created = kzalloc(smmu.pdev.faults, { arm_smmu_master_data(smmu: smmu, dev: dev) }) else { return -ENOMEM }
        master = created
        fwspec.iommu_priv = master
    }
    let smmu = master.smmu
    // Check the SIDs are in range of the SMMU and the stream table.
    for sid in fwspec.ids {
        if !arm_smmu_sid_in_range(smmu, sid) { return -ERANGE }
        smmu.streams[sid] = master
        // Ensure the L2 table is initialised.
        if smmu.features & ARM_SMMU_FEAT_2_LVL_STRTAB != 0 {
            let ret = await arm_smmu_init_l2_strtab(smmu, sid)
            if ret != 0 { return ret }
        }
    }
    return 0
}

/// `arm_smmu_remove_device`: detaches the master and forgets it.
public func arm_smmu_remove_device(_ dev: device) async {
    ftrace("arm_smmu_remove_device")
    guard let fwspec = dev.iommu_fwspec, let master = fwspec.master else { return }
    if master.ste.assigned { await arm_smmu_detach_dev(dev) }
    await arm_smmu_remove_contexts(master)
    for sid in fwspec.ids where master.smmu.streams[sid] === master { master.smmu.streams[sid] = nil }
    fwspec.iommu_priv = nil
    dev.iommu_fwspec = nil
}

// MARK: The IOMMU core calls

/// `iommu_map`: splits the range into the largest page sizes the domain supports (as
/// `iommu_pgsize` does) and maps each; on failure, unmaps what was mapped.
public func iommu_map(_ domain: arm_smmu_domain, _ iova: UInt64, _ paddr: UInt64, _ size: UInt64, _ prot: Int32) async -> Int32 {
    ftrace("iommu_map")
    let min_pagesz = UInt64(1) << UInt64(domain.pgsize_bitmap.trailingZeroBitCount)
    guard domain.pgsize_bitmap != 0, (iova | paddr | size) & (min_pagesz - 1) == 0 else { return -EINVAL }
    var mapped: UInt64 = 0
    while mapped < size {
        let pgsize = iommu_pgsize(domain.pgsize_bitmap, iova &+ mapped | paddr &+ mapped, size - mapped)
        let ret = await arm_smmu_map(domain, iova &+ mapped, paddr &+ mapped, pgsize, prot)
        if ret != 0 {
            if mapped > 0 { _ = await iommu_unmap(domain, iova, mapped) }
            return ret
        }
        mapped += pgsize
    }
    return 0
}

/// `iommu_pgsize`: the largest supported page size that fits `size` and the alignment of
/// `addr_merge`.
func iommu_pgsize(_ pgsize_bitmap: UInt64, _ addr_merge: UInt64, _ size: UInt64) -> UInt64 {
    var pgsize_idx = 63 - size.leadingZeroBitCount
    if addr_merge != 0 { pgsize_idx = min(pgsize_idx, addr_merge.trailingZeroBitCount) }
    let mask = pgsize_idx >= 63 ? UInt64.max : (UInt64(1) << UInt64(pgsize_idx + 1)) - 1
    let candidates = mask & pgsize_bitmap
    guard candidates != 0 else { return UInt64(1) << UInt64(pgsize_bitmap.trailingZeroBitCount) }
    return UInt64(1) << UInt64(63 - candidates.leadingZeroBitCount)
}

/// `iommu_unmap`: unmaps page by page (largest first) and then syncs the TLB invalidation
/// (`iommu_tlb_sync` → `iotlb_sync`); returns the bytes unmapped.
public func iommu_unmap(_ domain: arm_smmu_domain, _ iova: UInt64, _ size: UInt64) async -> UInt64 {
    ftrace("iommu_unmap")
    var unmapped: UInt64 = 0
    while unmapped < size {
        let pgsize = iommu_pgsize(domain.pgsize_bitmap, iova &+ unmapped, size - unmapped)
        let done = await arm_smmu_unmap(domain, iova &+ unmapped, pgsize)
        if done == 0 { break }
        unmapped += done
    }
    await arm_smmu_iotlb_sync(domain)
    return unmapped
}
