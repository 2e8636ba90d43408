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
    public var specName: String { format.name }

    /// The spec name of any opcode byte (`CMD_RESERVED_0x09`, `CMD_IMPDEF_0x80` otherwise).
    public static func name(of opcode: UInt8) -> String {
        if let known = CommandOpcode(rawValue: opcode) { return known.specName }
        return (0x80...0x8F).contains(opcode) ? "CMD_IMPDEF_\(hex(opcode, digits: 2))" : "CMD_RESERVED_\(hex(opcode, digits: 2))"
    }

    /// Everything the spec says about this opcode's format (``CommandFormat/all``).
    public var format: CommandFormat { CommandFormat.byOpcode[Int(rawValue)]! }
}

// MARK: The command table

/// The parameter groups a command format defines, each with its bits, its encoding, its
/// checks and its rendering (§4.1.6, §4.2–§4.7).
public struct CommandFields: OptionSet, Sendable, Hashable {
    public let rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }

    /// StreamID[63:32].
    public static let streamID = CommandFields(rawValue: 1 << 0)
    /// SSec[10]: must be 0 on the Non-secure queue.
    public static let secureStream = CommandFields(rawValue: 1 << 1)
    /// SSV[11] and SubstreamID[31:12]: an optional SubstreamID.
    public static let substream = CommandFields(rawValue: 1 << 2)
    /// SubstreamID[31:12] without SSV (CMD_CFGI_CD).
    public static let substreamIndex = CommandFields(rawValue: 1 << 3)
    /// Global[9] (CMD_ATC_INV).
    public static let global = CommandFields(rawValue: 1 << 4)
    /// Leaf[64]: the L1 descriptor need not be invalidated (CMD_CFGI_STE, CMD_CFGI_CD).
    public static let leaf = CommandFields(rawValue: 1 << 5)
    /// Range[68:64] (CMD_CFGI_STE_RANGE; 31 is CMD_CFGI_ALL).
    public static let range = CommandFields(rawValue: 1 << 6)
    /// VMID[47:32].
    public static let vmid = CommandFields(rawValue: 1 << 7)
    /// ASID[63:48].
    public static let asid = CommandFields(rawValue: 1 << 8)
    /// NUM, SCALE, Leaf, TTL and TG: the TLBI range and level hint (§4.4.1.1).
    public static let scope = CommandFields(rawValue: 1 << 9)
    /// VA[127:76] of a TLBI.
    public static let virtualAddress = CommandFields(rawValue: 1 << 10)
    /// IPA[115:76] of a TLBI.
    public static let ipa = CommandFields(rawValue: 1 << 11)
    /// Address[127:76] of a prefetch or ATC invalidation.
    public static let address = CommandFields(rawValue: 1 << 12)
    /// Size[68:64] and Stride[75:72] (CMD_PREFETCH_ADDR).
    public static let prefetchSpan = CommandFields(rawValue: 1 << 13)
    /// Size[69:64] (CMD_ATC_INV; above 52 is ILLEGAL).
    public static let atcSize = CommandFields(rawValue: 1 << 14)
    /// PRGIndex[72:64] and Resp[77:76] (CMD_PRI_RESP).
    public static let prgResponse = CommandFields(rawValue: 1 << 15)
    /// Ac[12], Ab[13] and STAG[79:64] (CMD_RESUME).
    public static let resume = CommandFields(rawValue: 1 << 16)
    /// CS, MSH, MSIAttr, MSIData and MSIAddress (CMD_SYNC).
    public static let sync = CommandFields(rawValue: 1 << 17)

    /// The bits of each doubleword these groups define (with IDR5.DS: SCALE[25] too).
    @inlinable
    public func definedBits(ds: Bool) -> (dw0: UInt64, dw1: UInt64) {
        var dw0 = Cmd.DW0.opcode.mask, dw1: UInt64 = 0
        if contains(.streamID) { dw0 |= Cmd.DW0.streamID.mask }
        if contains(.secureStream) { dw0 |= Cmd.DW0.ssec.mask }
        if contains(.substream) { dw0 |= Cmd.DW0.ssv.mask | Cmd.DW0.substreamID.mask }
        if contains(.substreamIndex) { dw0 |= Cmd.DW0.substreamID.mask }
        if contains(.global) { dw0 |= Cmd.DW0.global.mask }
        if contains(.leaf) { dw1 |= Cmd.DW1.leaf.mask }
        if contains(.range) { dw1 |= Cmd.DW1.range.mask }
        if contains(.vmid) { dw0 |= Cmd.DW0.vmid.mask }
        if contains(.asid) { dw0 |= Cmd.DW0.asid.mask }
        if contains(.scope) {
            dw0 |= Cmd.DW0.num.mask | Cmd.DW0.scale.mask | (ds ? Cmd.DW0.scaleDS.mask : 0)
            dw1 |= Cmd.DW1.leaf.mask | Cmd.DW1.ttl.mask | Cmd.DW1.tg.mask
        }
        if contains(.virtualAddress) || contains(.address) { dw1 |= Cmd.DW1.virtualAddress.bits.mask }
        if contains(.ipa) { dw1 |= Cmd.DW1.physicalAddress.bits.mask }
        if contains(.prefetchSpan) { dw1 |= Cmd.DW1.prefetchSize.mask | Cmd.DW1.prefetchStride.mask }
        if contains(.atcSize) { dw1 |= Cmd.DW1.atcSize.mask }
        if contains(.prgResponse) { dw1 |= Cmd.DW1.prgIndex.mask | Cmd.DW1.priResp.mask }
        if contains(.resume) {
            dw0 |= Cmd.DW0.resumeAc.mask | Cmd.DW0.resumeAb.mask
            dw1 |= Cmd.DW1.stag.mask
        }
        if contains(.sync) {
            dw0 |= Cmd.DW0.syncCS.mask | Cmd.DW0.syncMSH.mask | Cmd.DW0.syncMSIAttr.mask | Cmd.DW0.syncMSIData.mask
            dw1 |= Cmd.DW1.msiAddress.bits.mask
        }
        return (dw0, dw1)
    }
}

/// Where an opcode may be issued (§4.1.3).
public enum CommandAvailability: Sendable, Hashable {
    /// On the Non-secure command queue, when the SMMU implements `requires` (if any);
    /// otherwise the opcode is Reserved there.
    case nonSecure(requires: CommandFeature?)
    /// On the Secure command queue only: CERROR_ILL on this one.
    case secureOnly
    /// Architected, but for a feature this model does not implement (MPAM, DPT): Reserved.
    case notModelled
}

/// One command format: the facts about an opcode, in one table entry (§4.1.3, §4.2–§4.7).
/// The decoder, encoder and renderer read them; the command processor executes each opcode
/// with its own `execute…` function.
public struct CommandFormat: Sendable {
    /// The opcode.
    public let opcode: CommandOpcode
    /// The spec name, e.g. `CMD_TLBI_NH_VA`.
    public let name: String
    /// Where the spec defines it.
    public let section: String
    /// Where it may be issued.
    public let availability: CommandAvailability
    /// The parameters it has.
    public let fields: CommandFields
    /// ``CommandFields/definedBits(ds:)`` without and with IDR5.DS.
    public let definedBits: (dw0: UInt64, dw1: UInt64)
    public let definedBitsDS: (dw0: UInt64, dw1: UInt64)

    init(_ opcode: CommandOpcode, _ name: String, _ section: String, _ availability: CommandAvailability, _ fields: CommandFields) {
        self.opcode = opcode
        self.name = name
        self.section = section
        self.availability = availability
        self.fields = fields
        definedBits = fields.definedBits(ds: false)
        definedBitsDS = fields.definedBits(ds: true)
    }

    /// Every architected opcode, in opcode order.
    public static let all: [CommandFormat] = [
        CommandFormat(.prefetchConfig, "CMD_PREFETCH_CONFIG", "§4.2.1", .nonSecure(requires: nil), [.streamID, .secureStream, .substream]),
        CommandFormat(.prefetchAddress, "CMD_PREFETCH_ADDR", "§4.2.2", .nonSecure(requires: nil), [.streamID, .secureStream, .substream, .address, .prefetchSpan]),
        CommandFormat(.cfgiSTE, "CMD_CFGI_STE", "§4.3.1", .nonSecure(requires: nil), [.streamID, .secureStream, .leaf]),
        CommandFormat(.cfgiSTERange, "CMD_CFGI_STE_RANGE", "§4.3.2", .nonSecure(requires: nil), [.streamID, .secureStream, .range]),
        CommandFormat(.cfgiCD, "CMD_CFGI_CD", "§4.3.3", .nonSecure(requires: .stage1), [.streamID, .secureStream, .substreamIndex, .leaf]),
        CommandFormat(.cfgiCDAll, "CMD_CFGI_CD_ALL", "§4.3.4", .nonSecure(requires: .stage1), [.streamID, .secureStream]),
        CommandFormat(.cfgiVMSPIDM, "CMD_CFGI_VMS_PIDM", "§4.3.5", .notModelled, []),
        CommandFormat(.tlbiNHAll, "CMD_TLBI_NH_ALL", "§4.4.2.1", .nonSecure(requires: .stage1), [.vmid]),
        CommandFormat(.tlbiNHASID, "CMD_TLBI_NH_ASID", "§4.4.2.2", .nonSecure(requires: .stage1), [.vmid, .asid]),
        CommandFormat(.tlbiNHVA, "CMD_TLBI_NH_VA", "§4.4.2.4", .nonSecure(requires: .stage1), [.vmid, .asid, .virtualAddress, .scope]),
        CommandFormat(.tlbiNHVAA, "CMD_TLBI_NH_VAA", "§4.4.2.3", .nonSecure(requires: .stage1), [.vmid, .virtualAddress, .scope]),
        CommandFormat(.tlbiEL3All, "CMD_TLBI_EL3_ALL", "§4.4.2.5", .secureOnly, []),
        CommandFormat(.tlbiEL3VA, "CMD_TLBI_EL3_VA", "§4.4.2.6", .secureOnly, []),
        CommandFormat(.tlbiEL2All, "CMD_TLBI_EL2_ALL", "§4.4.2.7", .nonSecure(requires: .hypervisor), []),
        CommandFormat(.tlbiEL2ASID, "CMD_TLBI_EL2_ASID", "§4.4.2.10", .nonSecure(requires: .hypervisor), [.asid]),
        CommandFormat(.tlbiEL2VA, "CMD_TLBI_EL2_VA", "§4.4.2.8", .nonSecure(requires: .hypervisor), [.asid, .virtualAddress, .scope]),
        CommandFormat(.tlbiEL2VAA, "CMD_TLBI_EL2_VAA", "§4.4.2.9", .nonSecure(requires: .hypervisor), [.virtualAddress, .scope]),
        CommandFormat(.tlbiS12VMAll, "CMD_TLBI_S12_VMALL", "§4.4.3.2", .nonSecure(requires: .stage2), [.vmid]),
        CommandFormat(.tlbiS2IPA, "CMD_TLBI_S2_IPA", "§4.4.3.1", .nonSecure(requires: .stage2), [.vmid, .ipa, .scope]),
        CommandFormat(.tlbiNSNHAll, "CMD_TLBI_NSNH_ALL", "§4.4.4.1", .nonSecure(requires: nil), []),
        CommandFormat(.atcInv, "CMD_ATC_INV", "§4.5.1", .nonSecure(requires: .ats), [.streamID, .substream, .global, .address, .atcSize]),
        CommandFormat(.priResp, "CMD_PRI_RESP", "§4.5.2", .nonSecure(requires: .pri), [.streamID, .substream, .prgResponse]),
        CommandFormat(.resume, "CMD_RESUME", "§4.7.1", .nonSecure(requires: .stalls), [.streamID, .secureStream, .resume]),
        CommandFormat(.stallTerm, "CMD_STALL_TERM", "§4.7.2", .nonSecure(requires: .stalls), [.streamID, .secureStream]),
        CommandFormat(.sync, "CMD_SYNC", "§4.7.3", .nonSecure(requires: nil), [.sync]),
        CommandFormat(.tlbiSEL2All, "CMD_TLBI_S_EL2_ALL", "§4.4.2.11", .secureOnly, []),
        CommandFormat(.tlbiSEL2ASID, "CMD_TLBI_S_EL2_ASID", "§4.4.2.14", .secureOnly, []),
        CommandFormat(.tlbiSEL2VA, "CMD_TLBI_S_EL2_VA", "§4.4.2.12", .secureOnly, []),
        CommandFormat(.tlbiSEL2VAA, "CMD_TLBI_S_EL2_VAA", "§4.4.2.13", .secureOnly, []),
        CommandFormat(.tlbiSS12VMAll, "CMD_TLBI_S_S12_VMALL", "§4.4.3.4", .secureOnly, []),
        CommandFormat(.tlbiSS2IPA, "CMD_TLBI_S_S2_IPA", "§4.4.3.3", .secureOnly, []),
        CommandFormat(.tlbiSNHAll, "CMD_TLBI_SNH_ALL", "§4.4.4.2", .secureOnly, []),
        CommandFormat(.dptiAll, "CMD_DPTI_ALL", "§4.6.1", .notModelled, []),
        CommandFormat(.dptiPA, "CMD_DPTI_PA", "§4.6.2", .notModelled, []),
    ]

    /// ``all`` by opcode byte.
    static let byOpcode: [CommandFormat?] = {
        var table = [CommandFormat?](repeating: nil, count: 256)
        for format in all { table[Int(format.opcode.rawValue)] = format }
        return table
    }()

    /// What the decoder needs of each opcode byte, as plain data (no name strings to copy).
    struct Layout: Sendable {
        /// 0: not architected; 1: Non-secure; 2: Secure queue only; 3: not modelled.
        var queue: UInt8 = 0
        var requires: CommandFeature?
        var fields = CommandFields()
        var defined: (dw0: UInt64, dw1: UInt64) = (0, 0)
        var definedDS: (dw0: UInt64, dw1: UInt64) = (0, 0)
    }

    /// ``Layout`` by opcode byte.
    static let layouts: [Layout] = {
        var table = [Layout](repeating: Layout(), count: 256)
        for format in all {
            var layout = Layout(fields: format.fields, defined: format.definedBits, definedDS: format.definedBitsDS)
            switch format.availability {
            case .nonSecure(let requires): layout.queue = 1; layout.requires = requires
            case .secureOnly: layout.queue = 2
            case .notModelled: layout.queue = 3
            }
            table[Int(format.opcode.rawValue)] = layout
        }
        return table
    }()
}

// MARK: Commands

/// A decoded command (§4): its opcode and its parameters, held as the canonical queue entry
/// (only the bits its format defines, RES0 and unused fields clear), so that a command is
/// exactly what it encodes to. Build one with the factory named after the command
/// (``tlbiNHVA(vmid:asid:address:scope:)``), read and set its parameters by name, encode it
/// with ``entry`` and decode a queue entry with ``decode(_:features:)``. A parameter its format
/// does not define reads as whatever shares its bits.
public struct Command: Hashable, Sendable, CustomStringConvertible {
    /// The opcode.
    public let opcode: CommandOpcode
    /// The 16-byte queue entry for this command.
    public private(set) var entry: CommandEntry

    /// A command with every parameter zero.
    public init(_ opcode: CommandOpcode) {
        self.opcode = opcode
        entry = CommandEntry(dw0: UInt64(opcode.rawValue), dw1: 0)
    }

    init(opcode: CommandOpcode, canonical entry: CommandEntry) {
        self.opcode = opcode
        self.entry = entry
    }

    /// Its format.
    public var format: CommandFormat { opcode.format }

    /// The spec name (`CMD_CFGI_ALL` for the Range == 31 form).
    public var name: String { isCFGIAll ? "CMD_CFGI_ALL" : format.name }

    /// CMD_CFGI_STE_RANGE with Range == 31.
    public var isCFGIAll: Bool { opcode == .cfgiSTERange && range == 31 }

    private mutating func set(_ field: BitField, _ value: UInt64, dw1: Bool = false) {
        if dw1 {
            entry.dw1 = field.inserting(value, into: entry.dw1)
        } else {
            entry.dw0 = field.inserting(value, into: entry.dw0)
        }
    }

    /// StreamID[63:32].
    public var streamID: UInt32 {
        get { UInt32(truncatingIfNeeded: Cmd.DW0.streamID.extract(entry.dw0)) }
        set { set(Cmd.DW0.streamID, UInt64(newValue)) }
    }
    /// The SubstreamID: with SSV (nil when SSV is 0), or CMD_CFGI_CD's CD index.
    public var substreamID: UInt32? {
        get {
            guard opcode == .cfgiCD || Cmd.DW0.ssv.isSet(entry.dw0) else { return nil }
            return UInt32(truncatingIfNeeded: Cmd.DW0.substreamID.extract(entry.dw0))
        }
        set {
            set(Cmd.DW0.substreamID, UInt64(newValue ?? 0))
            if opcode != .cfgiCD { set(Cmd.DW0.ssv, newValue == nil ? 0 : 1) }
        }
    }
    /// Global[9] (CMD_ATC_INV).
    public var global: Bool {
        get { Cmd.DW0.global.isSet(entry.dw0) }
        set { set(Cmd.DW0.global, newValue ? 1 : 0) }
    }
    /// Leaf[64] (CMD_CFGI_STE, CMD_CFGI_CD; the TLBIs have it in ``scope``).
    public var leaf: Bool {
        get { Cmd.DW1.leaf.isSet(entry.dw1) }
        set { set(Cmd.DW1.leaf, newValue ? 1 : 0, dw1: true) }
    }
    /// Range[68:64] (CMD_CFGI_STE_RANGE: 2^(range+1) StreamIDs; 31: all).
    public var range: UInt8 {
        get { UInt8(truncatingIfNeeded: Cmd.DW1.range.extract(entry.dw1)) }
        set { set(Cmd.DW1.range, UInt64(newValue), dw1: true) }
    }
    /// VMID[47:32].
    public var vmid: UInt16 {
        get { UInt16(truncatingIfNeeded: Cmd.DW0.vmid.extract(entry.dw0)) }
        set { set(Cmd.DW0.vmid, UInt64(newValue)) }
    }
    /// ASID[63:48].
    public var asid: UInt16 {
        get { UInt16(truncatingIfNeeded: Cmd.DW0.asid.extract(entry.dw0)) }
        set { set(Cmd.DW0.asid, UInt64(newValue)) }
    }
    /// The VA, IPA or address, in place (bits below 4 KB are zero).
    public var address: UInt64 {
        get { opcode == .tlbiS2IPA ? Cmd.DW1.physicalAddress.extract(entry.dw1) : Cmd.DW1.virtualAddress.extract(entry.dw1) }
        set {
            let field = opcode == .tlbiS2IPA ? Cmd.DW1.physicalAddress : Cmd.DW1.virtualAddress
            entry.dw1 = field.inserting(newValue, into: entry.dw1)
        }
    }
    /// NUM, SCALE, Leaf, TTL and TG of a TLBI (§4.4.1.1).
    public var scope: TLBIScope {
        get {
            TLBIScope(
                leaf: Cmd.DW1.leaf.isSet(entry.dw1), num: UInt8(truncatingIfNeeded: Cmd.DW0.num.extract(entry.dw0)),
                scale: UInt8(truncatingIfNeeded: Cmd.DW0.scale.extract(entry.dw0)),
                granule: UInt8(truncatingIfNeeded: Cmd.DW1.tg.extract(entry.dw1)), ttl: UInt8(truncatingIfNeeded: Cmd.DW1.ttl.extract(entry.dw1)))
        }
        set {
            set(Cmd.DW0.num, UInt64(newValue.num))
            set(Cmd.DW0.scale, UInt64(newValue.scale))
            set(Cmd.DW1.leaf, newValue.leaf ? 1 : 0, dw1: true)
            set(Cmd.DW1.ttl, UInt64(newValue.ttl), dw1: true)
            set(Cmd.DW1.tg, UInt64(newValue.granule), dw1: true)
        }
    }
    /// Size: CMD_PREFETCH_ADDR's Size[68:64] (2^size translations) or CMD_ATC_INV's
    /// Size[69:64] (4 KB x 2^size).
    public var size: UInt8 {
        get { UInt8(truncatingIfNeeded: (opcode == .atcInv ? Cmd.DW1.atcSize : Cmd.DW1.prefetchSize).extract(entry.dw1)) }
        set { set(opcode == .atcInv ? Cmd.DW1.atcSize : Cmd.DW1.prefetchSize, UInt64(newValue), dw1: true) }
    }
    /// Stride[75:72] (CMD_PREFETCH_ADDR: 2^(12+stride) bytes).
    public var stride: UInt8 {
        get { UInt8(truncatingIfNeeded: Cmd.DW1.prefetchStride.extract(entry.dw1)) }
        set { set(Cmd.DW1.prefetchStride, UInt64(newValue), dw1: true) }
    }
    /// PRGIndex[72:64] (CMD_PRI_RESP).
    public var prgIndex: UInt16 {
        get { UInt16(truncatingIfNeeded: Cmd.DW1.prgIndex.extract(entry.dw1)) }
        set { set(Cmd.DW1.prgIndex, UInt64(newValue), dw1: true) }
    }
    /// Resp[77:76] (CMD_PRI_RESP).
    public var response: PRIResponse {
        get { PRIResponse(rawValue: UInt8(truncatingIfNeeded: Cmd.DW1.priResp.extract(entry.dw1))) ?? .responseFailure }
        set { set(Cmd.DW1.priResp, UInt64(newValue.rawValue), dw1: true) }
    }
    /// STAG[79:64] (CMD_RESUME).
    public var stag: UInt16 {
        get { UInt16(truncatingIfNeeded: Cmd.DW1.stag.extract(entry.dw1)) }
        set { set(Cmd.DW1.stag, UInt64(newValue), dw1: true) }
    }
    /// Ac[12] and Ab[13] (CMD_RESUME).
    public var action: ResumeAction {
        get { Cmd.DW0.resumeAc.isSet(entry.dw0) ? .retry : (Cmd.DW0.resumeAb.isSet(entry.dw0) ? .abort : .terminate) }
        set {
            set(Cmd.DW0.resumeAc, newValue == .retry ? 1 : 0)
            set(Cmd.DW0.resumeAb, newValue == .abort ? 1 : 0)
        }
    }
    /// CS, MSH, MSIAttr, MSIData and MSIAddress (CMD_SYNC).
    public var sync: SyncParameters {
        get {
            SyncParameters(
                completion: SyncCompletion(rawValue: UInt8(truncatingIfNeeded: Cmd.DW0.syncCS.extract(entry.dw0))) ?? .none,
                msiAddress: Cmd.DW1.msiAddress.extract(entry.dw1), msiData: UInt32(truncatingIfNeeded: Cmd.DW0.syncMSIData.extract(entry.dw0)),
                msiAttributes: UInt8(truncatingIfNeeded: Cmd.DW0.syncMSIAttr.extract(entry.dw0)),
                msiShareability: UInt8(truncatingIfNeeded: Cmd.DW0.syncMSH.extract(entry.dw0)))
        }
        set {
            set(Cmd.DW0.syncCS, UInt64(newValue.completion.rawValue))
            set(Cmd.DW0.syncMSH, UInt64(newValue.msiShareability))
            set(Cmd.DW0.syncMSIAttr, UInt64(newValue.msiAttributes))
            set(Cmd.DW0.syncMSIData, UInt64(newValue.msiData))
            entry.dw1 = Cmd.DW1.msiAddress.inserting(newValue.msiAddress, into: entry.dw1)
        }
    }

    private static func with(_ opcode: CommandOpcode, _ body: (inout Command) -> Void) -> Command {
        var command = Command(opcode)
        body(&command)
        return command
    }

    /// CMD_PREFETCH_CONFIG: prefetch a stream's STE and CD (§4.2.1).
    public static func prefetchConfig(streamID: UInt32, substreamID: UInt32?) -> Command {
        with(.prefetchConfig) { $0.streamID = streamID; $0.substreamID = substreamID }
    }
    /// CMD_PREFETCH_ADDR: prefetch 2^size translations at a 2^(12+stride)-byte stride (§4.2.2).
    public static func prefetchAddress(streamID: UInt32, substreamID: UInt32?, address: UInt64, size: UInt8, stride: UInt8) -> Command {
        with(.prefetchAddress) { $0.streamID = streamID; $0.substreamID = substreamID; $0.address = address; $0.size = size; $0.stride = stride }
    }
    /// CMD_CFGI_STE: invalidate one STE, and its L1STD unless `leaf` (§4.3.1).
    public static func cfgiSTE(streamID: UInt32, leaf: Bool) -> Command {
        with(.cfgiSTE) { $0.streamID = streamID; $0.leaf = leaf }
    }
    /// CMD_CFGI_STE_RANGE with Range < 31: 2^(range+1) StreamIDs (§4.3.2).
    public static func cfgiSTERange(streamID: UInt32, range: UInt8) -> Command {
        with(.cfgiSTERange) { $0.streamID = streamID; $0.range = range }
    }
    /// CMD_CFGI_ALL: CMD_CFGI_STE_RANGE with Range == 31 (§4.3.6).
    public static var cfgiAll: Command { with(.cfgiSTERange) { $0.range = 31 } }
    /// CMD_CFGI_CD: invalidate one CD, and its L1CD unless `leaf` (§4.3.3).
    public static func cfgiCD(streamID: UInt32, substreamID: UInt32, leaf: Bool) -> Command {
        with(.cfgiCD) { $0.streamID = streamID; $0.substreamID = substreamID; $0.leaf = leaf }
    }
    /// CMD_CFGI_CD_ALL: invalidate all CDs and L1CDs of a stream (§4.3.4).
    public static func cfgiCDAll(streamID: UInt32) -> Command { with(.cfgiCDAll) { $0.streamID = streamID } }
    /// CMD_TLBI_NH_ALL: invalidate all NS-EL1 stage-1 entries of `vmid` (§4.4.2.1).
    public static func tlbiNHAll(vmid: UInt16) -> Command { with(.tlbiNHAll) { $0.vmid = vmid } }
    /// CMD_TLBI_NH_ASID: invalidate NS-EL1 non-global entries by ASID and VMID (§4.4.2.2).
    public static func tlbiNHASID(vmid: UInt16, asid: UInt16) -> Command { with(.tlbiNHASID) { $0.vmid = vmid; $0.asid = asid } }
    /// CMD_TLBI_NH_VA: invalidate NS-EL1 entries by VA, ASID and VMID (§4.4.2.4).
    public static func tlbiNHVA(vmid: UInt16, asid: UInt16, address: UInt64, scope: TLBIScope) -> Command {
        with(.tlbiNHVA) { $0.vmid = vmid; $0.asid = asid; $0.address = address; $0.scope = scope }
    }
    /// CMD_TLBI_NH_VAA: invalidate NS-EL1 entries by VA and VMID, all ASIDs (§4.4.2.3).
    public static func tlbiNHVAA(vmid: UInt16, address: UInt64, scope: TLBIScope) -> Command {
        with(.tlbiNHVAA) { $0.vmid = vmid; $0.address = address; $0.scope = scope }
    }
    /// CMD_TLBI_EL2_ALL: invalidate all NS-EL2 and EL2-E2H entries (§4.4.2.7).
    public static var tlbiEL2All: Command { Command(.tlbiEL2All) }
    /// CMD_TLBI_EL2_ASID: invalidate NS EL2-E2H non-global entries by ASID (§4.4.2.10).
    public static func tlbiEL2ASID(asid: UInt16) -> Command { with(.tlbiEL2ASID) { $0.asid = asid } }
    /// CMD_TLBI_EL2_VA: invalidate NS EL2 or EL2-E2H entries by VA (and ASID when E2H) (§4.4.2.8).
    public static func tlbiEL2VA(asid: UInt16, address: UInt64, scope: TLBIScope) -> Command {
        with(.tlbiEL2VA) { $0.asid = asid; $0.address = address; $0.scope = scope }
    }
    /// CMD_TLBI_EL2_VAA: invalidate NS EL2 or EL2-E2H entries by VA, all ASIDs (§4.4.2.9).
    public static func tlbiEL2VAA(address: UInt64, scope: TLBIScope) -> Command {
        with(.tlbiEL2VAA) { $0.address = address; $0.scope = scope }
    }
    /// CMD_TLBI_S12_VMALL: invalidate all stage-1 and stage-2 entries of `vmid` (§4.4.3.2).
    public static func tlbiS12VMAll(vmid: UInt16) -> Command { with(.tlbiS12VMAll) { $0.vmid = vmid } }
    /// CMD_TLBI_S2_IPA: invalidate stage-2 entries by IPA and VMID (§4.4.3.1).
    public static func tlbiS2IPA(vmid: UInt16, address: UInt64, scope: TLBIScope) -> Command {
        with(.tlbiS2IPA) { $0.vmid = vmid; $0.address = address; $0.scope = scope }
    }
    /// CMD_TLBI_NSNH_ALL: invalidate all Non-secure non-Hyp entries, all stages (§4.4.4.1).
    public static var tlbiNSNHAll: Command { Command(.tlbiNSNHAll) }
    /// CMD_ATC_INV: invalidate 4 KB x 2^size of the endpoint's ATC at `address` (§4.5.1).
    public static func atcInv(streamID: UInt32, substreamID: UInt32?, global: Bool, address: UInt64, size: UInt8) -> Command {
        with(.atcInv) { $0.streamID = streamID; $0.substreamID = substreamID; $0.global = global; $0.address = address; $0.size = size }
    }
    /// CMD_PRI_RESP: respond to the page request group `prgIndex` (§4.5.2).
    public static func priResp(streamID: UInt32, substreamID: UInt32?, prgIndex: UInt16, response: PRIResponse) -> Command {
        with(.priResp) { $0.streamID = streamID; $0.substreamID = substreamID; $0.prgIndex = prgIndex; $0.response = response }
    }
    /// CMD_RESUME: retry or terminate the stalled transaction tagged `stag` (§4.7.1).
    public static func resume(streamID: UInt32, stag: UInt16, action: ResumeAction) -> Command {
        with(.resume) { $0.streamID = streamID; $0.stag = stag; $0.action = action }
    }
    /// CMD_STALL_TERM: terminate all stalled transactions of a stream (§4.7.2).
    public static func stallTerm(streamID: UInt32) -> Command { with(.stallTerm) { $0.streamID = streamID } }
    /// CMD_SYNC: complete all earlier commands, then signal as `parameters` say (§4.7.3).
    public static func sync(_ parameters: SyncParameters) -> Command { with(.sync) { $0.sync = parameters } }
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

// MARK: Decoding

extension Command {
    /// Decodes `entry`, checking it against `features` exactly as the command processor does
    /// before executing it: every reason for CERROR_ILL is reported (§4.1.3), in this order:
    /// the opcode, the feature it needs, SSec, the parameter values, then RES0 bits.
    public static func decode(_ entry: CommandEntry, features: CommandFeatures) -> Result<Command, IllegalCommand> {
        func illegal(_ reason: IllegalCommandReason) -> Result<Command, IllegalCommand> {
            .failure(IllegalCommand(opcode: entry.opcode, reason: reason))
        }
        let layout = CommandFormat.layouts[Int(entry.opcode)]
        guard let opcode = CommandOpcode(rawValue: entry.opcode) else { return illegal(.reservedOpcode) }
        switch layout.queue {
        case 1: break
        case 2: return illegal(.notOnThisQueue)
        default: return illegal(.reservedOpcode)
        }
        // Feature checks take precedence over field checks: the opcode is Reserved here.
        if let requires = layout.requires, !features.implements(requires) { return illegal(.unsupported(requires)) }

        let fields = layout.fields
        let defined = features.ds ? layout.definedDS : layout.defined
        let dw0 = entry.dw0, dw1 = entry.dw1
        var canonical = CommandEntry(dw0: dw0 & defined.dw0, dw1: dw1 & defined.dw1)
        var reservedDW0 = dw0 & ~defined.dw0
        var reservedDW1 = dw1 & ~defined.dw1
        if fields.contains(.secureStream) && Cmd.DW0.ssec.isSet(dw0) { return illegal(.secureStreamOnNonSecureQueue) }
        if fields.contains(.substream) && !Cmd.DW0.ssv.isSet(dw0) {
            // Without SSV the SubstreamID field is not used; treat non-zero bits as RES0.
            reservedDW0 |= dw0 & Cmd.DW0.substreamID.mask
            canonical.dw0 &= ~Cmd.DW0.substreamID.mask
        }
        if fields.contains(.range) && Cmd.DW1.range.extract(dw1) == 31 {
            // CMD_CFGI_ALL does not use the StreamID.
            canonical.dw0 &= ~Cmd.DW0.streamID.mask
        }
        if fields.contains(.scope) {
            let granule = Cmd.DW1.tg.extract(dw1)
            if granule == 0 {
                // Without TG, NUM, SCALE and TTL are RES0 (§4.4.1.1).
                let unused0 = Cmd.DW0.num.mask | Cmd.DW0.scale.mask | Cmd.DW0.scaleDS.mask, unused1 = Cmd.DW1.ttl.mask
                reservedDW0 |= dw0 & (Cmd.DW0.num.mask | Cmd.DW0.scale.mask)
                reservedDW1 |= dw1 & unused1
                canonical.dw0 &= ~unused0
                canonical.dw1 &= ~unused1
            } else if Cmd.DW0.num.extract(dw0) == 0 && Cmd.DW0.scale.extract(dw0) == 0 {
                // NUM == SCALE == TTL == 0 is Reserved. With IDR5.DS == 0, TTL == 0b01 for a
                // 16 KB granule is treated as 0b00, so it is CERROR_ILL only in that
                // single-granule form; a real range with that hint invalidates at every level.
                let ttl = Cmd.DW1.ttl.extract(dw1)
                if ttl == 0 { return illegal(.invalidParameter(.rangeWithoutExtent)) }
                if granule == 2 && ttl == 1 && !features.ds { return illegal(.invalidParameter(.levelOneHintFor16KWithoutDS)) }
            }
        }
        if fields.contains(.atcSize) {
            let size = UInt8(truncatingIfNeeded: Cmd.DW1.atcSize.extract(dw1))
            // §4.5.1: Size > 52 is ILLEGAL or an UNKNOWN span; the model treats it as ILLEGAL.
            if size > 52 { return illegal(.invalidParameter(.atcInvalidationSize(size))) }
        }
        if fields.contains(.prgResponse) && PRIResponse(rawValue: UInt8(truncatingIfNeeded: Cmd.DW1.priResp.extract(dw1))) == nil {
            return illegal(.invalidParameter(.reservedPRIResponse))
        }
        if fields.contains(.sync) && SyncCompletion(rawValue: UInt8(truncatingIfNeeded: Cmd.DW0.syncCS.extract(dw0))) == nil {
            return illegal(.invalidParameter(.reservedSyncCompletion))
        }
        if features.checksReservedFields && (reservedDW0 != 0 || reservedDW1 != 0) {
            return illegal(.reservedBitsSet(dw0: reservedDW0, dw1: reservedDW1))
        }
        return .success(Command(opcode: opcode, canonical: canonical))
    }
}

// MARK: Description

extension Command {
    /// The command and the parameters its format defines, e.g. `CMD_TLBI_NH_VA vmid=0x1
    /// asid=0x5 va=0x10000 leaf`.
    public var description: String {
        if isCFGIAll { return name }
        let fields = format.fields
        var text = name
        if fields.contains(.streamID) { text += " sid=\(hex(streamID))" }
        if fields.contains(.substream) || fields.contains(.substreamIndex), let substreamID { text += " ssid=\(hex(substreamID))" }
        if fields.contains(.global) && global { text += " global" }
        if fields.contains(.leaf) && leaf { text += " leaf" }
        if fields.contains(.range) { text += " range=\(range)" }
        if fields.contains(.vmid) { text += " vmid=\(hex(vmid))" }
        if fields.contains(.asid) { text += " asid=\(hex(asid))" }
        if fields.contains(.virtualAddress) { text += " va=\(hex(address))" }
        if fields.contains(.ipa) { text += " ipa=\(hex(address))" }
        if fields.contains(.scope) {
            let scopeText = scope.description
            if !scopeText.isEmpty { text += " " + scopeText }
        }
        if fields.contains(.address) { text += " addr=\(hex(address))" }
        if fields.contains(.prefetchSpan) || fields.contains(.atcSize) { text += " size=\(size)" }
        if fields.contains(.prefetchSpan) { text += " stride=\(stride)" }
        if fields.contains(.prgResponse) { text += " prgi=\(hex(prgIndex)) resp=\(response)" }
        if fields.contains(.resume) { text += " stag=\(hex(stag)) \(action)" }
        if fields.contains(.sync) {
            text += " \(sync.completion)"
            if sync.completion == .irq || sync.msiAddress != 0 { text += " msi=\(hex(sync.msiAddress)) data=\(hex(sync.msiData))" }
        }
        return text
    }
}

// MARK: Features and errors

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

    /// Whether `feature` is implemented.
    public func implements(_ feature: CommandFeature) -> Bool {
        switch feature {
        case .stage1: stage1
        case .stage2: stage2
        case .hypervisor: hypervisor
        case .ats: ats
        case .pri: pri
        case .stalls: stalls
        }
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
