import Testing
import Platform
import SMMUv3
import SMMUv3Host
import Scenario

@Suite struct PRIQueueTests {
    static let base: UInt64 = 0x4030_0000

    static func request(_ index: UInt16, last: Bool = true, pasid: UInt32? = 5) -> PageRequest {
        PageRequest(streamID: 0x10, substreamID: pasid, prgIndex: index, last: last, read: true, write: false, address: UInt64(index) << 12)
    }

    /// A rig with PRIQEN|SMMUEN, a 2^log2-entry PRI queue, responses collected.
    final class PRIRig {
        let rig: Rig
        var responses: [PRGResponse] = []
        init(log2: Int = 2, lastOnly: Bool = false, _ configure: (inout SMMUConfiguration) -> Void = { _ in }) {
            rig = Rig(configure)
            rig.smmu.onPRGResponse { [unowned self] in self.responses.append($0) }
            if lastOnly { rig.write(.priqIrqCfg2, 1 << 31) }
            rig.write64(.priqIrqCfg0, 0x4040_0008)
            rig.write(.priqIrqCfg1, 0x77)
            rig.write(.irqCtrl, (1 << 1) | 1)
            rig.startPRIQueue(log2: log2)
        }
        func entry(_ slot: Int) -> PRIQEntry {
            PRIQEntry(dw0: rig.bus.memory.read64(at: PRIQueueTests.base + UInt64(slot) * 16), dw1: rig.bus.memory.read64(at: PRIQueueTests.base + UInt64(slot) * 16 + 8))
        }
    }

    @Test func entryHasTheArchitectedLayout() {
        let full = PageRequest(streamID: 0x1234, substreamID: 5, prgIndex: 0x1AB, last: true, read: true, write: true, execute: true, privileged: true, address: 0xFFFF_F000_1234_5FFF)
        #expect(PRIQEntry(full) == PRIQEntry(dw0: 0xFC00_0005_0000_1234, dw1: 0xFFFF_F000_1234_51AB))
        let noPASID = PageRequest(streamID: 1, prgIndex: 2, last: false, read: false, write: true, execute: true, privileged: true, address: 0x3000)
        #expect(PRIQEntry(noPASID) == PRIQEntry(dw0: 0x2000_0000_0000_0001, dw1: 0x3002), "X and Priv are 0 without a PASID")
        #expect(PRIQEntry(full).request == PageRequest(streamID: 0x1234, substreamID: 5, prgIndex: 0x1AB, last: true, read: true, write: true, execute: true, privileged: true, address: 0xFFFF_F000_1234_5000))
    }

    @Test func requestsAreQueuedAndTheInterruptFollowsEmptyToNonEmpty() {
        let pri = PRIRig(log2: 3)
        #expect(pri.rig.smmu.receivePageRequest(PRIQueueTests.request(1, last: false)) == .queued(index: 0))
        #expect(pri.rig.smmu.receivePageRequest(PRIQueueTests.request(1)) == .queued(index: 1))
        #expect(pri.entry(0).request == PRIQueueTests.request(1, last: false))
        #expect(pri.rig.read(.priqProd) == 2)
        #expect(pri.rig.bus.interrupts.deliveredMSICount == 1)
        #expect(pri.rig.memory32(0x4040_0008) == 0x77)
        #expect(pri.responses.isEmpty)
    }

    @Test func lastOnlyInterruptFiresForEachLastMessage() {
        let pri = PRIRig(log2: 3, lastOnly: true)
        pri.rig.smmu.receivePageRequest(PRIQueueTests.request(1, last: false))
        #expect(pri.rig.bus.interrupts.deliveredMSICount == 0)
        pri.rig.smmu.receivePageRequest(PRIQueueTests.request(1))
        pri.rig.smmu.receivePageRequest(.stopMarker(streamID: 0x10, substreamID: 5))
        #expect(pri.rig.bus.interrupts.deliveredMSICount == 2)
        #expect(pri.entry(2).request.isStopMarker)
    }

    /// §8.1: while the overflow is active nothing is written; a Last request is answered
    /// automatically (Success, with the PASID since IDR3.PPS == 1), L=0 requests and Stop
    /// Markers are dropped without a response, and freeing space does not end the overflow.
    @Test func overflowDiscardsEverythingUntilAcknowledged() {
        let pri = PRIRig(log2: 1, lastOnly: true)
        let smmu = pri.rig.smmu
        #expect(smmu.receivePageRequest(PRIQueueTests.request(1)) == .queued(index: 0))
        #expect(smmu.receivePageRequest(PRIQueueTests.request(2)) == .queued(index: 1))
        #expect(smmu.receivePageRequest(PRIQueueTests.request(3, last: false)) == .discarded)
        #expect(pri.rig.read(.priqProd) == 0x8000_0002, "OVFLG toggled, PROD full")
        let auto = PRGResponse(streamID: 0x10, substreamID: 5, prgIndex: 3, code: .success, automatic: true)
        #expect(smmu.receivePageRequest(PRIQueueTests.request(3)) == .autoResponded(auto))
        #expect(smmu.receivePageRequest(.stopMarker(streamID: 0x10, substreamID: 5)) == .discarded)
        #expect(smmu.receivePageRequest(PRIQueueTests.request(4, pasid: nil)) == .autoResponded(PRGResponse(streamID: 0x10, substreamID: nil, prgIndex: 4, code: .success, automatic: true)))
        #expect(pri.responses.count == 2)
        #expect(pri.rig.bus.interrupts.deliveredMSICount == 2 + 3, "LO fires for the discarded L=1 messages too")

        // Consuming entries without acknowledging does not end the overflow.
        pri.rig.write(.priqCons, 2)
        #expect(smmu.receivePageRequest(PRIQueueTests.request(5, last: false)) == .discarded)
        #expect(pri.rig.read(.priqProd) == 0x8000_0002)

        // OVACKFLG = OVFLG ends it.
        pri.rig.write(.priqCons, 0x8000_0002)
        #expect(smmu.receivePageRequest(PRIQueueTests.request(6)) == .queued(index: 2))
        #expect(smmu.statistics.priQueueOverflows == 1)
    }

    @Test func overflowResponseHasNoPASIDWithoutPPSUnlessTheSTESaysSo() throws {
        // No stream table: the STE is invalid (STRTAB_BASE 0 holds zeros), so Response Failure
        // without PASID (§8.1).
        let pri = PRIRig(log2: 0) { $0.priPASIDOnOverflow = false }
        pri.rig.smmu.receivePageRequest(PRIQueueTests.request(1))
        let outcome = pri.rig.smmu.receivePageRequest(PRIQueueTests.request(2))
        #expect(outcome == .autoResponded(PRGResponse(streamID: 0x10, substreamID: nil, prgIndex: 2, code: .responseFailure, automatic: true)))

        // With valid STEs (IDR3.PPS == 0): Success, and the PASID only when STE.PPAR == 1.
        var configuration = SMMUConfiguration.default
        configuration.priPASIDOnOverflow = false
        let system = try SMMUSystem(configuration: configuration, priQueueLog2: 0)
        var responses: [PRGResponse] = []
        system.smmu.onPRGResponse { responses.append($0) }
        var withPPAR = STEConfig(config: .abort)
        withPPAR.ppar = true
        system.streams.set(0x10, withPPAR)
        system.streams.set(0x11, STEConfig(config: .abort))
        #expect(system.smmu.receivePageRequest(PRIQueueTests.request(1)) == .queued(index: 0))
        let ppar = PRGResponse(streamID: 0x10, substreamID: 5, prgIndex: 2, code: .success, automatic: true)
        #expect(system.smmu.receivePageRequest(PRIQueueTests.request(2)) == .autoResponded(ppar), "STE.PPAR == 1: PASID included")
        var noPPARRequest = PRIQueueTests.request(3)
        noPPARRequest.streamID = 0x11
        let noPPAR = PRGResponse(streamID: 0x11, substreamID: nil, prgIndex: 3, code: .success, automatic: true)
        #expect(system.smmu.receivePageRequest(noPPARRequest) == .autoResponded(noPPAR), "STE.PPAR == 0: no PASID")
        #expect(responses == [ppar, noPPAR], "the responses reach the endpoint")
    }

    @Test func disabledPRIQueueAnswersEveryRequestWithFailure() {
        let rig = Rig()
        var responses: [PRGResponse] = []
        rig.smmu.onPRGResponse { responses.append($0) }
        rig.write64(.priqBase, PRIQueueTests.base | 2)
        rig.write(.cr0, 1 << 1)
        let failure = PRGResponse(streamID: 0x10, substreamID: nil, prgIndex: 1, code: .responseFailure, automatic: true)
        #expect(rig.smmu.receivePageRequest(PRIQueueTests.request(1, last: false)) == .autoResponded(failure), "PRIQEN without SMMUEN is effectively 0")
        #expect(rig.smmu.receivePageRequest(.stopMarker(streamID: 0x10, substreamID: 5)) == .discarded)
        rig.write(.cr0, 1)
        #expect(rig.smmu.receivePageRequest(PRIQueueTests.request(1)) == .autoResponded(failure))
        #expect(responses.count == 2)
        #expect(rig.read(.priqProd) == 0)
    }

    @Test func priQueueGuardFollowsTheRawPRIQENBit() {
        // §6.3.9.5: clearing SMMUEN alone does not unlock PRIQ_BASE.
        let rig = Rig()
        rig.write(.cr0, (1 << 1) | 1)
        rig.write(.cr0, 1 << 1)
        rig.write64(.priqBase, PRIQueueTests.base | 2)
        #expect(rig.read64(.priqBase) == 0)
    }

    @Test func writeAbortRaisesPRIQAbtErrAndAnswersWithFailure() {
        let pri = PRIRig()
        let fault = pri.rig.bus.faults.injectAbort(PRIQueueTests.base...(PRIQueueTests.base + 63), on: .write)
        let failure = PRGResponse(streamID: 0x10, substreamID: nil, prgIndex: 1, code: .responseFailure, automatic: true)
        #expect(pri.rig.smmu.receivePageRequest(PRIQueueTests.request(1, last: false)) == .autoResponded(failure))
        #expect(pri.rig.read(.gerror) == 1 << 3)
        pri.rig.bus.faults.remove(fault)
        #expect(pri.rig.smmu.receivePageRequest(PRIQueueTests.request(2)) == .autoResponded(PRGResponse(streamID: 0x10, substreamID: nil, prgIndex: 2, code: .responseFailure, automatic: true)), "PRIQ_ABT_ERR active")
        #expect(pri.rig.smmu.receivePageRequest(.stopMarker(streamID: 0x10, substreamID: 5)) == .discarded)
        pri.rig.host.acknowledgeGlobalErrors()
        #expect(pri.rig.smmu.receivePageRequest(PRIQueueTests.request(3)) == .queued(index: 0))
    }

    @Test func smmuWithoutPRIDoesNotAcceptMessages() {
        let rig = Rig { $0.pri = false }
        #expect(rig.smmu.receivePageRequest(PRIQueueTests.request(1)) == .unsupported)
    }

    @Test func stopMarkerIsRecognised() {
        #expect(PageRequest.stopMarker(streamID: 1, substreamID: 2).isStopMarker)
        #expect(!PageRequest(streamID: 1, prgIndex: 0, last: true, read: false, write: false, address: 0).isStopMarker, "without a PASID it is a page request")
        #expect(!PRIQueueTests.request(1).isStopMarker)
    }
}
