import Platform
import SMMUv3

/// A structure `smmuv3 decode` prints, by its command-line name: the queue entries and
/// records of §4.1.1, §7.3 and §8.3 and the configuration structures of §5.2 and §5.4.
public enum DecodableStructure: String, CaseIterable, Sendable {
    /// `cmd`: a command queue entry (§4.1.1).
    case command = "cmd"
    /// `evt`: an event record (§7.3).
    case event = "evt"
    /// `pri`: a PRI queue entry (§8.3).
    case pageRequest = "pri"
    /// `ste`: a Stream Table Entry (§5.2).
    case streamTableEntry = "ste"
    /// `cd`: a Context Descriptor (§5.4).
    case contextDescriptor = "cd"

    /// The doublewords the structure occupies (§4.1.1, §7.3, §8.3, §5.2, §5.4).
    public var doublewords: Int {
        switch self {
        case .command, .pageRequest: 2
        case .event: 4
        case .streamTableEntry, .contextDescriptor: 8
        }
    }

    /// Whether fewer than ``doublewords`` may be given, the missing ones reading as zero: true
    /// for the STE (§5.2) and CD (§5.4), whose upper doublewords are often all zero; queue
    /// entries (§4.1.1, §7.3, §8.3) must be given whole.
    public var acceptsFewerDoublewords: Bool {
        switch self {
        case .command, .event, .pageRequest: false
        case .streamTableEntry, .contextDescriptor: true
        }
    }

    /// What the structure is, with its spec section (§4.1.1, §7.3, §8.3, §5.2, §5.4), e.g.
    /// `a Stream Table Entry (§5.2)`.
    public var summary: String {
        switch self {
        case .command: "a command queue entry (§4.1.1)"
        case .event: "an event record (§7.3)"
        case .pageRequest: "a PRI queue entry (§8.3)"
        case .streamTableEntry: "a Stream Table Entry (§5.2)"
        case .contextDescriptor: "a Context Descriptor (§5.4)"
        }
    }
}

/// Readable renderings of SMMUv3 structures given as doublewords (§4.1.1 commands, §7.3 event
/// records, §8.3 PRI queue entries, §5.2 STEs, §5.4 CDs), one line per item.
///
/// Any 64-bit values are accepted and decode without trapping. STEs and CDs are listed field
/// by field under their spec names (``STEField/all``, ``CDField/all``), followed by the
/// verdict of the model's own validity check (`SteIllegal()` §5.2.2, `CdIllegal()` §5.4.2).
public enum StructureDecoder {
    /// A number of doublewords that does not fit the structure it was given for (the sizes of
    /// §4.1.1, §7.3, §8.3, §5.2 and §5.4; see ``DecodableStructure/doublewords``).
    public struct WrongLength: Error, Equatable, Sendable, CustomStringConvertible {
        /// The structure asked for (§4.1.1, §7.3, §8.3, §5.2 or §5.4).
        public let structure: DecodableStructure
        /// How many doublewords were given, not the number the structure takes.
        public let count: Int

        /// The complaint, e.g. `decode cmd needs 2 doublewords, got 3`.
        public var description: String {
            let needed = structure.acceptsFewerDoublewords ? "1 to \(structure.doublewords)" : "\(structure.doublewords)"
            return "decode \(structure.rawValue) needs \(needed) doublewords, got \(count)"
        }
    }

    /// `words` decoded as `structure` by the matching `describe` function, with its defaults.
    /// Throws ``WrongLength`` unless exactly ``DecodableStructure/doublewords`` are given, or
    /// for an STE (§5.2) or CD (§5.4) between one and that many.
    public static func describe(_ structure: DecodableStructure, _ words: [UInt64]) throws(WrongLength) -> [String] {
        let fits = structure.acceptsFewerDoublewords
            ? (1...structure.doublewords).contains(words.count)
            : words.count == structure.doublewords
        guard fits else { throw WrongLength(structure: structure, count: words.count) }
        return switch structure {
        case .command: describeCommand(words)
        case .event: describeEvent(words)
        case .pageRequest: describePageRequest(words)
        case .streamTableEntry: describeSTE(words)
        case .contextDescriptor: describeCD(words)
        }
    }

    /// A command queue entry (§4.1.1) as ``CommandEntry`` renders it. Doublewords missing
    /// from `words` read as zero; any beyond the second are ignored.
    public static func describeCommand(_ words: [UInt64]) -> [String] {
        lines(of: CommandEntry(dw0: word(0, of: words), dw1: word(1, of: words)))
    }

    /// An event record (§7.3) as ``EventRecord`` renders it. Doublewords missing from `words`
    /// read as zero; any beyond the fourth are ignored.
    public static func describeEvent(_ words: [UInt64]) -> [String] {
        lines(of: EventRecord(dw0: word(0, of: words), dw1: word(1, of: words), dw2: word(2, of: words), dw3: word(3, of: words)))
    }

    /// A PRI queue entry (§8.3) as ``PRIQEntry`` renders it. Doublewords missing from `words`
    /// read as zero; any beyond the second are ignored.
    public static func describePageRequest(_ words: [UInt64]) -> [String] {
        lines(of: PRIQEntry(dw0: word(0, of: words), dw1: word(1, of: words)))
    }

    /// A Stream Table Entry (§5.2): a note when fewer or more than eight doublewords are
    /// given (missing ones read as zero, extra ones are ignored), then every field of
    /// ``STEField/all`` as `Name = value`, enumerations in binary with their meaning
    /// (`Config = 0b101 (stage 1 translate)`), other values in hexadecimal, then the verdict
    /// of an SMMU with `configuration`: `verdict: valid` or
    /// `verdict: invalid, C_BAD_STE: <why>` (`SteIllegal()`, §5.2.2).
    public static func describeSTE(_ words: [UInt64], configuration: SMMUConfiguration = .default) -> [String] {
        var lines = lengthNote(words)
        for (name, field) in STEField.all {
            lines.append(line(name, field, words, steRendering(field, words)))
        }
        lines.append(verdict(configuration, badEvent: "C_BAD_STE") { $0.steProblem(words)?.description })
        return lines
    }

    /// A Context Descriptor (§5.4), in the format of ``describeSTE(_:configuration:)``: a
    /// note on the number of doublewords, every field of ``CDField/all``, then the verdict of
    /// an SMMU with `configuration` for a CD used by the STE `streamTableEntry`:
    /// `verdict: valid` or `verdict: invalid, C_BAD_CD: <why>` (`CdIllegal()`, §5.4.2). With no
    /// STE the CD is checked as a stage-1 NS-EL1 stream with S1STALLD == 0 would use it.
    public static func describeCD(_ words: [UInt64], streamTableEntry: [UInt64]? = nil, configuration: SMMUConfiguration = .default) -> [String] {
        var lines = lengthNote(words)
        for (name, field) in CDField.all {
            lines.append(line(name, field, words, cdRendering(field, words)))
        }
        lines.append(verdict(configuration, badEvent: "C_BAD_CD") { $0.cdProblem(words, streamTableEntry: streamTableEntry)?.description })
        return lines
    }

    // MARK: Rendering

    /// How a field's value is shown.
    private enum Rendering {
        /// A count, size, identifier or flag: hexadecimal, with an optional derived meaning.
        case number(String?)
        /// An encoding: binary, padded to the field's width, with its meaning (nil when none
        /// is known for the value).
        case encoding(String?)
        /// Address bits held in place in the field's doubleword: the address in hexadecimal.
        case address
    }

    /// The SMMU_BASE of the SMMU that gives the verdicts (any 64 KB aligned address will do).
    private static let verdictSMMUBase: UInt64 = 0x0900_0000

    /// The doublewords of an STE (§5.2) or CD (§5.4).
    private static let structureDoublewords = DecodableStructure.streamTableEntry.doublewords

    /// `Name = value` or `Name = value (meaning)` for `field` of `words`.
    private static func line(_ name: String, _ field: StructureField, _ words: [UInt64], _ rendering: Rendering) -> String {
        let value = field.extract(words)
        return switch rendering {
        case .number(let meaning): "\(name) = \(hex(value))" + parenthesized(meaning)
        case .encoding(let meaning): "\(name) = \(binary(value, width: field.bits.width))" + parenthesized(meaning)
        case .address: "\(name) = \(hex(field.bits.place(value))) (address bits \(field.bits))"
        }
    }

    /// ` (text)`, or nothing without text.
    private static func parenthesized(_ text: String?) -> String {
        text.map { " (\($0))" } ?? ""
    }

    /// `0b` and `value` in binary, zero-padded to `width` digits.
    private static func binary(_ value: UInt64, width: Int) -> String {
        let digits = String(value, radix: 2)
        return "0b" + String(repeating: "0", count: max(0, width - digits.count)) + digits
    }

    /// How `field` of an STE (§5.2) is shown.
    private static func steRendering(_ field: StructureField, _ words: [UInt64]) -> Rendering {
        let value = field.extract(words)
        switch field {
        case STEField.valid:
            return .encoding(value == 0 ? "invalid" : "valid")
        case STEField.config:
            return .encoding(streamConfiguration(value))
        case STEField.s1Fmt:
            return .encoding(contextDescriptorTableFormat(value))
        case STEField.s1ContextPtr, STEField.s2TTB:
            return .address
        case STEField.s1CDMax:
            return .number(value == 0 ? "one CD, substreams disabled" : "2^\(value) CDs")
        case STEField.s1DSS:
            return .encoding(defaultSubstream(value))
        case STEField.s1CIR, STEField.s1COR:
            return .encoding(contextDescriptorCacheability(value))
        case STEField.s2IR0, STEField.s2OR0:
            return .encoding(walkCacheability(value))
        case STEField.s1CSH, STEField.s2SH0:
            return .encoding(walkShareability(value))
        case STEField.cont:
            return .number(value == 0 ? nil : "one of 2^\(value) identical STEs")
        case STEField.s1StallD:
            return .encoding(value == 0 ? "CDs may select stall" : "CDs may not select stall")
        case STEField.eats:
            return .encoding(ats(value))
        case STEField.strw:
            return .encoding(streamWorld(value))
        case STEField.memAttr:
            return .encoding(memoryType(value))
        case STEField.mtcfg:
            return .encoding(value == 0 ? "use the incoming memory type" : "replace the incoming memory type with MemAttr")
        case STEField.allocCfg:
            return .encoding(allocationHints(value))
        case STEField.shCfg:
            return .encoding(shareabilityOverride(value))
        case STEField.nsCfg:
            return .encoding(attributeOverride(value, incoming: "NS attribute", forcedBy10: "Secure", forcedBy11: "Non-secure") + "; Secure STEs only")
        case STEField.privCfg:
            return .encoding(attributeOverride(value, incoming: "PRIV attribute", forcedBy10: "unprivileged", forcedBy11: "privileged"))
        case STEField.instCfg:
            return .encoding(attributeOverride(value, incoming: "INST attribute", forcedBy10: "data", forcedBy11: "instruction"))
        case STEField.s2T0SZ:
            return .number("\(64 - value)-bit IPA")
        case STEField.s2SL0:
            let granuleShift = TranslationGranule.shift(tg0: STEField.s2TG.extract(words))
            return .encoding(STEField.s2SL0_2.extract(words) == 0 ? stage2StartLevel(value, granuleShift: granuleShift) : nil)
        case STEField.s2TG:
            return .encoding(granule(TranslationGranule.shift(tg0: value)))
        case STEField.s2PS:
            return .encoding(addressSize(value))
        case STEField.s2AA64:
            return .encoding(tableFormat(value))
        case STEField.s2ENDI:
            return .encoding(endianness(value))
        case STEField.s2S:
            return .encoding(value == 0 ? "terminate on stage-2 faults" : "stall on stage-2 faults")
        default:
            return .number(nil)
        }
    }

    /// How `field` of a CD (§5.4) is shown.
    private static func cdRendering(_ field: StructureField, _ words: [UInt64]) -> Rendering {
        let value = field.extract(words)
        switch field {
        case CDField.t0sz, CDField.t1sz:
            return .number("\(64 - value)-bit input region")
        case CDField.tg0:
            return .encoding(granule(TranslationGranule.shift(tg0: value)))
        case CDField.tg1:
            return .encoding(granule(TranslationGranule.shift(tg1: value)))
        case CDField.ir0, CDField.or0, CDField.ir1, CDField.or1:
            return .encoding(walkCacheability(value))
        case CDField.sh0, CDField.sh1:
            return .encoding(walkShareability(value))
        case CDField.epd0:
            return .encoding(value == 0 ? "TTB0 walks enabled" : "TTB0 walks disabled")
        case CDField.epd1:
            return .encoding(value == 0 ? "TTB1 walks enabled" : "TTB1 walks disabled")
        case CDField.endi:
            return .encoding(endianness(value))
        case CDField.valid:
            return .encoding(value == 0 ? "invalid" : "valid")
        case CDField.ips:
            return .encoding(addressSize(value))
        case CDField.aa64:
            return .encoding(tableFormat(value))
        case CDField.s:
            return .encoding(value == 0 ? "terminate on stage-1 faults" : "stall on stage-1 faults")
        case CDField.a:
            return .encoding(value == 0 ? "terminated transactions complete as RAZ/WI" : "terminated transactions abort")
        case CDField.ttb0, CDField.ttb1:
            return .address
        default:
            return .number(nil)
        }
    }

    // MARK: Encodings

    /// STE.Config (§5.2).
    private static func streamConfiguration(_ value: UInt64) -> String {
        switch value {
        case 0b000: "abort"
        case 0b100: "bypass"
        case 0b101: "stage 1 translate"
        case 0b110: "stage 2 translate"
        case 0b111: "stage 1 and stage 2 translate"
        default: "reserved, behaves as 0b000 (abort)"
        }
    }

    /// STE.S1Fmt (§5.2).
    private static func contextDescriptorTableFormat(_ value: UInt64) -> String {
        switch value {
        case 0b00: "linear CD table"
        case 0b01: "2-level CD table, 4 KB leaf tables"
        case 0b10: "2-level CD table, 64 KB leaf tables"
        default: "reserved, behaves as 0b00"
        }
    }

    /// STE.S1DSS (§5.2).
    private static func defaultSubstream(_ value: UInt64) -> String {
        switch value {
        case 0b00: "terminate traffic without a SubstreamID"
        case 0b01: "traffic without a SubstreamID bypasses stage 1"
        case 0b10: "traffic without a SubstreamID uses CD 0"
        default: "reserved, behaves as 0b00"
        }
    }

    /// STE.EATS (§5.2).
    private static func ats(_ value: UInt64) -> String {
        switch value {
        case 0b00: "ATS not allowed"
        case 0b01: "full ATS"
        case 0b10: "split-stage ATS"
        default: "full ATS with DPT checks; reserved, behaving as 0b00, without SMMU_IDR3.DPT"
        }
    }

    /// STE.STRW in a Non-secure STE (§5.2).
    private static func streamWorld(_ value: UInt64) -> String {
        switch value {
        case 0b00: "NS-EL1"
        case 0b10: "NS-EL2, or NS-EL2-E2H when SMMU_CR2.E2H == 1"
        default: "reserved, ILLEGAL"
        }
    }

    /// STE.MemAttr (§5.2), encoded as a VMSAv8-64 stage-2 descriptor's MemAttr[3:0]: Device
    /// types below 0b0100, otherwise Normal with the outer cacheability in the upper two bits
    /// and the inner in the lower two (0b0100, 0b1000 and 0b1100 are reserved).
    private static func memoryType(_ value: UInt64) -> String {
        let (outer, inner) = value.quotientAndRemainder(dividingBy: 4)
        if outer != 0 && inner == 0 { return "reserved, behaves as Device-nGnRnE" }
        guard outer != 0 else {
            return switch inner {
            case 0: "Device-nGnRnE"
            case 1: "Device-nGnRE"
            case 2: "Device-nGRE"
            default: "Device-GRE"
            }
        }
        func cacheability(_ half: UInt64) -> String {
            switch half {
            case 1: "Non-cacheable"
            case 2: "Write-Through"
            default: "Write-Back"
            }
        }
        return "Normal, outer \(cacheability(outer)), inner \(cacheability(inner))"
    }

    /// STE.ALLOCCFG (§5.2).
    private static func allocationHints(_ value: UInt64) -> String {
        value < 0b1000
            ? "use the incoming allocation hints"
            : "override, as 0b1RWT: R read-allocate, W write-allocate, T transient"
    }

    /// STE.SHCFG (§5.2).
    private static func shareabilityOverride(_ value: UInt64) -> String {
        switch value {
        case 0b00: "Non-shareable"
        case 0b01: "use the incoming shareability"
        case 0b10: "Outer Shareable"
        default: "Inner Shareable"
        }
    }

    /// The STE attribute overrides NSCFG, PRIVCFG and INSTCFG (§5.2): 0b00 keeps the
    /// incoming attribute, 0b01 is reserved, 0b10 and 0b11 force one of its two values.
    private static func attributeOverride(_ value: UInt64, incoming: String, forcedBy10: String, forcedBy11: String) -> String {
        switch value {
        case 0b00: "use the incoming \(incoming)"
        case 0b10: forcedBy10
        case 0b11: forcedBy11
        default: "reserved, behaves as 0b00"
        }
    }

    /// Cacheability of CD and L1CD fetches (STE.S1CIR, STE.S1COR; §5.2).
    private static func contextDescriptorCacheability(_ value: UInt64) -> String {
        switch value {
        case 0b00: "Normal, Non-cacheable"
        case 0b01: "Normal, Write-Back cacheable, Read-Allocate"
        case 0b10: "Normal, Write-Through cacheable, Read-Allocate"
        default: "Normal, Write-Back cacheable, no Read-Allocate"
        }
    }

    /// Translation table walk cacheability (STE.S2IR0/S2OR0, CD.IRn/ORn; §5.2, §5.4).
    private static func walkCacheability(_ value: UInt64) -> String {
        switch value {
        case 0b00: "Non-cacheable"
        case 0b01: "Write-Back cacheable, Read-Allocate, Write-Allocate"
        case 0b10: "Write-Through cacheable, Read-Allocate"
        default: "Write-Back cacheable, Read-Allocate, no Write-Allocate"
        }
    }

    /// Shareability of CD fetches and table walks (STE.S1CSH/S2SH0, CD.SHn; §5.2, §5.4).
    private static func walkShareability(_ value: UInt64) -> String {
        switch value {
        case 0b00: "Non-shareable"
        case 0b10: "Outer Shareable"
        case 0b11: "Inner Shareable"
        default: "reserved, behaves as 0b00"
        }
    }

    /// A granule from ``TranslationGranule`` (STE.S2TG, CD.TG0/TG1; §5.2, §5.4).
    private static func granule(_ shift: UInt8?) -> String {
        switch shift {
        case 12: "4 KB granule"
        case 14: "16 KB granule"
        case 16: "64 KB granule"
        default: "reserved"
        }
    }

    /// STE.S2SL0 for the granule S2TG selects (§5.2, the VTCR_EL2.SL0 encoding); nil for a
    /// reserved granule.
    private static func stage2StartLevel(_ value: UInt64, granuleShift: UInt8?) -> String? {
        guard let granuleShift else { return nil }
        let level: Int? = switch (granuleShift, value) {
        case (12, 0b00): 2
        case (12, 0b01): 1
        case (12, 0b10): 0
        case (14, 0b00), (16, 0b00): 3
        case (14, 0b01), (16, 0b01): 2
        case (14, 0b10), (16, 0b10): 1
        default: nil
        }
        return level.map { "walks start at level \($0) with the \(granule(granuleShift))" } ?? "reserved with the \(granule(granuleShift))"
    }

    /// STE.S2PS and CD.IPS (§5.2, §5.4), as in SMMUv3.1 to SMMUv3.3.
    private static func addressSize(_ value: UInt64) -> String {
        switch value {
        case 0b000: "32 bits"
        case 0b001: "36 bits"
        case 0b010: "40 bits"
        case 0b011: "42 bits"
        case 0b100: "44 bits"
        case 0b101: "48 bits"
        case 0b110: "52 bits"
        default: "reserved, behaves as 0b110 (52 bits)"
        }
    }

    /// STE.S2AA64 and CD.AA64 (§5.2, §5.4).
    private static func tableFormat(_ value: UInt64) -> String {
        value == 0 ? "VMSAv8-32 LPAE tables" : "VMSAv8-64 tables"
    }

    /// STE.S2ENDI and CD.ENDI (§5.2, §5.4).
    private static func endianness(_ value: UInt64) -> String {
        value == 0 ? "little-endian tables" : "big-endian tables"
    }

    // MARK: Helpers

    /// A note when `words` is not exactly the eight doublewords of an STE or CD, or none.
    private static func lengthNote(_ words: [UInt64]) -> [String] {
        let count = words.count
        if count < structureDoublewords {
            let missing = count == structureDoublewords - 1 ? "DW7 reads" : "DW\(count) to DW7 read"
            return ["note: \(count) of \(structureDoublewords) doublewords given; \(missing) as zero"]
        }
        if count > structureDoublewords {
            return ["note: \(count) doublewords given; only the first \(structureDoublewords) are decoded"]
        }
        return []
    }

    /// `verdict: valid`, `verdict: invalid, <event>: <why>`, or why no verdict could be
    /// reached, from `problem` asked of an SMMU with `configuration`.
    private static func verdict(_ configuration: SMMUConfiguration, badEvent: String, _ problem: (SMMU) -> String?) -> String {
        let smmu: SMMU
        do {
            smmu = try SMMU(configuration: configuration, bus: Bus(), base: verdictSMMUBase)
        } catch {
            return "verdict: not checked (\(error))"
        }
        guard let reason = problem(smmu) else { return "verdict: valid" }
        return "verdict: invalid, \(badEvent): \(reason)"
    }

    /// Doubleword `index` of `words`, or zero when there are fewer.
    private static func word(_ index: Int, of words: [UInt64]) -> UInt64 {
        index < words.count ? words[index] : 0
    }

    /// The lines of `value`'s description.
    private static func lines(of value: some CustomStringConvertible) -> [String] {
        value.description.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
    }
}
