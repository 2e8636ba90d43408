import Testing
import Platform
@testable import SMMUv3
import SMMUv3Host
import Scenario

/// An MSI is an ordinary write that may land anywhere, the SMMU's own registers included:
/// every handler it can re-enter stays correct, and interrupts are delivered only when the
/// operation that raised them has finished its bookkeeping.
@Suite struct ReentrancyTests {
    static let base = Rig.smmuBase
    static let eventqEnable: UInt32 = 1 << 2
    static let smmuEnableAndCommands: UInt32 = (1 << 3) | 1

    /// A system whose stream 1 stalls on faults, with its event queue of 2^log2 entries
    /// disabled, and the event queue MSI aimed at `target` (an SMMU register) with `data`.
    func stallingSystem(eventQueueLog2: Int, msiTarget target: SMMURegister, data: UInt32) -> (TranslationRig, Resolutions) {
        let t = TranslationRig(eventQueueLog2: eventQueueLog2)
        var cd = CDConfig(table0: t.table(), asid: 1)
        cd.stall = true
        t.stage1Stream(1, cd: cd)
        let resolutions = Resolutions()
        t.smmu.onStallResolved { resolutions.list.append(($0, $1)) }
        t.rig.write(.cr0, ReentrancyTests.smmuEnableAndCommands | (t.rig.read(.cr0) & (1 << 4)))
        t.rig.write(.irqCtrl, 0)
        t.rig.write64(.eventqIrqCfg0, ReentrancyTests.base + target.offset)
        t.rig.write(.eventqIrqCfg1, data)
        t.rig.write(.irqCtrl, 1 << 2)
        return (t, resolutions)
    }

    @Test func eventQueueMSIOnEventqConsWhileFlushingHeldStallRecordsWritesEachRecordOnce() {
        let (t, _) = stallingSystem(eventQueueLog2: 1, msiTarget: .eventqCons, data: 0)
        #expect(t.translate(1, 0x5000) == .stalled(stag: 0))
        #expect(t.translate(1, 0x6000) == .stalled(stag: 1))
        #expect(t.smmu.pendingStallRecords.count == 2, "EVENTQEN == 0: both records are held")
        t.rig.write(.cr0, t.rig.read(.cr0) | ReentrancyTests.eventqEnable)
        // The first record makes the queue non-empty; its MSI writes CONS = 0 (already 0).
        // Both records fit the 2-entry queue and each is written exactly once, in order.
        #expect(t.smmu.pendingStallRecords.isEmpty)
        let queue = t.host.layout.eventQueue
        let first = EventRecord(dw0: t.memory.read64(at: queue), dw1: t.memory.read64(at: queue + 8), dw2: t.memory.read64(at: queue + 16))
        let second = EventRecord(dw0: t.memory.read64(at: queue + 32), dw1: t.memory.read64(at: queue + 40), dw2: t.memory.read64(at: queue + 48))
        #expect(first.stag == 0 && first.inputAddress == 0x5000)
        #expect(second.stag == 1 && second.inputAddress == 0x6000)
        #expect(t.rig.read(.eventqProd) & 3 == 2, "full: index 0, wrap 1")
        #expect(t.smmu.statistics.eventsWritten == 2)
    }

    @Test func eventQueueMSIThatFreesRoomLetsTheNextHeldRecordIn() {
        // One-entry queue; the MSI writes CONS = 1 (index 0, wrap 1): the entry is consumed,
        // so the second held record follows at once.
        let (t, _) = stallingSystem(eventQueueLog2: 0, msiTarget: .eventqCons, data: 1)
        _ = t.translate(1, 0x5000)
        _ = t.translate(1, 0x6000)
        t.rig.write(.cr0, t.rig.read(.cr0) | ReentrancyTests.eventqEnable)
        #expect(t.smmu.pendingStallRecords.isEmpty)
        #expect(t.smmu.statistics.eventsWritten == 2)
        let slot = EventRecord(dw0: t.memory.read64(at: t.host.layout.eventQueue), dw1: t.memory.read64(at: t.host.layout.eventQueue + 8))
        #expect(slot.stag == 1, "the second record overwrote the consumed slot")
    }

    @Test func heldStallRecordsLeaveWithTheirTransactionsWhenSMMUENIsCleared() {
        let (t, resolutions) = stallingSystem(eventQueueLog2: 2, msiTarget: .eventqCons, data: 0)
        _ = t.translate(1, 0x5000)
        _ = t.translate(1, 0x6000)
        #expect(t.smmu.pendingStallRecords.count == 2)
        t.rig.write(.cr0, 1 << 3)
        #expect(resolutions.list.map(\.1) == [.aborted(nil), .aborted(nil)])
        #expect(t.smmu.pendingStallRecords.isEmpty, "no stale STAG is reported later")
        t.rig.write(.cr0, (1 << 3) | ReentrancyTests.eventqEnable)
        t.rig.write(.cr0, (1 << 3) | ReentrancyTests.eventqEnable | 1)
        #expect(t.rig.read(.eventqProd) == 0, "nothing was written")
    }

    @Test func resumedTransactionTakesItsHeldRecordWithIt() {
        let (t, resolutions) = stallingSystem(eventQueueLog2: 2, msiTarget: .eventqCons, data: 0)
        _ = t.translate(1, 0x5000)
        _ = t.translate(1, 0x6000)
        t.invalidate([.resume(streamID: 1, stag: 0, action: .abort)])
        #expect(resolutions.list.map(\.1) == [.aborted(nil)])
        #expect(t.smmu.pendingStallRecords.map(\.stag) == [1])
    }

    @Test func stallEndedByItsOwnEventInterruptIsReturnedInsteadOfStalled() {
        // The event queue MSI lands on CR0 and clears SMMUEN: the stall this translation
        // raised is aborted before translate returns, so translate returns the abort and no
        // resolution callback reports a transaction its issuer never saw stalled.
        let t = TranslationRig()
        var cd = CDConfig(table0: t.table(), asid: 1)
        cd.stall = true
        t.stage1Stream(1, cd: cd)
        let resolutions = Resolutions()
        t.smmu.onStallResolved { resolutions.list.append(($0, $1)) }
        t.rig.write(.irqCtrl, 0)
        t.rig.write64(.eventqIrqCfg0, ReentrancyTests.base + SMMURegister.cr0.offset)
        t.rig.write(.eventqIrqCfg1, (1 << 3) | ReentrancyTests.eventqEnable)
        t.rig.write(.irqCtrl, 1 << 2)
        #expect(t.translate(1, 0x5000) == .aborted(nil))
        #expect(resolutions.list.isEmpty)
        #expect(t.smmu.stalled.isEmpty)
        #expect(!t.smmu.isEnabled)
    }

    @Test func gerrorMSIOnGERRORNAcknowledgesOnceThenTheErrorStaysActive() {
        // The GERROR MSI writes GERRORN = CMDQ_ERR. The first delivery acknowledges the error,
        // the queue restarts on the same ILLEGAL command and fails again; that error toggles
        // GERROR back, so the same write no longer acknowledges it, and the queue stays stopped.
        let t = TranslationRig()
        t.rig.write(.irqCtrl, 0)
        t.rig.write64(.gerrorIrqCfg0, ReentrancyTests.base + SMMURegister.gerrorn.offset)
        t.rig.write(.gerrorIrqCfg1, 1)
        t.rig.write(.irqCtrl, 1)
        let errorsBefore = t.smmu.statistics.commandErrors
        try? t.host.write([CommandEntry(dw0: 0xFF, dw1: 0)])
        #expect(t.smmu.statistics.commandErrors - errorsBefore == 2)
        #expect(t.rig.cmdqErrActive)
        #expect(t.smmu.undeliveredInterrupts == 0)
    }

    /// A doorbell whose handler consumes the event queue and injects another event: each
    /// delivered interrupt raises the next one.
    final class FeedbackDoorbell: MMIODevice {
        weak var smmu: SMMU?
        var rings = 0
        override func mmioWrite(offset: UInt64, value: UInt64, size: Int) {
            rings += 1
            guard let smmu else { return }
            smmu.mmioWrite(offset: SMMURegister.eventqCons.offset, value: smmu.peek(.eventqProd) & 0xFFFFF, size: 4)
            smmu.recordEvent(.badSTE(streamID: 9))
        }
    }

    /// A rig whose event-queue interrupt rings a ``FeedbackDoorbell``, with the loop started.
    static func feedbackLoop() throws -> (TranslationRig, FeedbackDoorbell) {
        let t = TranslationRig()
        let doorbell = FeedbackDoorbell()
        doorbell.smmu = t.smmu
        try t.system.bus.map(doorbell, at: 0x0A00_0000, size: 0x1000)
        t.rig.write(.irqCtrl, 0)
        t.rig.write64(.eventqIrqCfg0, 0x0A00_0000)
        t.rig.write(.irqCtrl, 1 << 2)
        t.smmu.recordEvent(.badSTE(streamID: 9))
        return (t, doorbell)
    }

    @Test func interruptsThatFeedThemselvesAreDeliveredInBoundedRoundsPerOperation() throws {
        let (t, doorbell) = try Self.feedbackLoop()
        #expect(doorbell.rings == SMMU.deliveryRoundLimit)
        #expect(t.smmu.undeliveredInterrupts == 1, "the rest waits for the next operation")
        _ = t.rig.read(.idr0)
        #expect(doorbell.rings == 2 * SMMU.deliveryRoundLimit)
    }

    @Test func aResetLosesInterruptsNotYetDelivered() throws {
        let (t, doorbell) = try Self.feedbackLoop()
        #expect(t.smmu.undeliveredInterrupts == 1)
        t.smmu.reset()
        #expect(t.smmu.undeliveredInterrupts == 0)
        _ = t.rig.read(.idr0)
        #expect(doorbell.rings == SMMU.deliveryRoundLimit, "nothing was delivered after the reset")
    }

    @Test func syncMSIOnCmdqProdOnlyMovesProd() {
        // A CMD_SYNC whose MSI writes CMDQ_PROD past a command already in the queue: the
        // running command processor picks the new PROD up and runs that command; nothing runs
        // twice and nothing traps.
        let t = TranslationRig()
        let prod = t.rig.read(.cmdqProd)
        let layout = t.host.layout
        let slots = UInt32(1) << UInt32(layout.commandQueueLog2Size)
        let next = Command.tlbiNSNHAll.entry
        let nextSlot = UInt64((prod + 1) & (slots - 1))
        t.memory.write64(next.dw0, at: layout.commandQueue + nextSlot * 16)
        t.memory.write64(next.dw1, at: layout.commandQueue + nextSlot * 16 + 8)
        let target = ReentrancyTests.base + SMMURegister.cmdqProd.offset
        let consumedBefore = t.smmu.statistics.commandsConsumed
        try? t.host.write([Command.sync(SyncParameters(completion: .irq, msiAddress: target, msiData: prod + 2)).entry])
        #expect(t.system.bus.interrupts.deliveredMSIs.contains { $0.address == target && $0.data == prod + 2 })
        #expect(t.smmu.statistics.commandsConsumed - consumedBefore == 2, "the CMD_SYNC and the command its MSI published")
        #expect(t.rig.read(.cmdqProd) == prod + 2)
        #expect(t.rig.read(.cmdqCons) == prod + 2)
        #expect(t.smmu.commandQueueStatus == .empty)
    }

    @Test func tableWalksIntoTheRegisterFrameAbortInsteadOfReadingRegisters() {
        let t = TranslationRig()
        var cd = CDConfig(table0: t.table(), asid: 1)
        cd.ttb0 = ReentrancyTests.base
        t.stage1Stream(1, cd: cd)
        // The first translation resolves the stream context on the full path; the second finds
        // it cached and walks on the lean miss path: both abort.
        for address: UInt64 in [0x5000, 0x6000] {
            guard case .aborted(.walkExternalAbort) = t.translate(1, address) else {
                Issue.record("a walk through the register frame gets an external abort")
                return
            }
        }
        #expect(t.smmu.statistics.eventsWritten >= 2, "each abort is reported")
    }
}
