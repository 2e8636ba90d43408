import Testing
import Platform
import SMMUv3

/// Every event type encoded word by word (§7.3), values worked out by hand from the record
/// layouts.
@Suite struct EventRecordTests {
    struct Case: CustomStringConvertible, Sendable {
        let record: EventRecord
        let words: [UInt64]
        var description: String { record.type?.specName ?? "?" }
    }

    static let cases: [Case] = [
        Case(record: .unsupportedUpstreamTransaction(streamID: 0x10, substreamID: 2, reason: 0x12, access: AccessAttributes(read: true, instruction: true, privileged: true), inputAddress: 0xFFFF_0000_1234_5678),
             words: [0x0000_0010_0000_2801, 0x0000_000E_0000_0012, 0xFFFF_0000_1234_5678, 0]),
        Case(record: .badStreamID(streamID: 0xFFFF_FFFF), words: [0xFFFF_FFFF_0000_0002, 0, 0, 0]),
        Case(record: .steFetch(streamID: 5, fetchAddress: 0x8000_0140, reason: 1), words: [0x0000_0005_0000_0003, 1, 0, 0x8000_0140]),
        Case(record: .badSTE(streamID: 7), words: [0x0000_0007_0000_0004, 0, 0, 0]),
        Case(record: .badATSTranslationRequest(streamID: 1, substreamID: 3, address: 0x1234_5678, span: 2, read: true, write: true, execute: false, privileged: true),
             words: [0x0000_0001_0000_3805, 0x0000_201C_0000_0000, 0x1234_5000, 0]),
        Case(record: .streamDisabled(streamID: 8), words: [0x0000_0008_0000_0006, 0, 0, 0]),
        Case(record: .translationForbidden(streamID: 9, inputAddress: 0x1000, read: true), words: [0x0000_0009_0000_0007, 1 << 35, 0x1000, 0]),
        Case(record: .badSubstreamID(streamID: 1, substreamID: 0xF_FFFF), words: [0x0000_0001_FFFF_F008, 0, 0, 0]),
        Case(record: .cdFetch(streamID: 2, substreamID: 1, fetchAddress: 0x9000_0040), words: [0x0000_0002_0000_1809, 0, 0, 0x9000_0040]),
        Case(record: .badCD(streamID: 2, substreamID: 1), words: [0x0000_0002_0000_180A, 0, 0, 0]),
        Case(record: .walkExternalAbort(streamID: 3, access: .dataWrite, stage2: true, faultClass: .translationTable, inputAddress: 0x4000, fetchAddress: 0x7000_0008),
             words: [0x0000_0003_0000_000B, 0x0000_0180_0000_0000, 0x4000, 0x7000_0008]),
        Case(record: .translationFault(TranslationFault(type: .translation, streamID: 0x10, substreamID: 1, access: .dataRead, inputAddress: 0xDEAD_B000, stall: true, stag: 0x42)),
             words: [0x0000_0010_0000_1810, 0x0000_0208_8000_0042, 0xDEAD_B000, 0]),
        Case(record: .translationFault(TranslationFault(type: .addressSize, streamID: 0x10, access: .dataWrite, stage2: true, inputAddress: 0x55, ipa: 0x1_2345_6789)),
             words: [0x0000_0010_0000_0011, 0x0000_0280_0000_0000, 0x55, 0x1_2345_6000]),
        Case(record: .translationFault(TranslationFault(type: .access, streamID: 0x10, access: AccessAttributes(read: true, privileged: true), inputAddress: 0x1000)),
             words: [0x0000_0010_0000_0012, 0x0000_020A_0000_0000, 0x1000, 0]),
        Case(record: .translationFault(TranslationFault(type: .permission, streamID: 0x10, access: .dataRead, stage2: true, faultClass: .translationTable, inputAddress: 0x2000, ipa: 0x8000_1000, translationTableRead: true)),
             words: [0x0000_0010_0000_0013, 0x0000_1188_0000_0000, 0x2000, 0x8000_1000]),
        Case(record: .tlbConflict(streamID: 1, access: .dataRead, stage2: true, inputAddress: 0x9000, ipa: 0x3000, reason: 5),
             words: [0x0000_0001_0000_0020, 0x0000_0088_0000_0005, 0x9000, 0x3000]),
        Case(record: .configurationConflict(streamID: 1, reason: 0xABCD_EF01), words: [0x0000_0001_0000_0021, 0xABCD_EF01, 0, 0]),
        Case(record: .pageRequest(streamID: 1, substreamID: 2, address: 0x5678, span: 4, permissions: [.userRead, .privilegedWrite]),
             words: [0x0000_0001_0000_2824, 0x0000_4048_0000_0000, 0x5000, 0]),
        Case(record: .vmsFetch(streamID: 1, fetchAddress: 0x100), words: [0x0000_0001_0000_0025, 0, 0, 0x100]),
    ]

    @Test(arguments: cases)
    func recordHasTheArchitectedLayout(_ testCase: Case) {
        #expect(testCase.record.doublewords == testCase.words)
    }

    @Test func allEventTypesAreCovered() {
        let covered = Set(EventRecordTests.cases.compactMap(\.record.type))
        #expect(covered == Set(EventType.allCases))
    }

    @Test func instructionFlagIsZeroForWrites() {
        let record = EventRecord.translationFault(TranslationFault(type: .permission, streamID: 1, access: AccessAttributes(read: false, instruction: true), inputAddress: 0))
        #expect(record.access == AccessAttributes(read: false, instruction: false))
    }

    @Test func decodedFieldsMatchTheBuilderInputs() {
        let record = EventRecord.translationFault(TranslationFault(type: .permission, streamID: 0x42, substreamID: 7, access: .dataWrite, stage2: true, faultClass: .input, inputAddress: 0xABC, ipa: 0x5000, stall: true, stag: 9))
        #expect(record.type == .permission)
        #expect(record.streamID == 0x42)
        #expect(record.substreamID == 7)
        #expect(record.isStall && record.stag == 9)
        #expect(record.isStage2 && record.ipa == 0x5000 && record.faultClass == .input)
        #expect(record.description == "F_PERMISSION sid=0x42 ssid=0x7 W addr=0xabc S2 IN ipa=0x5000 STALL stag=0x9")
        #expect(EventRecord(dw0: 0xE3).description.hasPrefix("IMPDEF_EVENT_0xe3"))
        #expect(EventRecord(dw0: 0x30).description.hasPrefix("RESERVED_EVENT_0x30"))
        #expect(EventRecord(dw0: 0x10, dw1: 1 << 31).isStall)
        #expect(!EventRecord(dw0: 0x04, dw1: 1 << 31).isStall, "only the four translation faults carry Stall")
    }
}
