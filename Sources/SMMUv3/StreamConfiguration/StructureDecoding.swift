import Platform
import SMMUv3Layout
import VMSA

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

    /// The granule shift if IDR5 lists that granule (`nil` passes through: a reserved
    /// encoding).
    func supportedGranule(_ shift: UInt8?) -> UInt8? {
        switch shift {
        case 12: configuration.granule4K ? 12 : nil
        case 14: configuration.granule16K ? 14 : nil
        case 16: configuration.granule64K ? 16 : nil
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
            guard let granule = supportedGranule(TranslationGranule.shift(tg0: STEField.s2TG.extract(words))) else { return illegal(.stage2GranuleUnsupported) }
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
            guard let granule = supportedGranule(TranslationGranule.shift(tg0: CDField.tg0.extract(words))) else { return illegal(.tg0Unsupported) }
            guard let walk = table(Int(CDField.t0sz.extract(words)), granule, CDField.ttb0) else { return illegal(.t0szOutOfRange) }
            if ttbOutOfRange(CDField.ttb0, granule) { return illegal(.ttb0OutOfRange) }
            cd.table0 = walk
            cd.table0Enabled = true
        }
        if !epd1 {
            guard let granule = supportedGranule(TranslationGranule.shift(tg1: CDField.tg1.extract(words))) else { return illegal(.tg1Unsupported) }
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
