import Platform

/// A field of a multi-doubleword structure, declared by its absolute bit positions the way the
/// spec tables list them (STE bit 64 is bit 0 of doubleword 1). Fields never cross a
/// doubleword boundary.
public struct StructureField: Sendable, Hashable {
    /// The doubleword holding the field.
    public let doubleword: Int
    /// The field within that doubleword.
    public let bits: BitField

    /// Declares bits `[high:low]` of the structure.
    public init(_ high: Int, _ low: Int) {
        precondition(high / 64 == low / 64, "structure field [\(high):\(low)] crosses a doubleword")
        doubleword = low / 64
        bits = BitField(high % 64, low % 64)
    }

    /// Declares bit `[bit]` of the structure.
    public init(bit: Int) { self.init(bit, bit) }

    /// The field's value in `words`.
    @inline(__always)
    public func extract(_ words: [UInt64]) -> UInt64 {
        doubleword < words.count ? bits.extract(words[doubleword]) : 0
    }

    /// The field's value in an 8-doubleword structure.
    @inlinable @inline(__always)
    package func extract(_ words: InlineArray<8, UInt64>) -> UInt64 { bits.extract(words[doubleword]) }

    /// Whether the field is non-zero in an 8-doubleword structure.
    @inlinable @inline(__always)
    package func isSet(_ words: InlineArray<8, UInt64>) -> Bool { bits.isSet(words[doubleword]) }

    /// `words` with the field replaced by `value`.
    public func inserting(_ value: UInt64, into words: [UInt64]) -> [UInt64] {
        var copy = words
        while copy.count <= doubleword { copy.append(0) }
        copy[doubleword] = bits.inserting(value, into: copy[doubleword])
        return copy
    }
}

/// Stream Table Entry layout (§5.2), absolute bit positions.
public enum STEField {
    /// STE.V[0]: the STE is valid; V == 0 aborts traffic with C_BAD_STE (§5.2).
    @inlinable public static var valid: StructureField { StructureField(bit: 0) }
    /// STE.Config[3:1]: 0b000 abort, 0b100 bypass, 0b101 stage 1, 0b110 stage 2, 0b111 nested.
    @inlinable public static var config: StructureField { StructureField(3, 1) }
    /// STE.S1Fmt[5:4]: CD table format: 0b00 linear, 0b01 2-level 4 KB leaves, 0b10 2-level 64 KB leaves.
    @inlinable public static var s1Fmt: StructureField { StructureField(5, 4) }
    /// S1ContextPtr[55:6], in place.
    @inlinable public static var s1ContextPtr: StructureField { StructureField(55, 6) }
    /// STE.S1CDMax[63:59]: the CD table holds 2^S1CDMax CDs; 0 = substreams disabled (one CD).
    @inlinable public static var s1CDMax: StructureField { StructureField(63, 59) }
    /// STE.S1DSS[65:64]: non-SSID traffic: 0b00 terminate, 0b01 bypass stage 1, 0b10 use CD 0.
    @inlinable public static var s1DSS: StructureField { StructureField(65, 64) }
    /// STE.S1CIR[67:66]: inner cacheability of CD and L1CD fetches.
    @inlinable public static var s1CIR: StructureField { StructureField(67, 66) }
    /// STE.S1COR[69:68]: outer cacheability of CD and L1CD fetches.
    @inlinable public static var s1COR: StructureField { StructureField(69, 68) }
    /// STE.S1CSH[71:70]: shareability of CD and L1CD fetches.
    @inlinable public static var s1CSH: StructureField { StructureField(71, 70) }
    /// STE.CONT[80:77]: contiguous hint: this STE is one of 2^CONT identical STEs.
    @inlinable public static var cont: StructureField { StructureField(80, 77) }
    /// STE.PPAR[82]: include the PASID in PRI overflow auto-responses (when IDR3.PPS == 0).
    @inlinable public static var ppar: StructureField { StructureField(bit: 82) }
    /// STE.MEV[83]: event records from this stream may be merged.
    @inlinable public static var mev: StructureField { StructureField(bit: 83) }
    /// STE.S2FWB[89]: stage 2 forces the memory type (FEAT_S2FWB encoding of S2 MemAttr, in
    /// which MemAttr[2] == 0 is Device). RES0 before SMMUv3.2.
    @inlinable public static var s2FWB: StructureField { StructureField(bit: 89) }
    /// STE.S1STALLD[91]: CDs of this stream may not select stall (CD.S == 1 is ILLEGAL).
    @inlinable public static var s1StallD: StructureField { StructureField(bit: 91) }
    /// STE.EATS[93:92]: ATS: 0b00 not allowed, 0b01 full ATS, 0b10 split-stage ATS.
    @inlinable public static var eats: StructureField { StructureField(93, 92) }
    /// STE.STRW[95:94]: StreamWorld of a stage-1-only stream: 0b00 NS-EL1, 0b10 NS-EL2 (or EL2-E2H).
    @inlinable public static var strw: StructureField { StructureField(95, 94) }
    /// STE.MemAttr[99:96]: memory type override, used when MTCFG == 1.
    @inlinable public static var memAttr: StructureField { StructureField(99, 96) }
    /// STE.MTCFG[100]: 1 = replace the incoming memory type with MemAttr.
    @inlinable public static var mtcfg: StructureField { StructureField(bit: 100) }
    /// STE.ALLOCCFG[104:101]: allocation hint override (0b0xxx = use incoming).
    @inlinable public static var allocCfg: StructureField { StructureField(104, 101) }
    /// STE.SHCFG[109:108]: shareability override: 0b00 NSH, 0b01 incoming, 0b10 OSH, 0b11 ISH.
    @inlinable public static var shCfg: StructureField { StructureField(109, 108) }
    /// STE.NSCFG[111:110]: NS attribute override (Secure STEs only).
    @inlinable public static var nsCfg: StructureField { StructureField(111, 110) }
    /// STE.PRIVCFG[113:112]: privilege override: 0b00 incoming, 0b10 unprivileged, 0b11 privileged.
    @inlinable public static var privCfg: StructureField { StructureField(113, 112) }
    /// STE.INSTCFG[115:114]: instruction/data override: 0b00 incoming, 0b10 data, 0b11 instruction.
    @inlinable public static var instCfg: StructureField { StructureField(115, 114) }
    /// STE.S2VMID[143:128]: VMID tagging this stream's TLB entries.
    @inlinable public static var s2VMID: StructureField { StructureField(143, 128) }
    /// STE.S2T0SZ[165:160]: the stage-2 input (IPA) size is 64 - S2T0SZ bits.
    @inlinable public static var s2T0SZ: StructureField { StructureField(165, 160) }
    /// STE.S2SL0[167:166]: stage-2 starting level (VTCR_EL2.SL0 encoding).
    @inlinable public static var s2SL0: StructureField { StructureField(167, 166) }
    /// STE.S2IR0[169:168]: inner cacheability of stage-2 table walks.
    @inlinable public static var s2IR0: StructureField { StructureField(169, 168) }
    /// STE.S2OR0[171:170]: outer cacheability of stage-2 table walks.
    @inlinable public static var s2OR0: StructureField { StructureField(171, 170) }
    /// STE.S2SH0[173:172]: shareability of stage-2 table walks.
    @inlinable public static var s2SH0: StructureField { StructureField(173, 172) }
    /// STE.S2TG[175:174]: stage-2 granule: 0b00 4 KB, 0b01 64 KB, 0b10 16 KB.
    @inlinable public static var s2TG: StructureField { StructureField(175, 174) }
    /// STE.S2PS[178:176]: stage-2 output size (0b000 32 bits ... 0b101 48 bits, 0b110 52 bits).
    @inlinable public static var s2PS: StructureField { StructureField(178, 176) }
    /// STE.S2AA64[179]: 1 = stage-2 tables are VMSAv8-64, 0 = VMSAv8-32 LPAE.
    @inlinable public static var s2AA64: StructureField { StructureField(bit: 179) }
    /// STE.S2ENDI[180]: stage-2 table endianness: 0 little, 1 big.
    @inlinable public static var s2ENDI: StructureField { StructureField(bit: 180) }
    /// STE.S2AFFD[181]: 1 = stage-2 Access flag faults are never raised.
    @inlinable public static var s2AFFD: StructureField { StructureField(bit: 181) }
    /// STE.S2PTW[182]: 1 = CD fetches and stage-1 walks to stage-2 Device memory are Permission faults.
    @inlinable public static var s2PTW: StructureField { StructureField(bit: 182) }
    /// STE.S2HD[183]: stage-2 hardware update of dirty state (HTTU).
    @inlinable public static var s2HD: StructureField { StructureField(bit: 183) }
    /// STE.S2HA[184]: stage-2 hardware update of the Access flag (HTTU).
    @inlinable public static var s2HA: StructureField { StructureField(bit: 184) }
    /// STE.S2S[185]: stall, rather than terminate, transactions with stage-2 faults (§5.5).
    @inlinable public static var s2S: StructureField { StructureField(bit: 185) }
    /// STE.S2R[186]: record an event for stage-2 faults that terminate (§5.5).
    @inlinable public static var s2R: StructureField { StructureField(bit: 186) }
    /// STE.S2SL0_2[194]: extra starting-level bit (VTCR_EL2.SL2) for 4 KB granules with S2DS.
    @inlinable public static var s2SL0_2: StructureField { StructureField(bit: 194) }
    /// STE.S2DS[195]: 52-bit stage-2 addressing with 4 KB and 16 KB granules (VTCR_EL2.DS).
    @inlinable public static var s2DS: StructureField { StructureField(bit: 195) }
    /// S2TTB: address[51:4] in bits [243:196] (SMMUv3.1+).
    @inlinable public static var s2TTB: StructureField { StructureField(243, 196) }
}

extension STEField {
    /// Every field of the Stream Table Entry (§5.2) with its spec name, in ascending bit
    /// order: one entry for each field declared in ``STEField``, for listings such as a
    /// field-by-field decode.
    public static let all: [(name: String, field: StructureField)] = [
        ("V", valid),
        ("Config", config),
        ("S1Fmt", s1Fmt),
        ("S1ContextPtr", s1ContextPtr),
        ("S1CDMax", s1CDMax),
        ("S1DSS", s1DSS),
        ("S1CIR", s1CIR),
        ("S1COR", s1COR),
        ("S1CSH", s1CSH),
        ("CONT", cont),
        ("PPAR", ppar),
        ("MEV", mev),
        ("S2FWB", s2FWB),
        ("S1STALLD", s1StallD),
        ("EATS", eats),
        ("STRW", strw),
        ("MemAttr", memAttr),
        ("MTCFG", mtcfg),
        ("ALLOCCFG", allocCfg),
        ("SHCFG", shCfg),
        ("NSCFG", nsCfg),
        ("PRIVCFG", privCfg),
        ("INSTCFG", instCfg),
        ("S2VMID", s2VMID),
        ("S2T0SZ", s2T0SZ),
        ("S2SL0", s2SL0),
        ("S2IR0", s2IR0),
        ("S2OR0", s2OR0),
        ("S2SH0", s2SH0),
        ("S2TG", s2TG),
        ("S2PS", s2PS),
        ("S2AA64", s2AA64),
        ("S2ENDI", s2ENDI),
        ("S2AFFD", s2AFFD),
        ("S2PTW", s2PTW),
        ("S2HD", s2HD),
        ("S2HA", s2HA),
        ("S2S", s2S),
        ("S2R", s2R),
        ("S2SL0_2", s2SL0_2),
        ("S2DS", s2DS),
        ("S2TTB", s2TTB),
    ]
}

/// Context Descriptor layout (§5.4), absolute bit positions.
public enum CDField {
    /// CD.T0SZ[5:0]: the TTB0 region's input size is 64 - T0SZ bits.
    @inlinable public static var t0sz: StructureField { StructureField(5, 0) }
    /// CD.TG0[7:6]: TTB0 granule: 0b00 4 KB, 0b01 64 KB, 0b10 16 KB.
    @inlinable public static var tg0: StructureField { StructureField(7, 6) }
    /// CD.IR0[9:8]: inner cacheability of TTB0 table walks.
    @inlinable public static var ir0: StructureField { StructureField(9, 8) }
    /// CD.OR0[11:10]: outer cacheability of TTB0 table walks.
    @inlinable public static var or0: StructureField { StructureField(11, 10) }
    /// CD.SH0[13:12]: shareability of TTB0 table walks.
    @inlinable public static var sh0: StructureField { StructureField(13, 12) }
    /// CD.EPD0[14]: 1 = TTB0 walks disabled (a TLB miss is F_TRANSLATION).
    @inlinable public static var epd0: StructureField { StructureField(bit: 14) }
    /// CD.ENDI[15]: stage-1 table endianness: 0 little, 1 big.
    @inlinable public static var endi: StructureField { StructureField(bit: 15) }
    /// CD.T1SZ[21:16]: the TTB1 region's input size is 64 - T1SZ bits.
    @inlinable public static var t1sz: StructureField { StructureField(21, 16) }
    /// CD.TG1[23:22]: TTB1 granule: 0b01 16 KB, 0b10 4 KB, 0b11 64 KB (0b00 reserved).
    @inlinable public static var tg1: StructureField { StructureField(23, 22) }
    /// CD.IR1[25:24]: inner cacheability of TTB1 table walks.
    @inlinable public static var ir1: StructureField { StructureField(25, 24) }
    /// CD.OR1[27:26]: outer cacheability of TTB1 table walks.
    @inlinable public static var or1: StructureField { StructureField(27, 26) }
    /// CD.SH1[29:28]: shareability of TTB1 table walks.
    @inlinable public static var sh1: StructureField { StructureField(29, 28) }
    /// CD.EPD1[30]: 1 = TTB1 walks disabled (a TLB miss is F_TRANSLATION).
    @inlinable public static var epd1: StructureField { StructureField(bit: 30) }
    /// CD.V[31]: the CD is valid; V == 0 gives C_BAD_CD (§5.4).
    @inlinable public static var valid: StructureField { StructureField(bit: 31) }
    /// CD.IPS[34:32]: stage-1 output size (0b000 32 bits ... 0b101 48 bits, 0b110 52 bits).
    @inlinable public static var ips: StructureField { StructureField(34, 32) }
    /// CD.AFFD[35]: 1 = stage-1 Access flag faults are never raised.
    @inlinable public static var affd: StructureField { StructureField(bit: 35) }
    /// CD.WXN[36]: writable stage-1 pages are execute-never.
    @inlinable public static var wxn: StructureField { StructureField(bit: 36) }
    /// CD.UWXN[37]: privileged instruction reads from user-writable pages fault (VMSAv8-32 tables only).
    @inlinable public static var uwxn: StructureField { StructureField(bit: 37) }
    /// CD.TBI0[38]: top byte ignored for TTB0-region addresses.
    @inlinable public static var tbi0: StructureField { StructureField(bit: 38) }
    /// CD.TBI1[39]: top byte ignored for TTB1-region addresses.
    @inlinable public static var tbi1: StructureField { StructureField(bit: 39) }
    /// CD.PAN[40]: privileged data accesses to user-accessible pages fault (Privileged Access Never).
    @inlinable public static var pan: StructureField { StructureField(bit: 40) }
    /// CD.AA64[41]: 1 = VMSAv8-64 stage-1 tables, 0 = VMSAv8-32 LPAE.
    @inlinable public static var aa64: StructureField { StructureField(bit: 41) }
    /// CD.HD[42]: stage-1 hardware update of dirty state (HTTU).
    @inlinable public static var hd: StructureField { StructureField(bit: 42) }
    /// CD.HA[43]: stage-1 hardware update of the Access flag (HTTU).
    @inlinable public static var ha: StructureField { StructureField(bit: 43) }
    /// CD.S[44]: stall, rather than terminate, transactions with stage-1 faults (§5.5).
    @inlinable public static var s: StructureField { StructureField(bit: 44) }
    /// CD.R[45]: record an event for stage-1 faults that terminate (§5.5).
    @inlinable public static var r: StructureField { StructureField(bit: 45) }
    /// CD.A[46]: terminated stage-1 faults abort (1) or complete as RAZ/WI (0) (§5.5).
    @inlinable public static var a: StructureField { StructureField(bit: 46) }
    /// CD.ASET[47]: 1 = SMMU-private ASID set; broadcast ASID/VA TLB invalidations may be ignored.
    @inlinable public static var aset: StructureField { StructureField(bit: 47) }
    /// CD.ASID[63:48]: ASID tagging this context's non-global TLB entries.
    @inlinable public static var asid: StructureField { StructureField(63, 48) }
    /// CD.HAD0[65]: disable hierarchical attributes in TTB0 table descriptors.
    @inlinable public static var had0: StructureField { StructureField(bit: 65) }
    /// TTB0: address[51:4] in bits [115:68].
    @inlinable public static var ttb0: StructureField { StructureField(115, 68) }
    /// CD.HAD1[129]: disable hierarchical attributes in TTB1 table descriptors.
    @inlinable public static var had1: StructureField { StructureField(bit: 129) }
    /// TTB1: address[51:4] in bits [179:132].
    @inlinable public static var ttb1: StructureField { StructureField(179, 132) }
    /// CD.MAIR0[223:192]: MAIR[31:0], memory attributes Attr0–Attr3.
    @inlinable public static var mair0: StructureField { StructureField(223, 192) }
    /// CD.MAIR1[255:224]: MAIR[63:32], memory attributes Attr4–Attr7.
    @inlinable public static var mair1: StructureField { StructureField(255, 224) }
}

extension CDField {
    /// Every field of the Context Descriptor (§5.4) with its spec name, in ascending bit
    /// order: one entry for each field declared in ``CDField``, for listings such as a
    /// field-by-field decode.
    public static let all: [(name: String, field: StructureField)] = [
        ("T0SZ", t0sz),
        ("TG0", tg0),
        ("IR0", ir0),
        ("OR0", or0),
        ("SH0", sh0),
        ("EPD0", epd0),
        ("ENDI", endi),
        ("T1SZ", t1sz),
        ("TG1", tg1),
        ("IR1", ir1),
        ("OR1", or1),
        ("SH1", sh1),
        ("EPD1", epd1),
        ("V", valid),
        ("IPS", ips),
        ("AFFD", affd),
        ("WXN", wxn),
        ("UWXN", uwxn),
        ("TBI0", tbi0),
        ("TBI1", tbi1),
        ("PAN", pan),
        ("AA64", aa64),
        ("HD", hd),
        ("HA", ha),
        ("S", s),
        ("R", r),
        ("A", a),
        ("ASET", aset),
        ("ASID", asid),
        ("HAD0", had0),
        ("TTB0", ttb0),
        ("HAD1", had1),
        ("TTB1", ttb1),
        ("MAIR0", mair0),
        ("MAIR1", mair1),
    ]
}

/// Level-1 descriptor layouts (§5.1, §5.3).
public enum L1Field {
    /// L1STD.Span.
    @inlinable public static var span: BitField { BitField(4, 0) }
    /// L1STD.L2Ptr[55:6].
    @inlinable public static var l2STDPointer: AddressField { AddressField(55, 6) }
    /// L1CD.V.
    @inlinable public static var cdValid: BitField { BitField(bit: 0) }
    /// L1CD.L2Ptr[55:12].
    @inlinable public static var l2CDPointer: AddressField { AddressField(55, 12) }
}

/// Why an STE is ILLEGAL (C_BAD_STE), following the order of the spec's SteIllegal()
/// (§5.2.2).
public enum STEProblem: UInt8, Sendable, Hashable, BitwiseCopyable, CustomStringConvertible {
    case notValid = 1
    case stage1NotImplemented, stage2NotImplemented
    case splitStageATS, eatsWithStage2Stall, reservedStreamWorld
    case s1StallDisableWithStallModel, s1CDMaxTooLarge, twoLevelCDUnsupported, contextPointerOutOfRange
    case stage2StallMismatch, stage2NotAArch64, stage2HardwareUpdateUnsupported, stage2GranuleUnsupported
    case stage2TableOutOfRange, stage2InputSizeOutOfRange, stage2StartLevelInconsistent, stage2BigEndian
    case vmidTooWide

    public var description: String {
        switch self {
        case .notValid: "V == 0"
        case .stage1NotImplemented: "Config == 0b1x1 but stage 1 is not implemented (IDR0.S1P == 0)"
        case .stage2NotImplemented: "Config == 0b11x but stage 2 is not implemented (IDR0.S2P == 0)"
        case .splitStageATS: "EATS == 0b10 (split-stage ATS) is not supported (IDR0.NS1ATS == 1) or needs Config 0b111 and S2S == 0"
        case .eatsWithStage2Stall: "EATS == 0b01 with stage 2 enabled and S2S == 1"
        case .reservedStreamWorld: "STRW is a reserved value"
        case .s1StallDisableWithStallModel: "S1STALLD == 1 but STALL_MODEL != 0b00"
        case .s1CDMaxTooLarge: "S1CDMax > IDR1.SSIDSIZE"
        case .twoLevelCDUnsupported: "2-level CD table (S1Fmt) but IDR0.CD2L == 0"
        case .contextPointerOutOfRange: "S1ContextPtr beyond the output/intermediate address size"
        case .stage2StallMismatch: "S2S does not match STALL_MODEL"
        case .stage2NotAArch64: "S2AA64 == 0: VMSAv8-32 stage 2 is not implemented"
        case .stage2HardwareUpdateUnsupported: "S2HA/S2HD set beyond IDR0.HTTU"
        case .stage2GranuleUnsupported: "S2TG reserved or not supported by IDR5"
        case .stage2TableOutOfRange: "S2TTB beyond the effective S2PS (or 48 bits)"
        case .stage2InputSizeOutOfRange: "S2T0SZ outside its legal range"
        case .stage2StartLevelInconsistent: "S2SL0 inconsistent with S2T0SZ and S2TG"
        case .stage2BigEndian: "S2ENDI == 1 but only little-endian tables are supported"
        case .vmidTooWide: "S2VMID[15:8] != 0 with 8-bit VMIDs"
        }
    }
}

/// Why a CD is ILLEGAL (C_BAD_CD), following CdIllegal() (§5.4.2).
public enum CDProblem: UInt8, Sendable, Hashable, BitwiseCopyable, CustomStringConvertible {
    case notValid = 1
    case stallDisabledByStream, abortRequiredByTerminateModel, stallNotSupported, stallRequired
    case bigEndian, notAArch64, hardwareUpdateUnsupported, asidTooWide
    case t0szOutOfRange, t1szOutOfRange, tg0Unsupported, tg1Unsupported, ttb0OutOfRange, ttb1OutOfRange

    public var description: String {
        switch self {
        case .notValid: "V == 0"
        case .stallDisabledByStream: "CD.S == 1 but STE.S1STALLD == 1"
        case .abortRequiredByTerminateModel: "CD.A == 0 but IDR0.TERM_MODEL == 1"
        case .stallNotSupported: "CD.S == 1 but STALL_MODEL == 0b01"
        case .stallRequired: "CD.S == 0 but STALL_MODEL == 0b10"
        case .bigEndian: "ENDI == 1 but only little-endian tables are supported"
        case .notAArch64: "AA64 == 0: VMSAv8-32 tables are not implemented"
        case .hardwareUpdateUnsupported: "HA/HD set beyond IDR0.HTTU"
        case .asidTooWide: "ASID[15:8] != 0 with 8-bit ASIDs"
        case .t0szOutOfRange: "T0SZ outside its legal range"
        case .t1szOutOfRange: "T1SZ outside its legal range"
        case .tg0Unsupported: "TG0 reserved or not supported by IDR5"
        case .tg1Unsupported: "TG1 reserved or not supported by IDR5"
        case .ttb0OutOfRange: "TTB0 beyond the effective IPS (or 48 bits)"
        case .ttb1OutOfRange: "TTB1 beyond the effective IPS (or 48 bits)"
        }
    }
}

/// Translation granule encodings, as in TCR_ELx: CD.TG0 and STE.S2TG share one, CD.TG1 has
/// its own (§5.4, §5.2).
public enum TranslationGranule {
    /// log2 of the granule a TG0 or S2TG field encodes (0b00 4 KB, 0b01 64 KB, 0b10 16 KB), or
    /// nil for the reserved 0b11.
    @inlinable
    public static func shift(tg0 encoding: UInt64) -> UInt8? {
        switch encoding {
        case 0b00: 12
        case 0b01: 16
        case 0b10: 14
        default: nil
        }
    }

    /// log2 of the granule a TG1 field encodes (0b01 16 KB, 0b10 4 KB, 0b11 64 KB), or nil for
    /// the reserved 0b00.
    @inlinable
    public static func shift(tg1 encoding: UInt64) -> UInt8? {
        switch encoding {
        case 0b01: 14
        case 0b10: 12
        case 0b11: 16
        default: nil
        }
    }
}
