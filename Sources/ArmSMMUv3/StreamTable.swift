import Kernel
import IOMMU

// Stream table and context descriptor manipulation (arm_smmu_write_ctx_desc,
// arm_smmu_write_strtab_ent and the table set-up of arm_smmu_init_strtab), ported from Linux
// v4.17. Every change to a live STE is followed by CFGI_STE + CMD_SYNC.

/// `struct arm_smmu_ctx_desc`.
public struct arm_smmu_ctx_desc {
    public var asid: UInt16 = 0
    public var ttbr: UInt64 = 0
    public var tcr: UInt64 = 0
    public var mair: UInt64 = 0
}

/// `struct arm_smmu_s1_cfg` (a class: STEs point at their domain's). v4.17 has one CD; for
/// SVA (the 2018 tree's arm-smmu-v3-context.c) the CDs form a linear table of 2^`s1cdmax`
/// entries, CD 0 being the domain's own (`cdptr` is the table).
public final class arm_smmu_s1_cfg {
    public var cdptr: LE64Pointer?
    public var cdptr_dma: UInt64 = 0
    public var cd = arm_smmu_ctx_desc()
    /// log2 of the CDs in the table (0: a single CD).
    public var s1cdmax: UInt32 = 0
    public init() {}
}

/// `struct arm_smmu_s2_cfg`.
public final class arm_smmu_s2_cfg {
    public var vmid: UInt16 = 0
    public var vttbr: UInt64 = 0
    public var vtcr: UInt64 = 0
    public init() {}
}

/// `struct arm_smmu_strtab_ent`: what a master's STEs should say.
public struct arm_smmu_strtab_ent {
    /// Attached to a domain (false: bypass or abort, as `disable_bypass` says).
    public var assigned = false
    public var s1_cfg: arm_smmu_s1_cfg?
    public var s2_cfg: arm_smmu_s2_cfg?
    /// ATS is enabled at the master's PCIe function, so the STE lets it translate (STE.EATS;
    /// Linux v5.2's `master->ats_enabled`: v4.17 set EATS on every stage-1 STE).
    public var ats_enabled = false
    public init() {}
}

/// `arm_smmu_cpu_tcr_to_cd`: repacks the CPU-format TCR fields of TTBR0 into CD word 0.
public func arm_smmu_cpu_tcr_to_cd(_ tcr: UInt64) -> UInt64 {
    var val: UInt64 = 0
    val |= ARM_SMMU_TCR2CD(tcr, CTXDESC_CD_0_TCR_T0SZ, ARM64_TCR_T0SZ)
    val |= ARM_SMMU_TCR2CD(tcr, CTXDESC_CD_0_TCR_TG0, ARM64_TCR_TG0)
    val |= ARM_SMMU_TCR2CD(tcr, CTXDESC_CD_0_TCR_IRGN0, ARM64_TCR_IRGN0)
    val |= ARM_SMMU_TCR2CD(tcr, CTXDESC_CD_0_TCR_ORGN0, ARM64_TCR_ORGN0)
    val |= ARM_SMMU_TCR2CD(tcr, CTXDESC_CD_0_TCR_SH0, ARM64_TCR_SH0)
    val |= ARM_SMMU_TCR2CD(tcr, CTXDESC_CD_0_TCR_EPD0, ARM64_TCR_EPD0)
    val |= ARM_SMMU_TCR2CD(tcr, CTXDESC_CD_0_TCR_EPD1, ARM64_TCR_EPD1)
    val |= ARM_SMMU_TCR2CD(tcr, CTXDESC_CD_0_TCR_IPS, ARM64_TCR_IPS)
    val |= ARM_SMMU_TCR2CD(tcr, CTXDESC_CD_0_TCR_TBI0, ARM64_TCR_TBI0)
    return val
}

/// `arm_smmu_write_ctx_desc`: fills the domain's single CD. No invalidation: the STE that
/// points at it is installed (and invalidated) afterwards.
public func arm_smmu_write_ctx_desc(_ smmu: arm_smmu_device, _ cfg: arm_smmu_s1_cfg) {
    ftrace("arm_smmu_write_ctx_desc")
    guard let cdptr = cfg.cdptr else { return }
    var val = arm_smmu_cpu_tcr_to_cd(cfg.cd.tcr) | CTXDESC_CD_0_R | CTXDESC_CD_0_A | CTXDESC_CD_0_ASET | CTXDESC_CD_0_AA64 | FIELD_PREP(CTXDESC_CD_0_ASID, UInt64(cfg.cd.asid)) | CTXDESC_CD_0_V
    // STALL_MODEL==0b10 && CD.S==0 is ILLEGAL.
    if smmu.features & ARM_SMMU_FEAT_STALL_FORCE != 0 { val |= CTXDESC_CD_0_S }
    cdptr[0] = val
    cdptr[1] = cfg.cd.ttbr & CTXDESC_CD_1_TTB0_MASK
    cdptr[3] = cfg.cd.mair
}

/// `arm_smmu_write_strtab_l1_desc`.
public func arm_smmu_write_strtab_l1_desc(_ dst: LE64Pointer, _ desc: arm_smmu_strtab_l1_desc) {
    ftrace("arm_smmu_write_strtab_l1_desc")
    var val: UInt64 = 0
    val |= FIELD_PREP(STRTAB_L1_DESC_SPAN, UInt64(desc.span))
    val |= desc.l2ptr_dma & STRTAB_L1_DESC_L2PTR_MASK
    dst[0] = val
}

/// `arm_smmu_sync_ste_for_sid`: CFGI_STE (leaf) + CMD_SYNC.
public func arm_smmu_sync_ste_for_sid(_ smmu: arm_smmu_device, _ sid: UInt32) async {
    ftrace("arm_smmu_sync_ste_for_sid")
    var cmd = arm_smmu_cmdq_ent(opcode: CMDQ_OP_CFGI_STE)
    cmd.cfgi.sid = sid
    cmd.cfgi.leaf = true
    await arm_smmu_cmdq_issue_cmd(smmu, cmd)
    await arm_smmu_cmdq_issue_sync(smmu)
}

/// `arm_smmu_write_strtab_ent`. The SMMU may read an STE's doublewords in any order, so:
/// invalid -> bypass/abort (initialisation, `sid` nil: not live, no sync); bypass/abort ->
/// translation (everything but word 0, sync, word 0, sync); translation -> bypass/abort
/// (word 0, sync). A live translating STE is never rewritten in place (Linux BUG()s).
public func arm_smmu_write_strtab_ent(_ smmu: arm_smmu_device, _ sid: UInt32?, _ dst: LE64Pointer, _ ste: arm_smmu_strtab_ent) async {
    ftrace("arm_smmu_write_strtab_ent")
    var val = dst[0]
    var ste_live = false
    if val & STRTAB_STE_0_V != 0 {
        switch FIELD_GET(STRTAB_STE_0_CFG, val) {
        case STRTAB_STE_0_CFG_BYPASS:
            break
        case STRTAB_STE_0_CFG_S1_TRANS, STRTAB_STE_0_CFG_S2_TRANS:
            ste_live = true
        case STRTAB_STE_0_CFG_ABORT where smmu.disable_bypass:
            break
        default:
            // STE corruption.
            BUG(smmu.dev.log, "arm_smmu_write_strtab_ent (STE corruption, SID \(sid.map(String.init) ?? "-1"))")
            return
        }
    }

    // Nuke the existing STE_0 value, as it is rewritten.
    val = STRTAB_STE_0_V

    // Bypass/fault
    if !ste.assigned || (ste.s1_cfg == nil && ste.s2_cfg == nil) {
        if !ste.assigned && smmu.disable_bypass {
            val |= FIELD_PREP(STRTAB_STE_0_CFG, STRTAB_STE_0_CFG_ABORT)
        } else {
            val |= FIELD_PREP(STRTAB_STE_0_CFG, STRTAB_STE_0_CFG_BYPASS)
        }
        dst[0] = val
        dst[1] = FIELD_PREP(STRTAB_STE_1_SHCFG, STRTAB_STE_1_SHCFG_INCOMING)
        dst[2] = 0  // Nuke the VMID
        // The SMMU can cache negatively, so sync whether or not the old STE was live.
        if let sid { await arm_smmu_sync_ste_for_sid(smmu, sid) }
        return
    }

    if let s1_cfg = ste.s1_cfg {
        if ste_live {
            BUG(smmu.dev.log, "arm_smmu_write_strtab_ent (live STE, SID \(sid.map(String.init) ?? "-1"))")
            return
        }
        var word1 = FIELD_PREP(STRTAB_STE_1_S1CIR, STRTAB_STE_1_S1C_CACHE_WBRA) |
            FIELD_PREP(STRTAB_STE_1_S1COR, STRTAB_STE_1_S1C_CACHE_WBRA) |
            FIELD_PREP(STRTAB_STE_1_S1CSH, ARM_SMMU_SH_ISH) |
            FIELD_PREP(STRTAB_STE_1_STRW, STRTAB_STE_1_STRW_NSEL1)
        if ste.ats_enabled { word1 |= FIELD_PREP(STRTAB_STE_1_EATS, STRTAB_STE_1_EATS_TRANS) }
        if smmu.features & ARM_SMMU_FEAT_STALLS != 0 && smmu.features & ARM_SMMU_FEAT_STALL_FORCE == 0 {
            word1 |= STRTAB_STE_1_S1STALLD
        }
        if s1_cfg.s1cdmax > 0 {
            // Transactions without a PASID use CD 0.
            word1 |= FIELD_PREP(STRTAB_STE_1_S1DSS, STRTAB_STE_1_S1DSS_SSID0)
        }
        dst[1] = word1
        val |= (s1_cfg.cdptr_dma & STRTAB_STE_0_S1CTXPTR_MASK) | FIELD_PREP(STRTAB_STE_0_CFG, STRTAB_STE_0_CFG_S1_TRANS)
        val |= FIELD_PREP(STRTAB_STE_0_S1CDMAX, UInt64(s1_cfg.s1cdmax)) | FIELD_PREP(STRTAB_STE_0_S1FMT, STRTAB_STE_0_S1FMT_LINEAR)
    }

    if let s2_cfg = ste.s2_cfg {
        if ste_live {
            BUG(smmu.dev.log, "arm_smmu_write_strtab_ent (live STE, SID \(sid.map(String.init) ?? "-1"))")
            return
        }
        dst[2] = FIELD_PREP(STRTAB_STE_2_S2VMID, UInt64(s2_cfg.vmid)) | FIELD_PREP(STRTAB_STE_2_VTCR, s2_cfg.vtcr) | STRTAB_STE_2_S2PTW | STRTAB_STE_2_S2AA64 | STRTAB_STE_2_S2R
        dst[3] = s2_cfg.vttbr & STRTAB_STE_3_S2TTB_MASK
        val |= FIELD_PREP(STRTAB_STE_0_CFG, STRTAB_STE_0_CFG_S2_TRANS)
    }

    guard let sid else {
        dst[0] = val
        return
    }
    await arm_smmu_sync_ste_for_sid(smmu, sid)
    dst[0] = val
    await arm_smmu_sync_ste_for_sid(smmu, sid)

    // It is likely that the new STE is used soon.
    if smmu.options & ARM_SMMU_OPT_SKIP_PREFETCH == 0 {
        var prefetch_cmd = arm_smmu_cmdq_ent(opcode: CMDQ_OP_PREFETCH_CFG)
        prefetch_cmd.prefetch.sid = sid
        await arm_smmu_cmdq_issue_cmd(smmu, prefetch_cmd)
    }
}

/// `arm_smmu_init_bypass_stes`: `nent` STEs at `strtab` made bypass or abort (not live).
public func arm_smmu_init_bypass_stes(_ smmu: arm_smmu_device, _ strtab: LE64Pointer, _ nent: Int) async {
    ftrace("arm_smmu_init_bypass_stes")
    let ste = arm_smmu_strtab_ent()
    for index in 0..<nent {
        await arm_smmu_write_strtab_ent(smmu, nil, strtab.advanced(by: index &* STRTAB_STE_DWORDS), ste)
    }
}

/// `arm_smmu_init_l2_strtab`: allocates the level-2 table covering `sid` on first use, fills it
/// with bypass/abort STEs and only then publishes its L1 descriptor.
public func arm_smmu_init_l2_strtab(_ smmu: arm_smmu_device, _ sid: UInt32) async -> Int32 {
    ftrace("arm_smmu_init_l2_strtab")
    let index = Int(sid >> UInt32(STRTAB_SPLIT))
    guard index < smmu.strtab_cfg.l1_desc.count, let l1 = smmu.strtab_cfg.strtab else { return -ERANGE }
    if smmu.strtab_cfg.l1_desc[index].l2ptr != nil { return 0 }

    let size = UInt64(1) << UInt64(STRTAB_SPLIT + STRTAB_STE_DWORDS.trailingZeroBitCount + 3)
    let strtab = l1.advanced(by: index &* STRTAB_L1_DESC_DWORDS)

    var desc = arm_smmu_strtab_l1_desc()
    desc.span = UInt8(STRTAB_SPLIT + 1)
    guard let l2ptr = dmam_alloc_coherent(smmu.pdev, size, alignment: size) else {
        dev_err(smmu.dev, "failed to allocate l2 stream table for SID \(sid)")
        return -ENOMEM
    }
    desc.l2ptr = l2ptr
    desc.l2ptr_dma = l2ptr.address
    smmu.strtab_cfg.l1_desc[index] = desc
    await arm_smmu_init_bypass_stes(smmu, l2ptr, 1 << STRTAB_SPLIT)
    arm_smmu_write_strtab_l1_desc(strtab, desc)
    return 0
}

/// `arm_smmu_init_l1_strtab`: the L1 descriptors (all invalid: span 0).
func arm_smmu_init_l1_strtab(_ smmu: arm_smmu_device) -> Int32 {
    ftrace("arm_smmu_init_l1_strtab")
    let cfg = smmu.strtab_cfg
    guard let strtab = cfg.strtab, let l1_desc = devm_kzalloc(smmu.pdev, { Array(repeating: arm_smmu_strtab_l1_desc(), count: Int(cfg.num_l1_ents)) }) else {
        dev_err(smmu.dev, "failed to allocate l1 stream table desc")
        return -ENOMEM
    }
    smmu.strtab_cfg.l1_desc = l1_desc
    for index in 0..<Int(cfg.num_l1_ents) {
        arm_smmu_write_strtab_l1_desc(strtab.advanced(by: index &* STRTAB_L1_DESC_DWORDS), l1_desc[index])
    }
    return 0
}

/// `arm_smmu_init_strtab_2lvl`: an L1 table covering up to 2^STRTAB_L1_SZ_SHIFT bytes of
/// descriptors (capped to SIDSIZE), each L2 table allocated on demand.
func arm_smmu_init_strtab_2lvl(_ smmu: arm_smmu_device) -> Int32 {
    ftrace("arm_smmu_init_strtab_2lvl")
    // Calculate the L1 size, capped to the SIDSIZE.
    var size = UInt32(STRTAB_L1_SZ_SHIFT - (STRTAB_L1_DESC_DWORDS.trailingZeroBitCount + 3))
    size = min(size, smmu.sid_bits &- UInt32(STRTAB_SPLIT))
    smmu.strtab_cfg.num_l1_ents = 1 << size

    size += UInt32(STRTAB_SPLIT)
    if size < smmu.sid_bits {
        dev_warn(smmu.dev, "2-level strtab only covers \(size)/\(smmu.sid_bits) bits of SID")
    }

    let l1size = UInt64(smmu.strtab_cfg.num_l1_ents) * UInt64(STRTAB_L1_DESC_DWORDS << 3)
    guard let strtab = dmam_alloc_coherent(smmu.pdev, l1size, alignment: max(l1size, 64)) else {
        dev_err(smmu.dev, "failed to allocate l1 stream table (\(size) bytes)")
        return -ENOMEM
    }
    smmu.strtab_cfg.strtab = strtab
    smmu.strtab_cfg.strtab_dma = strtab.address

    // Configure strtab_base_cfg for 2 levels.
    var reg = FIELD_PREP(STRTAB_BASE_CFG_FMT, STRTAB_BASE_CFG_FMT_2LVL)
    reg |= FIELD_PREP(STRTAB_BASE_CFG_LOG2SIZE, UInt64(size))
    reg |= FIELD_PREP(STRTAB_BASE_CFG_SPLIT, UInt64(STRTAB_SPLIT))
    smmu.strtab_cfg.strtab_base_cfg = UInt32(reg)

    return arm_smmu_init_l1_strtab(smmu)
}

/// `arm_smmu_init_strtab_linear`: one STE per SID of SIDSIZE, all bypass/abort.
func arm_smmu_init_strtab_linear(_ smmu: arm_smmu_device) async -> Int32 {
    ftrace("arm_smmu_init_strtab_linear")
    // IDR1.SIDSIZE is 6 bits: a hostile value makes this wrap to a size no allocation meets
    // (-ENOMEM), not a trap.
    let size = (UInt64(1) << UInt64(smmu.sid_bits)) &* UInt64(STRTAB_STE_DWORDS << 3)
    guard let strtab = dmam_alloc_coherent(smmu.pdev, size, alignment: max(size, 64)) else {
        dev_err(smmu.dev, "failed to allocate linear stream table (\(size) bytes)")
        return -ENOMEM
    }
    smmu.strtab_cfg.strtab = strtab
    smmu.strtab_cfg.strtab_dma = strtab.address
    smmu.strtab_cfg.num_l1_ents = 1 << smmu.sid_bits

    // Configure strtab_base_cfg for a linear table covering all SIDs.
    var reg = FIELD_PREP(STRTAB_BASE_CFG_FMT, STRTAB_BASE_CFG_FMT_LINEAR)
    reg |= FIELD_PREP(STRTAB_BASE_CFG_LOG2SIZE, UInt64(smmu.sid_bits))
    smmu.strtab_cfg.strtab_base_cfg = UInt32(reg)

    await arm_smmu_init_bypass_stes(smmu, strtab, Int(smmu.strtab_cfg.num_l1_ents))
    return 0
}

/// `arm_smmu_init_strtab`: the stream table and STRTAB_BASE's value; VMID 0 is reserved for
/// stage-2 bypass STEs.
public func arm_smmu_init_strtab(_ smmu: arm_smmu_device) async -> Int32 {
    ftrace("arm_smmu_init_strtab")
    let ret = smmu.features & ARM_SMMU_FEAT_2_LVL_STRTAB != 0 ? arm_smmu_init_strtab_2lvl(smmu) : await arm_smmu_init_strtab_linear(smmu)
    if ret != 0 { return ret }

    // Set the strtab base address.
    var reg = smmu.strtab_cfg.strtab_dma & STRTAB_BASE_ADDR_MASK
    reg |= STRTAB_BASE_RA
    smmu.strtab_cfg.strtab_base = reg

    // Allocate the first VMID for stage-2 bypass STEs.
    smmu.vmid_map.set_bit(0)
    return 0
}

/// `arm_smmu_get_step_for_sid`: the STE of `sid` (its L2 table must exist).
public func arm_smmu_get_step_for_sid(_ smmu: arm_smmu_device, _ sid: UInt32) -> LE64Pointer? {
    let cfg = smmu.strtab_cfg
    if smmu.features & ARM_SMMU_FEAT_2_LVL_STRTAB != 0 {
        // Two-level walk
        let index = Int(sid >> UInt32(STRTAB_SPLIT)) * STRTAB_L1_DESC_DWORDS
        guard index < cfg.l1_desc.count, let l2ptr = cfg.l1_desc[index].l2ptr else { return nil }
        return l2ptr.advanced(by: Int(sid & ((1 << UInt32(STRTAB_SPLIT)) - 1)) * STRTAB_STE_DWORDS)
    }
    // Simple linear lookup
    guard sid < cfg.num_l1_ents else { return nil }
    return cfg.strtab?.advanced(by: Int(sid) * STRTAB_STE_DWORDS)
}

/// `arm_smmu_sid_in_range`.
public func arm_smmu_sid_in_range(_ smmu: arm_smmu_device, _ sid: UInt32) -> Bool {
    var limit = UInt64(smmu.strtab_cfg.num_l1_ents)
    if smmu.features & ARM_SMMU_FEAT_2_LVL_STRTAB != 0 { limit *= UInt64(1) << UInt64(STRTAB_SPLIT) }
    return UInt64(sid) < limit
}
