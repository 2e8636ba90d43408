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
    @inline(__always)
    func extract(_ words: InlineArray<8, UInt64>) -> UInt64 { bits.extract(words[doubleword]) }

    /// Whether the field is non-zero in an 8-doubleword structure.
    @inline(__always)
    func isSet(_ words: InlineArray<8, UInt64>) -> Bool { bits.isSet(words[doubleword]) }

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
    public static let valid = StructureField(bit: 0)
    /// STE.Config[3:1]: 0b000 abort, 0b100 bypass, 0b101 stage 1, 0b110 stage 2, 0b111 nested.
    public static let config = StructureField(3, 1)
    /// STE.S1Fmt[5:4]: CD table format: 0b00 linear, 0b01 2-level 4 KB leaves, 0b10 2-level 64 KB leaves.
    public static let s1Fmt = StructureField(5, 4)
    /// S1ContextPtr[55:6], in place.
    public static let s1ContextPtr = StructureField(55, 6)
    /// STE.S1CDMax[63:59]: the CD table holds 2^S1CDMax CDs; 0 = substreams disabled (one CD).
    public static let s1CDMax = StructureField(63, 59)
    /// STE.S1DSS[65:64]: non-SSID traffic: 0b00 terminate, 0b01 bypass stage 1, 0b10 use CD 0.
    public static let s1DSS = StructureField(65, 64)
    /// STE.S1CIR[67:66]: inner cacheability of CD and L1CD fetches.
    public static let s1CIR = StructureField(67, 66)
    /// STE.S1COR[69:68]: outer cacheability of CD and L1CD fetches.
    public static let s1COR = StructureField(69, 68)
    /// STE.S1CSH[71:70]: shareability of CD and L1CD fetches.
    public static let s1CSH = StructureField(71, 70)
    /// STE.CONT[80:77]: contiguous hint: this STE is one of 2^CONT identical STEs.
    public static let cont = StructureField(80, 77)
    /// STE.PPAR[82]: include the PASID in PRI overflow auto-responses (when IDR3.PPS == 0).
    public static let ppar = StructureField(bit: 82)
    /// STE.MEV[83]: event records from this stream may be merged.
    public static let mev = StructureField(bit: 83)
    /// STE.S2FWB[89]: stage 2 forces the memory type (FEAT_S2FWB encoding of S2 MemAttr, in
    /// which MemAttr[2] == 0 is Device). RES0 before SMMUv3.2.
    public static let s2FWB = StructureField(bit: 89)
    /// STE.S1STALLD[91]: CDs of this stream may not select stall (CD.S == 1 is ILLEGAL).
    public static let s1StallD = StructureField(bit: 91)
    /// STE.EATS[93:92]: ATS: 0b00 not allowed, 0b01 full ATS, 0b10 split-stage ATS.
    public static let eats = StructureField(93, 92)
    /// STE.STRW[95:94]: StreamWorld of a stage-1-only stream: 0b00 NS-EL1, 0b10 NS-EL2 (or EL2-E2H).
    public static let strw = StructureField(95, 94)
    /// STE.MemAttr[99:96]: memory type override, used when MTCFG == 1.
    public static let memAttr = StructureField(99, 96)
    /// STE.MTCFG[100]: 1 = replace the incoming memory type with MemAttr.
    public static let mtcfg = StructureField(bit: 100)
    /// STE.ALLOCCFG[104:101]: allocation hint override (0b0xxx = use incoming).
    public static let allocCfg = StructureField(104, 101)
    /// STE.SHCFG[109:108]: shareability override: 0b00 NSH, 0b01 incoming, 0b10 OSH, 0b11 ISH.
    public static let shCfg = StructureField(109, 108)
    /// STE.NSCFG[111:110]: NS attribute override (Secure STEs only).
    public static let nsCfg = StructureField(111, 110)
    /// STE.PRIVCFG[113:112]: privilege override: 0b00 incoming, 0b10 unprivileged, 0b11 privileged.
    public static let privCfg = StructureField(113, 112)
    /// STE.INSTCFG[115:114]: instruction/data override: 0b00 incoming, 0b10 data, 0b11 instruction.
    public static let instCfg = StructureField(115, 114)
    /// STE.S2VMID[143:128]: VMID tagging this stream's TLB entries.
    public static let s2VMID = StructureField(143, 128)
    /// STE.S2T0SZ[165:160]: the stage-2 input (IPA) size is 64 - S2T0SZ bits.
    public static let s2T0SZ = StructureField(165, 160)
    /// STE.S2SL0[167:166]: stage-2 starting level (VTCR_EL2.SL0 encoding).
    public static let s2SL0 = StructureField(167, 166)
    /// STE.S2IR0[169:168]: inner cacheability of stage-2 table walks.
    public static let s2IR0 = StructureField(169, 168)
    /// STE.S2OR0[171:170]: outer cacheability of stage-2 table walks.
    public static let s2OR0 = StructureField(171, 170)
    /// STE.S2SH0[173:172]: shareability of stage-2 table walks.
    public static let s2SH0 = StructureField(173, 172)
    /// STE.S2TG[175:174]: stage-2 granule: 0b00 4 KB, 0b01 64 KB, 0b10 16 KB.
    public static let s2TG = StructureField(175, 174)
    /// STE.S2PS[178:176]: stage-2 output size (0b000 32 bits ... 0b101 48 bits, 0b110 52 bits).
    public static let s2PS = StructureField(178, 176)
    /// STE.S2AA64[179]: 1 = stage-2 tables are VMSAv8-64, 0 = VMSAv8-32 LPAE.
    public static let s2AA64 = StructureField(bit: 179)
    /// STE.S2ENDI[180]: stage-2 table endianness: 0 little, 1 big.
    public static let s2ENDI = StructureField(bit: 180)
    /// STE.S2AFFD[181]: 1 = stage-2 Access flag faults are never raised.
    public static let s2AFFD = StructureField(bit: 181)
    /// STE.S2PTW[182]: 1 = CD fetches and stage-1 walks to stage-2 Device memory are Permission faults.
    public static let s2PTW = StructureField(bit: 182)
    /// STE.S2HD[183]: stage-2 hardware update of dirty state (HTTU).
    public static let s2HD = StructureField(bit: 183)
    /// STE.S2HA[184]: stage-2 hardware update of the Access flag (HTTU).
    public static let s2HA = StructureField(bit: 184)
    /// STE.S2S[185]: stall, rather than terminate, transactions with stage-2 faults (§5.5).
    public static let s2S = StructureField(bit: 185)
    /// STE.S2R[186]: record an event for stage-2 faults that terminate (§5.5).
    public static let s2R = StructureField(bit: 186)
    /// STE.S2SL0_2[194]: extra starting-level bit (VTCR_EL2.SL2) for 4 KB granules with S2DS.
    public static let s2SL0_2 = StructureField(bit: 194)
    /// STE.S2DS[195]: 52-bit stage-2 addressing with 4 KB and 16 KB granules (VTCR_EL2.DS).
    public static let s2DS = StructureField(bit: 195)
    /// S2TTB: address[51:4] in bits [243:196] (SMMUv3.1+).
    public static let s2TTB = StructureField(243, 196)
}

/// Context Descriptor layout (§5.4), absolute bit positions.
public enum CDField {
    /// CD.T0SZ[5:0]: the TTB0 region's input size is 64 - T0SZ bits.
    public static let t0sz = StructureField(5, 0)
    /// CD.TG0[7:6]: TTB0 granule: 0b00 4 KB, 0b01 64 KB, 0b10 16 KB.
    public static let tg0 = StructureField(7, 6)
    /// CD.IR0[9:8]: inner cacheability of TTB0 table walks.
    public static let ir0 = StructureField(9, 8)
    /// CD.OR0[11:10]: outer cacheability of TTB0 table walks.
    public static let or0 = StructureField(11, 10)
    /// CD.SH0[13:12]: shareability of TTB0 table walks.
    public static let sh0 = StructureField(13, 12)
    /// CD.EPD0[14]: 1 = TTB0 walks disabled (a TLB miss is F_TRANSLATION).
    public static let epd0 = StructureField(bit: 14)
    /// CD.ENDI[15]: stage-1 table endianness: 0 little, 1 big.
    public static let endi = StructureField(bit: 15)
    /// CD.T1SZ[21:16]: the TTB1 region's input size is 64 - T1SZ bits.
    public static let t1sz = StructureField(21, 16)
    /// CD.TG1[23:22]: TTB1 granule: 0b01 16 KB, 0b10 4 KB, 0b11 64 KB (0b00 reserved).
    public static let tg1 = StructureField(23, 22)
    /// CD.IR1[25:24]: inner cacheability of TTB1 table walks.
    public static let ir1 = StructureField(25, 24)
    /// CD.OR1[27:26]: outer cacheability of TTB1 table walks.
    public static let or1 = StructureField(27, 26)
    /// CD.SH1[29:28]: shareability of TTB1 table walks.
    public static let sh1 = StructureField(29, 28)
    /// CD.EPD1[30]: 1 = TTB1 walks disabled (a TLB miss is F_TRANSLATION).
    public static let epd1 = StructureField(bit: 30)
    /// CD.V[31]: the CD is valid; V == 0 gives C_BAD_CD (§5.4).
    public static let valid = StructureField(bit: 31)
    /// CD.IPS[34:32]: stage-1 output size (0b000 32 bits ... 0b101 48 bits, 0b110 52 bits).
    public static let ips = StructureField(34, 32)
    /// CD.AFFD[35]: 1 = stage-1 Access flag faults are never raised.
    public static let affd = StructureField(bit: 35)
    /// CD.WXN[36]: writable stage-1 pages are execute-never.
    public static let wxn = StructureField(bit: 36)
    /// CD.UWXN[37]: privileged instruction reads from user-writable pages fault (VMSAv8-32 tables only).
    public static let uwxn = StructureField(bit: 37)
    /// CD.TBI0[38]: top byte ignored for TTB0-region addresses.
    public static let tbi0 = StructureField(bit: 38)
    /// CD.TBI1[39]: top byte ignored for TTB1-region addresses.
    public static let tbi1 = StructureField(bit: 39)
    /// CD.PAN[40]: privileged data accesses to user-accessible pages fault (Privileged Access Never).
    public static let pan = StructureField(bit: 40)
    /// CD.AA64[41]: 1 = VMSAv8-64 stage-1 tables, 0 = VMSAv8-32 LPAE.
    public static let aa64 = StructureField(bit: 41)
    /// CD.HD[42]: stage-1 hardware update of dirty state (HTTU).
    public static let hd = StructureField(bit: 42)
    /// CD.HA[43]: stage-1 hardware update of the Access flag (HTTU).
    public static let ha = StructureField(bit: 43)
    /// CD.S[44]: stall, rather than terminate, transactions with stage-1 faults (§5.5).
    public static let s = StructureField(bit: 44)
    /// CD.R[45]: record an event for stage-1 faults that terminate (§5.5).
    public static let r = StructureField(bit: 45)
    /// CD.A[46]: terminated stage-1 faults abort (1) or complete as RAZ/WI (0) (§5.5).
    public static let a = StructureField(bit: 46)
    /// CD.ASET[47]: 1 = SMMU-private ASID set; broadcast ASID/VA TLB invalidations may be ignored.
    public static let aset = StructureField(bit: 47)
    /// CD.ASID[63:48]: ASID tagging this context's non-global TLB entries.
    public static let asid = StructureField(63, 48)
    /// CD.HAD0[65]: disable hierarchical attributes in TTB0 table descriptors.
    public static let had0 = StructureField(bit: 65)
    /// TTB0: address[51:4] in bits [115:68].
    public static let ttb0 = StructureField(115, 68)
    /// CD.HAD1[129]: disable hierarchical attributes in TTB1 table descriptors.
    public static let had1 = StructureField(bit: 129)
    /// TTB1: address[51:4] in bits [179:132].
    public static let ttb1 = StructureField(179, 132)
    /// CD.MAIR0[223:192]: MAIR[31:0], memory attributes Attr0–Attr3.
    public static let mair0 = StructureField(223, 192)
    /// CD.MAIR1[255:224]: MAIR[63:32], memory attributes Attr4–Attr7.
    public static let mair1 = StructureField(255, 224)
}

/// Level-1 descriptor layouts (§5.1, §5.3).
public enum L1Field {
    /// L1STD.Span.
    public static let span = BitField(4, 0)
    /// L1STD.L2Ptr[55:6].
    public static let l2STDPointer = AddressField(55, 6)
    /// L1CD.V.
    public static let cdValid = BitField(bit: 0)
    /// L1CD.L2Ptr[55:12].
    public static let l2CDPointer = AddressField(55, 12)
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

/// A decoded STE with its walk parameters precomputed.
struct StreamTableEntry: BitwiseCopyable {
    var problem: STEProblem?
    /// Config[2:0].
    var config: UInt8 = 0
    var s1Fmt: UInt8 = 0
    var s1ContextPointer: UInt64 = 0
    var s1CDMax: UInt8 = 0
    var s1DSS: UInt8 = 0
    var s1StallDisable = false
    var eats: UInt8 = 0
    var world: StreamWorld = .el1
    var privCfg: UInt8 = 0
    var instCfg: UInt8 = 0
    var ppar = false
    var cont: UInt8 = 0
    var vmid: UInt16 = 0
    var stage2 = WalkTable()
    var s2Stall = false
    var s2Record = false
    var s2PTW = false

    /// Config[0]: stage 1 enabled. Config[2] must be set (not abort) for this to matter.
    var stage1Enabled: Bool { config & 0b101 == 0b101 }
    /// Config[1]: stage 2 enabled.
    var stage2Enabled: Bool { config & 0b110 == 0b110 }
    /// Config 0b0xx: no traffic.
    var isAbort: Bool { config & 0b100 == 0 }
    /// Config 0b100: bypass both stages.
    var isBypass: Bool { config == 0b100 }
}

/// A decoded CD with both halves' walk parameters precomputed.
struct ContextDescriptor: BitwiseCopyable {
    var problem: CDProblem?
    var table0 = WalkTable()
    var table1 = WalkTable()
    var table0Enabled = false
    var table1Enabled = false
    var tbi0 = false
    var tbi1 = false
    var hierarchicalDisabled0 = false
    var hierarchicalDisabled1 = false
    var wxn = false
    var pan = false
    var stall = false
    var record = false
    var abort = false
    var asid: UInt16 = 0
    var aset = false
}

extension SMMU {
    /// The effective output size in bits of an IPS/S2PS encoding, capped to OAS (0b111 behaves
    /// as 0b110 in SMMUv3.1–3.3).
    func effectiveOutputBits(_ encoding: UInt64) -> UInt8 {
        let bits: UInt8 = switch encoding & 7 {
        case 0: 32
        case 1: 36
        case 2: 40
        case 3: 42
        case 4: 44
        case 5: 48
        default: 52
        }
        return min(bits, UInt8(configuration.oasBits))
    }

    /// The granule shift for a supported TG encoding, or nil (reserved or not in IDR5).
    func granuleShift(stage1TG0 encoding: UInt64) -> UInt8? {
        switch encoding {
        case 0b00: configuration.granule4K ? 12 : nil
        case 0b01: configuration.granule64K ? 16 : nil
        case 0b10: configuration.granule16K ? 14 : nil
        default: nil
        }
    }

    func granuleShift(stage1TG1 encoding: UInt64) -> UInt8? {
        switch encoding {
        case 0b01: configuration.granule16K ? 14 : nil
        case 0b10: configuration.granule4K ? 12 : nil
        case 0b11: configuration.granule64K ? 16 : nil
        default: nil
        }
    }

    func granuleShift(stage2TG encoding: UInt64) -> UInt8? {
        switch encoding {
        case 0b00: configuration.granule4K ? 12 : nil
        case 0b01: configuration.granule64K ? 16 : nil
        case 0b10: configuration.granule16K ? 14 : nil
        default: nil
        }
    }

    /// The alignment (in address bits) of a table whose walk starts at `startLevel`:
    /// `inputBits - (levels * stride + granule) + 3`, at least 6 for 52-bit output.
    func tableAlignmentBits(inputBits: Int, granuleShift: Int, startLevel: Int, outputBits: Int) -> Int {
        let stride = granuleShift - 3
        let bits = inputBits - ((3 - startLevel) * stride + granuleShift) + 3
        return outputBits == 52 ? max(bits, 6) : max(bits, 3)
    }

    /// Decodes and validates an STE (§5.2, §5.2.2 SteIllegal). V == 0 and ILLEGAL STEs are
    /// returned with a `problem`.
    func decodeSTE(_ words: InlineArray<8, UInt64>) -> StreamTableEntry {
        var ste = StreamTableEntry()
        guard STEField.valid.isSet(words) else {
            ste.problem = .notValid
            return ste
        }
        ste.config = UInt8(STEField.config.extract(words))
        // PPAR is read for every valid STE, including Config 0b000 (§8.1 asks only for a valid STE).
        ste.ppar = STEField.ppar.isSet(words)
        if ste.isAbort { return ste }
        // §5.2 Config: a stage that is not implemented cannot be enabled.
        if ste.config & 0b101 == 0b101 && !configuration.stage1 {
            ste.problem = .stage1NotImplemented
            return ste
        }
        if ste.config & 0b110 == 0b110 && !configuration.stage2 {
            ste.problem = .stage2NotImplemented
            return ste
        }
        ste.s1Fmt = UInt8(STEField.s1Fmt.extract(words))
        ste.s1ContextPointer = STEField.s1ContextPtr.extract(words) << 6
        ste.s1CDMax = UInt8(STEField.s1CDMax.extract(words))
        ste.s1DSS = UInt8(STEField.s1DSS.extract(words))
        ste.s1StallDisable = STEField.s1StallD.isSet(words)
        ste.eats = UInt8(STEField.eats.extract(words))
        ste.cont = UInt8(STEField.cont.extract(words))
        if configuration.attributeOverrides {
            ste.privCfg = UInt8(STEField.privCfg.extract(words))
            ste.instCfg = UInt8(STEField.instCfg.extract(words))
        }
        ste.vmid = UInt16(STEField.s2VMID.extract(words))
        let strw = STEField.strw.extract(words)

        func illegal(_ problem: STEProblem) -> StreamTableEntry {
            var bad = ste
            bad.problem = problem
            return bad
        }

        // ATS checks, when EATS is not IGNORED.
        if configuration.ats && ste.config & 0b011 != 0 {
            if ste.eats == 0b10 { return illegal(.splitStageATS) }
            if ste.eats == 0b01 && STEField.s2S.isSet(words) && ste.config & 0b110 == 0b110 { return illegal(.eatsWithStage2Stall) }
        }
        // StreamWorld: STRW is used only for stage-1-only configurations. Without IDR0.Hyp the
        // field is RES0 and ignored (SteIllegal() rejects only the reserved 0bx1 encodings).
        if ste.config == 0b101 {
            switch strw {
            case 0b00: ste.world = .el1
            case 0b10:
                let hyp = Reg.IDR0.hyp.isSet(idr0)
                ste.world = !hyp ? .el1 : (Reg.CR2.e2h.isSet(cr2) ? .el2E2H : .el2)
            default: return illegal(.reservedStreamWorld)
            }
        }
        if ste.stage1Enabled {
            if ste.s1StallDisable && configuration.stallModel != .stallAndTerminate { return illegal(.s1StallDisableWithStallModel) }
            let ssidBits = substreamIDBits
            if ssidBits != 0 && Int(ste.s1CDMax) > ssidBits { return illegal(.s1CDMaxTooLarge) }
            if ssidBits != 0 && ste.s1CDMax != 0 && !configuration.twoLevelContextDescriptorTable && (ste.s1Fmt == 1 || ste.s1Fmt == 2) {
                return illegal(.twoLevelCDUnsupported)
            }
            // §3.4.3: S1ContextPtr beyond OAS (a PA) or IAS (an IPA, IAS == OAS here) is C_BAD_STE.
            if ste.s1ContextPointer >> UInt64(oasBits) != 0 { return illegal(.contextPointerOutOfRange) }
        }
        if ste.stage2Enabled {
            ste.s2Stall = STEField.s2S.isSet(words)
            ste.s2Record = STEField.s2R.isSet(words)
            ste.s2PTW = STEField.s2PTW.isSet(words)
            switch configuration.stallModel {
            case .terminateOnly where ste.s2Stall, .stallForced where !ste.s2Stall: return illegal(.stage2StallMismatch)
            default: break
            }
            guard STEField.s2AA64.isSet(words) else { return illegal(.stage2NotAArch64) }
            let ha = STEField.s2HA.isSet(words), hd = STEField.s2HD.isSet(words)
            if (ha || hd) && configuration.hardwareUpdate == .none { return illegal(.stage2HardwareUpdateUnsupported) }
            if hd && configuration.hardwareUpdate == .accessFlag { return illegal(.stage2HardwareUpdateUnsupported) }
            guard let granule = granuleShift(stage2TG: STEField.s2TG.extract(words)) else { return illegal(.stage2GranuleUnsupported) }
            let outputBits = effectiveOutputBits(STEField.s2PS.extract(words))
            let t0sz = Int(STEField.s2T0SZ.extract(words))
            let minimum = max(granule == 16 ? 12 : 16, 64 - configuration.oasBits)
            if t0sz < minimum || t0sz > 39 { return illegal(.stage2InputSizeOutOfRange) }
            let inputBits = 64 - t0sz
            guard let startLevel = stage2StartLevel(sl0: STEField.s2SL0.extract(words), granuleShift: Int(granule), inputBits: inputBits) else {
                return illegal(.stage2StartLevelInconsistent)
            }
            let ttb = STEField.s2TTB.extract(words) << 4
            if ttb >> UInt64(outputBits) != 0 || (granule != 16 && ttb >> 48 != 0) { return illegal(.stage2TableOutOfRange) }
            if STEField.s2ENDI.isSet(words) { return illegal(.stage2BigEndian) }
            let alignment = tableAlignmentBits(inputBits: inputBits, granuleShift: Int(granule), startLevel: startLevel, outputBits: Int(outputBits))
            ste.stage2 = WalkTable(
                base: ttb & ~UInt64.lowBits(alignment), granuleShift: granule, startLevel: Int8(startLevel),
                inputBits: UInt8(inputBits), outputBits: outputBits,
                hardwareAccessFlag: ha && configuration.hardwareUpdate != .none,
                hardwareDirty: ha && hd && configuration.hardwareUpdate == .accessFlagAndDirty,
                accessFlagFaultDisabled: STEField.s2AFFD.isSet(words),
                forcedWriteBack: Reg.IDR3.fwb.isSet(idr3) && STEField.s2FWB.isSet(words))
        }
        // S2VMID is used (and checked) for every NS-EL1 configuration (§5.2 S2VMID).
        let vmidUsed = configuration.stage2 && (ste.stage2Enabled || (ste.config == 0b101 && ste.world == .el1))
        if !vmidUsed { ste.vmid = 0 }
        if vmidUsed && !configuration.vmid16 && ste.vmid >> 8 != 0 { return illegal(.vmidTooWide) }
        return ste
    }

    /// The stage-2 starting level from S2SL0, or nil when it is reserved or inconsistent with
    /// the input size (§5.2 S2SL0; Arm ARM S2InvalidSL / S2InconsistentSL).
    func stage2StartLevel(sl0: UInt64, granuleShift: Int, inputBits: Int) -> Int? {
        let oas = configuration.oasBits
        let level: Int
        switch (granuleShift, sl0) {
        case (12, 0): level = 2
        case (12, 1): level = 1
        case (12, 2) where oas >= 44: level = 0
        case (14, 0): level = 3
        case (14, 1): level = 2
        case (14, 2) where oas >= 42: level = 1
        case (16, 0): level = 3
        case (16, 1): level = 2
        case (16, 2) where oas >= 44: level = 1
        default: return nil
        }
        let stride = granuleShift - 3
        let minimum = (3 - level) * stride + granuleShift + 1
        let maximum = minimum + (stride - 1) + 4
        guard inputBits >= minimum && inputBits <= maximum else { return nil }
        return level
    }

    /// Decodes and validates a CD located through `ste` (§5.4, §5.4.2 CdIllegal).
    func decodeCD(_ words: InlineArray<8, UInt64>, ste: StreamTableEntry) -> ContextDescriptor {
        var cd = ContextDescriptor()
        func illegal(_ problem: CDProblem) -> ContextDescriptor {
            var bad = cd
            bad.problem = problem
            return bad
        }
        guard CDField.valid.isSet(words) else { return illegal(.notValid) }
        cd.stall = CDField.s.isSet(words)
        cd.record = CDField.r.isSet(words)
        cd.abort = CDField.a.isSet(words)
        if ste.s1StallDisable && cd.stall { return illegal(.stallDisabledByStream) }
        if configuration.terminateAlwaysAborts && !cd.abort { return illegal(.abortRequiredByTerminateModel) }
        if configuration.stallModel == .terminateOnly && cd.stall { return illegal(.stallNotSupported) }
        if configuration.stallModel == .stallForced && !cd.stall { return illegal(.stallRequired) }

        let el2 = ste.world == .el2
        // EPDx: for any-EL2 only TTB0 exists (the TTB1 half is treated as disabled, §5.4.1).
        let epd0 = el2 ? false : CDField.epd0.isSet(words)
        let epd1 = el2 ? true : CDField.epd1.isSet(words)
        if !(epd0 && epd1) && CDField.endi.isSet(words) { return illegal(.bigEndian) }
        guard CDField.aa64.isSet(words) else { return illegal(.notAArch64) }
        let ha = CDField.ha.isSet(words), hd = CDField.hd.isSet(words)
        if (ha || hd) && configuration.hardwareUpdate == .none { return illegal(.hardwareUpdateUnsupported) }
        if hd && configuration.hardwareUpdate == .accessFlag { return illegal(.hardwareUpdateUnsupported) }
        cd.asid = UInt16(CDField.asid.extract(words))
        cd.aset = CDField.aset.isSet(words)
        if el2 {
            cd.asid = 0
        } else if !configuration.asid16 && cd.asid >> 8 != 0 {
            return illegal(.asidTooWide)
        }
        let outputBits = effectiveOutputBits(CDField.ips.extract(words))
        let minimumLarge = Reg.IDR5.vax.extract(UInt64(idr5)) == 1 ? 12 : 16

        func table(_ tsz: Int, _ granule: UInt8, _ ttbField: StructureField) -> WalkTable? {
            let minimum = granule == 16 ? minimumLarge : 16
            guard tsz >= minimum && tsz <= 39 else { return nil }
            let inputBits = 64 - tsz
            let start = WalkTable.stage1StartLevel(inputBits: inputBits, granuleShift: Int(granule))
            let ttb = ttbField.extract(words) << 4
            let alignment = tableAlignmentBits(inputBits: inputBits, granuleShift: Int(granule), startLevel: start, outputBits: Int(outputBits))
            return WalkTable(
                base: ttb & ~UInt64.lowBits(alignment), granuleShift: granule, startLevel: Int8(start),
                inputBits: UInt8(inputBits), outputBits: outputBits,
                hardwareAccessFlag: ha && configuration.hardwareUpdate != .none,
                hardwareDirty: ha && hd && configuration.hardwareUpdate == .accessFlagAndDirty,
                accessFlagFaultDisabled: CDField.affd.isSet(words))
        }
        func ttbOutOfRange(_ field: StructureField, _ granule: UInt8) -> Bool {
            let ttb = field.extract(words) << 4
            return ttb >> UInt64(outputBits) != 0 || (granule != 16 && ttb >> 48 != 0)
        }

        if !epd0 {
            guard let granule = granuleShift(stage1TG0: CDField.tg0.extract(words)) else { return illegal(.tg0Unsupported) }
            guard let walk = table(Int(CDField.t0sz.extract(words)), granule, CDField.ttb0) else { return illegal(.t0szOutOfRange) }
            if ttbOutOfRange(CDField.ttb0, granule) { return illegal(.ttb0OutOfRange) }
            cd.table0 = walk
            cd.table0Enabled = true
        }
        if !epd1 {
            guard let granule = granuleShift(stage1TG1: CDField.tg1.extract(words)) else { return illegal(.tg1Unsupported) }
            guard let walk = table(Int(CDField.t1sz.extract(words)), granule, CDField.ttb1) else { return illegal(.t1szOutOfRange) }
            if ttbOutOfRange(CDField.ttb1, granule) { return illegal(.ttb1OutOfRange) }
            cd.table1 = walk
            cd.table1Enabled = true
        }
        cd.tbi0 = CDField.tbi0.isSet(words)
        cd.tbi1 = el2 ? false : CDField.tbi1.isSet(words)
        cd.hierarchicalDisabled0 = CDField.had0.isSet(words)
        cd.hierarchicalDisabled1 = el2 ? false : CDField.had1.isSet(words)
        cd.wxn = CDField.wxn.isSet(words)
        cd.pan = el2 ? false : CDField.pan.isSet(words)
        return cd
    }
}
