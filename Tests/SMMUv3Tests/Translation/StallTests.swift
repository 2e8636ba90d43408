import Testing
import Platform
import SMMUv3
import SMMUv3Host
import Scenario

/// Collects stall resolutions.
final class Resolutions {
    var list: [(InboundTransaction, TransactionOutcome)] = []
}

/// The stall model (§3.12, §4.7.1, §4.7.2).
@Suite struct StallTests {
    func stallingRig(_ configure: (inout SMMUConfiguration) -> Void = { _ in }, eventQueueLog2: Int = 6) -> (TranslationRig, PageTableBuilder, Resolutions) {
        let t = TranslationRig(configure, eventQueueLog2: eventQueueLog2)
        let pt = t.table()
        var cd = CDConfig(table0: pt, asid: 1)
        cd.stall = true
        t.stage1Stream(1, cd: cd)
        t.stage1Stream(2, cd: cd)
        let resolutions = Resolutions()
        t.smmu.onStallResolved { resolutions.list.append(($0, $1)) }
        return (t, pt, resolutions)
    }

    static func stallRecord(sid: UInt32 = 1, address: UInt64, stag: UInt16, access: AccessAttributes = .dataRead) -> EventRecord {
        .translationFault(TranslationFault(type: .translation, streamID: sid, access: access, inputAddress: address, stall: true, stag: stag))
    }

    @Test func faultWithCDSStallsAndRecordsStallWithASTAG() {
        let (t, _, _) = stallingRig()
        #expect(t.translate(1, 0x5000) == .stalled(stag: 0))
        #expect(t.translate(1, 0x6000) == .stalled(stag: 1), "STAGs are unique among stalled transactions")
        #expect(t.events() == [StallTests.stallRecord(address: 0x5000, stag: 0), StallTests.stallRecord(address: 0x6000, stag: 1)])
        #expect(t.smmu.stalled.map(\.stag) == [0, 1])
    }

    @Test func resumeRetryRetranslatesTheTransaction() {
        let (t, pt, resolutions) = stallingRig()
        guard case .stalled(let stag) = t.translate(1, 0x5008) else { Issue.record("not stalled"); return }
        pt.map(0x5000, to: 0x77000)
        t.invalidate([.resume(streamID: 1, stag: stag, action: .retry)])
        #expect(resolutions.list.map(\.1) == [.translated(physicalAddress: 0x77008)])
        #expect(t.smmu.stalled.isEmpty)
    }

    @Test func retryThatFaultsAgainStallsAgainWithANewRecord() {
        let (t, _, resolutions) = stallingRig()
        _ = t.translate(1, 0x5000)
        _ = t.events()
        t.invalidate([.resume(streamID: 1, stag: 0, action: .retry)])
        #expect(resolutions.list.map(\.1) == [.stalled(stag: 1)])
        #expect(t.events() == [StallTests.stallRecord(address: 0x5000, stag: 1)])
    }

    @Test(arguments: [(ResumeAction.abort, TransactionOutcome.aborted(nil)), (.terminate, .terminatedRAZ(nil))])
    func resumeTerminatesAsAsked(_ action: ResumeAction, _ outcome: TransactionOutcome) {
        let (t, _, resolutions) = stallingRig()
        _ = t.translate(1, 0x5000)
        t.invalidate([.resume(streamID: 1, stag: 0, action: action)])
        #expect(resolutions.list.map(\.1) == [outcome])
    }

    @Test func terminateModelOneAlwaysAborts() {
        let (t, _, resolutions) = stallingRig { $0.terminateAlwaysAborts = true }
        _ = t.translate(1, 0x5000)
        t.invalidate([.resume(streamID: 1, stag: 0, action: .terminate)])
        #expect(resolutions.list.map(\.1) == [.aborted(nil)])
    }

    @Test func resumeWithANonMatchingSTAGOrStreamDoesNothing() {
        let (t, _, resolutions) = stallingRig()
        t.smmu.commandProcessing = .stepped
        _ = t.translate(1, 0x5000)
        t.rig.push([Command.resume(streamID: 1, stag: 9, action: .retry), .resume(streamID: 2, stag: 0, action: .retry)], queue: t.host.layout.commandQueue, log2: t.host.layout.commandQueueLog2Size)
        let steps = t.smmu.runCommandQueue()
        #expect(steps.map(\.outcome) == [.consumed(.noEffect(.noStalledTransaction)), .consumed(.noEffect(.noStalledTransaction))])
        #expect(resolutions.list.isEmpty)
        #expect(t.smmu.stalled.count == 1)
    }

    @Test func stallTermAbortsEveryStallOfTheStream() {
        let (t, _, resolutions) = stallingRig()
        _ = t.translate(1, 0x5000)
        _ = t.translate(2, 0x5000)
        _ = t.translate(1, 0x6000)
        t.invalidate([.stallTerm(streamID: 1)])
        #expect(resolutions.list.map(\.0.address) == [0x5000, 0x6000])
        #expect(resolutions.list.allSatisfy { $0.1 == .aborted(nil) })
        #expect(t.smmu.stalled.map(\.streamID) == [2])
    }

    @Test func disablingTheSMMUAbortsAllStalls() {
        let (t, _, resolutions) = stallingRig()
        _ = t.translate(1, 0x5000)
        _ = t.translate(2, 0x5000)
        t.rig.write(.cr0, t.rig.read(.cr0) & ~1)
        // §6.3.9.6: SMMUEN 1 -> 0 marks every stalled transaction for abort.
        #expect(resolutions.list.map(\.0.streamID) == [1, 2])
        #expect(resolutions.list.map(\.1) == [.aborted(nil), .aborted(nil)], "aborted, never translated or RAZ")
        #expect(t.smmu.stalled.isEmpty)
    }

    @Test func stage2FaultsStallWithS2S() {
        let t = TranslationRig()
        let s2 = t.table(.stage2, inputBits: 40)
        t.stage2Stream(3, table: s2) { $0.stage2?.stall = true }
        #expect(t.translate(3, 0x9000, .dataWrite) == .stalled(stag: 0))
        #expect(t.events() == [.translationFault(TranslationFault(type: .translation, streamID: 3, access: .dataWrite, stage2: true, inputAddress: 0x9000, ipa: 0x9000, stall: true, stag: 0))])
    }

    @Test func stallRecordWaitsForRoomInAFullEventQueue() {
        let (t, _, _) = stallingRig(eventQueueLog2: 1)
        t.smmu.recordEvent(.badSTE(streamID: 8))
        t.smmu.recordEvent(.badSTE(streamID: 9))
        #expect(t.translate(1, 0x5000) == .stalled(stag: 0))
        #expect(t.smmu.pendingStallRecords.count == 1)
        #expect(!t.smmu.eventQueueOverflowActive)
        #expect(t.events().map(\.type) == [.badSTE, .badSTE], "the drain frees the queue")
        #expect(t.events() == [StallTests.stallRecord(address: 0x5000, stag: 0)])
    }

    @Test func stallsBeyondSTALLMAXAreTerminated() {
        let (t, _, _) = stallingRig { $0.stallMax = 1 }
        #expect(t.translate(1, 0x5000) == .stalled(stag: 0))
        #expect(t.translate(1, 0x6000) == .aborted(.translation))
        #expect(t.events() == [StallTests.stallRecord(address: 0x5000, stag: 0), .translationFault(TranslationFault(type: .translation, streamID: 1, access: .dataRead, inputAddress: 0x6000))])
    }

    /// §3.4, §3.12: an input beyond IAS on a stream that bypasses stage 1 is a stage-1
    /// F_ADDR_SIZE that is always terminated with an abort, even where the stream's
    /// configuration stalls every other Translation-related fault.
    @Test func bypassAddressSizeFaultNeverStalls() {
        let t = TranslationRig()
        let resolutions = Resolutions()
        t.smmu.onStallResolved { resolutions.list.append(($0, $1)) }
        // SID 3: stage 2 only (stage 1 bypassed) with STE.S2S == 1.
        let s2 = t.table(.stage2, inputBits: 40)
        t.stage2Stream(3, table: s2) { $0.stage2?.stall = true }
        // SID 4: stage 1 with CD.S == 1 for every CD, S1DSS bypassing stage 1 without a SubstreamID.
        var cd = CDConfig(table0: t.table(), asid: 1)
        cd.stall = true
        t.stage1Stream(4, cd: cd, cdMax: 1, ssids: [0, 1]) { $0.s1DSS = 0b01 }

        // The stall configuration is live: ordinary faults on both streams stall.
        #expect(t.translate(3, 1 << 44, .dataWrite) == .stalled(stag: 0), "IPA beyond S2T0SZ: stage-2 F_TRANSLATION")
        #expect(t.translate(4, 0x5000, ssid: 1) == .stalled(stag: 1), "stage-1 F_TRANSLATION with CD.S == 1")
        _ = t.events()

        #expect(t.translate(3, 1 << 50, .dataWrite) == .aborted(.addressSize))
        #expect(t.translate(4, 1 << 50) == .aborted(.addressSize))
        #expect(t.events() == [
            .translationFault(TranslationFault(type: .addressSize, streamID: 3, access: .dataWrite, inputAddress: 1 << 50)),
            .translationFault(TranslationFault(type: .addressSize, streamID: 4, access: .dataRead, inputAddress: 1 << 50)),
        ], "stage-1 faults with Stall == 0")
        #expect(t.smmu.stalled.map(\.stag) == [0, 1], "no new stall")
        #expect(resolutions.list.isEmpty)
    }
}

@Suite struct PageRequestHintTests {
    @Test func hintIsRecordedAsEPageRequest() {
        let t = TranslationRig()
        t.smmu.pageRequestHint(streamID: 4, substreamID: 2, address: 0x7000, span: 3, permissions: [.userRead, .userWrite])
        #expect(t.events() == [.pageRequest(streamID: 4, substreamID: 2, address: 0x7000, span: 3, permissions: [.userRead, .userWrite])])
        let disabled = Rig()
        #expect(disabled.smmu.pageRequestHint(streamID: 4, address: 0, span: 1, permissions: [.userRead]) == nil)
    }
}
