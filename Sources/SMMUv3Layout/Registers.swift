import Platform

/// The Non-secure SMMU registers at their offsets from SMMU_BASE (§6.2). Page 1 registers
/// are at 0x10000 + their in-page offset. Case names are the spec names in lower camel case,
/// an underscore or the ACK of an acknowledge register starting a word (SMMU_CMDQ_CONS is
/// `cmdqCons`, SMMU_GERROR_IRQ_CFG0 `gerrorIrqCfg0`, SMMU_CR0ACK `cr0Ack`).
public enum SMMURegister: UInt32, CaseIterable, Sendable {
    case idr0 = 0x0000, idr1 = 0x0004, idr2 = 0x0008, idr3 = 0x000C, idr4 = 0x0010, idr5 = 0x0014
    case iidr = 0x0018, aidr = 0x001C
    case cr0 = 0x0020, cr0Ack = 0x0024, cr1 = 0x0028, cr2 = 0x002C
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
        case .cr0Ack: "CR0ACK"
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
    @inlinable public static var identificationBase: UInt64 { 0xFD0 }
    /// The size of the whole register frame (Page 0 and Page 1).
    @inlinable public static var frameSize: UInt64 { 0x20000 }
    /// The offset of Page 1.
    @inlinable public static var page1: UInt64 { 0x10000 }
}

/// Bit layouts of the SMMU registers (§6.3), declared once. Names follow the spec fields.
public enum Reg {
    /// SMMU_IDR0 (§6.3.1).
    public enum IDR0 {
        /// IDR0.S2P[0]: stage 2 translation supported.
        @inlinable public static var s2p: BitField { BitField(bit: 0) }
        /// IDR0.S1P[1]: stage 1 translation supported.
        @inlinable public static var s1p: BitField { BitField(bit: 1) }
        /// IDR0.TTF[3:2]: translation table formats supported (0b01 AArch32 LPAE, 0b10 AArch64, 0b11 both).
        @inlinable public static var ttf: BitField { BitField(3, 2) }
        /// IDR0.COHACC[4]: IO-coherent access supported for table walks, structure fetches, queues and MSIs.
        @inlinable public static var cohacc: BitField { BitField(bit: 4) }
        /// IDR0.BTM[5]: broadcast TLB maintenance supported.
        @inlinable public static var btm: BitField { BitField(bit: 5) }
        /// IDR0.HTTU[7:6]: hardware flag updates (0b00 none, 0b01 AF, 0b10 AF and Dirty, 0b11 also table AF).
        @inlinable public static var httu: BitField { BitField(7, 6) }
        /// IDR0.DORMHINT[8]: SMMU_STATUSR.DORMANT hint supported.
        @inlinable public static var dormhint: BitField { BitField(bit: 8) }
        /// IDR0.Hyp[9]: hypervisor stage 1 contexts (EL2 translation regimes) supported.
        @inlinable public static var hyp: BitField { BitField(bit: 9) }
        /// IDR0.ATS[10]: PCIe ATS supported.
        @inlinable public static var ats: BitField { BitField(bit: 10) }
        /// IDR0.NS1ATS[11]: 1 = split-stage (stage 1 only) ATS is NOT supported.
        @inlinable public static var ns1ats: BitField { BitField(bit: 11) }
        /// IDR0.ASID16[12]: 16-bit ASIDs supported.
        @inlinable public static var asid16: BitField { BitField(bit: 12) }
        /// IDR0.MSI[13]: message-signalled interrupts supported.
        @inlinable public static var msi: BitField { BitField(bit: 13) }
        /// IDR0.SEV[14]: the SMMU can generate WFE wake-up events (CMD_SYNC CS=SIG_SEV).
        @inlinable public static var sev: BitField { BitField(bit: 14) }
        /// IDR0.ATOS[15]: Address Translation Operations (SMMU_GATOS_*) supported.
        @inlinable public static var atos: BitField { BitField(bit: 15) }
        /// IDR0.PRI[16]: PCIe PRI and the PRI queue supported (RES0 when ATS is 0).
        @inlinable public static var pri: BitField { BitField(bit: 16) }
        /// IDR0.VMW[17]: VMID wildcard matching for TLB invalidation (CR0.VMW) supported.
        @inlinable public static var vmw: BitField { BitField(bit: 17) }
        /// IDR0.VMID16[18]: 16-bit VMIDs supported.
        @inlinable public static var vmid16: BitField { BitField(bit: 18) }
        /// IDR0.CD2L[19]: 2-level Context Descriptor tables supported.
        @inlinable public static var cd2l: BitField { BitField(bit: 19) }
        /// IDR0.VATOS[20]: the Virtual ATOS page is supported.
        @inlinable public static var vatos: BitField { BitField(bit: 20) }
        /// IDR0.TTENDIAN[22:21]: translation table endianness (0b00 mixed, 0b10 little only, 0b11 big only).
        @inlinable public static var ttEndian: BitField { BitField(22, 21) }
        /// IDR0.ATSRECERR[23]: extra configuration-error events for ATS and PRI requests (CR2.REC_CFG_ATS).
        @inlinable public static var atsRecErr: BitField { BitField(bit: 23) }
        /// IDR0.STALL_MODEL[25:24]: 0b00 stall and terminate, 0b01 terminate only, 0b10 stall forced.
        @inlinable public static var stallModel: BitField { BitField(25, 24) }
        /// IDR0.TERM_MODEL[26]: 0 = CD.A selects abort or RAZ/WI for terminated transactions, 1 = abort only.
        @inlinable public static var termModel: BitField { BitField(bit: 26) }
        /// IDR0.ST_LEVEL[28:27]: stream table formats (0b00 linear only, 0b01 linear and 2-level).
        @inlinable public static var stLevel: BitField { BitField(28, 27) }
        /// TTENDIAN encoding: little-endian translation tables only.
        @inlinable public static var ttEndianLittle: UInt64 { 0b10 }
        /// TTF encoding: AArch64 (VMSAv8-64) tables only.
        @inlinable public static var ttfAArch64: UInt64 { 0b10 }
    }

    /// SMMU_IDR1 (§6.3.2).
    public enum IDR1 {
        /// IDR1.SIDSIZE[5:0]: number of StreamID bits implemented (0-32).
        @inlinable public static var sidSize: BitField { BitField(5, 0) }
        /// IDR1.SSIDSIZE[10:6]: number of SubstreamID bits implemented (0-20; 0 = no substreams).
        @inlinable public static var ssidSize: BitField { BitField(10, 6) }
        /// IDR1.PRIQS[15:11]: log2 of the maximum number of PRI queue entries.
        @inlinable public static var priqs: BitField { BitField(15, 11) }
        /// IDR1.EVENTQS[20:16]: log2 of the maximum number of Event queue entries.
        @inlinable public static var eventqs: BitField { BitField(20, 16) }
        /// IDR1.CMDQS[25:21]: log2 of the maximum number of Command queue entries.
        @inlinable public static var cmdqs: BitField { BitField(25, 21) }
        /// IDR1.ATTR_PERMS_OVR[26]: incoming instruction/data, privilege and NS attributes can be overridden.
        @inlinable public static var attrPermsOvr: BitField { BitField(bit: 26) }
        /// IDR1.ATTR_TYPES_OVR[27]: incoming memory type, shareability and allocation hints can be overridden.
        @inlinable public static var attrTypesOvr: BitField { BitField(bit: 27) }
        /// IDR1.REL[28]: preset table and queue base addresses are relative to the SMMU's Page 0.
        @inlinable public static var rel: BitField { BitField(bit: 28) }
        /// IDR1.QUEUES_PRESET[29]: the queue base registers (CMDQ_BASE, EVENTQ_BASE, PRIQ_BASE) are fixed.
        @inlinable public static var queuesPreset: BitField { BitField(bit: 29) }
        /// IDR1.TABLES_PRESET[30]: STRTAB_BASE and STRTAB_BASE_CFG are fixed.
        @inlinable public static var tablesPreset: BitField { BitField(bit: 30) }
        /// IDR1.ECMDQ[31]: Enhanced Command queue interfaces supported.
        @inlinable public static var ecmdq: BitField { BitField(bit: 31) }
    }

    /// SMMU_IDR3 (§6.3.4).
    public enum IDR3 {
        /// IDR3.HAD[2]: Hierarchical Attribute Disables (CD.HAD0/HAD1) supported.
        @inlinable public static var had: BitField { BitField(bit: 2) }
        /// IDR3.XNX[4]: EL0/EL1 execute-never distinction at stage 2 supported.
        @inlinable public static var xnx: BitField { BitField(bit: 4) }
        /// IDR3.PPS[5]: PRI queue overflow auto-responses carry the request's PASID regardless of STE.PPAR.
        @inlinable public static var pps: BitField { BitField(bit: 5) }
        /// IDR3.FWB[8]: stage 2 control of memory types and attributes (STE.S2FWB) supported.
        @inlinable public static var fwb: BitField { BitField(bit: 8) }
        /// IDR3.STT[9]: small translation tables supported.
        @inlinable public static var stt: BitField { BitField(bit: 9) }
        /// IDR3.RIL[10]: range-based TLB invalidation and level hint supported.
        @inlinable public static var ril: BitField { BitField(bit: 10) }
        /// IDR3.BBML[12:11]: Break-Before-Make behaviour level (0b00 level 0, 0b01 level 1, 0b10 level 2).
        @inlinable public static var bbml: BitField { BitField(12, 11) }
    }

    /// SMMU_IDR5 (§6.3.6).
    public enum IDR5 {
        /// IDR5.OAS[2:0]: output address size in bits (0b000 32, 0b001 36, 0b010 40, 0b011 42, 0b100 44,
        /// 0b101 48, 0b110 52, 0b111 56).
        @inlinable public static var oas: BitField { BitField(2, 0) }
        /// IDR5.GRAN4K[4]: 4 KB translation granule supported.
        @inlinable public static var gran4K: BitField { BitField(bit: 4) }
        /// IDR5.GRAN16K[5]: 16 KB translation granule supported.
        @inlinable public static var gran16K: BitField { BitField(bit: 5) }
        /// IDR5.GRAN64K[6]: 64 KB translation granule supported.
        @inlinable public static var gran64K: BitField { BitField(bit: 6) }
        /// IDR5.DS[7]: 52-bit address sizes with 4 KB and 16 KB granules supported (as FEAT_LPA2).
        @inlinable public static var ds: BitField { BitField(bit: 7) }
        /// IDR5.VAX[11:10]: maximum virtual address size (0b00 48 bits, 0b01 52 bits, 0b10 56 bits).
        @inlinable public static var vax: BitField { BitField(11, 10) }
        /// IDR5.STALL_MAX[31:16]: maximum number of outstanding stalled transactions.
        @inlinable public static var stallMax: BitField { BitField(31, 16) }
    }

    /// SMMU_CR0 and SMMU_CR0ACK (§6.3.9, §6.3.10).
    public enum CR0 {
        /// CR0.SMMUEN[0]: enables the SMMU for Non-secure streams (0 = GBPA bypass or abort).
        @inlinable public static var smmuen: BitField { BitField(bit: 0) }
        /// CR0.PRIQEN[1]: enables the PRI queue (effective only while SMMUEN is 1).
        @inlinable public static var priqen: BitField { BitField(bit: 1) }
        /// CR0.EVENTQEN[2]: enables the Event queue.
        @inlinable public static var eventqen: BitField { BitField(bit: 2) }
        /// CR0.CMDQEN[3]: enables command processing.
        @inlinable public static var cmdqen: BitField { BitField(bit: 3) }
        /// CR0.ATSCHK[4]: 1 = ATS Translated transactions are checked against STE.EATS (safe mode).
        @inlinable public static var atschk: BitField { BitField(bit: 4) }
        /// CR0.VMW[8:6]: VMID wildcard for TLB invalidation (0b000 exact, 0b001-0b100 ignore low 1-4 bits).
        @inlinable public static var vmw: BitField { BitField(8, 6) }
    }

    /// SMMU_CR1 (§6.3.11).
    public enum CR1 {
        /// CR1.QUEUE_IC[1:0]: inner cacheability of queue accesses (0b00 NC, 0b01 WB, 0b10 WT).
        @inlinable public static var queueIC: BitField { BitField(1, 0) }
        /// CR1.QUEUE_OC[3:2]: outer cacheability of queue accesses (0b00 NC, 0b01 WB, 0b10 WT).
        @inlinable public static var queueOC: BitField { BitField(3, 2) }
        /// CR1.QUEUE_SH[5:4]: shareability of queue accesses (0b00 NSH, 0b10 OSH, 0b11 ISH).
        @inlinable public static var queueSH: BitField { BitField(5, 4) }
        /// CR1.TABLE_IC[7:6]: inner cacheability of table walks (0b00 NC, 0b01 WB, 0b10 WT).
        @inlinable public static var tableIC: BitField { BitField(7, 6) }
        /// CR1.TABLE_OC[9:8]: outer cacheability of table walks (0b00 NC, 0b01 WB, 0b10 WT).
        @inlinable public static var tableOC: BitField { BitField(9, 8) }
        /// CR1.TABLE_SH[11:10]: shareability of table walks (0b00 NSH, 0b10 OSH, 0b11 ISH).
        @inlinable public static var tableSH: BitField { BitField(11, 10) }
        /// All defined bits.
        @inlinable public static var defined: UInt32 {
            queueIC.mask32 | queueOC.mask32 | queueSH.mask32 | tableIC.mask32 | tableOC.mask32 | tableSH.mask32
        }
        /// The QUEUE_* fields.
        @inlinable public static var queueFields: UInt32 { 0x03F }
        /// The TABLE_* fields.
        @inlinable public static var tableFields: UInt32 { 0xFC0 }
    }

    /// SMMU_CR2 (§6.3.12).
    public enum CR2 {
        /// CR2.E2H[0]: STE.STRW == 0b10 selects the EL2-E2H regime instead of EL2.
        @inlinable public static var e2h: BitField { BitField(bit: 0) }
        /// CR2.RECINVSID[1]: C_BAD_STREAMID may be recorded for invalid input StreamIDs.
        @inlinable public static var recInvSID: BitField { BitField(bit: 1) }
        /// CR2.PTM[2]: private TLB maintenance; NS broadcast TLB invalidations need not be applied.
        @inlinable public static var ptm: BitField { BitField(bit: 2) }
        /// CR2.REC_CFG_ATS[3]: record the extended set of configuration-error events for ATS and PRI requests.
        @inlinable public static var recCfgATS: BitField { BitField(bit: 3) }
    }

    /// SMMU_STATUSR (§6.3.13).
    public enum STATUSR {
        /// STATUSR.DORMANT[0]: nothing is cached and no prefetch is in progress.
        @inlinable public static var dormant: BitField { BitField(bit: 0) }
    }

    /// SMMU_GBPA (§6.3.14).
    public enum GBPA {
        /// GBPA.MemAttr[3:0]: memory type used when MTCFG is 1 (STE.MemAttr encoding).
        @inlinable public static var memAttr: BitField { BitField(3, 0) }
        /// GBPA.MTCFG[4]: 1 = replace the incoming memory type with MemAttr.
        @inlinable public static var mtcfg: BitField { BitField(bit: 4) }
        /// GBPA.ALLOCCFG[11:8]: allocation hints (0xxx incoming, 1RWT override RA/WA/TR).
        @inlinable public static var allocCfg: BitField { BitField(11, 8) }
        /// GBPA.SHCFG[13:12]: shareability (0b00 NSH, 0b01 incoming, 0b10 OSH, 0b11 ISH).
        @inlinable public static var shCfg: BitField { BitField(13, 12) }
        /// GBPA.PRIVCFG[17:16]: privilege (0b00 incoming, 0b10 unprivileged, 0b11 privileged).
        @inlinable public static var privCfg: BitField { BitField(17, 16) }
        /// GBPA.INSTCFG[19:18]: instruction/data (0b00 incoming, 0b10 data, 0b11 instruction).
        @inlinable public static var instCfg: BitField { BitField(19, 18) }
        /// GBPA.ABORT[20]: 1 = abort all incoming transactions while SMMUEN is 0, 0 = bypass.
        @inlinable public static var abort: BitField { BitField(bit: 20) }
        /// GBPA.Update[31]: written as 1 to apply the other fields; the SMMU clears it when done.
        @inlinable public static var update: BitField { BitField(bit: 31) }
        /// The attribute and ABORT fields (everything but Update).
        @inlinable public static var fields: UInt32 {
            memAttr.mask32 | mtcfg.mask32 | allocCfg.mask32 | shCfg.mask32 | privCfg.mask32 | instCfg.mask32 | abort.mask32
        }
    }

    /// SMMU_IRQ_CTRL and SMMU_IRQ_CTRLACK (§6.3.16, §6.3.18).
    public enum IRQCtrl {
        /// IRQ_CTRL.GERROR_IRQEN[0]: enables the global error interrupt.
        @inlinable public static var gerrorIrqen: BitField { BitField(bit: 0) }
        /// IRQ_CTRL.PRIQ_IRQEN[1]: enables the PRI queue interrupt.
        @inlinable public static var priqIrqen: BitField { BitField(bit: 1) }
        /// IRQ_CTRL.EVENTQ_IRQEN[2]: enables the Event queue interrupt.
        @inlinable public static var eventqIrqen: BitField { BitField(bit: 2) }
    }

    /// SMMU_GERROR and SMMU_GERRORN (§6.3.19, §6.3.20).
    public enum GERROR {
        /// GERROR.CMDQ_ERR[0]: command queue error (code in CMDQ_CONS.ERR); command processing stops.
        @inlinable public static var cmdqErr: BitField { BitField(bit: 0) }
        /// GERROR.EVENTQ_ABT_ERR[2]: an Event queue write aborted.
        @inlinable public static var eventqAbtErr: BitField { BitField(bit: 2) }
        /// GERROR.PRIQ_ABT_ERR[3]: a PRI queue write aborted.
        @inlinable public static var priqAbtErr: BitField { BitField(bit: 3) }
        /// GERROR.MSI_CMDQ_ABT_ERR[4]: a CMD_SYNC completion MSI write aborted.
        @inlinable public static var msiCmdqAbtErr: BitField { BitField(bit: 4) }
        /// GERROR.MSI_EVENTQ_ABT_ERR[5]: an Event queue MSI write aborted.
        @inlinable public static var msiEventqAbtErr: BitField { BitField(bit: 5) }
        /// GERROR.MSI_PRIQ_ABT_ERR[6]: a PRI queue MSI write aborted.
        @inlinable public static var msiPriqAbtErr: BitField { BitField(bit: 6) }
        /// GERROR.MSI_GERROR_ABT_ERR[7]: a GERROR MSI write aborted (raises no GERROR interrupt).
        @inlinable public static var msiGerrorAbtErr: BitField { BitField(bit: 7) }
        /// GERROR.SFM_ERR[8]: the SMMU entered Service Failure Mode.
        @inlinable public static var sfmErr: BitField { BitField(bit: 8) }
        /// Every error bit this SMMU implements.
        @inlinable public static var implemented: UInt32 {
            cmdqErr.mask32 | eventqAbtErr.mask32 | priqAbtErr.mask32 | msiCmdqAbtErr.mask32 | msiEventqAbtErr.mask32
                | msiPriqAbtErr.mask32 | msiGerrorAbtErr.mask32 | sfmErr.mask32
        }
    }

    /// SMMU_*_IRQ_CFG0/1/2 (§6.3.21–§6.3.23 and the queue equivalents).
    public enum IRQCfg {
        /// CFG0.ADDR[55:2].
        @inlinable public static var address: AddressField { AddressField(55, 2) }
        /// CFG1.DATA.
        @inlinable public static var data: BitField { BitField(31, 0) }
        /// CFG2.MemAttr.
        @inlinable public static var memAttr: BitField { BitField(3, 0) }
        /// CFG2.SH.
        @inlinable public static var sh: BitField { BitField(5, 4) }
        /// PRIQ_IRQ_CFG2.LO (Last Only), §6.3.36.
        @inlinable public static var lo: BitField { BitField(bit: 31) }
    }

    /// SMMU_STRTAB_BASE and SMMU_STRTAB_BASE_CFG (§6.3.24, §6.3.25).
    public enum STRTAB {
        /// STRTAB_BASE.ADDR[55:6].
        @inlinable public static var address: AddressField { AddressField(55, 6) }
        /// STRTAB_BASE.RA.
        @inlinable public static var ra: BitField { BitField(bit: 62) }
        /// STRTAB_BASE_CFG.LOG2SIZE.
        @inlinable public static var log2Size: BitField { BitField(5, 0) }
        /// STRTAB_BASE_CFG.SPLIT.
        @inlinable public static var split: BitField { BitField(10, 6) }
        /// STRTAB_BASE_CFG.FMT.
        @inlinable public static var fmt: BitField { BitField(17, 16) }
        /// FMT encoding: 2-level.
        @inlinable public static var fmtTwoLevel: UInt64 { 1 }
    }

    /// SMMU_CMDQ_BASE, SMMU_EVENTQ_BASE, SMMU_PRIQ_BASE and the PROD/CONS registers
    /// (§6.3.26–§6.3.29, §6.3.33, §6.3.95–§6.3.98).
    public enum Queue {
        /// *_BASE.LOG2SIZE.
        @inlinable public static var log2Size: BitField { BitField(4, 0) }
        /// *_BASE.ADDR[55:5].
        @inlinable public static var address: AddressField { AddressField(55, 5) }
        /// *_BASE.RA (CMDQ) / WA (EVENTQ, PRIQ).
        @inlinable public static var allocate: BitField { BitField(bit: 62) }
        /// The 20-bit index field of PROD and CONS (index and wrap bit, by LOG2SIZE).
        @inlinable public static var indexField: BitField { BitField(19, 0) }
        /// CMDQ_CONS.ERR.
        @inlinable public static var consErr: BitField { BitField(30, 24) }
        /// EVENTQ_PROD/PRIQ_PROD.OVFLG and EVENTQ_CONS/PRIQ_CONS.OVACKFLG.
        @inlinable public static var overflowFlag: BitField { BitField(bit: 31) }
    }
}
