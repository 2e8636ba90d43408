// The arm-smmu-v3 driver's register, queue, stream-table, context-descriptor and command
// definitions, as the Linux driver of the seeds' era declares them (drivers/iommu/arm-smmu-v3.c,
// v4.17/v4.18), with Linux's names. The driver encodes everything with these, never with the
// model's layout tables: like a real driver and real hardware, the two sides are written
// independently and check each other (DefinitionCrossCheckTests).

/// `BIT(n)`.
@inlinable public func BIT(_ n: Int) -> UInt64 { UInt64(1) << UInt64(n) }

/// `GENMASK(h, l)` / `GENMASK_ULL(h, l)`: bits h..l set.
@inlinable public func GENMASK(_ high: Int, _ low: Int) -> UInt64 {
    (high >= 63 ? UInt64.max : (UInt64(1) << UInt64(high + 1)) &- 1) & ~((UInt64(1) << UInt64(low)) &- 1)
}

/// `GENMASK_ULL`.
@inlinable public func GENMASK_ULL(_ high: Int, _ low: Int) -> UInt64 { GENMASK(high, low) }

/// `FIELD_PREP(mask, value)`: `value` shifted into `mask`.
@inlinable public func FIELD_PREP(_ mask: UInt64, _ value: UInt64) -> UInt64 {
    (value << UInt64(mask.trailingZeroBitCount)) & mask
}

/// `FIELD_GET(mask, reg)`.
@inlinable public func FIELD_GET(_ mask: UInt64, _ register: UInt64) -> UInt64 {
    (register & mask) >> UInt64(mask.trailingZeroBitCount)
}

// MARK: MMIO registers

public let ARM_SMMU_IDR0: UInt64 = 0x0
public let IDR0_ST_LVL = GENMASK(28, 27)
public let IDR0_ST_LVL_2LVL: UInt64 = 1
public let IDR0_STALL_MODEL = GENMASK(25, 24)
public let IDR0_STALL_MODEL_STALL: UInt64 = 0
public let IDR0_STALL_MODEL_FORCE: UInt64 = 2
public let IDR0_TTENDIAN = GENMASK(22, 21)
public let IDR0_TTENDIAN_MIXED: UInt64 = 0
public let IDR0_TTENDIAN_LE: UInt64 = 2
public let IDR0_TTENDIAN_BE: UInt64 = 3
public let IDR0_CD2L = BIT(19)
public let IDR0_VMID16 = BIT(18)
public let IDR0_PRI = BIT(16)
public let IDR0_SEV = BIT(14)
public let IDR0_MSI = BIT(13)
public let IDR0_ASID16 = BIT(12)
public let IDR0_ATS = BIT(10)
public let IDR0_HYP = BIT(9)
public let IDR0_COHACC = BIT(4)
public let IDR0_TTF = GENMASK(3, 2)
public let IDR0_TTF_AARCH64: UInt64 = 2
public let IDR0_TTF_AARCH32_64: UInt64 = 3
public let IDR0_S1P = BIT(1)
public let IDR0_S2P = BIT(0)

public let ARM_SMMU_IDR1: UInt64 = 0x4
public let IDR1_TABLES_PRESET = BIT(30)
public let IDR1_QUEUES_PRESET = BIT(29)
public let IDR1_REL = BIT(28)
public let IDR1_CMDQS = GENMASK(25, 21)
public let IDR1_EVTQS = GENMASK(20, 16)
public let IDR1_PRIQS = GENMASK(15, 11)
public let IDR1_SSIDSIZE = GENMASK(10, 6)
public let IDR1_SIDSIZE = GENMASK(5, 0)

public let ARM_SMMU_IDR5: UInt64 = 0x14
public let IDR5_STALL_MAX = GENMASK(31, 16)
public let IDR5_GRAN64K = BIT(6)
public let IDR5_GRAN16K = BIT(5)
public let IDR5_GRAN4K = BIT(4)
public let IDR5_OAS = GENMASK(2, 0)
public let IDR5_OAS_32_BIT: UInt64 = 0
public let IDR5_OAS_36_BIT: UInt64 = 1
public let IDR5_OAS_40_BIT: UInt64 = 2
public let IDR5_OAS_42_BIT: UInt64 = 3
public let IDR5_OAS_44_BIT: UInt64 = 4
public let IDR5_OAS_48_BIT: UInt64 = 5
public let IDR5_OAS_52_BIT: UInt64 = 6
public let IDR5_VAX = GENMASK(11, 10)
public let IDR5_VAX_52_BIT: UInt64 = 1

public let ARM_SMMU_CR0: UInt64 = 0x20
public let CR0_ATSCHK = BIT(4)
public let CR0_CMDQEN = BIT(3)
public let CR0_EVTQEN = BIT(2)
public let CR0_PRIQEN = BIT(1)
public let CR0_SMMUEN = BIT(0)

public let ARM_SMMU_CR0ACK: UInt64 = 0x24

public let ARM_SMMU_CR1: UInt64 = 0x28
public let CR1_TABLE_SH = GENMASK(11, 10)
public let CR1_TABLE_OC = GENMASK(9, 8)
public let CR1_TABLE_IC = GENMASK(7, 6)
public let CR1_QUEUE_SH = GENMASK(5, 4)
public let CR1_QUEUE_OC = GENMASK(3, 2)
public let CR1_QUEUE_IC = GENMASK(1, 0)
/// CR1 cacheability fields don't quite follow the usual TCR-style encoding.
public let CR1_CACHE_NC: UInt64 = 0
public let CR1_CACHE_WB: UInt64 = 1
public let CR1_CACHE_WT: UInt64 = 2

public let ARM_SMMU_CR2: UInt64 = 0x2c
public let CR2_PTM = BIT(2)
public let CR2_RECINVSID = BIT(1)
public let CR2_E2H = BIT(0)

public let ARM_SMMU_GBPA: UInt64 = 0x44
public let GBPA_UPDATE = BIT(31)
public let GBPA_ABORT = BIT(20)

public let ARM_SMMU_IRQ_CTRL: UInt64 = 0x50
public let IRQ_CTRL_EVTQ_IRQEN = BIT(2)
public let IRQ_CTRL_PRIQ_IRQEN = BIT(1)
public let IRQ_CTRL_GERROR_IRQEN = BIT(0)

public let ARM_SMMU_IRQ_CTRLACK: UInt64 = 0x54

public let ARM_SMMU_GERROR: UInt64 = 0x60
public let GERROR_SFM_ERR = BIT(8)
public let GERROR_MSI_GERROR_ABT_ERR = BIT(7)
public let GERROR_MSI_PRIQ_ABT_ERR = BIT(6)
public let GERROR_MSI_EVTQ_ABT_ERR = BIT(5)
public let GERROR_MSI_CMDQ_ABT_ERR = BIT(4)
public let GERROR_PRIQ_ABT_ERR = BIT(3)
public let GERROR_EVTQ_ABT_ERR = BIT(2)
public let GERROR_CMDQ_ERR = BIT(0)
public let GERROR_ERR_MASK: UInt64 = 0xfd

public let ARM_SMMU_GERRORN: UInt64 = 0x64

public let ARM_SMMU_GERROR_IRQ_CFG0: UInt64 = 0x68
public let ARM_SMMU_GERROR_IRQ_CFG1: UInt64 = 0x70
public let ARM_SMMU_GERROR_IRQ_CFG2: UInt64 = 0x74

public let ARM_SMMU_STRTAB_BASE: UInt64 = 0x80
public let STRTAB_BASE_RA = BIT(62)
public let STRTAB_BASE_ADDR_MASK = GENMASK_ULL(51, 6)

public let ARM_SMMU_STRTAB_BASE_CFG: UInt64 = 0x88
public let STRTAB_BASE_CFG_FMT = GENMASK(17, 16)
public let STRTAB_BASE_CFG_FMT_LINEAR: UInt64 = 0
public let STRTAB_BASE_CFG_FMT_2LVL: UInt64 = 1
public let STRTAB_BASE_CFG_SPLIT = GENMASK(10, 6)
public let STRTAB_BASE_CFG_LOG2SIZE = GENMASK(5, 0)

public let ARM_SMMU_CMDQ_BASE: UInt64 = 0x90
public let ARM_SMMU_CMDQ_PROD: UInt64 = 0x98
public let ARM_SMMU_CMDQ_CONS: UInt64 = 0x9c

public let ARM_SMMU_EVTQ_BASE: UInt64 = 0xa0
public let ARM_SMMU_EVTQ_PROD: UInt64 = 0x100a8
public let ARM_SMMU_EVTQ_CONS: UInt64 = 0x100ac
public let ARM_SMMU_EVTQ_IRQ_CFG0: UInt64 = 0xb0
public let ARM_SMMU_EVTQ_IRQ_CFG1: UInt64 = 0xb8
public let ARM_SMMU_EVTQ_IRQ_CFG2: UInt64 = 0xbc

public let ARM_SMMU_PRIQ_BASE: UInt64 = 0xc0
public let ARM_SMMU_PRIQ_PROD: UInt64 = 0x100c8
public let ARM_SMMU_PRIQ_CONS: UInt64 = 0x100cc
public let ARM_SMMU_PRIQ_IRQ_CFG0: UInt64 = 0xd0
public let ARM_SMMU_PRIQ_IRQ_CFG1: UInt64 = 0xd8
public let ARM_SMMU_PRIQ_IRQ_CFG2: UInt64 = 0xdc

// Common MSI config fields
public let MSI_CFG0_ADDR_MASK = GENMASK_ULL(51, 2)
public let MSI_CFG2_SH = GENMASK(5, 4)
public let MSI_CFG2_MEMATTR = GENMASK(3, 0)

// Common memory attribute values
public let ARM_SMMU_SH_NSH: UInt64 = 0
public let ARM_SMMU_SH_OSH: UInt64 = 2
public let ARM_SMMU_SH_ISH: UInt64 = 3
public let ARM_SMMU_MEMATTR_DEVICE_nGnRE: UInt64 = 0x1
public let ARM_SMMU_MEMATTR_OIWB: UInt64 = 0xf

public let Q_OVERFLOW_FLAG = BIT(31)
public let Q_BASE_RWA = BIT(62)
public let Q_BASE_ADDR_MASK = GENMASK_ULL(51, 5)
public let Q_BASE_LOG2SIZE = GENMASK(4, 0)

// MARK: Stream table

/// Linear: enough to cover 1 << IDR1.SIDSIZE entries; 2-level: 128k L1 entries, 256 lazy
/// entries per table (each table covers a PCI bus).
public let STRTAB_L1_SZ_SHIFT = 20
public let STRTAB_SPLIT = 8

public let STRTAB_L1_DESC_DWORDS = 1
public let STRTAB_L1_DESC_SPAN = GENMASK_ULL(4, 0)
public let STRTAB_L1_DESC_L2PTR_MASK = GENMASK_ULL(51, 6)

public let STRTAB_STE_DWORDS = 8
public let STRTAB_STE_0_V = BIT(0)
public let STRTAB_STE_0_CFG = GENMASK_ULL(3, 1)
public let STRTAB_STE_0_CFG_ABORT: UInt64 = 0
public let STRTAB_STE_0_CFG_BYPASS: UInt64 = 4
public let STRTAB_STE_0_CFG_S1_TRANS: UInt64 = 5
public let STRTAB_STE_0_CFG_S2_TRANS: UInt64 = 6

public let STRTAB_STE_0_S1FMT = GENMASK_ULL(5, 4)
public let STRTAB_STE_0_S1FMT_LINEAR: UInt64 = 0
public let STRTAB_STE_0_S1CTXPTR_MASK = GENMASK_ULL(51, 6)
public let STRTAB_STE_0_S1CDMAX = GENMASK_ULL(63, 59)

public let STRTAB_STE_1_S1C_CACHE_NC: UInt64 = 0
public let STRTAB_STE_1_S1C_CACHE_WBRA: UInt64 = 1
public let STRTAB_STE_1_S1C_CACHE_WT: UInt64 = 2
public let STRTAB_STE_1_S1C_CACHE_WB: UInt64 = 3
public let STRTAB_STE_1_S1CIR = GENMASK_ULL(3, 2)
public let STRTAB_STE_1_S1COR = GENMASK_ULL(5, 4)
public let STRTAB_STE_1_S1CSH = GENMASK_ULL(7, 6)

public let STRTAB_STE_1_S1DSS = GENMASK_ULL(1, 0)
public let STRTAB_STE_1_S1DSS_TERMINATE: UInt64 = 0x0
public let STRTAB_STE_1_S1DSS_BYPASS: UInt64 = 0x1
public let STRTAB_STE_1_S1DSS_SSID0: UInt64 = 0x2

public let STRTAB_STE_1_S1STALLD = BIT(27)

public let STRTAB_STE_1_EATS = GENMASK_ULL(29, 28)
public let STRTAB_STE_1_EATS_ABT: UInt64 = 0
public let STRTAB_STE_1_EATS_TRANS: UInt64 = 1
public let STRTAB_STE_1_EATS_S1CHK: UInt64 = 2

public let STRTAB_STE_1_STRW = GENMASK_ULL(31, 30)
public let STRTAB_STE_1_STRW_NSEL1: UInt64 = 0
public let STRTAB_STE_1_STRW_EL2: UInt64 = 2

public let STRTAB_STE_1_SHCFG = GENMASK_ULL(45, 44)
public let STRTAB_STE_1_SHCFG_INCOMING: UInt64 = 1

public let STRTAB_STE_2_S2VMID = GENMASK_ULL(15, 0)
public let STRTAB_STE_2_VTCR = GENMASK_ULL(50, 32)
public let STRTAB_STE_2_S2AA64 = BIT(51)
public let STRTAB_STE_2_S2ENDI = BIT(52)
public let STRTAB_STE_2_S2PTW = BIT(54)
public let STRTAB_STE_2_S2R = BIT(58)

public let STRTAB_STE_3_S2TTB_MASK = GENMASK_ULL(51, 4)

// MARK: Context descriptor (stage-1 only)

public let CTXDESC_CD_DWORDS = 8
public let CTXDESC_CD_0_TCR_T0SZ = GENMASK_ULL(5, 0)
public let ARM64_TCR_T0SZ = GENMASK_ULL(5, 0)
public let CTXDESC_CD_0_TCR_TG0 = GENMASK_ULL(7, 6)
public let ARM64_TCR_TG0 = GENMASK_ULL(15, 14)
public let CTXDESC_CD_0_TCR_IRGN0 = GENMASK_ULL(9, 8)
public let ARM64_TCR_IRGN0 = GENMASK_ULL(9, 8)
public let CTXDESC_CD_0_TCR_ORGN0 = GENMASK_ULL(11, 10)
public let ARM64_TCR_ORGN0 = GENMASK_ULL(11, 10)
public let CTXDESC_CD_0_TCR_SH0 = GENMASK_ULL(13, 12)
public let ARM64_TCR_SH0 = GENMASK_ULL(13, 12)
public let CTXDESC_CD_0_TCR_EPD0 = BIT(14)
public let ARM64_TCR_EPD0 = BIT(7)
public let CTXDESC_CD_0_TCR_EPD1 = BIT(30)
public let ARM64_TCR_EPD1 = BIT(23)

public let CTXDESC_CD_0_ENDI = BIT(15)
public let CTXDESC_CD_0_V = BIT(31)

public let CTXDESC_CD_0_TCR_IPS = GENMASK_ULL(34, 32)
public let ARM64_TCR_IPS = GENMASK_ULL(34, 32)
public let CTXDESC_CD_0_TCR_TBI0 = BIT(38)
public let ARM64_TCR_TBI0 = BIT(37)

public let CTXDESC_CD_0_AA64 = BIT(41)
public let CTXDESC_CD_0_S = BIT(44)
public let CTXDESC_CD_0_R = BIT(45)
public let CTXDESC_CD_0_A = BIT(46)
public let CTXDESC_CD_0_ASET = BIT(47)
public let CTXDESC_CD_0_ASID = GENMASK_ULL(63, 48)

public let CTXDESC_CD_1_TTB0_MASK = GENMASK_ULL(51, 4)

/// `ARM_SMMU_TCR2CD(tcr, fld)`: moves a field from the CPU's TCR format to the CD's.
@inlinable public func ARM_SMMU_TCR2CD(_ tcr: UInt64, _ cdField: UInt64, _ tcrField: UInt64) -> UInt64 {
    FIELD_PREP(cdField, FIELD_GET(tcrField, tcr))
}

// MARK: Command queue

public let CMDQ_ENT_DWORDS = 2
public let CMDQ_MAX_SZ_SHIFT = 8

public let CMDQ_CONS_ERR = GENMASK(30, 24)
public let CMDQ_ERR_CERROR_NONE_IDX: UInt64 = 0
public let CMDQ_ERR_CERROR_ILL_IDX: UInt64 = 1
public let CMDQ_ERR_CERROR_ABT_IDX: UInt64 = 2
public let CMDQ_ERR_CERROR_ATC_INV_IDX: UInt64 = 3

public let CMDQ_0_OP = GENMASK_ULL(7, 0)
public let CMDQ_0_SSV = BIT(11)

public let CMDQ_PREFETCH_0_SID = GENMASK_ULL(63, 32)
public let CMDQ_PREFETCH_1_SIZE = GENMASK_ULL(4, 0)
public let CMDQ_PREFETCH_1_ADDR_MASK = GENMASK_ULL(63, 12)

public let CMDQ_CFGI_0_SSID = GENMASK_ULL(31, 12)
public let CMDQ_CFGI_0_SID = GENMASK_ULL(63, 32)
public let CMDQ_CFGI_1_LEAF = BIT(0)
public let CMDQ_CFGI_1_RANGE = GENMASK_ULL(4, 0)

public let CMDQ_TLBI_0_VMID = GENMASK_ULL(47, 32)
public let CMDQ_TLBI_0_ASID = GENMASK_ULL(63, 48)
public let CMDQ_TLBI_1_LEAF = BIT(0)
public let CMDQ_TLBI_1_VA_MASK = GENMASK_ULL(63, 12)
public let CMDQ_TLBI_1_IPA_MASK = GENMASK_ULL(51, 12)

public let CMDQ_PRI_0_SSID = GENMASK_ULL(31, 12)
public let CMDQ_PRI_0_SID = GENMASK_ULL(63, 32)
public let CMDQ_PRI_1_GRPID = GENMASK_ULL(8, 0)
public let CMDQ_PRI_1_RESP = GENMASK_ULL(13, 12)

// CMD_ATC_INV (Linux v5.2)
public let CMDQ_ATC_0_SSID = GENMASK_ULL(31, 12)
public let CMDQ_ATC_0_SID = GENMASK_ULL(63, 32)
public let CMDQ_ATC_0_GLOBAL = BIT(9)
public let CMDQ_ATC_1_SIZE = GENMASK_ULL(5, 0)
public let CMDQ_ATC_1_ADDR_MASK = GENMASK_ULL(63, 12)
/// An ATC_INV size covering the whole address space.
public let ATC_INV_SIZE_ALL: UInt64 = 52

public let CMDQ_SYNC_0_CS = GENMASK_ULL(13, 12)
public let CMDQ_SYNC_0_CS_NONE: UInt64 = 0
public let CMDQ_SYNC_0_CS_IRQ: UInt64 = 1
public let CMDQ_SYNC_0_CS_SEV: UInt64 = 2
public let CMDQ_SYNC_0_MSH = GENMASK_ULL(23, 22)
public let CMDQ_SYNC_0_MSIATTR = GENMASK_ULL(27, 24)
public let CMDQ_SYNC_0_MSIDATA = GENMASK_ULL(63, 32)
public let CMDQ_SYNC_1_MSIADDR_MASK = GENMASK_ULL(51, 2)

public let CMDQ_OP_PREFETCH_CFG: UInt64 = 0x1
public let CMDQ_OP_CFGI_STE: UInt64 = 0x3
public let CMDQ_OP_CFGI_CD: UInt64 = 0x5
public let CMDQ_OP_CFGI_ALL: UInt64 = 0x4
public let CMDQ_OP_TLBI_NH_ASID: UInt64 = 0x11
public let CMDQ_OP_TLBI_NH_VA: UInt64 = 0x12
public let CMDQ_OP_TLBI_EL2_ALL: UInt64 = 0x20
public let CMDQ_OP_TLBI_S12_VMALL: UInt64 = 0x28
public let CMDQ_OP_TLBI_S2_IPA: UInt64 = 0x2a
public let CMDQ_OP_TLBI_NSNH_ALL: UInt64 = 0x30
public let CMDQ_OP_ATC_INV: UInt64 = 0x40
public let CMDQ_OP_PRI_RESP: UInt64 = 0x41
public let CMDQ_OP_CMD_SYNC: UInt64 = 0x46

// MARK: Event queue

public let EVTQ_ENT_DWORDS = 4
public let EVTQ_MAX_SZ_SHIFT = 7
public let EVTQ_0_ID = GENMASK_ULL(7, 0)

// MARK: PRI queue

public let PRIQ_ENT_DWORDS = 2
public let PRIQ_MAX_SZ_SHIFT = 8

public let PRIQ_0_SID = GENMASK_ULL(31, 0)
public let PRIQ_0_SSID = GENMASK_ULL(51, 32)
public let PRIQ_0_PERM_PRIV = BIT(58)
public let PRIQ_0_PERM_EXEC = BIT(59)
public let PRIQ_0_PERM_READ = BIT(60)
public let PRIQ_0_PERM_WRITE = BIT(61)
public let PRIQ_0_PRG_LAST = BIT(62)
public let PRIQ_0_SSID_V = BIT(63)

public let PRIQ_1_PRG_IDX = GENMASK_ULL(8, 0)
public let PRIQ_1_ADDR_MASK = GENMASK_ULL(63, 12)

// MARK: High-level queue structures

public let ARM_SMMU_POLL_TIMEOUT_US: UInt64 = 100
/// 1s!
public let ARM_SMMU_CMDQ_SYNC_TIMEOUT_US: UInt64 = 1_000_000
public let ARM_SMMU_CMDQ_SYNC_SPIN_COUNT = 10

public let MSI_IOVA_BASE: UInt64 = 0x8000000
public let MSI_IOVA_LENGTH: UInt64 = 0x100000

/// `enum pri_resp`.
public enum pri_resp: UInt64, Sendable {
    case PRI_RESP_DENY = 0
    case PRI_RESP_FAIL = 1
    case PRI_RESP_SUCC = 2
}
