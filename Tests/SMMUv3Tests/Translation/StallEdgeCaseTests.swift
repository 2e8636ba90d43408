import Testing
import Platform
import SMMUv3
import SMMUv3Host
import Scenario

/// Stall corners (§3.12, §5.5).
@Suite struct StallEdgeCaseTests {
    /// §5.5: with CD.S == 1 the stall is always recorded and CD.R is ignored.
    @Test func stallIsRecordedEvenWithCDRClear() {
        let t = TranslationRig()
        var cd = CDConfig(table0: t.table(), asid: 1)
        cd.stall = true
        cd.record = false
        t.stage1Stream(1, cd: cd)
        #expect(t.translate(1, 0x5000) == .stalled(stag: 0))
        #expect(t.events() == [StallTests.stallRecord(address: 0x5000, stag: 0)])
    }

    /// A stall-configured fault beyond STALL_MAX is terminated instead (§3.12 permits treating
    /// a stalling configuration as terminating): with an abort even when CD.A == 0, and
    /// recorded (Stall == 0) even when CD.R == 0, since S == 1 makes R effectively 1.
    @Test func stallBeyondSTALLMAXAbortsAndRecordsWhateverAAndRSay() {
        let t = TranslationRig { $0.stallMax = 1 }
        var cd = CDConfig(table0: t.table(), asid: 1)
        cd.stall = true
        cd.record = false
        cd.abort = false
        t.stage1Stream(1, cd: cd)
        #expect(t.translate(1, 0x5000) == .stalled(stag: 0))
        #expect(t.translate(1, 0x6000, .dataWrite) == .aborted(.translation), "not RAZ/WI")
        #expect(t.events() == [
            StallTests.stallRecord(address: 0x5000, stag: 0),
            .translationFault(TranslationFault(type: .translation, streamID: 1, access: .dataWrite, inputAddress: 0x6000)),
        ])
        #expect(t.smmu.stalled.count == 1)
    }
}
