import Testing
import Platform
import SMMUv3

@Suite struct EventQueueTests {
    static let base: UInt64 = 0x4020_0000

    static func fault(_ page: UInt64, stall: Bool = false, stag: UInt16 = 0) -> EventRecord {
        .translationFault(TranslationFault(type: .translation, streamID: 1, access: .dataRead, inputAddress: page << 12, stall: stall, stag: stag))
    }

    func readRecord(_ rig: Rig, slot: Int) -> EventRecord {
        let address = EventQueueTests.base + UInt64(slot) * 32
        return EventRecord(dw0: rig.bus.memory.read64(at: address), dw1: rig.bus.memory.read64(at: address + 8), dw2: rig.bus.memory.read64(at: address + 16), dw3: rig.bus.memory.read64(at: address + 24))
    }

    @Test func recordsAreWrittenInOrderThenPRODMoves() {
        let rig = Rig()
        rig.startEventQueue(log2: 2)
        #expect(rig.smmu.recordEvent(EventQueueTests.fault(1)) == .written(index: 0))
        #expect(rig.smmu.recordEvent(EventQueueTests.fault(2)) == .written(index: 1))
        #expect(rig.read(.eventqProd) == 2)
        #expect(readRecord(rig, slot: 0) == EventQueueTests.fault(1))
        #expect(readRecord(rig, slot: 1) == EventQueueTests.fault(2))
    }

    @Test func interruptFiresOnEmptyToNonEmptyOnly() {
        let rig = Rig()
        rig.startEventQueue(log2: 3)
        rig.write64(.eventqIrqCfg0, 0x4040_0004)
        rig.write(.eventqIrqCfg1, 0xE1)
        rig.write(.irqCtrl, 1 << 2)
        var prodAtMSI: UInt64?
        rig.bus.interrupts.onMSI = { [weak smmu = rig.smmu] _, _ in prodAtMSI = smmu?.peek(.eventqProd) }
        for page in 0..<3 { rig.smmu.recordEvent(EventQueueTests.fault(UInt64(page))) }
        #expect(rig.bus.interrupts.deliveredMSICount == 1)
        #expect(prodAtMSI == 1, "the interrupt follows the PROD update (§3.5.2)")
        #expect(rig.memory32(0x4040_0004) == 0xE1)
        #expect(rig.bus.interrupts.pulses(on: 64) == 1)
        rig.write(.eventqCons, 3)
        rig.smmu.recordEvent(EventQueueTests.fault(9))
        #expect(rig.bus.interrupts.deliveredMSICount == 2)
    }

    @Test func noInterruptWithoutTheEnable() {
        let rig = Rig()
        rig.startEventQueue()
        rig.smmu.recordEvent(EventQueueTests.fault(1))
        #expect(rig.bus.interrupts.records.isEmpty)
        #expect(rig.read(.eventqProd) == 1)
    }

    /// §7.4: a record that does not fit is discarded and toggles OVFLG once; further overflows
    /// are not signalled until acknowledged; unlike the PRI queue, freed space is used even
    /// while the overflow is unacknowledged.
    @Test(arguments: [0, 1, 3, 5])
    func overflowTogglesOVFLGOnceAndIsAcknowledgedThroughCONS(_ log2: Int) {
        let rig = Rig()
        rig.startEventQueue(log2: log2)
        let size = 1 << log2
        for page in 0..<size { #expect(rig.smmu.recordEvent(EventQueueTests.fault(UInt64(page))) == .written(index: UInt32(page))) }
        let fullProd = UInt32(size)
        #expect(rig.read(.eventqProd) == fullProd)
        #expect(rig.smmu.recordEvent(EventQueueTests.fault(100)) == .discardedQueueFull)
        #expect(rig.read(.eventqProd) == fullProd | 0x8000_0000)
        #expect(rig.smmu.recordEvent(EventQueueTests.fault(101)) == .discardedQueueFull)
        #expect(rig.read(.eventqProd) == fullProd | 0x8000_0000, "a second overflow is not signalled")
        #expect(rig.smmu.statistics.eventQueueOverflows == 1)

        // Consume one entry without acknowledging: the next record still gets written.
        rig.write(.eventqCons, 1)
        #expect(rig.smmu.recordEvent(EventQueueTests.fault(102)) == .written(index: fullProd), "slot 0 again, wrap flag set")
        #expect(rig.smmu.eventQueueOverflowActive)

        // Consume everything and acknowledge (OVACKFLG = OVFLG).
        let prod = rig.read(.eventqProd)
        rig.write(.eventqCons, prod)
        #expect(!rig.smmu.eventQueueOverflowActive)
        for page in 0..<size { rig.smmu.recordEvent(EventQueueTests.fault(UInt64(200 + page))) }
        rig.smmu.recordEvent(EventQueueTests.fault(300))
        #expect(rig.read(.eventqProd) & 0x8000_0000 == 0, "the next overflow toggles OVFLG back")
        #expect(rig.smmu.statistics.eventQueueOverflows == 2)
    }

    @Test func disabledQueueDiscardsWithoutOverflow() {
        let rig = Rig()
        rig.write64(.eventqBase, EventQueueTests.base | 2)
        #expect(rig.smmu.recordEvent(EventQueueTests.fault(1)) == .discardedQueueDisabled)
        #expect(rig.read(.eventqProd) == 0)
        #expect(rig.smmu.statistics.eventsDiscarded == 1)
    }

    @Test func writeAbortRaisesEVENTQAbtErrAndBlocksTheQueueUntilAcknowledged() {
        let rig = Rig()
        rig.startEventQueue(log2: 2)
        rig.write(.irqCtrl, 1)
        let fault = rig.bus.faults.injectAbort(EventQueueTests.base...(EventQueueTests.base + 127), on: .write)
        #expect(rig.smmu.recordEvent(EventQueueTests.fault(1)) == .writeAborted)
        #expect(rig.read(.gerror) == 1 << 2)
        #expect(rig.read(.eventqProd) == 0, "synchronous abort: PROD does not move")
        #expect(rig.bus.interrupts.pulses(on: 67) == 1, "GERROR interrupt")
        rig.bus.faults.remove(fault)
        #expect(rig.smmu.recordEvent(EventQueueTests.fault(2)) == .discardedAbortError)
        rig.host.acknowledgeGlobalErrors()
        #expect(rig.smmu.recordEvent(EventQueueTests.fault(3)) == .written(index: 0))
    }

    @Test func abortedEventMSISetsMSIEventqAbtErr() {
        let rig = Rig()
        rig.startEventQueue()
        rig.write64(.eventqIrqCfg0, 0x6000)
        rig.write(.irqCtrl, (1 << 2) | 1)
        rig.bus.faults.injectAbort(0x6000...0x6003, on: .write)
        rig.smmu.recordEvent(EventQueueTests.fault(1))
        #expect(rig.read(.gerror) == 1 << 5)
        #expect(rig.read(.eventqProd) == 1, "the record itself is written")
    }

    @Test func stallRecordsAreHeldUntilTheQueueHasRoom() {
        let rig = Rig()
        rig.startEventQueue(log2: 1)
        rig.smmu.recordEvent(EventQueueTests.fault(1))
        rig.smmu.recordEvent(EventQueueTests.fault(2))
        let stallA = EventQueueTests.fault(3, stall: true, stag: 1)
        let stallB = EventQueueTests.fault(4, stall: true, stag: 2)
        #expect(rig.smmu.recordEvent(stallA) == .heldUntilWritable)
        #expect(rig.smmu.recordEvent(stallB) == .heldUntilWritable)
        #expect(!rig.smmu.eventQueueOverflowActive, "stall records never cause an overflow")
        rig.write(.eventqCons, 1)
        #expect(rig.smmu.pendingStallRecords == [stallB])
        #expect(readRecord(rig, slot: 0) == stallA)
        rig.write(.eventqCons, 3)
        #expect(rig.smmu.pendingStallRecords.isEmpty)
        #expect(readRecord(rig, slot: 1) == stallB)
    }

    @Test func stallRecordsWaitForTheQueueToBeEnabled() {
        let rig = Rig()
        rig.write64(.eventqBase, EventQueueTests.base | 2)
        let stall = EventQueueTests.fault(3, stall: true, stag: 5)
        #expect(rig.smmu.recordEvent(stall) == .heldUntilWritable)
        rig.write(.cr0, 1 << 2)
        #expect(rig.read(.eventqProd) == 1)
        #expect(readRecord(rig, slot: 0) == stall)
    }

    @Test func inconsistentPointersAreTreatedAsFull() {
        let rig = Rig()
        rig.write64(.eventqBase, EventQueueTests.base | 2)
        rig.write(.eventqProd, 0b110)
        rig.write(.cr0, 1 << 2)
        #expect(rig.smmu.recordEvent(EventQueueTests.fault(1)) == .discardedQueueFull)
        #expect(rig.smmu.diagnostics.last?.kind == .inconsistentQueue(.event))
    }

    @Test func baseIsAlignedDownToTheQueueSize() {
        let rig = Rig()
        rig.write64(.eventqBase, (EventQueueTests.base + 0x60) | 2)
        rig.write(.cr0, 1 << 2)
        rig.smmu.recordEvent(EventQueueTests.fault(1))
        #expect(readRecord(rig, slot: 0) == EventQueueTests.fault(1), "a 4-entry queue is 128-byte aligned")
    }
}
