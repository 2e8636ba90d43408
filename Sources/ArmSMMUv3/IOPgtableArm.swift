import Kernel
import IOMMU

// A port of Linux's CPU-agnostic Arm page-table allocator (drivers/iommu/io-pgtable-arm.c,
// v4.17): AArch64 LPAE stage-1 and stage-2 tables at 4K, 16K or 64K granules, with block
// mappings, block splitting on partial unmap, and the TLB maintenance callbacks the IOMMU
// driver provides. Tables live in bus memory, where the SMMU walks them.

/// `IOMMU_READ` and the other `prot` flags of `iommu_map`.
public let IOMMU_READ: Int32 = 1 << 0
public let IOMMU_WRITE: Int32 = 1 << 1
public let IOMMU_CACHE: Int32 = 1 << 2
public let IOMMU_NOEXEC: Int32 = 1 << 3
public let IOMMU_MMIO: Int32 = 1 << 4

/// `-EEXIST`.
public let EEXIST: Int32 = 17

/// `enum io_pgtable_fmt` (the AArch64 formats).
public enum io_pgtable_fmt: Sendable {
    case ARM_64_LPAE_S1
    case ARM_64_LPAE_S2
}

/// `struct iommu_gather_ops`: how the page-table code asks the IOMMU driver for TLB
/// maintenance.
public struct iommu_gather_ops {
    /// Invalidate everything the table may have cached.
    public var tlb_flush_all: () async -> Void
    /// Queue invalidation of `size` bytes at `iova` in steps of `granule`; `leaf`: only
    /// last-level entries changed.
    public var tlb_add_flush: (_ iova: UInt64, _ size: UInt64, _ granule: UInt64, _ leaf: Bool) async -> Void
    /// Wait for the queued invalidations.
    public var tlb_sync: () async -> Void

    public init(tlb_flush_all: @escaping () async -> Void, tlb_add_flush: @escaping (UInt64, UInt64, UInt64, Bool) async -> Void, tlb_sync: @escaping () async -> Void) {
        self.tlb_flush_all = tlb_flush_all
        self.tlb_add_flush = tlb_add_flush
        self.tlb_sync = tlb_sync
    }
}

/// `struct io_pgtable_cfg`.
public struct io_pgtable_cfg {
    public var quirks: UInt = 0
    public var pgsize_bitmap: UInt64
    public var ias: UInt32
    public var oas: UInt32
    public var tlb: iommu_gather_ops
    /// `iommu_dev`: where table pages come from.
    public var iommu_dev: platform_device
    /// `arm_lpae_s1_cfg`.
    public var s1_ttbr: [UInt64] = [0, 0]
    public var s1_tcr: UInt64 = 0
    public var s1_mair: [UInt64] = [0, 0]
    /// `arm_lpae_s2_cfg`.
    public var s2_vttbr: UInt64 = 0
    public var s2_vtcr: UInt64 = 0

    public init(pgsize_bitmap: UInt64, ias: UInt32, oas: UInt32, tlb: iommu_gather_ops, iommu_dev: platform_device) {
        self.pgsize_bitmap = pgsize_bitmap
        self.ias = ias
        self.oas = oas
        self.tlb = tlb
        self.iommu_dev = iommu_dev
    }
}

/// `IO_PGTABLE_QUIRK_NO_DMA`: the IOMMU is coherent; no cache maintenance of table updates.
public let IO_PGTABLE_QUIRK_NO_DMA: UInt = 1 << 4

let ARM_LPAE_MAX_ADDR_BITS = 48
let ARM_LPAE_S2_MAX_CONCAT_PAGES: UInt64 = 16
let ARM_LPAE_MAX_LEVELS = 4

let ARM_LPAE_PTE_TYPE_MASK: UInt64 = 0x3
let ARM_LPAE_PTE_TYPE_BLOCK: UInt64 = 1
let ARM_LPAE_PTE_TYPE_TABLE: UInt64 = 3
let ARM_LPAE_PTE_TYPE_PAGE: UInt64 = 3

let ARM_LPAE_PTE_XN: UInt64 = 3 << 53
let ARM_LPAE_PTE_AF: UInt64 = 1 << 10
let ARM_LPAE_PTE_SH_IS: UInt64 = 3 << 8
let ARM_LPAE_PTE_ATTR_LO_MASK: UInt64 = 0x3ff << 2
/// Ignores the contiguous bit for block splitting.
let ARM_LPAE_PTE_ATTR_HI_MASK: UInt64 = 6 << 52
let ARM_LPAE_PTE_ATTR_MASK = ARM_LPAE_PTE_ATTR_LO_MASK | ARM_LPAE_PTE_ATTR_HI_MASK

// Stage-1 PTE
let ARM_LPAE_PTE_AP_UNPRIV: UInt64 = 1 << 6
let ARM_LPAE_PTE_AP_RDONLY: UInt64 = 2 << 6
let ARM_LPAE_PTE_ATTRINDX_SHIFT: UInt64 = 2
let ARM_LPAE_PTE_nG: UInt64 = 1 << 11

// Stage-2 PTE
let ARM_LPAE_PTE_HAP_FAULT: UInt64 = 0 << 6
let ARM_LPAE_PTE_HAP_READ: UInt64 = 1 << 6
let ARM_LPAE_PTE_HAP_WRITE: UInt64 = 2 << 6
let ARM_LPAE_PTE_MEMATTR_OIWB: UInt64 = 0xf << 2
let ARM_LPAE_PTE_MEMATTR_NC: UInt64 = 0x5 << 2
let ARM_LPAE_PTE_MEMATTR_DEV: UInt64 = 0x1 << 2

// Register bits
let ARM_64_LPAE_S2_TCR_RES1: UInt64 = 1 << 31
let ARM_LPAE_TCR_EPD1: UInt64 = 1 << 23
let ARM_LPAE_TCR_TG0_4K: UInt64 = 0 << 14
let ARM_LPAE_TCR_TG0_64K: UInt64 = 1 << 14
let ARM_LPAE_TCR_TG0_16K: UInt64 = 2 << 14
let ARM_LPAE_TCR_SH0_SHIFT: UInt64 = 12
let ARM_LPAE_TCR_SH_IS: UInt64 = 3
let ARM_LPAE_TCR_ORGN0_SHIFT: UInt64 = 10
let ARM_LPAE_TCR_IRGN0_SHIFT: UInt64 = 8
let ARM_LPAE_TCR_RGN_WBWA: UInt64 = 1
let ARM_LPAE_TCR_SL0_SHIFT: UInt64 = 6
let ARM_LPAE_TCR_SL0_MASK: UInt64 = 0x3
let ARM_LPAE_TCR_T0SZ_SHIFT: UInt64 = 0
let ARM_LPAE_TCR_PS_SHIFT: UInt64 = 16
let ARM_LPAE_TCR_IPS_SHIFT: UInt64 = 32

let ARM_LPAE_MAIR_ATTR_DEVICE: UInt64 = 0x04
let ARM_LPAE_MAIR_ATTR_NC: UInt64 = 0x44
let ARM_LPAE_MAIR_ATTR_WBRWA: UInt64 = 0xff
let ARM_LPAE_MAIR_ATTR_IDX_NC: UInt64 = 0
let ARM_LPAE_MAIR_ATTR_IDX_CACHE: UInt64 = 1
let ARM_LPAE_MAIR_ATTR_IDX_DEV: UInt64 = 2

/// The PS/IPS encoding of an address size (`ARM_LPAE_TCR_PS_*_BIT`), nil for one LPAE lacks.
func arm_lpae_ps(_ bits: UInt32) -> UInt64? {
    switch bits {
    case 32: 0
    case 36: 1
    case 40: 2
    case 42: 3
    case 44: 4
    case 48: 5
    default: nil
    }
}

/// `struct arm_lpae_io_pgtable` with its `io_pgtable_ops` (map, unmap, iova_to_phys).
public final class arm_lpae_io_pgtable {
    public let fmt: io_pgtable_fmt
    public var cfg: io_pgtable_cfg
    public private(set) var levels: Int
    public private(set) var pgd_size: UInt64
    public let pg_shift: Int
    public let bits_per_level: Int
    /// The top-level table.
    public private(set) var pgd: LE64Pointer?

    init(fmt: io_pgtable_fmt, cfg: io_pgtable_cfg, levels: Int, pgd_size: UInt64, pg_shift: Int, bits_per_level: Int) {
        self.fmt = fmt
        self.cfg = cfg
        self.levels = levels
        self.pgd_size = pgd_size
        self.pg_shift = pg_shift
        self.bits_per_level = bits_per_level
    }

    /// `ARM_LPAE_START_LVL`.
    var startLevel: Int { ARM_LPAE_MAX_LEVELS - levels }
    /// `ARM_LPAE_GRANULE`.
    var granule: UInt64 { UInt64(1) << UInt64(pg_shift) }

    /// `ARM_LPAE_LVL_SHIFT(l, d)`.
    func levelShift(_ lvl: Int) -> Int {
        (levels - (lvl - startLevel + 1)) * bits_per_level + pg_shift
    }

    /// `ARM_LPAE_LVL_IDX(a, l, d)`: the index at `lvl`, the top level possibly concatenated.
    func levelIndex(_ iova: UInt64, _ lvl: Int) -> Int {
        let pgdIndexBits = lvl == startLevel ? Int(UInt64(max(1, (pgd_size + granule - 1) / granule)).trailingZeroBitCount) : 0
        let shift = UInt64(levelShift(lvl))
        return Int((iova >> shift) & ((UInt64(1) << UInt64(bits_per_level + pgdIndexBits)) - 1))
    }

    /// `ARM_LPAE_BLOCK_SIZE(l, d)`.
    func blockSize(_ lvl: Int) -> UInt64 {
        UInt64(1) << UInt64(3 + (ARM_LPAE_MAX_LEVELS - lvl) * bits_per_level)
    }

    /// `iopte_leaf`.
    func iopte_leaf(_ pte: UInt64, _ lvl: Int) -> Bool {
        return lvl == ARM_LPAE_MAX_LEVELS - 1 ? pte & ARM_LPAE_PTE_TYPE_MASK == ARM_LPAE_PTE_TYPE_PAGE : pte & ARM_LPAE_PTE_TYPE_MASK == ARM_LPAE_PTE_TYPE_BLOCK
    }

    /// `iopte_deref`: the table a table entry points at.
    func iopte_deref(_ pte: UInt64) -> LE64Pointer? {
        guard let pgd else { return nil }
        let address = pte & ((UInt64(1) << UInt64(ARM_LPAE_MAX_ADDR_BITS)) - 1) & ~(granule - 1)
        return LE64Pointer(memory: pgd.memory, address: address)
    }

    /// `iopte_to_pfn(pte) << pg_shift`.
    func iopte_to_paddr(_ pte: UInt64) -> UInt64 {
        return ((pte & ((UInt64(1) << UInt64(ARM_LPAE_MAX_ADDR_BITS)) - 1)) >> UInt64(pg_shift)) << UInt64(pg_shift)
    }

    /// `pfn_to_iopte(paddr >> pg_shift)`.
    func paddr_to_iopte(_ paddr: UInt64) -> UInt64 {
        return ((paddr >> UInt64(pg_shift)) << UInt64(pg_shift)) & ((UInt64(1) << UInt64(ARM_LPAE_MAX_ADDR_BITS)) - 1)
    }

    /// `__arm_lpae_alloc_pages`: zeroed, size-aligned table memory from the IOMMU device's pool.
    func allocPages(_ size: UInt64) -> LE64Pointer? {
        guard let address = cfg.iommu_dev.dma.allocate(size, alignment: max(size, 64)) else { return nil }
        return LE64Pointer(memory: cfg.iommu_dev.bus.memory, address: address)
    }

    /// `__arm_lpae_free_pages`.
    func freePages(_ pages: LE64Pointer) {
        cfg.iommu_dev.dma.release(pages.address)
    }

    /// `arm_lpae_init_pte`: a leaf at `lvl`; an existing leaf needs an unmap first (-EEXIST),
    /// an existing table is unmapped and freed first.
    func arm_lpae_init_pte(_ iova: UInt64, _ paddr: UInt64, _ prot: UInt64, _ lvl: Int, _ ptep: LE64Pointer) async -> Int32 {
        ftrace("arm_lpae_init_pte")
        var pte = prot
        if iopte_leaf(ptep[0], lvl) {
            // An unmap is required first.
            return -EEXIST
        } else if ptep[0] & ARM_LPAE_PTE_TYPE_MASK == ARM_LPAE_PTE_TYPE_TABLE {
            // Unmap and free the old table before overwriting it with a block entry.
            let size = blockSize(lvl)
            let tblp = ptep.advanced(by: -levelIndex(iova, lvl))
            if await __arm_lpae_unmap(iova, size, lvl, tblp) != size { return -EINVAL }
        }
        pte |= lvl == ARM_LPAE_MAX_LEVELS - 1 ? ARM_LPAE_PTE_TYPE_PAGE : ARM_LPAE_PTE_TYPE_BLOCK
        pte |= ARM_LPAE_PTE_AF | ARM_LPAE_PTE_SH_IS
        pte |= paddr_to_iopte(paddr)
        ptep[0] = pte
        return 0
    }

    /// `__arm_lpae_map`.
    func __arm_lpae_map(_ iova: UInt64, _ paddr: UInt64, _ size: UInt64, _ prot: UInt64, _ lvl: Int, _ table: LE64Pointer) async -> Int32 {
        ftrace("__arm_lpae_map")
        let block_size = blockSize(lvl)
        // Find the entry at the current level.
        let ptep = table.advanced(by: levelIndex(iova, lvl))

        // Install a leaf entry at this level when the size allows.
        if size == block_size && size & cfg.pgsize_bitmap != 0 {
            return await arm_lpae_init_pte(iova, paddr, prot, lvl, ptep)
        }

        // No tables at the final level.
        if lvl >= ARM_LPAE_MAX_LEVELS - 1 { return -EINVAL }

        // Grab a pointer to the next level.
        let pte = ptep[0]
        let cptep: LE64Pointer
        if pte == 0 {
            guard let pages = allocPages(granule) else { return -ENOMEM }
            cptep = pages
            ptep[0] = pages.address | ARM_LPAE_PTE_TYPE_TABLE
        } else if let next = iopte_deref(pte), !iopte_leaf(pte, lvl) {
            cptep = next
        } else {
            return -EEXIST
        }
        return await __arm_lpae_map(iova, paddr, size, prot, lvl + 1, cptep)
    }

    /// `arm_lpae_prot_to_pte`.
    func arm_lpae_prot_to_pte(_ prot: Int32) -> UInt64 {
        var pte: UInt64
        if fmt == .ARM_64_LPAE_S1 {
            pte = ARM_LPAE_PTE_AP_UNPRIV | ARM_LPAE_PTE_nG
            if prot & IOMMU_WRITE == 0 && prot & IOMMU_READ != 0 { pte |= ARM_LPAE_PTE_AP_RDONLY }
            if prot & IOMMU_MMIO != 0 {
                pte |= ARM_LPAE_MAIR_ATTR_IDX_DEV << ARM_LPAE_PTE_ATTRINDX_SHIFT
            } else if prot & IOMMU_CACHE != 0 {
                pte |= ARM_LPAE_MAIR_ATTR_IDX_CACHE << ARM_LPAE_PTE_ATTRINDX_SHIFT
            }
        } else {
            pte = ARM_LPAE_PTE_HAP_FAULT
            if prot & IOMMU_READ != 0 { pte |= ARM_LPAE_PTE_HAP_READ }
            if prot & IOMMU_WRITE != 0 { pte |= ARM_LPAE_PTE_HAP_WRITE }
            if prot & IOMMU_MMIO != 0 {
                pte |= ARM_LPAE_PTE_MEMATTR_DEV
            } else if prot & IOMMU_CACHE != 0 {
                pte |= ARM_LPAE_PTE_MEMATTR_OIWB
            } else {
                pte |= ARM_LPAE_PTE_MEMATTR_NC
            }
        }
        if prot & IOMMU_NOEXEC != 0 { pte |= ARM_LPAE_PTE_XN }
        return pte
    }

    /// `arm_lpae_map`: maps `size` bytes (a supported page or block size) at `iova` to
    /// `paddr`; 0, -EEXIST, -EINVAL or -ENOMEM.
    public func map(_ iova: UInt64, _ paddr: UInt64, _ size: UInt64, _ iommu_prot: Int32) async -> Int32 {
        guard let pgd else { return -EINVAL }
        // No access: nothing to do.
        if iommu_prot & (IOMMU_READ | IOMMU_WRITE) == 0 { return 0 }
        let prot = arm_lpae_prot_to_pte(iommu_prot)
        let ret = await __arm_lpae_map(iova, paddr, size, prot, startLevel, pgd)
        // Make every PTE update visible before anything can walk the new iova.
        await wmb()
        return ret
    }

    /// `__arm_lpae_free_pgtable`.
    func __arm_lpae_free_pgtable(_ lvl: Int, _ table: LE64Pointer) {
        ftrace("__arm_lpae_free_pgtable")
        let table_size = lvl == startLevel ? pgd_size : granule
        // Only leaf entries at the last level.
        if lvl != ARM_LPAE_MAX_LEVELS - 1 {
            for index in 0..<Int(table_size / 8) {
                let pte = table[index]
                if pte == 0 || iopte_leaf(pte, lvl) { continue }
                if let next = iopte_deref(pte) { __arm_lpae_free_pgtable(lvl + 1, next) }
            }
        }
        freePages(table)
    }

    /// `arm_lpae_split_blk_unmap`: replaces the block at `ptep` (level `lvl`) by a next-level
    /// table mapping all of it but the `size` bytes at `iova`. (Linux builds the table entry
    /// in a stack variable through `__arm_lpae_map`; here the table is allocated directly,
    /// which is the allocation that call makes.)
    func arm_lpae_split_blk_unmap(_ iova: UInt64, _ size: UInt64, _ prot: UInt64, _ lvl: Int, _ ptep: LE64Pointer, _ blk_size: UInt64) async -> UInt64 {
        ftrace("arm_lpae_split_blk_unmap")
        var blk_start = iova & ~(blk_size - 1)
        let blk_end = blk_start + blk_size
        var blk_paddr = iopte_to_paddr(ptep[0])
        guard let table = allocPages(granule) else { return 0 }
        while blk_start < blk_end {
            defer {
                blk_start += size
                blk_paddr += size
            }
            // Unmap!
            if blk_start == iova { continue }
            if await __arm_lpae_map(blk_start, blk_paddr, size, prot, lvl + 1, table) < 0 {
                // Free the table that was allocated.
                __arm_lpae_free_pgtable(lvl + 1, table)
                return 0  // Bytes unmapped
            }
        }
        ptep[0] = table.address | ARM_LPAE_PTE_TYPE_TABLE
        await cfg.tlb.tlb_add_flush(iova & ~(blk_size - 1), blk_size, blk_size, true)
        return size
    }

    /// `__arm_lpae_unmap`.
    func __arm_lpae_unmap(_ iova: UInt64, _ size: UInt64, _ lvl: Int, _ table: LE64Pointer) async -> UInt64 {
        ftrace("__arm_lpae_unmap")
        let blk_size = blockSize(lvl)
        // Something went horribly wrong: out of page table.
        if lvl == ARM_LPAE_MAX_LEVELS { return 0 }

        let ptep = table.advanced(by: levelIndex(iova, lvl))
        let pte = ptep[0]
        if pte == 0 { return 0 }

        // The size matches this level: the right place.
        if size == blk_size {
            ptep[0] = 0
            if !iopte_leaf(pte, lvl) {
                // Also flush any partial walks.
                await cfg.tlb.tlb_add_flush(iova, size, granule, false)
                await cfg.tlb.tlb_sync()
                if let next = iopte_deref(pte) { __arm_lpae_free_pgtable(lvl + 1, next) }
            } else {
                await cfg.tlb.tlb_add_flush(iova, size, size, true)
            }
            return size
        } else if iopte_leaf(pte, lvl) {
            // Insert a table at the next level to map the old region, minus the part unmapped.
            return await arm_lpae_split_blk_unmap(iova, size, pte & ARM_LPAE_PTE_ATTR_MASK, lvl, ptep, blk_size)
        }

        // Keep on walkin'.
        guard let next = iopte_deref(pte) else { return 0 }
        return await __arm_lpae_unmap(iova, size, lvl + 1, next)
    }

    /// `arm_lpae_unmap`: unmaps `size` bytes at `iova` and queues the TLB invalidation (the
    /// caller syncs: `iommu_unmap` does, through `iotlb_sync`); returns the bytes unmapped.
    public func unmap(_ iova: UInt64, _ size: UInt64) async -> UInt64 {
        guard let pgd else { return 0 }
        return await __arm_lpae_unmap(iova, size, startLevel, pgd)
    }

    /// `arm_lpae_iova_to_phys`: the output address of `iova`, 0 when unmapped.
    public func iova_to_phys(_ iova: UInt64) -> UInt64 {
        ftrace("iova_to_phys")
        var table = pgd
        var lvl = startLevel
        repeat {
            // Valid IOPTE pointer?
            guard let current = table else { return 0 }
            // The IOPTE of interest.
            let pte = current[levelIndex(iova, lvl)]
            // Valid entry?
            if pte == 0 { return 0 }
            // Leaf entry?
            if iopte_leaf(pte, lvl) {
                let offsetMask = blockSize(lvl) - 1
                return iopte_to_paddr(pte) & ~offsetMask | (iova & offsetMask)
            }
            // Take it to the next level.
            table = iopte_deref(pte)
            lvl += 1
        } while lvl < ARM_LPAE_MAX_LEVELS
        // Ran out of page tables to walk.
        return 0
    }

    /// `arm_lpae_free_pgtable`.
    func free() {
        if let pgd { __arm_lpae_free_pgtable(startLevel, pgd) }
        pgd = nil
    }

    /// Sets up the pgd (after the format's registers are computed).
    func allocatePGD() -> Bool {
        pgd = allocPages(pgd_size)
        return pgd != nil
    }

    /// The stage-2 concatenation of up to 16 top-level tables instead of a fourth level.
    func concatenateStage2PGD() {
        guard levels == ARM_LPAE_MAX_LEVELS else { return }
        let pgd_pages = pgd_size >> 3
        if pgd_pages <= ARM_LPAE_S2_MAX_CONCAT_PAGES {
            pgd_size = pgd_pages << UInt64(pg_shift)
            levels -= 1
        }
    }
}

/// `arm_lpae_restrict_pgsizes`: keeps the page and block sizes of one granule, the CPU's page
/// size (4K) when supported, else the largest smaller one, else the smallest larger one.
func arm_lpae_restrict_pgsizes(_ cfg: inout io_pgtable_cfg) {
    let pageMask = ~(PAGE_SIZE - 1)
    let granule: UInt64
    if cfg.pgsize_bitmap & PAGE_SIZE != 0 {
        granule = PAGE_SIZE
    } else if cfg.pgsize_bitmap & ~pageMask != 0 {
        granule = UInt64(1) << UInt64(63 - (cfg.pgsize_bitmap & ~pageMask).leadingZeroBitCount)
    } else if cfg.pgsize_bitmap & pageMask != 0 {
        granule = UInt64(1) << UInt64((cfg.pgsize_bitmap & pageMask).trailingZeroBitCount)
    } else {
        granule = 0
    }
    switch granule {
    case SZ_4K: cfg.pgsize_bitmap &= SZ_4K | SZ_2M | SZ_1G
    case SZ_16K: cfg.pgsize_bitmap &= SZ_16K | SZ_32M
    case SZ_64K: cfg.pgsize_bitmap &= SZ_64K | SZ_512M
    default: cfg.pgsize_bitmap = 0
    }
}

/// `arm_lpae_alloc_pgtable`: the geometry (granule, levels, pgd size) for `cfg`.
func arm_lpae_alloc_pgtable(_ fmt: io_pgtable_fmt, _ cfg: inout io_pgtable_cfg) -> arm_lpae_io_pgtable? {
    ftrace("arm_lpae_alloc_pgtable")
    arm_lpae_restrict_pgsizes(&cfg)
    if cfg.pgsize_bitmap & (SZ_4K | SZ_16K | SZ_64K) == 0 { return nil }
    if cfg.ias > UInt32(ARM_LPAE_MAX_ADDR_BITS) || cfg.oas > UInt32(ARM_LPAE_MAX_ADDR_BITS) { return nil }
    guard kzalloc(cfg.iommu_dev.faults, { true }) != nil else { return nil }

    let pg_shift = cfg.pgsize_bitmap.trailingZeroBitCount
    let bits_per_level = pg_shift - 3
    let va_bits = Int(cfg.ias) - pg_shift
    let levels = (va_bits + bits_per_level - 1) / bits_per_level
    // The actual size of the pgd (without concatenation).
    let pgd_bits = va_bits - bits_per_level * (levels - 1)
    let pgd_size = UInt64(1) << UInt64(pgd_bits + 3)
    return arm_lpae_io_pgtable(fmt: fmt, cfg: cfg, levels: levels, pgd_size: pgd_size, pg_shift: pg_shift, bits_per_level: bits_per_level)
}

/// `arm_64_lpae_alloc_pgtable_s1`: TCR (inner-shareable write-back walks, TG0, IPS, T0SZ,
/// EPD1), MAIR (NC, WBRWA, Device) and TTBR0.
func arm_64_lpae_alloc_pgtable_s1(_ cfg: inout io_pgtable_cfg) -> arm_lpae_io_pgtable? {
    ftrace("arm_64_lpae_alloc_pgtable_s1")
    guard let data = arm_lpae_alloc_pgtable(.ARM_64_LPAE_S1, &cfg) else { return nil }

    // TCR
    var reg = (ARM_LPAE_TCR_SH_IS << ARM_LPAE_TCR_SH0_SHIFT) | (ARM_LPAE_TCR_RGN_WBWA << ARM_LPAE_TCR_IRGN0_SHIFT) | (ARM_LPAE_TCR_RGN_WBWA << ARM_LPAE_TCR_ORGN0_SHIFT)
    switch data.granule {
    case SZ_4K: reg |= ARM_LPAE_TCR_TG0_4K
    case SZ_16K: reg |= ARM_LPAE_TCR_TG0_16K
    default: reg |= ARM_LPAE_TCR_TG0_64K
    }
    guard let ips = arm_lpae_ps(cfg.oas) else { return nil }
    reg |= ips << ARM_LPAE_TCR_IPS_SHIFT
    reg |= (64 - UInt64(cfg.ias)) << ARM_LPAE_TCR_T0SZ_SHIFT
    // Disable speculative walks through TTBR1.
    reg |= ARM_LPAE_TCR_EPD1
    cfg.s1_tcr = reg

    // MAIRs
    cfg.s1_mair = [
        (ARM_LPAE_MAIR_ATTR_NC << (ARM_LPAE_MAIR_ATTR_IDX_NC << 3)) | (ARM_LPAE_MAIR_ATTR_WBRWA << (ARM_LPAE_MAIR_ATTR_IDX_CACHE << 3)) | (ARM_LPAE_MAIR_ATTR_DEVICE << (ARM_LPAE_MAIR_ATTR_IDX_DEV << 3)),
        0,
    ]

    // Looking good; allocate a pgd.
    guard data.allocatePGD(), let pgd = data.pgd else { return nil }
    cfg.s1_ttbr = [pgd.address, 0]
    data.cfg = cfg
    return data
}

/// `arm_64_lpae_alloc_pgtable_s2`: concatenated top-level tables where that saves a level;
/// VTCR (RES1, walk attributes, TG0, PS, T0SZ, SL0) and VTTBR.
func arm_64_lpae_alloc_pgtable_s2(_ cfg: inout io_pgtable_cfg) -> arm_lpae_io_pgtable? {
    ftrace("arm_64_lpae_alloc_pgtable_s2")
    // The NS quirk does not apply at stage 2.
    if cfg.quirks & ~IO_PGTABLE_QUIRK_NO_DMA != 0 { return nil }
    guard let data = arm_lpae_alloc_pgtable(.ARM_64_LPAE_S2, &cfg) else { return nil }

    // Concatenate PGDs at level 1 when possible, to shorten the stage-2 walk.
    data.concatenateStage2PGD()

    // VTCR
    var reg = ARM_64_LPAE_S2_TCR_RES1 | (ARM_LPAE_TCR_SH_IS << ARM_LPAE_TCR_SH0_SHIFT) | (ARM_LPAE_TCR_RGN_WBWA << ARM_LPAE_TCR_IRGN0_SHIFT) | (ARM_LPAE_TCR_RGN_WBWA << ARM_LPAE_TCR_ORGN0_SHIFT)
    var sl = UInt64(data.startLevel)
    switch data.granule {
    case SZ_4K:
        reg |= ARM_LPAE_TCR_TG0_4K
        sl += 1  // SL0 format is different for the 4K granule
    case SZ_16K:
        reg |= ARM_LPAE_TCR_TG0_16K
    default:
        reg |= ARM_LPAE_TCR_TG0_64K
    }
    guard let ps = arm_lpae_ps(cfg.oas) else { return nil }
    reg |= ps << ARM_LPAE_TCR_PS_SHIFT
    reg |= (64 - UInt64(cfg.ias)) << ARM_LPAE_TCR_T0SZ_SHIFT
    reg |= (~sl & ARM_LPAE_TCR_SL0_MASK) << ARM_LPAE_TCR_SL0_SHIFT
    cfg.s2_vtcr = reg

    // Allocate pgd pages.
    guard data.allocatePGD(), let pgd = data.pgd else { return nil }
    cfg.s2_vttbr = pgd.address
    data.cfg = cfg
    return data
}

/// `alloc_io_pgtable_ops`: a page table of format `fmt`; `cfg` comes back with the register
/// values to program (TTBR/TCR/MAIR or VTTBR/VTCR) and the page sizes it supports.
public func alloc_io_pgtable_ops(_ fmt: io_pgtable_fmt, _ cfg: inout io_pgtable_cfg) -> arm_lpae_io_pgtable? {
    ftrace("alloc_io_pgtable_ops")
    return switch fmt {
    case .ARM_64_LPAE_S1: arm_64_lpae_alloc_pgtable_s1(&cfg)
    case .ARM_64_LPAE_S2: arm_64_lpae_alloc_pgtable_s2(&cfg)
    }
}

/// `free_io_pgtable_ops`: invalidates the TLBs (`tlb_flush_all`), then frees every table.
public func free_io_pgtable_ops(_ ops: arm_lpae_io_pgtable?) async {
    ftrace("free_io_pgtable_ops")
    guard let ops else { return }
    await ops.cfg.tlb.tlb_flush_all()
    ops.free()
}
