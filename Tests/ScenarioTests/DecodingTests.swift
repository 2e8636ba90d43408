import Testing
import Platform
import SMMUv3
import Scenario

/// `smmuv3 decode`'s renderings (``StructureDecoder``): STEs (§5.2) and CDs (§5.4) field by
/// field with the model's verdict, and queue entries (§4.1.1, §7.3, §8.3) as their layouts
/// describe them.
@Suite struct DecodingTests {
    /// Eight doublewords with `values` inserted through the layout's field table.
    static func structure(_ values: [(StructureField, UInt64)]) -> [UInt64] {
        values.reduce(into: [UInt64](repeating: 0, count: 8)) { words, entry in
            words = entry.0.inserting(entry.1, into: words)
        }
    }

    /// A valid stage-1 STE: one linear CD table of 16 CDs at 0x8100_0000, non-substream
    /// traffic to CD 0, full ATS.
    static let stage1STE = structure([
        (STEField.valid, 1),
        (STEField.config, 0b101),
        (STEField.s1ContextPtr, 0x8100_0000 >> 6),
        (STEField.s1CDMax, 4),
        (STEField.s1DSS, 0b10),
        (STEField.eats, 0b01),
    ])

    /// A valid CD: a 48-bit TTB0 region with 4 KB granules at 0x8200_0000, TTB1 disabled.
    static let stage1CD = structure([
        (CDField.t0sz, 16),
        (CDField.tg0, 0b00),
        (CDField.epd1, 1),
        (CDField.valid, 1),
        (CDField.ips, 0b101),
        (CDField.aa64, 1),
        (CDField.r, 1),
        (CDField.a, 1),
        (CDField.asid, 0x1234),
        (CDField.ttb0, 0x8200_0000 >> 4),
    ])

    @Test func stage1STEShowsItsFieldsAndIsValid() {
        let lines = StructureDecoder.describeSTE(Self.stage1STE)
        #expect(lines.first == "V = 0b1 (valid)")
        #expect(lines.contains("Config = 0b101 (stage 1 translate)"))
        #expect(lines.contains("S1Fmt = 0b00 (linear CD table)"))
        #expect(lines.contains("S1ContextPtr = 0x81000000 (address bits [55:6])"))
        #expect(lines.contains("S1CDMax = 0x4 (2^4 CDs)"))
        #expect(lines.contains("S1DSS = 0b10 (traffic without a SubstreamID uses CD 0)"))
        #expect(lines.contains("EATS = 0b01 (full ATS)"))
        #expect(lines.contains("STRW = 0b00 (NS-EL1)"))
        #expect(lines.contains("S2VMID = 0x0"))
        #expect(lines.contains("S2TTB = 0x0 (address bits [51:4])"))
        #expect(lines.last == "verdict: valid")
    }

    @Test func steLinesFollowTheFieldTable() {
        let lines = StructureDecoder.describeSTE(Self.stage1STE)
        let names = lines.dropLast().map { $0.prefix { $0 != " " } }
        #expect(names.map(String.init) == STEField.all.map(\.name))
    }

    @Test func stage2FieldsShowTheirEncodings() {
        let words = Self.structure([
            (STEField.valid, 1),
            (STEField.config, 0b110),
            (STEField.s2VMID, 0x2A),
            (STEField.s2T0SZ, 24),
            (STEField.s2SL0, 0b01),
            (STEField.s2IR0, 0b01),
            (STEField.s2SH0, 0b11),
            (STEField.s2TG, 0b00),
            (STEField.s2PS, 0b101),
            (STEField.s2AA64, 1),
            (STEField.s2R, 1),
            (STEField.s2TTB, 0x8300_0000 >> 4),
        ])
        let lines = StructureDecoder.describeSTE(words)
        #expect(lines.contains("Config = 0b110 (stage 2 translate)"))
        #expect(lines.contains("S2VMID = 0x2a"))
        #expect(lines.contains("S2T0SZ = 0x18 (40-bit IPA)"))
        #expect(lines.contains("S2SL0 = 0b01 (walks start at level 1 with the 4 KB granule)"))
        #expect(lines.contains("S2IR0 = 0b01 (Write-Back cacheable, Read-Allocate, Write-Allocate)"))
        #expect(lines.contains("S2SH0 = 0b11 (Inner Shareable)"))
        #expect(lines.contains("S2TG = 0b00 (4 KB granule)"))
        #expect(lines.contains("S2PS = 0b101 (48 bits)"))
        #expect(lines.contains("S2AA64 = 0b1 (VMSAv8-64 tables)"))
        #expect(lines.contains("S2R = 0x1"))
        #expect(lines.contains("S2TTB = 0x83000000 (address bits [51:4])"))
        #expect(lines.last == "verdict: valid")
    }

    @Test func illegalSTEReportsTheModelsReason() {
        var words = Self.stage1STE
        words = STEField.s1CDMax.inserting(21, into: words)
        let lines = StructureDecoder.describeSTE(words)
        #expect(lines.contains("S1CDMax = 0x15 (2^21 CDs)"))
        #expect(lines.last == "verdict: invalid, C_BAD_STE: \(STEProblem.s1CDMaxTooLarge)")
        #expect(lines.last == "verdict: invalid, C_BAD_STE: S1CDMax > IDR1.SSIDSIZE")
    }

    @Test func steWithVClearIsInvalid() {
        let words = STEField.valid.inserting(0, into: Self.stage1STE)
        let lines = StructureDecoder.describeSTE(words)
        #expect(lines.first == "V = 0b0 (invalid)")
        #expect(lines.last == "verdict: invalid, C_BAD_STE: V == 0")
    }

    @Test func steVerdictFollowsTheConfiguration() {
        var configuration = SMMUConfiguration()
        configuration.substreamIDBits = 2
        let lines = StructureDecoder.describeSTE(Self.stage1STE, configuration: configuration)
        #expect(lines.last == "verdict: invalid, C_BAD_STE: \(STEProblem.s1CDMaxTooLarge)")
    }

    @Test func missingDoublewordsReadAsZeroWithANote() {
        let lines = StructureDecoder.describeSTE(Array(Self.stage1STE.prefix(2)))
        #expect(lines.first == "note: 2 of 8 doublewords given; DW2 to DW7 read as zero")
        #expect(lines.contains("S1DSS = 0b10 (traffic without a SubstreamID uses CD 0)"))
        #expect(lines.last == "verdict: valid")
        let seven = StructureDecoder.describeCD(Array(Self.stage1CD.prefix(7)))
        #expect(seven.first == "note: 7 of 8 doublewords given; DW7 reads as zero")
        let whole = StructureDecoder.describeCD(Self.stage1CD)
        #expect(!whole.contains { $0.hasPrefix("note:") })
    }

    @Test func stage1CDShowsItsFieldsAndIsValid() {
        let lines = StructureDecoder.describeCD(Self.stage1CD)
        #expect(lines.first == "T0SZ = 0x10 (48-bit input region)")
        #expect(lines.contains("TG0 = 0b00 (4 KB granule)"))
        #expect(lines.contains("EPD0 = 0b0 (TTB0 walks enabled)"))
        #expect(lines.contains("EPD1 = 0b1 (TTB1 walks disabled)"))
        #expect(lines.contains("V = 0b1 (valid)"))
        #expect(lines.contains("IPS = 0b101 (48 bits)"))
        #expect(lines.contains("AA64 = 0b1 (VMSAv8-64 tables)"))
        #expect(lines.contains("A = 0b1 (terminated transactions abort)"))
        #expect(lines.contains("ASID = 0x1234"))
        #expect(lines.contains("TTB0 = 0x82000000 (address bits [51:4])"))
        #expect(lines.contains("MAIR1 = 0x0"))
        #expect(lines.last == "verdict: valid")
        let names = lines.dropLast().map { String($0.prefix { $0 != " " }) }
        #expect(names == CDField.all.map(\.name))
    }

    @Test func illegalCDReportsTheModelsReason() {
        let words = CDField.aa64.inserting(0, into: Self.stage1CD)
        let lines = StructureDecoder.describeCD(words)
        #expect(lines.contains("AA64 = 0b0 (VMSAv8-32 LPAE tables)"))
        #expect(lines.last == "verdict: invalid, C_BAD_CD: \(CDProblem.notAArch64)")
    }

    @Test func cdVerdictFollowsTheStream() {
        let stalling = CDField.s.inserting(1, into: Self.stage1CD)
        #expect(StructureDecoder.describeCD(stalling).last == "verdict: valid")
        let stallDisabled = STEField.s1StallD.inserting(1, into: Self.stage1STE)
        let lines = StructureDecoder.describeCD(stalling, streamTableEntry: stallDisabled)
        #expect(lines.contains("S = 0b1 (stall on stage-1 faults)"))
        #expect(lines.last == "verdict: invalid, C_BAD_CD: \(CDProblem.stallDisabledByStream)")
    }

    @Test func queueEntriesRenderAsTheirLayoutsDescribeThem() throws {
        let command: [UInt64] = [0x0007_0005_0000_0011, 0]
        #expect(try StructureDecoder.describe(.command, command) == ["CMD_TLBI_NH_ASID vmid=0x5 asid=0x7"])
        let samples: [[UInt64]] = [
            [0, 0, 0, 0],
            [0x0000_0010_0000_0002, 0x1234_5678_9ABC_DEF0, 0x8000_0000_0000_1000, 0xFFFF_FFFF_FFFF_FFFF],
            [0xFFFF_FFFF_FFFF_FFFF, 0xFFFF_FFFF_FFFF_FFFF, 0xFFFF_FFFF_FFFF_FFFF, 0xFFFF_FFFF_FFFF_FFFF],
        ]
        for words in samples {
            #expect(try StructureDecoder.describe(.command, Array(words.prefix(2))).joined(separator: "\n")
                == CommandEntry(dw0: words[0], dw1: words[1]).description)
            #expect(try StructureDecoder.describe(.event, words).joined(separator: "\n")
                == EventRecord(dw0: words[0], dw1: words[1], dw2: words[2], dw3: words[3]).description)
            #expect(try StructureDecoder.describe(.pageRequest, Array(words.prefix(2))).joined(separator: "\n")
                == PRIQEntry(dw0: words[0], dw1: words[1]).description)
        }
    }

    @Test func describeRejectsCountsThatDoNotFit() throws {
        let short = #expect(throws: StructureDecoder.WrongLength.self) { try StructureDecoder.describe(.command, [1]) }
        #expect(short?.description == "decode cmd needs 2 doublewords, got 1")
        let long = #expect(throws: StructureDecoder.WrongLength.self) { try StructureDecoder.describe(.event, [1, 2, 3, 4, 5]) }
        #expect(long?.description == "decode evt needs 4 doublewords, got 5")
        let tooMany = #expect(throws: StructureDecoder.WrongLength.self) {
            try StructureDecoder.describe(.streamTableEntry, [UInt64](repeating: 0, count: 9))
        }
        #expect(tooMany?.description == "decode ste needs 1 to 8 doublewords, got 9")
        let none = #expect(throws: StructureDecoder.WrongLength.self) { try StructureDecoder.describe(.contextDescriptor, []) }
        #expect(none?.description == "decode cd needs 1 to 8 doublewords, got 0")
        #expect(try StructureDecoder.describe(.contextDescriptor, [0x8000_0000]).first == "note: 1 of 8 doublewords given; DW1 to DW7 read as zero")
    }

    @Test func arbitraryDoublewordsDecodeWithoutTrapping() {
        var state: UInt64 = 0x5EED
        func next() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var mixed = state
            mixed = (mixed ^ (mixed >> 30)) &* 0xBF58_476D_1CE4_E5B9
            mixed = (mixed ^ (mixed >> 27)) &* 0x94D0_49BB_1331_11EB
            return mixed ^ (mixed >> 31)
        }
        var samples: [[UInt64]] = [[UInt64](repeating: .max, count: 8), []]
        for _ in 0..<64 { samples.append((0..<8).map { _ in next() }) }
        for words in samples {
            let ste = StructureDecoder.describeSTE(words)
            let cd = StructureDecoder.describeCD(words, streamTableEntry: words)
            #expect(ste.last?.hasPrefix("verdict: ") == true)
            #expect(cd.last?.hasPrefix("verdict: ") == true)
            #expect(ste.count == STEField.all.count + (words.count == 8 ? 1 : 2))
            #expect(cd.count == CDField.all.count + (words.count == 8 ? 1 : 2))
        }
    }

    @Test func fieldTablesAreInBitOrderWithoutOverlaps() {
        for table in [STEField.all, CDField.all] {
            #expect(Set(table.map(\.name)).count == table.count)
            let spans = table.map { entry in
                (low: entry.field.doubleword * 64 + entry.field.bits.low, high: entry.field.doubleword * 64 + entry.field.bits.high)
            }
            for (previous, current) in zip(spans, spans.dropFirst()) {
                #expect(previous.high < current.low)
            }
        }
    }
}
