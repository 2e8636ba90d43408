import Platform
import Kernel
import IOMMU

// MARK: Features and options

public let ARM_SMMU_FEAT_2_LVL_STRTAB: UInt32 = 1 << 0
public let ARM_SMMU_FEAT_2_LVL_CDTAB: UInt32 = 1 << 1
public let ARM_SMMU_FEAT_TT_LE: UInt32 = 1 << 2
public let ARM_SMMU_FEAT_TT_BE: UInt32 = 1 << 3
public let ARM_SMMU_FEAT_PRI: UInt32 = 1 << 4
public let ARM_SMMU_FEAT_ATS: UInt32 = 1 << 5
public let ARM_SMMU_FEAT_SEV: UInt32 = 1 << 6
public let ARM_SMMU_FEAT_MSI: UInt32 = 1 << 7
public let ARM_SMMU_FEAT_COHERENCY: UInt32 = 1 << 8
public let ARM_SMMU_FEAT_TRANS_S1: UInt32 = 1 << 9
public let ARM_SMMU_FEAT_TRANS_S2: UInt32 = 1 << 10
public let ARM_SMMU_FEAT_STALLS: UInt32 = 1 << 11
public let ARM_SMMU_FEAT_HYP: UInt32 = 1 << 12
public let ARM_SMMU_FEAT_STALL_FORCE: UInt32 = 1 << 13
public let ARM_SMMU_FEAT_VAX: UInt32 = 1 << 14

/// The sizes Linux's `pgsize_bitmap` is built from.
public let SZ_4K: UInt64 = 1 << 12
public let SZ_16K: UInt64 = 1 << 14
public let SZ_64K: UInt64 = 1 << 16
public let SZ_2M: UInt64 = 1 << 21
public let SZ_32M: UInt64 = 1 << 25
public let SZ_512M: UInt64 = 1 << 29
public let SZ_1G: UInt64 = 1 << 30

/// `struct arm_smmu_queue` (a class: Linux hands it around by pointer, and the driver's
/// contexts share it across scheduling points).
public final class arm_smmu_queue {
    /// Wired interrupt.
    public var irq = 0
    /// The CPU's view of the queue's memory (`base`).
    public var base: LE64Pointer?
    /// Its DMA address.
    public var base_dma: UInt64 = 0
    /// The *_BASE register value.
    public var q_base: UInt64 = 0
    /// log2 of the entries the driver uses (capped below the hardware's maximum).
    ///
    /// The index fields are read at every queue operation of the hot paths; they are only
    /// touched by one kernel context at a time (the scheduler runs one job at a time), so
    /// their dynamic exclusivity checks are off (the debug build of `make test` checks the
    /// rest of the driver's accesses).
    @exclusivity(unchecked) public var max_n_shift: UInt32 = 0
    /// 64-bit words per entry.
    public var ent_dwords = 0
    /// The driver's copy of PROD (index and wrap; overflow flag for queues it consumes).
    @exclusivity(unchecked) public var prod: UInt32 = 0
    /// The driver's copy of CONS.
    @exclusivity(unchecked) public var cons: UInt32 = 0
    /// The PROD register.
    public var prod_reg: IOMem?
    /// The CONS register.
    public var cons_reg: IOMem?

    /// An unallocated queue.
    public init() {}
}

/// `struct arm_smmu_cmdq`.
public final class arm_smmu_cmdq {
    public let q = arm_smmu_queue()
    public let lock = SpinLock("arm_smmu_cmdq.lock")
}

/// `struct arm_smmu_evtq`.
public final class arm_smmu_evtq {
    public let q = arm_smmu_queue()
    public var max_stalls: UInt32 = 0
}

/// `struct arm_smmu_priq`, with seed 001's batch counter: the PRIQ thread counts every full
/// queue's worth of entries it consumes, and every time it finds the queue empty, and wakes
/// `wq`'s waiters (whose lock is `wq_lock`), so that a waiter knows when every entry that was
/// in the queue when it started waiting has been handled.
public final class arm_smmu_priq {
    public let q = arm_smmu_queue()
    public var batch: UInt64 = 0
    public let wq = WaitQueue("arm_smmu_priq.wq")
    public let wq_lock = SpinLock("arm_smmu_priq.wq.lock")
    /// The IOPF queue page requests go to (`priq.iopf`, from the SVA tree).
    public var iopf: iopf_queue?
    /// The PRIQ thread has taken an entry off the queue and is still reporting it (with the
    /// wait-queue lock released). Not in the seed: its flush could see an empty queue in that
    /// window and return before the request reached the fault queue (see
    /// `arm_smmu_flush_priq`).
    public internal(set) var handling = false
    /// Test-only: wait as the seed does, ignoring `handling` (the race comes back).
    var flushIgnoresEntryInFlight = false
}

/// IOPF queue policies (seed 000: "one global workqueue, one per IOMMU device, one per
/// low-level fault queue, one per domain"). An SMMUv3 has one low-level fault queue for page
/// requests, its PRI queue, so per IOMMU and per fault queue are the same queue here.
public enum iopf_queue_policy {
    /// One queue shared by every IOMMU (made by the platform).
    case global(iopf_queue)
    /// The PRI queue's own (the default).
    case perFaultQueue
    /// A queue per domain, made when its first device is initialised for SVA.
    case perDomain

    /// The same as ``perFaultQueue`` on an SMMUv3.
    public static var perIOMMU: iopf_queue_policy { .perFaultQueue }
}

/// `struct arm_smmu_strtab_l1_desc`.
public struct arm_smmu_strtab_l1_desc {
    public var span: UInt8 = 0
    /// The level-2 table (nil until `arm_smmu_init_l2_strtab`).
    public var l2ptr: LE64Pointer?
    public var l2ptr_dma: UInt64 = 0
}

/// `struct arm_smmu_strtab_cfg`.
public struct arm_smmu_strtab_cfg {
    public var strtab: LE64Pointer?
    public var strtab_dma: UInt64 = 0
    public var l1_desc: [arm_smmu_strtab_l1_desc] = []
    public var num_l1_ents: UInt32 = 0
    public var strtab_base: UInt64 = 0
    public var strtab_base_cfg: UInt32 = 0
}

/// `struct arm_smmu_device`: one SMMUv3 instance as the driver sees it.
public final class arm_smmu_device {
    /// The platform device (resources, IRQs, devres). The device also holds this state as
    /// its driver data; the driver core breaks that cycle on unbind (or a failed probe).
    public let pdev: platform_device
    /// The device (for `dev_err` and friends).
    public var dev: KernelDevice { pdev.dev }
    /// The register mapping.
    public let base: IOMem
    public var features: UInt32 = 0
    public var options: UInt32 = 0
    public let cmdq = arm_smmu_cmdq()
    public let evtq = arm_smmu_evtq()
    public let priq = arm_smmu_priq()
    public var gerr_irq = 0
    public var combined_irq = 0
    /// The irq number MSIs were allocated for, by MSI index (for teardown).
    public var msi_irqs: [Int] = []
    /// IPA size.
    public var ias: UInt64 = 0
    /// PA size.
    public var oas: UInt64 = 0
    public var pgsize_bitmap: UInt64 = 0
    public var asid_bits: UInt32 = 0
    public var vmid_bits: UInt32 = 0
    public let asid_map = KernelBitmap(bits: 1 << 16)
    public let vmid_map = KernelBitmap(bits: 1 << 16)
    public var ssid_bits: UInt32 = 0
    public var sid_bits: UInt32 = 0
    public var strtab_cfg = arm_smmu_strtab_cfg()
    /// Masters by StreamID (`smmu->streams`, for the fault handlers).
    public var streams: [UInt32: arm_smmu_master_data] = [:]
    /// The PASID table SVA shares with device drivers: one for the whole kernel world, as
    /// Linux's is global, so that every SMMU of a platform draws from the same PASID space
    /// (a fresh one outside a kernel context).
    public let pasids: iommu_pasid_idr
    /// Which IOPF queue a device's page faults go to (seed 000: a driver chooses).
    public var iopf_policy = iopf_queue_policy.perFaultQueue
    /// Every IOPF queue the PRI queue feeds (the per-fault-queue one, per-domain ones, a
    /// global one), for discarding partial faults after an overflow and for the sweeper's
    /// flush.
    public var iopf_queues: [iopf_queue] {
        var queues: [iopf_queue] = priq.iopf.map { [$0] } ?? []
        if case .global(let queue) = iopf_policy, !queues.contains(where: { $0 === queue }) { queues.append(queue) }
        for queue in domain_iopf_queues where !queues.contains(where: { $0 === queue }) { queues.append(queue) }
        return queues
    }
    /// Per-domain IOPF queues made so far.
    var domain_iopf_queues: [iopf_queue] = []

    /// Stops the workers of the IOPF queues the driver made (not a global one, which belongs
    /// to the platform): the driver is going away.
    public func destroyOwnIOPFQueues() {
        priq.iopf?.wq.destroy()
        for queue in domain_iopf_queues { queue.wq.destroy() }
    }
    /// Guards every master's contexts (`contexts_lock`).
    public let contexts_lock = SpinLock("arm_smmu_device.contexts_lock")
    /// `system_long_wq`, where sweepers run (created at probe).
    public var system_long_wq: Workqueue?
    /// Test-only: seed 001's detach code as posted (it leaks a context a Stop Marker had
    /// invalidated).
    var detachAsTheSeed = false
    /// Test-only: seed 001's design broken on purpose: unbind frees the PASID at once.
    var releaseAtUnbind = false
    /// Test-only: seed 004's first bug (a request with no handler counts as reported).
    var prqReportUninitialisedRet = false
    /// Test-only: seed 004's second bug (a request handled by the driver is reported again).
    var prqReportTwice = false
    /// The `disable_bypass` module parameter (default on): unattached streams abort instead of
    /// bypassing, and so does the SMMU when firmware gave no usable description.
    public var disable_bypass = true
    /// CMD_SYNC sequence numbers (`sync_nr`).
    public let sync_nr = atomic_t()
    /// `sync_count`: the word CMD_SYNC's MSI writes its sequence number to (coherent memory,
    /// since the SMMU writes it by DMA).
    public var sync_count: LE64Pointer?

    /// Where `dmam_alloc_coherent` takes memory from.
    public var dma: CoherentMemory { pdev.dma }

    /// The driver's state for `pdev`, its registers mapped.
    public init(pdev: platform_device) {
        self.pdev = pdev
        base = devm_ioremap_resource(pdev)
        pasids = KernelScheduler.current?.global(iommu_pasid_idr.self) { iommu_pasid_idr() } ?? iommu_pasid_idr()
    }
}

public let ARM_SMMU_OPT_SKIP_PREFETCH: UInt32 = 1 << 0
public let ARM_SMMU_OPT_PAGE0_REGS_ONLY: UInt32 = 1 << 1
public let PAGE_SIZE: UInt64 = 4096

/// `arm_smmu_page1_fixup`: with ARM_SMMU_OPT_PAGE0_REGS_ONLY the page-1 registers are read at
/// their page-0 aliases.
public func arm_smmu_page1_fixup(_ offset: UInt64, _ smmu: arm_smmu_device) -> IOMem {
    if offset > SZ_64K && smmu.options & ARM_SMMU_OPT_PAGE0_REGS_ONLY != 0 {
        return smmu.base.advanced(by: offset - SZ_64K)
    }
    return smmu.base.advanced(by: offset)
}

/// `arm_smmu_init_one_queue`: allocates the queue's memory, halving the queue while the
/// allocation fails and the queue is at least a page (as later Linux does), and computes its
/// *_BASE value. -ENOMEM with Linux's message when even a page cannot be had.
public func arm_smmu_init_one_queue(_ smmu: arm_smmu_device, _ q: arm_smmu_queue, _ prod_off: UInt64, _ cons_off: UInt64, _ dwords: Int, _ name: String) -> Int32 {
    ftrace("arm_smmu_init_one_queue")
    var qsz: UInt64
    var base: LE64Pointer?
    repeat {
        qsz = (UInt64(1) << UInt64(q.max_n_shift)) * UInt64(dwords) << 3
        base = dmam_alloc_coherent(smmu.pdev, qsz, alignment: max(qsz, PAGE_SIZE))
        if base != nil || qsz < PAGE_SIZE || q.max_n_shift == 0 { break }
        q.max_n_shift -= 1
    } while true
    guard let base else {
        dev_err(smmu.dev, "failed to allocate queue (0x\(String(qsz, radix: 16)) bytes) for \(name)")
        return -ENOMEM
    }
    q.base = base
    q.base_dma = base.address
    dev_info(smmu.dev, "allocated \(1 << q.max_n_shift) entries for \(name)")

    q.prod_reg = arm_smmu_page1_fixup(prod_off, smmu)
    q.cons_reg = arm_smmu_page1_fixup(cons_off, smmu)
    q.ent_dwords = dwords

    q.q_base = Q_BASE_RWA
    q.q_base |= q.base_dma & Q_BASE_ADDR_MASK
    q.q_base |= FIELD_PREP(Q_BASE_LOG2SIZE, UInt64(q.max_n_shift))

    q.prod = 0
    q.cons = 0
    return 0
}

/// `arm_smmu_init_queues`: the command and event queues, and the PRI queue when PRI is
/// supported.
public func arm_smmu_init_queues(_ smmu: arm_smmu_device) -> Int32 {
    ftrace("arm_smmu_init_queues")
    var ret = arm_smmu_init_one_queue(smmu, smmu.cmdq.q, ARM_SMMU_CMDQ_PROD, ARM_SMMU_CMDQ_CONS, CMDQ_ENT_DWORDS, "cmdq")
    if ret != 0 { return ret }
    ret = arm_smmu_init_one_queue(smmu, smmu.evtq.q, ARM_SMMU_EVTQ_PROD, ARM_SMMU_EVTQ_CONS, EVTQ_ENT_DWORDS, "evtq")
    if ret != 0 { return ret }
    if let scheduler = KernelScheduler.current { smmu.system_long_wq = Workqueue("events_long", on: scheduler) }
    guard smmu.features & ARM_SMMU_FEAT_PRI != 0 else { return 0 }
    // Page requests go to an IOPF queue (the SVA tree), flushed through the PRIQ thread.
    if let scheduler = KernelScheduler.current {
        smmu.priq.iopf = iopf_queue_alloc(smmu.dev.name, arm_smmu_iopf_queue_flush, nil, on: scheduler, pasids: smmu.pasids, faults: smmu.pdev.faults)
        if smmu.priq.iopf == nil { return -ENOMEM }
    }
    return arm_smmu_init_one_queue(smmu, smmu.priq.q, ARM_SMMU_PRIQ_PROD, ARM_SMMU_PRIQ_CONS, PRIQ_ENT_DWORDS, "priq")
}

/// `arm_smmu_device_hw_probe`: reads IDR0, IDR1 and IDR5 and derives the features, queue
/// sizes, identifier widths, page sizes and address sizes, with Linux's checks and messages.
/// Returns 0 or a negative errno.
public func arm_smmu_device_hw_probe(_ smmu: arm_smmu_device) async -> Int32 {
    ftrace("arm_smmu_device_hw_probe")
    let coherent = smmu.features & ARM_SMMU_FEAT_COHERENCY != 0

    // IDR0
    var reg = UInt64(await readl_relaxed(smmu.base.advanced(by: ARM_SMMU_IDR0)))

    // 2-level structures
    if FIELD_GET(IDR0_ST_LVL, reg) == IDR0_ST_LVL_2LVL { smmu.features |= ARM_SMMU_FEAT_2_LVL_STRTAB }
    if reg & IDR0_CD2L != 0 { smmu.features |= ARM_SMMU_FEAT_2_LVL_CDTAB }

    // Translation table endianness: the CPU here is little-endian.
    switch FIELD_GET(IDR0_TTENDIAN, reg) {
    case IDR0_TTENDIAN_MIXED:
        smmu.features |= ARM_SMMU_FEAT_TT_LE | ARM_SMMU_FEAT_TT_BE
    case IDR0_TTENDIAN_LE:
        smmu.features |= ARM_SMMU_FEAT_TT_LE
    default:
        dev_err(smmu.dev, "unknown/unsupported TT endianness!")
        return -ENXIO
    }

    // Boolean feature flags (CONFIG_PCI_PRI and CONFIG_PCI_ATS are on).
    if reg & IDR0_PRI != 0 { smmu.features |= ARM_SMMU_FEAT_PRI }
    if reg & IDR0_ATS != 0 { smmu.features |= ARM_SMMU_FEAT_ATS }
    if reg & IDR0_SEV != 0 { smmu.features |= ARM_SMMU_FEAT_SEV }
    if reg & IDR0_MSI != 0 { smmu.features |= ARM_SMMU_FEAT_MSI }
    if reg & IDR0_HYP != 0 { smmu.features |= ARM_SMMU_FEAT_HYP }

    // The coherency feature as set by firmware is used in preference to the ID register, but
    // a mismatch is reported.
    if (reg & IDR0_COHACC != 0) != coherent {
        dev_warn(smmu.dev, "IDR0.COHACC overridden by FW configuration (\(coherent ? "true" : "false"))")
    }

    switch FIELD_GET(IDR0_STALL_MODEL, reg) {
    case IDR0_STALL_MODEL_FORCE:
        smmu.features |= ARM_SMMU_FEAT_STALL_FORCE | ARM_SMMU_FEAT_STALLS
    case IDR0_STALL_MODEL_STALL:
        smmu.features |= ARM_SMMU_FEAT_STALLS
    default:
        break
    }

    if reg & IDR0_S1P != 0 { smmu.features |= ARM_SMMU_FEAT_TRANS_S1 }
    if reg & IDR0_S2P != 0 { smmu.features |= ARM_SMMU_FEAT_TRANS_S2 }
    if reg & (IDR0_S1P | IDR0_S2P) == 0 {
        dev_err(smmu.dev, "no translation support!")
        return -ENXIO
    }

    // Only the AArch64 table format is supported.
    switch FIELD_GET(IDR0_TTF, reg) {
    case IDR0_TTF_AARCH32_64:
        smmu.ias = 40
    case IDR0_TTF_AARCH64:
        break
    default:
        dev_err(smmu.dev, "AArch64 table format not supported!")
        return -ENXIO
    }

    // ASID/VMID sizes
    smmu.asid_bits = reg & IDR0_ASID16 != 0 ? 16 : 8
    smmu.vmid_bits = reg & IDR0_VMID16 != 0 ? 16 : 8

    // IDR1
    reg = UInt64(await readl_relaxed(smmu.base.advanced(by: ARM_SMMU_IDR1)))
    if reg & (IDR1_TABLES_PRESET | IDR1_QUEUES_PRESET | IDR1_REL) != 0 {
        dev_err(smmu.dev, "embedded implementation not supported")
        return -ENXIO
    }

    // Queue sizes, capped at 4k
    smmu.cmdq.q.max_n_shift = min(UInt32(CMDQ_MAX_SZ_SHIFT), UInt32(FIELD_GET(IDR1_CMDQS, reg)))
    if smmu.cmdq.q.max_n_shift == 0 {
        // Odd alignment restrictions on the base, so ignore for now.
        dev_err(smmu.dev, "unit-length command queue not supported")
        return -ENXIO
    }
    smmu.evtq.q.max_n_shift = min(UInt32(EVTQ_MAX_SZ_SHIFT), UInt32(FIELD_GET(IDR1_EVTQS, reg)))
    smmu.priq.q.max_n_shift = min(UInt32(PRIQ_MAX_SZ_SHIFT), UInt32(FIELD_GET(IDR1_PRIQS, reg)))

    // SID/SSID sizes
    smmu.ssid_bits = UInt32(FIELD_GET(IDR1_SSIDSIZE, reg))
    smmu.sid_bits = UInt32(FIELD_GET(IDR1_SIDSIZE, reg))

    // If the SMMU supports fewer bits than would fill a single L2 stream table, use a linear
    // table instead.
    if smmu.sid_bits <= UInt32(STRTAB_SPLIT) { smmu.features &= ~ARM_SMMU_FEAT_2_LVL_STRTAB }

    // IDR5
    reg = UInt64(await readl_relaxed(smmu.base.advanced(by: ARM_SMMU_IDR5)))

    // Maximum number of outstanding stalls
    smmu.evtq.max_stalls = UInt32(FIELD_GET(IDR5_STALL_MAX, reg))

    // Page sizes
    if reg & IDR5_GRAN64K != 0 { smmu.pgsize_bitmap |= SZ_64K | SZ_512M }
    if reg & IDR5_GRAN16K != 0 { smmu.pgsize_bitmap |= SZ_16K | SZ_32M }
    if reg & IDR5_GRAN4K != 0 { smmu.pgsize_bitmap |= SZ_4K | SZ_2M | SZ_1G }

    // Input address size
    if FIELD_GET(IDR5_VAX, reg) == IDR5_VAX_52_BIT { smmu.features |= ARM_SMMU_FEAT_VAX }

    // Output address size
    switch FIELD_GET(IDR5_OAS, reg) {
    case IDR5_OAS_32_BIT: smmu.oas = 32
    case IDR5_OAS_36_BIT: smmu.oas = 36
    case IDR5_OAS_40_BIT: smmu.oas = 40
    case IDR5_OAS_42_BIT: smmu.oas = 42
    case IDR5_OAS_44_BIT: smmu.oas = 44
    case IDR5_OAS_52_BIT:
        smmu.oas = 52
        smmu.pgsize_bitmap |= UInt64(1) << 42  // 4TB
    case IDR5_OAS_48_BIT:
        smmu.oas = 48
    default:
        dev_info(smmu.dev, "unknown output address size. Truncating to 48-bit")
        smmu.oas = 48
    }

    smmu.ias = max(smmu.ias, smmu.oas)

    dev_info(smmu.dev, "ias \(smmu.ias)-bit, oas \(smmu.oas)-bit (features 0x\(hex8(smmu.features)))")
    return 0
}

/// `%08x`.
func hex8(_ value: UInt32) -> String { printkHex(UInt64(value), width: 8) }

// MARK: Register handshakes

/// `arm_smmu_write_reg_sync`: writes `val` to the register at `reg_off` and polls the one at
/// `ack_off` until it reads the same, for ARM_SMMU_POLL_TIMEOUT_US.
public func arm_smmu_write_reg_sync(_ smmu: arm_smmu_device, _ val: UInt32, _ reg_off: UInt64, _ ack_off: UInt64) async -> Int32 {
    ftrace("arm_smmu_write_reg_sync")
    await writel_relaxed(val, smmu.base.advanced(by: reg_off))
    return await readl_relaxed_poll_timeout(smmu.base.advanced(by: ack_off), delayMicroseconds: 1, timeoutMicroseconds: ARM_SMMU_POLL_TIMEOUT_US) { $0 == val }.result
}

/// `arm_smmu_update_gbpa`: GBPA is "special": waits for any update to finish, writes the new
/// fields with Update set, and waits for that update to finish.
public func arm_smmu_update_gbpa(_ smmu: arm_smmu_device, _ set: UInt32, _ clr: UInt32) async -> Int32 {
    ftrace("arm_smmu_update_gbpa")
    let gbpa = smmu.base.advanced(by: ARM_SMMU_GBPA)
    let update = UInt32(GBPA_UPDATE)
    var (reg, ret) = await readl_relaxed_poll_timeout(gbpa, delayMicroseconds: 1, timeoutMicroseconds: ARM_SMMU_POLL_TIMEOUT_US) { $0 & update == 0 }
    if ret != 0 { return ret }
    reg = (reg & ~clr) | set
    await writel_relaxed(reg | update, gbpa)
    ret = await readl_relaxed_poll_timeout(gbpa, delayMicroseconds: 1, timeoutMicroseconds: ARM_SMMU_POLL_TIMEOUT_US) { $0 & update == 0 }.result
    if ret != 0 { dev_err(smmu.dev, "GBPA not responding to update") }
    return ret
}

/// `arm_smmu_device_disable`: clears CR0 and waits for CR0ACK.
public func arm_smmu_device_disable(_ smmu: arm_smmu_device) async -> Int32 {
    ftrace("arm_smmu_device_disable")
    let ret = await arm_smmu_write_reg_sync(smmu, 0, ARM_SMMU_CR0, ARM_SMMU_CR0ACK)
    if ret != 0 { dev_err(smmu.dev, "failed to clear cr0") }
    return ret
}
