import Platform

/// The Non-secure SMMU registers at their offsets from SMMU_BASE (§6.2). Page 1 registers
/// are at 0x10000 + their in-page offset.
public enum SMMURegister: UInt32, CaseIterable, Sendable {
    case idr0 = 0x0000, idr1 = 0x0004, idr2 = 0x0008, idr3 = 0x000C, idr4 = 0x0010, idr5 = 0x0014
    case iidr = 0x0018, aidr = 0x001C
    case cr0 = 0x0020, cr0ack = 0x0024, cr1 = 0x0028, cr2 = 0x002C
    case statusr = 0x0040, gbpa = 0x0044, agbpa = 0x0048
    case irqCtrl = 0x0050, irqCtrlAck = 0x0054
    case gerror = 0x0060, gerrorn = 0x0064
    case gerrorIrqCfg0 = 0x0068, gerrorIrqCfg1 = 0x0070, gerrorIrqCfg2 = 0x0074
    case strtabBase = 0x0080, strtabBaseCfg = 0x0088
    case cmdqBase = 0x0090, cmdqProd = 0x0098, cmdqCons = 0x009C
    case eventqBase = 0x00A0
    case eventqIrqCfg0 = 0x00B0, eventqIrqCfg1 = 0x00B8, eventqIrqCfg2 = 0x00BC
    case priqBase = 0x00C0
    case priqIrqCfg0 = 0x00D0, priqIrqCfg1 = 0x00D8, priqIrqCfg2 = 0x00DC
    case eventqProd = 0x100A8, eventqCons = 0x100AC
    case priqProd = 0x100C8, priqCons = 0x100CC

    /// The offset from SMMU_BASE.
    public var offset: UInt64 { UInt64(rawValue) }

    /// Whether the register is 64 bits wide.
    public var is64Bit: Bool {
        switch self {
        case .gerrorIrqCfg0, .strtabBase, .cmdqBase, .eventqBase, .eventqIrqCfg0, .priqBase, .priqIrqCfg0: true
        default: false
        }
    }

    /// The spec name, e.g. `SMMU_CMDQ_PROD`.
    public var name: String {
        switch self {
        case .idr0: "IDR0"
        case .idr1: "IDR1"
        case .idr2: "IDR2"
        case .idr3: "IDR3"
        case .idr4: "IDR4"
        case .idr5: "IDR5"
        case .iidr: "IIDR"
        case .aidr: "AIDR"
        case .cr0: "CR0"
        case .cr0ack: "CR0ACK"
        case .cr1: "CR1"
        case .cr2: "CR2"
        case .statusr: "STATUSR"
        case .gbpa: "GBPA"
        case .agbpa: "AGBPA"
        case .irqCtrl: "IRQ_CTRL"
        case .irqCtrlAck: "IRQ_CTRLACK"
        case .gerror: "GERROR"
        case .gerrorn: "GERRORN"
        case .gerrorIrqCfg0: "GERROR_IRQ_CFG0"
        case .gerrorIrqCfg1: "GERROR_IRQ_CFG1"
        case .gerrorIrqCfg2: "GERROR_IRQ_CFG2"
        case .strtabBase: "STRTAB_BASE"
        case .strtabBaseCfg: "STRTAB_BASE_CFG"
        case .cmdqBase: "CMDQ_BASE"
        case .cmdqProd: "CMDQ_PROD"
        case .cmdqCons: "CMDQ_CONS"
        case .eventqBase: "EVENTQ_BASE"
        case .eventqIrqCfg0: "EVENTQ_IRQ_CFG0"
        case .eventqIrqCfg1: "EVENTQ_IRQ_CFG1"
        case .eventqIrqCfg2: "EVENTQ_IRQ_CFG2"
        case .priqBase: "PRIQ_BASE"
        case .priqIrqCfg0: "PRIQ_IRQ_CFG0"
        case .priqIrqCfg1: "PRIQ_IRQ_CFG1"
        case .priqIrqCfg2: "PRIQ_IRQ_CFG2"
        case .eventqProd: "EVENTQ_PROD"
        case .eventqCons: "EVENTQ_CONS"
        case .priqProd: "PRIQ_PROD"
        case .priqCons: "PRIQ_CONS"
        }
    }

    /// The register (and half, for 64-bit registers) at a 4-byte aligned offset.
    public static func at(offset: UInt64) -> (register: SMMURegister, upperHalf: Bool)? {
        guard offset < frameSize else { return nil }
        if let register = SMMURegister(rawValue: UInt32(offset)) {
            return (register, false)
        }
        if offset >= 4, let register = SMMURegister(rawValue: UInt32(offset - 4)), register.is64Bit {
            return (register, true)
        }
        return nil
    }

    /// Offset of the first IMPLEMENTATION DEFINED identification register (PIDR4).
    public static let identificationBase: UInt64 = 0xFD0
    /// The size of the whole register frame (Page 0 and Page 1).
    public static let frameSize: UInt64 = 0x20000
    /// The offset of Page 1.
    public static let page1: UInt64 = 0x10000
}

/// Bit layouts of the SMMU registers (§6.3), declared once. Names follow the spec fields.
public enum Reg {
    /// SMMU_IDR0 (§6.3.1).
    public enum IDR0 {
        public static let s2p = BitField(bit: 0)
        public static let s1p = BitField(bit: 1)
        public static let ttf = BitField(3, 2)
        public static let cohacc = BitField(bit: 4)
        public static let btm = BitField(bit: 5)
        public static let httu = BitField(7, 6)
        public static let dormhint = BitField(bit: 8)
        public static let hyp = BitField(bit: 9)
        public static let ats = BitField(bit: 10)
        public static let ns1ats = BitField(bit: 11)
        public static let asid16 = BitField(bit: 12)
        public static let msi = BitField(bit: 13)
        public static let sev = BitField(bit: 14)
        public static let atos = BitField(bit: 15)
        public static let pri = BitField(bit: 16)
        public static let vmw = BitField(bit: 17)
        public static let vmid16 = BitField(bit: 18)
        public static let cd2l = BitField(bit: 19)
        public static let vatos = BitField(bit: 20)
        public static let ttEndian = BitField(22, 21)
        public static let atsRecErr = BitField(bit: 23)
        public static let stallModel = BitField(25, 24)
        public static let termModel = BitField(bit: 26)
        public static let stLevel = BitField(28, 27)
        /// TTENDIAN encoding: little-endian translation tables only.
        public static let ttEndianLittle: UInt64 = 0b10
        /// TTF encoding: AArch64 (VMSAv8-64) tables only.
        public static let ttfAArch64: UInt64 = 0b10
    }

    /// SMMU_IDR1 (§6.3.2).
    public enum IDR1 {
        public static let sidSize = BitField(5, 0)
        public static let ssidSize = BitField(10, 6)
        public static let priqs = BitField(15, 11)
        public static let eventqs = BitField(20, 16)
        public static let cmdqs = BitField(25, 21)
        public static let attrPermsOvr = BitField(bit: 26)
        public static let attrTypesOvr = BitField(bit: 27)
        public static let rel = BitField(bit: 28)
        public static let queuesPreset = BitField(bit: 29)
        public static let tablesPreset = BitField(bit: 30)
        public static let ecmdq = BitField(bit: 31)
    }

    /// SMMU_IDR3 (§6.3.4).
    public enum IDR3 {
        public static let had = BitField(bit: 2)
        public static let xnx = BitField(bit: 4)
        public static let pps = BitField(bit: 5)
        public static let fwb = BitField(bit: 8)
        public static let stt = BitField(bit: 9)
        public static let ril = BitField(bit: 10)
        public static let bbml = BitField(12, 11)
    }

    /// SMMU_IDR5 (§6.3.6).
    public enum IDR5 {
        public static let oas = BitField(2, 0)
        public static let gran4K = BitField(bit: 4)
        public static let gran16K = BitField(bit: 5)
        public static let gran64K = BitField(bit: 6)
        public static let ds = BitField(bit: 7)
        public static let vax = BitField(11, 10)
        public static let stallMax = BitField(31, 16)
    }

    /// SMMU_CR0 and SMMU_CR0ACK (§6.3.9, §6.3.10).
    public enum CR0 {
        public static let smmuen = BitField(bit: 0)
        public static let priqen = BitField(bit: 1)
        public static let eventqen = BitField(bit: 2)
        public static let cmdqen = BitField(bit: 3)
        public static let atschk = BitField(bit: 4)
        public static let vmw = BitField(8, 6)
    }

    /// SMMU_CR1 (§6.3.11).
    public enum CR1 {
        public static let queueIC = BitField(1, 0)
        public static let queueOC = BitField(3, 2)
        public static let queueSH = BitField(5, 4)
        public static let tableIC = BitField(7, 6)
        public static let tableOC = BitField(9, 8)
        public static let tableSH = BitField(11, 10)
        /// All defined bits.
        public static let defined: UInt32 = 0xFFF
        /// The QUEUE_* fields.
        public static let queueFields: UInt32 = 0x03F
        /// The TABLE_* fields.
        public static let tableFields: UInt32 = 0xFC0
    }

    /// SMMU_CR2 (§6.3.12).
    public enum CR2 {
        public static let e2h = BitField(bit: 0)
        public static let recInvSID = BitField(bit: 1)
        public static let ptm = BitField(bit: 2)
        public static let recCfgATS = BitField(bit: 3)
    }

    /// SMMU_STATUSR (§6.3.13).
    public enum STATUSR {
        public static let dormant = BitField(bit: 0)
    }

    /// SMMU_GBPA (§6.3.14).
    public enum GBPA {
        public static let memAttr = BitField(3, 0)
        public static let mtcfg = BitField(bit: 4)
        public static let allocCfg = BitField(11, 8)
        public static let shCfg = BitField(13, 12)
        public static let privCfg = BitField(17, 16)
        public static let instCfg = BitField(19, 18)
        public static let abort = BitField(bit: 20)
        public static let update = BitField(bit: 31)
        /// The attribute and ABORT fields (everything but Update).
        public static let fields: UInt32 = 0x001F_3F1F
    }

    /// SMMU_IRQ_CTRL and SMMU_IRQ_CTRLACK (§6.3.16, §6.3.18).
    public enum IRQCtrl {
        public static let gerrorIrqen = BitField(bit: 0)
        public static let priqIrqen = BitField(bit: 1)
        public static let eventqIrqen = BitField(bit: 2)
    }

    /// SMMU_GERROR and SMMU_GERRORN (§6.3.19, §6.3.20).
    public enum GERROR {
        public static let cmdqErr = BitField(bit: 0)
        public static let eventqAbtErr = BitField(bit: 2)
        public static let priqAbtErr = BitField(bit: 3)
        public static let msiCmdqAbtErr = BitField(bit: 4)
        public static let msiEventqAbtErr = BitField(bit: 5)
        public static let msiPriqAbtErr = BitField(bit: 6)
        public static let msiGerrorAbtErr = BitField(bit: 7)
        public static let sfmErr = BitField(bit: 8)
        /// Every error bit this SMMU implements.
        public static let implemented: UInt32 = 0x1FD
    }

    /// SMMU_*_IRQ_CFG0/1/2 (§6.3.21–§6.3.23 and the queue equivalents).
    public enum IRQCfg {
        /// CFG0.ADDR[55:2].
        public static let address = AddressField(55, 2)
        /// CFG1.DATA.
        public static let data = BitField(31, 0)
        /// CFG2.MemAttr.
        public static let memAttr = BitField(3, 0)
        /// CFG2.SH.
        public static let sh = BitField(5, 4)
        /// PRIQ_IRQ_CFG2.LO (Last Only), §6.3.36.
        public static let lo = BitField(bit: 31)
    }

    /// SMMU_STRTAB_BASE and SMMU_STRTAB_BASE_CFG (§6.3.24, §6.3.25).
    public enum STRTAB {
        /// STRTAB_BASE.ADDR[55:6].
        public static let address = AddressField(55, 6)
        /// STRTAB_BASE.RA.
        public static let ra = BitField(bit: 62)
        /// STRTAB_BASE_CFG.LOG2SIZE.
        public static let log2Size = BitField(5, 0)
        /// STRTAB_BASE_CFG.SPLIT.
        public static let split = BitField(10, 6)
        /// STRTAB_BASE_CFG.FMT.
        public static let fmt = BitField(17, 16)
        /// FMT encoding: 2-level.
        public static let fmtTwoLevel: UInt64 = 1
    }

    /// SMMU_CMDQ_BASE, SMMU_EVENTQ_BASE, SMMU_PRIQ_BASE and the PROD/CONS registers
    /// (§6.3.26–§6.3.29, §6.3.33, §6.3.95–§6.3.98).
    public enum Queue {
        /// *_BASE.LOG2SIZE.
        public static let log2Size = BitField(4, 0)
        /// *_BASE.ADDR[55:5].
        public static let address = AddressField(55, 5)
        /// *_BASE.RA (CMDQ) / WA (EVENTQ, PRIQ).
        public static let allocate = BitField(bit: 62)
        /// The 20-bit index field of PROD and CONS (index and wrap bit, by LOG2SIZE).
        public static let indexField = BitField(19, 0)
        /// CMDQ_CONS.ERR.
        public static let consErr = BitField(30, 24)
        /// EVENTQ_PROD/PRIQ_PROD.OVFLG and EVENTQ_CONS/PRIQ_CONS.OVACKFLG.
        public static let overflowFlag = BitField(bit: 31)
    }
}
