import Testing
import Platform
import SMMUv3
import SMMUv3Host
import Scenario
import Endpoints

/// What an endpoint does when the SMMU calls back into it in the middle of its own work, or
/// when it outlives its root complex.
@Suite struct EndpointReentrancyTests {
    /// A doorbell that, the first time it rings after being armed, sends an ATC invalidation
    /// of everything through the command queue, and otherwise keeps an event-queue interrupt
    /// going (each ring consumes the queue and injects another event).
    final class InvalidatingDoorbell: MMIODevice {
        weak var system: SMMUSystem?
        var armed = false
        var invalidationsSent = 0

        override func mmioWrite(offset: UInt64, value: UInt64, size: Int) {
            guard let system else { return }
            let smmu = system.smmu
            smmu.mmioWrite(offset: SMMURegister.eventqCons.offset, value: smmu.peek(.eventqProd) & 0xFFFFF, size: 4)
            if armed {
                armed = false
                invalidationsSent += 1
                try? system.host.write([Command.atcInv(streamID: 0x10, substreamID: nil, global: true, address: 0, size: 52).entry])
                return
            }
            smmu.recordEvent(.badSTE(streamID: 9))
        }
    }

    @Test func aTranslationInvalidatedWhileItsRequestIsInFlightIsUsedButNotCached() throws {
        let rig = try EndpointRig(ats: true)
        rig.table.map(0x10_0000, to: 0x5_0000)
        let doorbell = InvalidatingDoorbell()
        doorbell.system = rig.system
        try rig.system.bus.map(doorbell, at: 0x0A00_0000, size: 0x1000)
        let smmu = rig.system.smmu
        smmu.mmioWrite(offset: SMMURegister.irqCtrl.offset, value: 0, size: 4)
        smmu.mmioWrite(offset: SMMURegister.eventqIrqCfg0.offset, value: 0x0A00_0000, size: 8)
        smmu.mmioWrite(offset: SMMURegister.irqCtrl.offset, value: 1 << 2, size: 4)
        // Interrupts that feed themselves: one is left for the next operation to deliver.
        smmu.recordEvent(.badSTE(streamID: 9))
        #expect(smmu.undeliveredInterrupts == 1)
        doorbell.armed = true
        // The Translation Request delivers it on completion: the invalidation arrives while
        // the request is in flight.
        let write = rig.function.write(0x10_0010, bytes: [7], pasid: 1)
        #expect(doorbell.invalidationsSent == 1)
        #expect(rig.function.state(of: write) == .completed)
        #expect(rig.system.bus.memory.read8(at: 0x5_0010) == 7)
        #expect(rig.function.atcEntryCount == 0, "the translation the invalidation may cover is not cached")
        #expect(rig.function.atc[1]?[0x10_0000] == nil)
        // Without an invalidation in flight, the next request is cached as usual.
        _ = rig.function.write(0x10_0020, bytes: [8], pasid: 1)
        #expect(rig.function.atcEntryCount == 1)
    }

    @Test func aFunctionWithoutItsRootComplexFailsItsDMAInsteadOfLeavingItPending() throws {
        var function: PCIeFunction?
        do {
            let rig = try EndpointRig()
            function = rig.function
        }
        guard let function else {
            Issue.record("the function is gone")
            return
        }
        let read = function.read(0x10_0000, length: 8, pasid: 1)
        #expect(function.state(of: read) == .failed(.aborted(nil)))
        for _ in 0..<(PCIeFunction.finishedOperationsKept + 5) { _ = function.read(0x10_0000, length: 8) }
        #expect(function.rememberedOperations == PCIeFunction.finishedOperationsKept, "finished, so forgotten in turn")
    }

    @Test func stoppingAPASIDTwiceFinishesItsStaleOperationsOnce() throws {
        let rig = try EndpointRig(ats: true, pri: true)
        let waiting = rig.function.read(0x30_0000, length: 8, pasid: 1)
        guard case .waitingForPageRequest = rig.function.state(of: waiting) else {
            Issue.record("no page request: \(String(describing: rig.function.state(of: waiting)))")
            return
        }
        rig.function.stopPASID(1, mode: .markStaleAndSendStopMarker)
        rig.function.stopPASID(1, mode: .markStaleAndSendStopMarker)
        #expect(rig.function.state(of: waiting) == .failed(.staleAfterStop))
        // Finished once, it is forgotten only after finishedOperationsKept newer ones.
        rig.table.map(0x10_0000, to: 0x5_0000)
        for _ in 0..<(PCIeFunction.finishedOperationsKept - 1) { _ = rig.function.read(0x10_0000, length: 8, pasid: 2) }
        #expect(rig.function.state(of: waiting) == .failed(.staleAfterStop))
    }

    @Test func aPRGResponseArrivingWhileAResumedDMARunsWaitsInTheInbox() throws {
        // ATS is off while the DMA stalls and on when it is resumed; the rest of the DMA then
        // asks for a page into a full PRI queue, whose automatic response arrives at once.
        let rig = try EndpointRig(ats: true, pri: true, stall: true, priQueueLog2: 0)
        rig.function.atsEnabled = false
        let write = rig.function.write(0x30_0FF0, bytes: [UInt8](repeating: 0xAB, count: 32), pasid: 1)
        guard case .stalled(let stag) = rig.function.state(of: write) else {
            Issue.record("not stalled: \(String(describing: rig.function.state(of: write)))")
            return
        }
        rig.table.map(0x30_0000, to: 0x6_0000)
        // Fill the one-entry PRI queue.
        rig.function.atsEnabled = true
        _ = rig.function.read(0x40_0000, length: 8, pasid: 2)
        #expect(rig.function.pendingResponses == 0)
        let discardedBefore = rig.system.smmu.statistics.priMessagesDiscarded
        try rig.submit([.resume(streamID: 0x10, stag: stag, action: .retry)])
        #expect(rig.system.smmu.statistics.priMessagesDiscarded - discardedBefore == 1, "one page request, not retried re-entrantly")
        #expect(rig.system.bus.memory.read8(at: 0x6_0FF0) == 0xAB, "the stalled chunk was written")
        #expect(rig.function.pendingResponses == 1, "the automatic response waits")
        guard case .waitingForPageRequest = rig.function.state(of: write) else {
            Issue.record("the rest of the DMA does not wait for its page: \(String(describing: rig.function.state(of: write)))")
            return
        }
    }
}
