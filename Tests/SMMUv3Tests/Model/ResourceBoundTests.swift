import Testing
import Platform
import SMMUv3

/// Records the SMMU keeps for a user are bounded.
@Suite struct ResourceBoundTests {
    @Test func diagnosticsAreABoundedRing() {
        let rig = Rig { $0.diagnosticsCapacity = 4 }
        for _ in 0..<10 { rig.write(.idr0, 1) }
        #expect(rig.smmu.diagnostics.count == 4)
        #expect(rig.smmu.droppedDiagnostics == 6)
    }

    @Test func injectedStallRecordsAreHeldUpToStallMax() {
        let rig = Rig { $0.stallMax = 2 }
        let record = EventRecord.translationFault(TranslationFault(type: .translation, streamID: 1, access: .dataRead, inputAddress: 0, stall: true, stag: 7))
        #expect(rig.smmu.recordEvent(record) == .heldUntilWritable)
        #expect(rig.smmu.recordEvent(record) == .heldUntilWritable)
        #expect(rig.smmu.recordEvent(record) == .discardedTooManyHeld)
        #expect(rig.smmu.pendingStallRecords.count == 2)
    }
}
