import Platform

/// A raw 16-byte command queue entry: two little-endian doublewords (§4.1.1).
public struct CommandEntry: Hashable, Sendable, CustomStringConvertible {
    /// Bits [63:0].
    public var dw0: UInt64
    /// Bits [127:64].
    public var dw1: UInt64

    /// Creates an entry from its two doublewords.
    @inlinable
    public init(dw0: UInt64, dw1: UInt64) {
        self.dw0 = dw0
        self.dw1 = dw1
    }

    /// The opcode byte.
    @inlinable public var opcode: UInt8 { UInt8(truncatingIfNeeded: dw0) }

    /// The command decoded as far as it can be (every architected opcode accepted), or why not.
    public var decoded: Result<Command, IllegalCommand> {
        Command.decode(self, features: .permissive)
    }

    /// A readable rendering, e.g. `CMD_CFGI_STE sid=0x10 leaf`.
    public var description: String {
        switch decoded {
        case .success(let command): command.description
        case .failure(let illegal): "\(CommandOpcode.name(of: opcode)) [\(illegal.reason)] dw0=\(hex(dw0, digits: 16)) dw1=\(hex(dw1, digits: 16))"
        }
    }
}

/// Command opcodes (§4.1.1). Opcodes not listed are Reserved.
public enum CommandOpcode: UInt8, CaseIterable, Sendable {
    /// CMD_PREFETCH_CONFIG (0x01): prefetch the STE and CD for a stream (§4.2.1).
    case prefetchConfig = 0x01
    /// CMD_PREFETCH_ADDR (0x02): prefetch configuration and TLB entries for an address span (§4.2.2).
    case prefetchAddress = 0x02
    /// CMD_CFGI_STE (0x03): invalidate one STE (§4.3.1).
    case cfgiSTE = 0x03
    /// CMD_CFGI_STE_RANGE (0x04): invalidate 2^(Range+1) STEs; Range 31 is CMD_CFGI_ALL (§4.3.2, §4.3.6).
    case cfgiSTERange = 0x04
    /// CMD_CFGI_CD (0x05): invalidate one CD (§4.3.3).
    case cfgiCD = 0x05
    /// CMD_CFGI_CD_ALL (0x06): invalidate all CDs of a stream (§4.3.4).
    case cfgiCDAll = 0x06
    /// CMD_CFGI_VMS_PIDM (0x07): invalidate cached VMS.PARTID_MAP data for a VMID (MPAM) (§4.3.5).
    case cfgiVMSPIDM = 0x07
    /// CMD_TLBI_NH_ALL (0x10): invalidate all NS-EL1 stage-1 entries of a VMID (§4.4.2.1).
    case tlbiNHAll = 0x10
    /// CMD_TLBI_NH_ASID (0x11): invalidate NS-EL1 non-global entries by ASID and VMID (§4.4.2.2).
    case tlbiNHASID = 0x11
    /// CMD_TLBI_NH_VA (0x12): invalidate NS-EL1 entries by VA, ASID and VMID (§4.4.2.4).
    case tlbiNHVA = 0x12
    /// CMD_TLBI_NH_VAA (0x13): invalidate NS-EL1 entries by VA and VMID, all ASIDs (§4.4.2.3).
    case tlbiNHVAA = 0x13
    /// CMD_TLBI_EL3_ALL (0x18): invalidate all EL3 entries; Secure queue only (§4.4.2.5).
    case tlbiEL3All = 0x18
    /// CMD_TLBI_EL3_VA (0x1A): invalidate EL3 entries by VA; Secure queue only (§4.4.2.6).
    case tlbiEL3VA = 0x1A
    /// CMD_TLBI_EL2_ALL (0x20): invalidate all NS-EL2 and EL2-E2H entries (§4.4.2.7).
    case tlbiEL2All = 0x20
    /// CMD_TLBI_EL2_ASID (0x21): invalidate NS EL2-E2H non-global entries by ASID (§4.4.2.10).
    case tlbiEL2ASID = 0x21
    /// CMD_TLBI_EL2_VA (0x22): invalidate NS EL2 or EL2-E2H entries by VA (and ASID when E2H) (§4.4.2.8).
    case tlbiEL2VA = 0x22
    /// CMD_TLBI_EL2_VAA (0x23): invalidate NS EL2 or EL2-E2H entries by VA, all ASIDs (§4.4.2.9).
    case tlbiEL2VAA = 0x23
    /// CMD_TLBI_S12_VMALL (0x28): invalidate all stage-1 and stage-2 entries of a VMID (§4.4.3.2).
    case tlbiS12VMAll = 0x28
    /// CMD_TLBI_S2_IPA (0x2A): invalidate stage-2 entries by IPA and VMID (§4.4.3.1).
    case tlbiS2IPA = 0x2A
    /// CMD_TLBI_NSNH_ALL (0x30): invalidate all Non-secure non-Hyp entries, all stages (§4.4.4.1).
    case tlbiNSNHAll = 0x30
    /// CMD_ATC_INV (0x40): send an ATS Invalidate Request to the endpoint (§4.5.1).
    case atcInv = 0x40
    /// CMD_PRI_RESP (0x41): send a PRG Response to a PRI page request group (§4.5.2).
    case priResp = 0x41
    /// CMD_RESUME (0x44): retry or terminate one stalled transaction (§4.7.1).
    case resume = 0x44
    /// CMD_STALL_TERM (0x45): terminate all stalled transactions of a stream (§4.7.2).
    case stallTerm = 0x45
    /// CMD_SYNC (0x46): complete all earlier commands, then signal (§4.7.3).
    case sync = 0x46
    /// CMD_TLBI_S_EL2_ALL (0x50): Secure EL2 invalidate all; Secure queue only (§4.4.2.11).
    case tlbiSEL2All = 0x50
    /// CMD_TLBI_S_EL2_ASID (0x51): Secure EL2 invalidate by ASID; Secure queue only (§4.4.2.14).
    case tlbiSEL2ASID = 0x51
    /// CMD_TLBI_S_EL2_VA (0x52): Secure EL2 invalidate by VA; Secure queue only (§4.4.2.12).
    case tlbiSEL2VA = 0x52
    /// CMD_TLBI_S_EL2_VAA (0x53): Secure EL2 invalidate by VA, all ASIDs; Secure queue only (§4.4.2.13).
    case tlbiSEL2VAA = 0x53
    /// CMD_TLBI_S_S12_VMALL (0x58): Secure invalidate all entries of a VMID; Secure queue only (§4.4.3.4).
    case tlbiSS12VMAll = 0x58
    /// CMD_TLBI_S_S2_IPA (0x5A): Secure stage-2 invalidate by IPA; Secure queue only (§4.4.3.3).
    case tlbiSS2IPA = 0x5A
    /// CMD_TLBI_SNH_ALL (0x60): invalidate all Secure non-Hyp entries; Secure queue only (§4.4.4.2).
    case tlbiSNHAll = 0x60
    /// CMD_DPTI_ALL (0x70): remove all cached DPT information (§4.6.1).
    case dptiAll = 0x70
    /// CMD_DPTI_PA (0x73): remove cached DPT information for an aligned PA region (§4.6.2).
    case dptiPA = 0x73

    /// The spec name, e.g. `CMD_TLBI_NH_VA`.
    public var specName: String {
        switch self {
        case .prefetchConfig: "CMD_PREFETCH_CONFIG"
        case .prefetchAddress: "CMD_PREFETCH_ADDR"
        case .cfgiSTE: "CMD_CFGI_STE"
        case .cfgiSTERange: "CMD_CFGI_STE_RANGE"
        case .cfgiCD: "CMD_CFGI_CD"
        case .cfgiCDAll: "CMD_CFGI_CD_ALL"
        case .cfgiVMSPIDM: "CMD_CFGI_VMS_PIDM"
        case .tlbiNHAll: "CMD_TLBI_NH_ALL"
        case .tlbiNHASID: "CMD_TLBI_NH_ASID"
        case .tlbiNHVA: "CMD_TLBI_NH_VA"
        case .tlbiNHVAA: "CMD_TLBI_NH_VAA"
        case .tlbiEL3All: "CMD_TLBI_EL3_ALL"
        case .tlbiEL3VA: "CMD_TLBI_EL3_VA"
        case .tlbiEL2All: "CMD_TLBI_EL2_ALL"
        case .tlbiEL2ASID: "CMD_TLBI_EL2_ASID"
        case .tlbiEL2VA: "CMD_TLBI_EL2_VA"
        case .tlbiEL2VAA: "CMD_TLBI_EL2_VAA"
        case .tlbiS12VMAll: "CMD_TLBI_S12_VMALL"
        case .tlbiS2IPA: "CMD_TLBI_S2_IPA"
        case .tlbiNSNHAll: "CMD_TLBI_NSNH_ALL"
        case .atcInv: "CMD_ATC_INV"
        case .priResp: "CMD_PRI_RESP"
        case .resume: "CMD_RESUME"
        case .stallTerm: "CMD_STALL_TERM"
        case .sync: "CMD_SYNC"
        case .tlbiSEL2All: "CMD_TLBI_S_EL2_ALL"
        case .tlbiSEL2ASID: "CMD_TLBI_S_EL2_ASID"
        case .tlbiSEL2VA: "CMD_TLBI_S_EL2_VA"
        case .tlbiSEL2VAA: "CMD_TLBI_S_EL2_VAA"
        case .tlbiSS12VMAll: "CMD_TLBI_S_S12_VMALL"
        case .tlbiSS2IPA: "CMD_TLBI_S_S2_IPA"
        case .tlbiSNHAll: "CMD_TLBI_SNH_ALL"
        case .dptiAll: "CMD_DPTI_ALL"
        case .dptiPA: "CMD_DPTI_PA"
        }
    }

    /// The spec name of any opcode byte (`CMD_RESERVED_0x09`, `CMD_IMPDEF_0x80` otherwise).
    public static func name(of opcode: UInt8) -> String {
        if let known = CommandOpcode(rawValue: opcode) { return known.specName }
        return (0x80...0x8F).contains(opcode) ? "CMD_IMPDEF_\(hex(opcode, digits: 2))" : "CMD_RESERVED_\(hex(opcode, digits: 2))"
    }
}

/// Bit layouts of the command fields (§4.1.6, §4.2–§4.7). `DW0.*` are bits of the first
/// doubleword, `DW1.*` of the second. Positions follow the Linux header where the spec's
/// diagrams are images; CMD_PREFETCH_ADDR's NS and Stride positions are provisional.
public enum Cmd {
    /// Fields of the first doubleword.
    public enum DW0 {
        /// Opcode: DW0[7:0] (§4.1.1).
        @inlinable public static var opcode: BitField { BitField(7, 0) }
        /// CMD_ATC_INV Global: DW0[9]; sets the Global Invalidate flag (IGNORED when SSV == 0).
        @inlinable public static var global: BitField { BitField(bit: 9) }
        /// SSec: the StreamID is Secure (Secure queue only; 1 on the Non-secure queue is ILLEGAL): DW0[10].
        @inlinable public static var ssec: BitField { BitField(bit: 10) }
        /// SSV: the SubstreamID field is valid: DW0[11].
        @inlinable public static var ssv: BitField { BitField(bit: 11) }
        /// SubstreamID: DW0[31:12].
        @inlinable public static var substreamID: BitField { BitField(31, 12) }
        /// StreamID: DW0[63:32].
        @inlinable public static var streamID: BitField { BitField(63, 32) }
        /// TLBI range multiplier.
        @inlinable public static var num: BitField { BitField(16, 12) }
        /// TLBI range scale ([24:20]; bit 25 only exists when IDR5.DS == 1).
        @inlinable public static var scale: BitField { BitField(24, 20) }
        /// TLBI SCALE bit 25 (RES0 without IDR5.DS).
        @inlinable public static var scaleDS: BitField { BitField(bit: 25) }
        /// TLBI VMID: DW0[47:32].
        @inlinable public static var vmid: BitField { BitField(47, 32) }
        /// TLBI ASID: DW0[63:48].
        @inlinable public static var asid: BitField { BitField(63, 48) }
        /// CMD_RESUME action: 1 = retry.
        @inlinable public static var resumeAc: BitField { BitField(bit: 12) }
        /// CMD_RESUME abort: 1 = abort (when Ac == 0).
        @inlinable public static var resumeAb: BitField { BitField(bit: 13) }
        /// CMD_SYNC completion signal.
        @inlinable public static var syncCS: BitField { BitField(13, 12) }
        /// CMD_SYNC MSI shareability.
        @inlinable public static var syncMSH: BitField { BitField(23, 22) }
        /// CMD_SYNC MSI memory attributes.
        @inlinable public static var syncMSIAttr: BitField { BitField(27, 24) }
        /// CMD_SYNC MSI data.
        @inlinable public static var syncMSIData: BitField { BitField(63, 32) }
    }

    /// Fields of the second doubleword.
    public enum DW1 {
        /// Leaf: DW1[0]; only last-level entries (CFGI: no L1STD/L1CD) need invalidating.
        @inlinable public static var leaf: BitField { BitField(bit: 0) }
        /// CMD_CFGI_STE_RANGE Range: DW1[4:0]; 2^(Range+1) StreamIDs, 31 = all.
        @inlinable public static var range: BitField { BitField(4, 0) }
        /// TLBI TTL128: DW1[7]; the level hint is for 128-bit descriptors (§4.4.1.1).
        @inlinable public static var ttl128: BitField { BitField(bit: 7) }
        /// TLBI TTL: DW1[9:8]; level hint, 0b01/0b10/0b11 = level 1/2/3 (§4.4.1.1).
        @inlinable public static var ttl: BitField { BitField(9, 8) }
        /// TLBI TG: DW1[11:10]; range granule, 0b00 none, 0b01 4 KB, 0b10 16 KB, 0b11 64 KB (§4.4.1.1).
        @inlinable public static var tg: BitField { BitField(11, 10) }
        /// Virtual address fields: Address[63:12].
        @inlinable public static var virtualAddress: AddressField { AddressField(63, 12) }
        /// Physical/IPA fields: Address[51:12] (bits [55:52] are RES0 in SMMUv3.1–3.3).
        @inlinable public static var physicalAddress: AddressField { AddressField(51, 12) }
        /// CMD_PREFETCH_ADDR Size: DW1[4:0]; prefetch 2^Size translations.
        @inlinable public static var prefetchSize: BitField { BitField(4, 0) }
        /// CMD_PREFETCH_ADDR NS (Secure stage-2 input NS attribute): DW1[7], provisional position.
        @inlinable public static var prefetchNS: BitField { BitField(bit: 7) }
        /// CMD_PREFETCH_ADDR Stride: DW1[11:8], provisional position; stride 2^(12+Stride) bytes.
        @inlinable public static var prefetchStride: BitField { BitField(11, 8) }
        /// CMD_ATC_INV Size: DW1[5:0]; span of 4 KB x 2^Size (52 = everything) (§4.5.1).
        @inlinable public static var atcSize: BitField { BitField(5, 0) }
        /// CMD_PRI_RESP PRGIndex: DW1[8:0].
        @inlinable public static var prgIndex: BitField { BitField(8, 0) }
        /// CMD_PRI_RESP Resp: DW1[13:12]; 0b00 Failure, 0b01 InvalidRequest, 0b10 Success (Linux layout).
        @inlinable public static var priResp: BitField { BitField(13, 12) }
        /// CMD_RESUME STAG: DW1[15:0], from the stall event record.
        @inlinable public static var stag: BitField { BitField(15, 0) }
        /// CMD_SYNC MSIAddress[51:2] (bits [55:52] RES0 in SMMUv3.1–3.3).
        @inlinable public static var msiAddress: AddressField { AddressField(51, 2) }
    }
}

/// The TLBI range and level-hint fields (§4.4.1.1) plus Leaf.
public struct TLBIScope: Hashable, Sendable, CustomStringConvertible {
    /// Leaf == 1: only last-level entries need invalidating.
    public var leaf: Bool
    /// NUM: range multiplier.
    public var num: UInt8
    /// SCALE: range scale.
    public var scale: UInt8
    /// TG: 0 = no range/hint, 1 = 4 KB, 2 = 16 KB, 3 = 64 KB.
    public var granule: UInt8
    /// TTL: level hint (0 = none).
    public var ttl: UInt8

    /// A plain (non-range) invalidation.
    public static func single(leaf: Bool = false) -> TLBIScope {
        TLBIScope(leaf: leaf, num: 0, scale: 0, granule: 0, ttl: 0)
    }

    /// Creates a scope.
    public init(leaf: Bool, num: UInt8, scale: UInt8, granule: UInt8, ttl: UInt8) {
        self.leaf = leaf
        self.num = num
        self.scale = scale
        self.granule = granule
        self.ttl = ttl
    }

    /// The granule size in bytes (0 when TG == 0).
    public var granuleBytes: UInt64 {
        switch granule {
        case 1: 4096
        case 2: 16384
        case 3: 65536
        default: 0
        }
    }

    /// The number of bytes a range invalidation covers, `(NUM+1) * 2^SCALE * granule`, or
    /// nil when TG == 0 (a single-address invalidation). Saturates at 2^64 - 1.
    public var rangeBytes: UInt64? {
        guard granule != 0 else { return nil }
        let units = UInt64(num) + 1
        let shift = UInt64(scale) + UInt64(granuleBytes.trailingZeroBitCount)
        guard shift < 64 else { return .max }
        let (bytes, overflow) = units.multipliedReportingOverflow(by: UInt64(1) << shift)
        return overflow ? .max : bytes
    }

    public var description: String {
        var parts: [String] = []
        if leaf { parts.append("leaf") }
        if granule != 0 {
            parts.append("tg=\(granuleBytes / 1024)K num=\(num) scale=\(scale)")
            if ttl != 0 { parts.append("ttl=\(ttl)") }
        }
        return parts.joined(separator: " ")
    }
}

/// CMD_PRI_RESP response codes (§4.5.2). Linux names them DENY, FAIL and SUCC.
public enum PRIResponse: UInt8, Sendable, Hashable, CaseIterable, CustomStringConvertible {
    /// 0b00 ResponseFailure (Linux PRI_RESP_DENY): PCIe Response Failure.
    case responseFailure = 0
    /// 0b01 InvalidRequest (Linux PRI_RESP_FAIL): PCIe Invalid Request.
    case invalidRequest = 1
    /// 0b10 Success (Linux PRI_RESP_SUCC).
    case success = 2

    public var description: String {
        switch self {
        case .responseFailure: "ResponseFailure"
        case .invalidRequest: "InvalidRequest"
        case .success: "Success"
        }
    }
}

/// What CMD_RESUME does with a stalled transaction (§4.7.1).
public enum ResumeAction: Sendable, Hashable, CustomStringConvertible {
    /// Ac == 1: retry the transaction (re-translated as if new).
    case retry
    /// Ac == 0, Ab == 1: terminate with an abort to the client.
    case abort
    /// Ac == 0, Ab == 0: terminate as RAZ/WI (when TERM_MODEL == 0).
    case terminate

    public var description: String {
        switch self {
        case .retry: "retry"
        case .abort: "abort"
        case .terminate: "terminate"
        }
    }
}

/// How CMD_SYNC signals completion (§4.7.3).
public enum SyncCompletion: UInt8, Sendable, Hashable, CustomStringConvertible {
    /// SIG_NONE: software polls CMDQ_CONS.
    case none = 0
    /// SIG_IRQ: MSI (when supported and MSIAddress != 0) and the wired CMD_SYNC interrupt.
    case irq = 1
    /// SIG_SEV: a WFE wake-up (when IDR0.SEV == 1).
    case sev = 2

    public var description: String {
        switch self {
        case .none: "SIG_NONE"
        case .irq: "SIG_IRQ"
        case .sev: "SIG_SEV"
        }
    }
}

/// CMD_SYNC parameters.
public struct SyncParameters: Hashable, Sendable {
    /// CS: the completion signal.
    public var completion: SyncCompletion
    /// MSIAddress[51:2] (zero: no MSI).
    public var msiAddress: UInt64
    /// MSIData.
    public var msiData: UInt32
    /// MSIAttr (STE.MemAttr encoding).
    public var msiAttributes: UInt8
    /// MSH: MSI shareability.
    public var msiShareability: UInt8

    /// Creates CMD_SYNC parameters.
    public init(completion: SyncCompletion = .none, msiAddress: UInt64 = 0, msiData: UInt32 = 0, msiAttributes: UInt8 = 0, msiShareability: UInt8 = 0) {
        self.completion = completion
        self.msiAddress = msiAddress
        self.msiData = msiData
        self.msiAttributes = msiAttributes
        self.msiShareability = msiShareability
    }
}

/// A decoded command (§4). Encode with ``entry``; decode with ``decode(_:features:)``.
public enum Command: Hashable, Sendable, CustomStringConvertible {
    /// CMD_PREFETCH_CONFIG (0x01): prefetch a stream's STE and CD (§4.2.1).
    case prefetchConfig(streamID: UInt32, substreamID: UInt32?)
    /// CMD_PREFETCH_ADDR (0x02): prefetch 2^size translations at a 2^(12+stride)-byte stride (§4.2.2).
    case prefetchAddress(streamID: UInt32, substreamID: UInt32?, address: UInt64, size: UInt8, stride: UInt8)
    /// CMD_CFGI_STE (0x03): invalidate one STE, and its L1STD unless `leaf` (§4.3.1).
    case cfgiSTE(streamID: UInt32, leaf: Bool)
    /// CMD_CFGI_STE_RANGE with Range < 31: 2^(range+1) StreamIDs.
    case cfgiSTERange(streamID: UInt32, range: UInt8)
    /// CMD_CFGI_ALL (CMD_CFGI_STE_RANGE with Range == 31).
    case cfgiAll
    /// CMD_CFGI_CD (0x05): invalidate one CD, and its L1CD unless `leaf` (§4.3.3).
    case cfgiCD(streamID: UInt32, substreamID: UInt32, leaf: Bool)
    /// CMD_CFGI_CD_ALL (0x06): invalidate all CDs and L1CDs of a stream (§4.3.4).
    case cfgiCDAll(streamID: UInt32)
    /// CMD_TLBI_NH_ALL (0x10): invalidate all NS-EL1 stage-1 entries of `vmid` (§4.4.2.1).
    case tlbiNHAll(vmid: UInt16)
    /// CMD_TLBI_NH_ASID (0x11): invalidate NS-EL1 non-global entries by ASID and VMID (§4.4.2.2).
    case tlbiNHASID(vmid: UInt16, asid: UInt16)
    /// CMD_TLBI_NH_VA (0x12): invalidate NS-EL1 entries by VA, ASID and VMID (§4.4.2.4).
    case tlbiNHVA(vmid: UInt16, asid: UInt16, address: UInt64, scope: TLBIScope)
    /// CMD_TLBI_NH_VAA (0x13): invalidate NS-EL1 entries by VA and VMID, all ASIDs (§4.4.2.3).
    case tlbiNHVAA(vmid: UInt16, address: UInt64, scope: TLBIScope)
    /// CMD_TLBI_EL2_ALL (0x20): invalidate all NS-EL2 and EL2-E2H entries (§4.4.2.7).
    case tlbiEL2All
    /// CMD_TLBI_EL2_ASID (0x21): invalidate NS EL2-E2H non-global entries by ASID (§4.4.2.10).
    case tlbiEL2ASID(asid: UInt16)
    /// CMD_TLBI_EL2_VA (0x22): invalidate NS EL2 or EL2-E2H entries by VA (and ASID when E2H) (§4.4.2.8).
    case tlbiEL2VA(asid: UInt16, address: UInt64, scope: TLBIScope)
    /// CMD_TLBI_EL2_VAA (0x23): invalidate NS EL2 or EL2-E2H entries by VA, all ASIDs (§4.4.2.9).
    case tlbiEL2VAA(address: UInt64, scope: TLBIScope)
    /// CMD_TLBI_S12_VMALL (0x28): invalidate all stage-1 and stage-2 entries of `vmid` (§4.4.3.2).
    case tlbiS12VMAll(vmid: UInt16)
    /// CMD_TLBI_S2_IPA (0x2A): invalidate stage-2 entries by IPA and VMID (§4.4.3.1).
    case tlbiS2IPA(vmid: UInt16, address: UInt64, scope: TLBIScope)
    /// CMD_TLBI_NSNH_ALL (0x30): invalidate all Non-secure non-Hyp entries, all stages (§4.4.4.1).
    case tlbiNSNHAll
    /// CMD_ATC_INV (0x40): invalidate 4 KB x 2^size of the endpoint's ATC at `address` (§4.5.1).
    case atcInv(streamID: UInt32, substreamID: UInt32?, global: Bool, address: UInt64, size: UInt8)
    /// CMD_PRI_RESP (0x41): respond to the page request group `prgIndex` (§4.5.2).
    case priResp(streamID: UInt32, substreamID: UInt32?, prgIndex: UInt16, response: PRIResponse)
    /// CMD_RESUME (0x44): retry or terminate the stalled transaction tagged `stag` (§4.7.1).
    case resume(streamID: UInt32, stag: UInt16, action: ResumeAction)
    /// CMD_STALL_TERM (0x45): terminate all stalled transactions of a stream (§4.7.2).
    case stallTerm(streamID: UInt32)
    /// CMD_SYNC (0x46): complete all earlier commands, then signal as `parameters` say (§4.7.3).
    case sync(SyncParameters)

    /// The opcode.
    public var opcode: CommandOpcode {
        switch self {
        case .prefetchConfig: .prefetchConfig
        case .prefetchAddress: .prefetchAddress
        case .cfgiSTE: .cfgiSTE
        case .cfgiSTERange, .cfgiAll: .cfgiSTERange
        case .cfgiCD: .cfgiCD
        case .cfgiCDAll: .cfgiCDAll
        case .tlbiNHAll: .tlbiNHAll
        case .tlbiNHASID: .tlbiNHASID
        case .tlbiNHVA: .tlbiNHVA
        case .tlbiNHVAA: .tlbiNHVAA
        case .tlbiEL2All: .tlbiEL2All
        case .tlbiEL2ASID: .tlbiEL2ASID
        case .tlbiEL2VA: .tlbiEL2VA
        case .tlbiEL2VAA: .tlbiEL2VAA
        case .tlbiS12VMAll: .tlbiS12VMAll
        case .tlbiS2IPA: .tlbiS2IPA
        case .tlbiNSNHAll: .tlbiNSNHAll
        case .atcInv: .atcInv
        case .priResp: .priResp
        case .resume: .resume
        case .stallTerm: .stallTerm
        case .sync: .sync
        }
    }

    /// The spec name (`CMD_CFGI_ALL` for the Range == 31 form).
    public var name: String {
        if case .cfgiAll = self { return "CMD_CFGI_ALL" }
        return opcode.specName
    }
}

// MARK: Encoding

extension Command {
    private static func withSubstream(_ dw0: UInt64, _ substreamID: UInt32?) -> UInt64 {
        guard let substreamID else { return dw0 }
        return Cmd.DW0.substreamID.inserting(UInt64(substreamID), into: dw0) | Cmd.DW0.ssv.mask
    }

    private static func scoped(_ dw0: UInt64, _ scope: TLBIScope) -> UInt64 {
        Cmd.DW0.scale.inserting(UInt64(scope.scale), into: Cmd.DW0.num.inserting(UInt64(scope.num), into: dw0))
    }

    private static func scopedDW1(_ address: UInt64, _ field: AddressField, _ scope: TLBIScope) -> UInt64 {
        var dw1 = field.extract(address) | Cmd.DW1.leaf.place(scope.leaf)
        dw1 = Cmd.DW1.ttl.inserting(UInt64(scope.ttl), into: dw1)
        return Cmd.DW1.tg.inserting(UInt64(scope.granule), into: dw1)
    }

    /// The 16-byte queue entry for this command (fields wider than their encoding are truncated).
    public var entry: CommandEntry {
        let op = UInt64(opcode.rawValue)
        func sid(_ streamID: UInt32) -> UInt64 { op | Cmd.DW0.streamID.place(UInt64(streamID)) }
        func vmid(_ value: UInt16) -> UInt64 { op | Cmd.DW0.vmid.place(UInt64(value)) }
        func asid(_ value: UInt16) -> UInt64 { Cmd.DW0.asid.place(UInt64(value)) }
        switch self {
        case .prefetchConfig(let streamID, let substreamID):
            return CommandEntry(dw0: Command.withSubstream(sid(streamID), substreamID), dw1: 0)
        case .prefetchAddress(let streamID, let substreamID, let address, let size, let stride):
            var dw1 = Cmd.DW1.virtualAddress.extract(address) | Cmd.DW1.prefetchSize.place(UInt64(size))
            dw1 |= Cmd.DW1.prefetchStride.place(UInt64(stride))
            return CommandEntry(dw0: Command.withSubstream(sid(streamID), substreamID), dw1: dw1)
        case .cfgiSTE(let streamID, let leaf):
            return CommandEntry(dw0: sid(streamID), dw1: Cmd.DW1.leaf.place(leaf))
        case .cfgiSTERange(let streamID, let range):
            return CommandEntry(dw0: sid(streamID), dw1: Cmd.DW1.range.place(UInt64(range)))
        case .cfgiAll:
            return CommandEntry(dw0: op, dw1: Cmd.DW1.range.place(31))
        case .cfgiCD(let streamID, let substreamID, let leaf):
            return CommandEntry(dw0: Cmd.DW0.substreamID.inserting(UInt64(substreamID), into: sid(streamID)), dw1: Cmd.DW1.leaf.place(leaf))
        case .cfgiCDAll(let streamID):
            return CommandEntry(dw0: sid(streamID), dw1: 0)
        case .tlbiNHAll(let value), .tlbiS12VMAll(let value):
            return CommandEntry(dw0: vmid(value), dw1: 0)
        case .tlbiNHASID(let vmidValue, let asidValue):
            return CommandEntry(dw0: vmid(vmidValue) | asid(asidValue), dw1: 0)
        case .tlbiNHVA(let vmidValue, let asidValue, let address, let scope):
            return CommandEntry(dw0: Command.scoped(vmid(vmidValue) | asid(asidValue), scope), dw1: Command.scopedDW1(address, Cmd.DW1.virtualAddress, scope))
        case .tlbiNHVAA(let vmidValue, let address, let scope):
            return CommandEntry(dw0: Command.scoped(vmid(vmidValue), scope), dw1: Command.scopedDW1(address, Cmd.DW1.virtualAddress, scope))
        case .tlbiEL2All, .tlbiNSNHAll:
            return CommandEntry(dw0: op, dw1: 0)
        case .tlbiEL2ASID(let asidValue):
            return CommandEntry(dw0: op | asid(asidValue), dw1: 0)
        case .tlbiEL2VA(let asidValue, let address, let scope):
            return CommandEntry(dw0: Command.scoped(op | asid(asidValue), scope), dw1: Command.scopedDW1(address, Cmd.DW1.virtualAddress, scope))
        case .tlbiEL2VAA(let address, let scope):
            return CommandEntry(dw0: Command.scoped(op, scope), dw1: Command.scopedDW1(address, Cmd.DW1.virtualAddress, scope))
        case .tlbiS2IPA(let vmidValue, let address, let scope):
            return CommandEntry(dw0: Command.scoped(vmid(vmidValue), scope), dw1: Command.scopedDW1(address, Cmd.DW1.physicalAddress, scope))
        case .atcInv(let streamID, let substreamID, let global, let address, let size):
            let dw0 = Command.withSubstream(sid(streamID), substreamID) | Cmd.DW0.global.place(global)
            return CommandEntry(dw0: dw0, dw1: Cmd.DW1.virtualAddress.extract(address) | Cmd.DW1.atcSize.place(UInt64(size)))
        case .priResp(let streamID, let substreamID, let prgIndex, let response):
            let dw1 = Cmd.DW1.prgIndex.place(UInt64(prgIndex)) | Cmd.DW1.priResp.place(UInt64(response.rawValue))
            return CommandEntry(dw0: Command.withSubstream(sid(streamID), substreamID), dw1: dw1)
        case .resume(let streamID, let stag, let action):
            var dw0 = sid(streamID)
            switch action {
            case .retry: dw0 |= Cmd.DW0.resumeAc.mask
            case .abort: dw0 |= Cmd.DW0.resumeAb.mask
            case .terminate: break
            }
            return CommandEntry(dw0: dw0, dw1: Cmd.DW1.stag.place(UInt64(stag)))
        case .stallTerm(let streamID):
            return CommandEntry(dw0: sid(streamID), dw1: 0)
        case .sync(let parameters):
            var dw0 = op | Cmd.DW0.syncCS.place(UInt64(parameters.completion.rawValue))
            dw0 |= Cmd.DW0.syncMSH.place(UInt64(parameters.msiShareability))
            dw0 |= Cmd.DW0.syncMSIAttr.place(UInt64(parameters.msiAttributes))
            dw0 |= Cmd.DW0.syncMSIData.place(UInt64(parameters.msiData))
            return CommandEntry(dw0: dw0, dw1: Cmd.DW1.msiAddress.extract(parameters.msiAddress))
        }
    }
}

// MARK: Decoding and validation

/// What the command decoder may accept: the implemented features that make commands legal
/// or ILLEGAL (§4.1.3).
public struct CommandFeatures: Sendable, Hashable {
    /// IDR0.S1P: stage-1 commands (CFGI_CD*, TLBI_NH_*) are legal.
    public var stage1: Bool
    /// IDR0.S2P: stage-2 commands (TLBI_S2_IPA, TLBI_S12_VMALL) are legal.
    public var stage2: Bool
    /// IDR0.Hyp: the TLBI_EL2_* commands are legal.
    public var hypervisor: Bool
    /// IDR0.ATS: CMD_ATC_INV is legal.
    public var ats: Bool
    /// IDR0.PRI: CMD_PRI_RESP is legal.
    public var pri: Bool
    /// Whether RESUME and STALL_TERM exist (STALL_MODEL != 0b01).
    public var stalls: Bool
    /// IDR5.DS: the 6-bit SCALE and 16 KB TTL=1 encodings.
    public var ds: Bool
    /// Whether non-zero RES0 fields are ILLEGAL.
    public var checksReservedFields: Bool

    /// Creates a feature set.
    public init(stage1: Bool, stage2: Bool, hypervisor: Bool, ats: Bool, pri: Bool, stalls: Bool, ds: Bool, checksReservedFields: Bool) {
        self.stage1 = stage1
        self.stage2 = stage2
        self.hypervisor = hypervisor
        self.ats = ats
        self.pri = pri
        self.stalls = stalls
        self.ds = ds
        self.checksReservedFields = checksReservedFields
    }

    /// Everything implemented and reserved fields ignored: the most a decoder can accept.
    public static let permissive = CommandFeatures(stage1: true, stage2: true, hypervisor: true, ats: true, pri: true, stalls: true, ds: false, checksReservedFields: false)
}

/// A feature whose absence makes an architected opcode Reserved (§4.1.3).
public enum CommandFeature: Hashable, Sendable, CustomStringConvertible {
    case stage1, stage2, hypervisor, ats, pri, stalls

    public var description: String {
        switch self {
        case .stage1: "stage 1 (IDR0.S1P)"
        case .stage2: "stage 2 (IDR0.S2P)"
        case .hypervisor: "EL2 (IDR0.Hyp)"
        case .ats: "ATS (IDR0.ATS)"
        case .pri: "PRI (IDR0.PRI)"
        case .stalls: "stalls (IDR0.STALL_MODEL != 0b01)"
        }
    }
}

/// A parameter value the spec defines as ILLEGAL.
public enum IllegalParameter: Hashable, Sendable, CustomStringConvertible {
    /// TLBI with TG != 0 and NUM == SCALE == TTL == 0 (§4.4.1.1).
    case rangeWithoutExtent
    /// TLBI with a 16 KB TG and TTL == 0b01 without IDR5.DS (§4.4.1.1).
    case levelOneHintFor16KWithoutDS
    /// CMD_ATC_INV Size above 52 (§4.5.1; the model's choice among the permitted outcomes).
    case atcInvalidationSize(UInt8)
    /// CMD_PRI_RESP Resp == 0b11 (§4.5.2).
    case reservedPRIResponse
    /// CMD_SYNC CS == 0b11 (§4.7.3).
    case reservedSyncCompletion

    public var description: String {
        switch self {
        case .rangeWithoutExtent: "TG != 0 with NUM == 0, SCALE == 0 and TTL == 0 is Reserved"
        case .levelOneHintFor16KWithoutDS: "TTL == 0b01 with a 16 KB TG needs IDR5.DS"
        case .atcInvalidationSize(let size): "ATC_INV Size \(size) > 52"
        case .reservedPRIResponse: "PRI_RESP Resp == 0b11"
        case .reservedSyncCompletion: "CMD_SYNC CS == 0b11"
        }
    }
}

/// Why a command is ILLEGAL (CERROR_ILL, §4.1.3).
public enum IllegalCommandReason: Hashable, Sendable, CustomStringConvertible {
    /// A Reserved or IMPLEMENTATION DEFINED opcode this SMMU does not implement.
    case reservedOpcode
    /// A command that only exists on the Secure (or another) command queue.
    case notOnThisQueue
    /// SSec == 1 on the Non-secure command queue (§4.1.6).
    case secureStreamOnNonSecureQueue
    /// The command needs a feature this SMMU does not implement.
    case unsupported(CommandFeature)
    /// A parameter value the spec defines as ILLEGAL.
    case invalidParameter(IllegalParameter)
    /// Non-zero RES0 bits (reported as masks of the two doublewords).
    case reservedBitsSet(dw0: UInt64, dw1: UInt64)

    public var description: String {
        switch self {
        case .reservedOpcode: "reserved opcode"
        case .notOnThisQueue: "not valid on the Non-secure command queue"
        case .secureStreamOnNonSecureQueue: "SSec=1 on the Non-secure command queue"
        case .unsupported(let feature): "needs \(feature)"
        case .invalidParameter(let what): "invalid parameter: \(what)"
        case .reservedBitsSet(let dw0, let dw1): "RES0 bits set (dw0 \(hex(dw0)), dw1 \(hex(dw1)))"
        }
    }
}

/// A command that raises CERROR_ILL, with the reason.
public struct IllegalCommand: Error, Hashable, Sendable, CustomStringConvertible {
    /// The opcode byte.
    public let opcode: UInt8
    /// Why it is ILLEGAL.
    public let reason: IllegalCommandReason

    /// An ILLEGAL command with opcode byte `opcode`.
    public init(opcode: UInt8, reason: IllegalCommandReason) {
        self.opcode = opcode
        self.reason = reason
    }

    public var description: String { "\(CommandOpcode.name(of: opcode)): \(reason)" }
}

extension Command {
    private typealias Masks = (dw0: UInt64, dw1: UInt64)

    /// The defined (non-RES0) bits of each doubleword of an opcode's layout.
    private static func definedBits(_ opcode: CommandOpcode, features: CommandFeatures) -> Masks {
        let op = Cmd.DW0.opcode.mask
        let sid = Cmd.DW0.streamID.mask | Cmd.DW0.ssec.mask
        let ssid = Cmd.DW0.ssv.mask | Cmd.DW0.substreamID.mask
        let range = Cmd.DW0.num.mask | Cmd.DW0.scale.mask | (features.ds ? Cmd.DW0.scaleDS.mask : 0)
        let rangeDW1 = Cmd.DW1.leaf.mask | Cmd.DW1.ttl.mask | Cmd.DW1.tg.mask
        switch opcode {
        case .prefetchConfig: return (op | sid | ssid, 0)
        case .prefetchAddress:
            return (op | sid | ssid, Cmd.DW1.prefetchSize.mask | Cmd.DW1.prefetchStride.mask | Cmd.DW1.virtualAddress.bits.mask)
        case .cfgiSTE: return (op | sid, Cmd.DW1.leaf.mask)
        case .cfgiSTERange: return (op | sid, Cmd.DW1.range.mask)
        case .cfgiCD: return (op | sid | Cmd.DW0.substreamID.mask, Cmd.DW1.leaf.mask)
        case .cfgiCDAll: return (op | sid, 0)
        case .tlbiNHAll, .tlbiS12VMAll: return (op | Cmd.DW0.vmid.mask, 0)
        case .tlbiNHASID: return (op | Cmd.DW0.vmid.mask | Cmd.DW0.asid.mask, 0)
        case .tlbiNHVA: return (op | range | Cmd.DW0.vmid.mask | Cmd.DW0.asid.mask, rangeDW1 | Cmd.DW1.virtualAddress.bits.mask)
        case .tlbiNHVAA: return (op | range | Cmd.DW0.vmid.mask, rangeDW1 | Cmd.DW1.virtualAddress.bits.mask)
        case .tlbiEL2All, .tlbiNSNHAll: return (op, 0)
        case .tlbiEL2ASID: return (op | Cmd.DW0.asid.mask, 0)
        case .tlbiEL2VA: return (op | range | Cmd.DW0.asid.mask, rangeDW1 | Cmd.DW1.virtualAddress.bits.mask)
        case .tlbiEL2VAA: return (op | range, rangeDW1 | Cmd.DW1.virtualAddress.bits.mask)
        case .tlbiS2IPA: return (op | range | Cmd.DW0.vmid.mask, rangeDW1 | Cmd.DW1.physicalAddress.bits.mask)
        case .atcInv: return (op | Cmd.DW0.global.mask | ssid | Cmd.DW0.streamID.mask, Cmd.DW1.atcSize.mask | Cmd.DW1.virtualAddress.bits.mask)
        case .priResp: return (op | ssid | Cmd.DW0.streamID.mask, Cmd.DW1.prgIndex.mask | Cmd.DW1.priResp.mask)
        case .resume: return (op | sid | Cmd.DW0.resumeAc.mask | Cmd.DW0.resumeAb.mask, Cmd.DW1.stag.mask)
        case .stallTerm: return (op | sid, 0)
        case .sync:
            let dw0 = op | Cmd.DW0.syncCS.mask | Cmd.DW0.syncMSH.mask | Cmd.DW0.syncMSIAttr.mask | Cmd.DW0.syncMSIData.mask
            return (dw0, Cmd.DW1.msiAddress.bits.mask)
        default: return (.max, .max)
        }
    }

    /// The feature an opcode needs that this SMMU lacks, if any (the opcode is then Reserved).
    private static func missingFeature(_ opcode: CommandOpcode, _ features: CommandFeatures) -> CommandFeature? {
        switch opcode {
        case .cfgiCD, .cfgiCDAll, .tlbiNHAll, .tlbiNHASID, .tlbiNHVA, .tlbiNHVAA:
            features.stage1 ? nil : .stage1
        case .tlbiEL2All, .tlbiEL2ASID, .tlbiEL2VA, .tlbiEL2VAA:
            features.hypervisor ? nil : .hypervisor
        case .tlbiS12VMAll, .tlbiS2IPA:
            features.stage2 ? nil : .stage2
        case .atcInv:
            features.ats ? nil : .ats
        case .priResp:
            features.pri ? nil : .pri
        case .resume, .stallTerm:
            features.stalls ? nil : .stalls
        default:
            nil
        }
    }

    private static func scope(_ entry: CommandEntry) -> TLBIScope {
        TLBIScope(
            leaf: Cmd.DW1.leaf.isSet(entry.dw1),
            num: UInt8(Cmd.DW0.num.extract(entry.dw0)),
            scale: UInt8(Cmd.DW0.scale.extract(entry.dw0)),
            granule: UInt8(Cmd.DW1.tg.extract(entry.dw1)),
            ttl: UInt8(Cmd.DW1.ttl.extract(entry.dw1)))
    }

    /// Checks the range/level-hint fields (§4.4.1.1). When TG == 0 the NUM, SCALE and TTL
    /// fields are RES0 (reported through `reservedBits`).
    private static func checkScope(_ entry: CommandEntry, features: CommandFeatures, reservedDW0: inout UInt64, reservedDW1: inout UInt64) -> IllegalCommandReason? {
        let scope = scope(entry)
        if scope.granule == 0 {
            reservedDW0 |= entry.dw0 & (Cmd.DW0.num.mask | Cmd.DW0.scale.mask)
            reservedDW1 |= entry.dw1 & Cmd.DW1.ttl.mask
            return nil
        }
        guard scope.num == 0 && scope.scale == 0 else { return nil }
        // NUM == SCALE == TTL == 0 is Reserved. With IDR5.DS == 0, TTL == 0b01 for a 16 KB
        // granule is treated as 0b00, so it is CERROR_ILL only in that single-granule form;
        // a real range with that hint invalidates at every level (§4.4.1.1).
        if scope.ttl == 0 { return .invalidParameter(.rangeWithoutExtent) }
        if scope.granule == 2 && scope.ttl == 1 && !features.ds {
            return .invalidParameter(.levelOneHintFor16KWithoutDS)
        }
        return nil
    }

    /// Decodes `entry`, checking it against `features` exactly as the command processor does
    /// before executing it: every reason for CERROR_ILL is reported (§4.1.3).
    public static func decode(_ entry: CommandEntry, features: CommandFeatures) -> Result<Command, IllegalCommand> {
        func illegal(_ reason: IllegalCommandReason) -> Result<Command, IllegalCommand> {
            .failure(IllegalCommand(opcode: entry.opcode, reason: reason))
        }
        guard let opcode = CommandOpcode(rawValue: entry.opcode) else { return illegal(.reservedOpcode) }
        switch opcode {
        case .cfgiVMSPIDM, .dptiAll, .dptiPA: return illegal(.reservedOpcode)
        case .tlbiEL3All, .tlbiEL3VA, .tlbiSEL2All, .tlbiSEL2ASID, .tlbiSEL2VA, .tlbiSEL2VAA, .tlbiSS12VMAll, .tlbiSS2IPA, .tlbiSNHAll:
            return illegal(.notOnThisQueue)
        default: break
        }

        // Feature checks take precedence over field checks: the opcode is Reserved here.
        if let missing = missingFeature(opcode, features) { return illegal(.unsupported(missing)) }

        let defined = definedBits(opcode, features: features)
        var reservedDW0 = entry.dw0 & ~defined.dw0
        var reservedDW1 = entry.dw1 & ~defined.dw1
        let dw0 = entry.dw0, dw1 = entry.dw1

        if defined.dw0 & Cmd.DW0.ssec.mask != 0 && Cmd.DW0.ssec.isSet(dw0) {
            return illegal(.secureStreamOnNonSecureQueue)
        }
        let streamID = UInt32(Cmd.DW0.streamID.extract(dw0))
        let substreamID: UInt32? = Cmd.DW0.ssv.isSet(dw0) ? UInt32(Cmd.DW0.substreamID.extract(dw0)) : nil
        if defined.dw0 & Cmd.DW0.ssv.mask != 0 && substreamID == nil {
            // Without SSV the SubstreamID field is not used; treat non-zero bits as RES0.
            reservedDW0 |= dw0 & Cmd.DW0.substreamID.mask
        }
        let vmid = UInt16(Cmd.DW0.vmid.extract(dw0))
        let asid = UInt16(Cmd.DW0.asid.extract(dw0))

        let command: Command
        switch opcode {
        case .prefetchConfig:
            command = .prefetchConfig(streamID: streamID, substreamID: substreamID)
        case .prefetchAddress:
            command = .prefetchAddress(
                streamID: streamID, substreamID: substreamID, address: Cmd.DW1.virtualAddress.extract(dw1),
                size: UInt8(Cmd.DW1.prefetchSize.extract(dw1)), stride: UInt8(Cmd.DW1.prefetchStride.extract(dw1)))
        case .cfgiSTE:
            command = .cfgiSTE(streamID: streamID, leaf: Cmd.DW1.leaf.isSet(dw1))
        case .cfgiSTERange:
            let range = UInt8(Cmd.DW1.range.extract(dw1))
            command = range == 31 ? .cfgiAll : .cfgiSTERange(streamID: streamID, range: range)
        case .cfgiCD:
            command = .cfgiCD(streamID: streamID, substreamID: UInt32(Cmd.DW0.substreamID.extract(dw0)), leaf: Cmd.DW1.leaf.isSet(dw1))
        case .cfgiCDAll:
            command = .cfgiCDAll(streamID: streamID)
        case .tlbiNHAll:
            command = .tlbiNHAll(vmid: vmid)
        case .tlbiNHASID:
            command = .tlbiNHASID(vmid: vmid, asid: asid)
        case .tlbiNHVA, .tlbiNHVAA, .tlbiEL2VA, .tlbiEL2VAA, .tlbiS2IPA:
            if let reason = checkScope(entry, features: features, reservedDW0: &reservedDW0, reservedDW1: &reservedDW1) {
                return illegal(reason)
            }
            let scope = scope(entry)
            let va = Cmd.DW1.virtualAddress.extract(dw1)
            switch opcode {
            case .tlbiNHVA: command = .tlbiNHVA(vmid: vmid, asid: asid, address: va, scope: scope)
            case .tlbiNHVAA: command = .tlbiNHVAA(vmid: vmid, address: va, scope: scope)
            case .tlbiEL2VA: command = .tlbiEL2VA(asid: asid, address: va, scope: scope)
            case .tlbiEL2VAA: command = .tlbiEL2VAA(address: va, scope: scope)
            default: command = .tlbiS2IPA(vmid: vmid, address: Cmd.DW1.physicalAddress.extract(dw1), scope: scope)
            }
        case .tlbiEL2All:
            command = .tlbiEL2All
        case .tlbiEL2ASID:
            command = .tlbiEL2ASID(asid: asid)
        case .tlbiS12VMAll:
            command = .tlbiS12VMAll(vmid: vmid)
        case .tlbiNSNHAll:
            command = .tlbiNSNHAll
        case .atcInv:
            let size = UInt8(Cmd.DW1.atcSize.extract(dw1))
            // §4.5.1: Size > 52 is ILLEGAL or an UNKNOWN span; the model treats it as ILLEGAL.
            if size > 52 { return illegal(.invalidParameter(.atcInvalidationSize(size))) }
            command = .atcInv(streamID: streamID, substreamID: substreamID, global: Cmd.DW0.global.isSet(dw0), address: Cmd.DW1.virtualAddress.extract(dw1), size: size)
        case .priResp:
            guard let response = PRIResponse(rawValue: UInt8(Cmd.DW1.priResp.extract(dw1))) else {
                return illegal(.invalidParameter(.reservedPRIResponse))
            }
            command = .priResp(streamID: streamID, substreamID: substreamID, prgIndex: UInt16(Cmd.DW1.prgIndex.extract(dw1)), response: response)
        case .resume:
            let action: ResumeAction = Cmd.DW0.resumeAc.isSet(dw0) ? .retry : (Cmd.DW0.resumeAb.isSet(dw0) ? .abort : .terminate)
            command = .resume(streamID: streamID, stag: UInt16(Cmd.DW1.stag.extract(dw1)), action: action)
        case .stallTerm:
            command = .stallTerm(streamID: streamID)
        case .sync:
            guard let completion = SyncCompletion(rawValue: UInt8(Cmd.DW0.syncCS.extract(dw0))) else {
                return illegal(.invalidParameter(.reservedSyncCompletion))
            }
            command = .sync(SyncParameters(
                completion: completion, msiAddress: Cmd.DW1.msiAddress.extract(dw1),
                msiData: UInt32(Cmd.DW0.syncMSIData.extract(dw0)), msiAttributes: UInt8(Cmd.DW0.syncMSIAttr.extract(dw0)),
                msiShareability: UInt8(Cmd.DW0.syncMSH.extract(dw0))))
        default:
            return illegal(.reservedOpcode)
        }

        if features.checksReservedFields && (reservedDW0 != 0 || reservedDW1 != 0) {
            return illegal(.reservedBitsSet(dw0: reservedDW0, dw1: reservedDW1))
        }
        return .success(command)
    }
}

// MARK: Description

extension Command {
    private static func sid(_ value: UInt32) -> String { "sid=\(hex(value))" }
    private static func ssid(_ value: UInt32?) -> String { value.map { " ssid=\(hex($0))" } ?? "" }
    private static func suffix(_ scope: TLBIScope) -> String {
        let text = scope.description
        return text.isEmpty ? "" : " " + text
    }

    public var description: String {
        switch self {
        case .prefetchConfig(let streamID, let substreamID):
            return "\(name) \(Command.sid(streamID))\(Command.ssid(substreamID))"
        case .prefetchAddress(let streamID, let substreamID, let address, let size, let stride):
            return "\(name) \(Command.sid(streamID))\(Command.ssid(substreamID)) addr=\(hex(address)) size=\(size) stride=\(stride)"
        case .cfgiSTE(let streamID, let leaf):
            return "\(name) \(Command.sid(streamID))\(leaf ? " leaf" : "")"
        case .cfgiSTERange(let streamID, let range):
            return "\(name) \(Command.sid(streamID)) range=\(range)"
        case .cfgiAll, .tlbiEL2All, .tlbiNSNHAll:
            return name
        case .cfgiCD(let streamID, let substreamID, let leaf):
            return "\(name) \(Command.sid(streamID)) ssid=\(hex(substreamID))\(leaf ? " leaf" : "")"
        case .cfgiCDAll(let streamID), .stallTerm(let streamID):
            return "\(name) \(Command.sid(streamID))"
        case .tlbiNHAll(let vmid), .tlbiS12VMAll(let vmid):
            return "\(name) vmid=\(hex(vmid))"
        case .tlbiNHASID(let vmid, let asid):
            return "\(name) vmid=\(hex(vmid)) asid=\(hex(asid))"
        case .tlbiNHVA(let vmid, let asid, let address, let scope):
            return "\(name) vmid=\(hex(vmid)) asid=\(hex(asid)) va=\(hex(address))\(Command.suffix(scope))"
        case .tlbiNHVAA(let vmid, let address, let scope):
            return "\(name) vmid=\(hex(vmid)) va=\(hex(address))\(Command.suffix(scope))"
        case .tlbiEL2ASID(let asid):
            return "\(name) asid=\(hex(asid))"
        case .tlbiEL2VA(let asid, let address, let scope):
            return "\(name) asid=\(hex(asid)) va=\(hex(address))\(Command.suffix(scope))"
        case .tlbiEL2VAA(let address, let scope):
            return "\(name) va=\(hex(address))\(Command.suffix(scope))"
        case .tlbiS2IPA(let vmid, let address, let scope):
            return "\(name) vmid=\(hex(vmid)) ipa=\(hex(address))\(Command.suffix(scope))"
        case .atcInv(let streamID, let substreamID, let global, let address, let size):
            return "\(name) \(Command.sid(streamID))\(Command.ssid(substreamID))\(global ? " global" : "") addr=\(hex(address)) size=\(size)"
        case .priResp(let streamID, let substreamID, let prgIndex, let response):
            return "\(name) \(Command.sid(streamID))\(Command.ssid(substreamID)) prgi=\(hex(prgIndex)) resp=\(response)"
        case .resume(let streamID, let stag, let action):
            return "\(name) \(Command.sid(streamID)) stag=\(hex(stag)) \(action)"
        case .sync(let parameters):
            var text = "\(name) \(parameters.completion)"
            if parameters.completion == .irq || parameters.msiAddress != 0 {
                text += " msi=\(hex(parameters.msiAddress)) data=\(hex(parameters.msiData))"
            }
            return text
        }
    }
}
