import Testing
import Platform
@testable import SMMUv3
import SMMUv3Host
import Scenario

/// ATS Translation Requests, Translated transactions and ATC invalidation (§3.9, §4.5.1).
@Suite struct ATSTranslationRequestTests {
    func atsRig(eats: UInt8 = 0b01, cd adjust: (inout CDConfig) -> Void = { _ in }, map: (PageTableBuilder) -> Void) -> TranslationRig {
        let t = TranslationRig()
        let pt = t.table()
        map(pt)
        var cd = CDConfig(table0: pt, asid: 1)
        adjust(&cd)
        t.stage1Stream(1, cd: cd, cdMax: 2, ssids: [0, 1]) { $0.eats = eats; $0.s1DSS = 0b10 }
        return t
    }

    @Test func readWritePageIsGrantedWithItsSize() {
        let t = atsRig { $0.map(0x20_0000, to: 0x80_0000, size: 0x20_0000) }
        let completion = t.smmu.translationRequest(ATSTranslationRequest(streamID: 1, address: 0x20_1234))
        #expect(completion == ATSTranslationCompletion(status: .success, translatedAddress: 0x80_0000, size: 0x20_0000, read: true, write: true, execute: false, privileged: false))
        #expect(t.events().isEmpty)
    }

    @Test func readOnlyPageIsGrantedReadOnly() {
        let t = atsRig { $0.map(0x1000, to: 0x5000, .readOnly) }
        let completion = t.smmu.translationRequest(ATSTranslationRequest(streamID: 1, address: 0x1000))
        #expect(completion.read && !completion.write)
    }

    @Test func translationFaultIsSuccessWithNoAccessAndNoEvent() {
        let t = atsRig { _ in }
        let completion = t.smmu.translationRequest(ATSTranslationRequest(streamID: 1, address: 0x1000))
        #expect(completion == ATSTranslationCompletion(status: .success, translatedAddress: 0, size: 0x1000, read: false, write: false, execute: false, privileged: false))
        #expect(t.events().isEmpty)
    }

    @Test func privilegedOnlyPageGivesNothingToAnUnprivilegedRequest() {
        let t = atsRig { pt in
            var attributes = MappingAttributes.readWrite
            attributes.unprivileged = false
            pt.map(0x1000, to: 0x5000, attributes)
        }
        // Both ask for execute. UXN == 0 leaves the page executable at EL0 (execute-only), but
        // §13.7.1 grants Exe only with R (TC.Exe = TR.Exe && ttd_RX): an XO page gives nothing.
        let unprivileged = t.smmu.translationRequest(ATSTranslationRequest(streamID: 1, substreamID: 1, address: 0x1000, execute: true))
        let privileged = t.smmu.translationRequest(ATSTranslationRequest(streamID: 1, substreamID: 1, address: 0x1000, execute: true, privileged: true))
        #expect(unprivileged.status == .success && unprivileged.size == 0x1000)
        #expect(!unprivileged.read && !unprivileged.write && !unprivileged.execute && !unprivileged.privileged)
        #expect(privileged.read && privileged.write && privileged.privileged)
        #expect(privileged.execute, "no EL0 access, so not implicitly PXN: executable at EL1 when requested")
    }

    @Test func writeRequestDirtiesAWritableCleanPageAndNoWriteDoesNot() {
        var table: PageTableBuilder?
        let t = atsRig(cd: { $0.hardwareAccessFlag = true; $0.hardwareDirty = true }) { pt in
            var attributes = MappingAttributes.readOnly
            attributes.dirtyBitModifier = true
            pt.map(0x1000, to: 0x5000, attributes)
            table = pt
        }
        let noWrite = t.smmu.translationRequest(ATSTranslationRequest(streamID: 1, address: 0x1000, noWrite: true))
        #expect(noWrite.read && !noWrite.write)
        #expect(table!.descriptor(for: 0x1000) & (1 << 7) != 0, "NW: not dirtied")
        let write = t.smmu.translationRequest(ATSTranslationRequest(streamID: 1, address: 0x1000))
        #expect(write.write)
        #expect(table!.descriptor(for: 0x1000) & (1 << 7) == 0, "dirtied")
    }

    @Test func atsDisabledInTheSTEIsURWithFBadATSTreq() {
        let t = atsRig(eats: 0b00) { $0.map(0x1000, to: 0x5000) }
        let completion = t.smmu.translationRequest(ATSTranslationRequest(streamID: 1, substreamID: 1, address: 0x1234, noWrite: true, span: 2))
        #expect(completion.status == .unsupportedRequest)
        #expect(t.events() == [.badATSTranslationRequest(streamID: 1, substreamID: 1, address: 0x1234, span: 2, read: true, write: false, execute: false, privileged: false)])
    }

    @Test func disabledSMMUAnswersURWithAnEvent() {
        let rig = Rig()
        rig.startEventQueue()
        let request = ATSTranslationRequest(streamID: 7, substreamID: 3, address: 0x1234_5678, noWrite: true, execute: true, privileged: true, span: 4)
        #expect(rig.smmu.translationRequest(request) == ATSTranslationCompletion(status: .unsupportedRequest, translatedAddress: 0, size: 0, read: false, write: false, execute: false, privileged: false))
        // §3.9.1.2: SMMUEN == 0 gives UR and F_BAD_ATS_TREQ carrying the request's fields.
        #expect(rig.read(.eventqProd) == 1)
        let slot: UInt64 = 0x4020_0000
        let record = EventRecord(dw0: rig.bus.memory.read64(at: slot), dw1: rig.bus.memory.read64(at: slot + 8), dw2: rig.bus.memory.read64(at: slot + 16), dw3: rig.bus.memory.read64(at: slot + 24))
        #expect(record.type == .badATSTranslationRequest)
        #expect(record == .badATSTranslationRequest(streamID: 7, substreamID: 3, address: 0x1234_5000, span: 4, read: true, write: false, execute: true, privileged: true))
    }

    @Test func configurationErrorsAreCompleterAbortWithoutEvents() {
        let t = TranslationRig()
        t.invalidSTE(1)
        t.streams.set(2, STEConfig(config: .abort))
        #expect(t.smmu.translationRequest(ATSTranslationRequest(streamID: 1, address: 0)).status == .completerAbort, "V == 0")
        #expect(t.smmu.translationRequest(ATSTranslationRequest(streamID: 999, address: 0)).status == .completerAbort, "StreamID out of range")
        #expect(t.smmu.translationRequest(ATSTranslationRequest(streamID: 2, address: 0)).status == .unsupportedRequest, "Config 0b000: UR, silently")
        #expect(t.events().isEmpty)
    }
}

@Suite struct ATSTranslatedTrafficTests {
    func rig(eats: UInt8) -> TranslationRig {
        let t = TranslationRig()
        t.stage1Stream(1, cd: CDConfig(table0: t.table())) { $0.eats = eats }
        t.streams.set(2, STEConfig(config: .bypass))
        return t
    }

    func translated(_ sid: UInt32, _ address: UInt64) -> InboundTransaction {
        InboundTransaction(streamID: sid, address: address, access: .dataWrite, kind: .atsTranslated)
    }

    @Test func fullATSPassesTranslatedTraffic() {
        let t = rig(eats: 0b01)
        #expect(t.smmu.translate(translated(1, 0x1234_5000)) == .translated(physicalAddress: 0x1234_5000))
    }

    @Test func forbiddenTranslatedTrafficIsFTranslForbidden() {
        let t = rig(eats: 0b00)
        t.invalidSTE(7)
        #expect(t.smmu.translate(translated(1, 0x5000)) == .aborted(.translationForbidden))
        #expect(t.smmu.translate(translated(2, 0x5000)) == .aborted(.translationForbidden), "Config 0b100")
        #expect(t.smmu.translate(translated(7, 0x5000)) == .aborted(nil), "invalid STE: silent")
        #expect(t.events() == [
            .translationForbidden(streamID: 1, inputAddress: 0x5000, read: false),
            .translationForbidden(streamID: 2, inputAddress: 0x5000, read: false),
        ])
    }

    @Test func withoutATSCHKTranslatedTrafficIsNotChecked() {
        let t = rig(eats: 0b00)
        t.rig.write(.cr0, t.rig.read(.cr0) & ~(1 << 4))
        #expect(t.smmu.translate(translated(7, 0x5000)) == .translated(physicalAddress: 0x5000))
    }

    @Test func disabledSMMUForbidsTranslatedTraffic() {
        let rig = Rig()
        #expect(rig.smmu.translate(InboundTransaction(streamID: 1, address: 0, access: .dataRead, kind: .atsTranslated)) == .aborted(.translationForbidden))
    }
}

/// An endpoint ATC stand-in answering ATS invalidations as told.
final class ATCResponder {
    var received: [ATCInvalidation] = []
    var response: ATCInvalidationResponse = .completed
}

@Suite struct ATCInvalidationTests {
    func rig(_ response: ATCInvalidationResponse) -> (TranslationRig, ATCResponder) {
        let t = TranslationRig()
        let responder = ATCResponder()
        responder.response = response
        t.smmu.onATCInvalidation { request in
            responder.received.append(request)
            return responder.response
        }
        return (t, responder)
    }

    @Test func atcInvalidationReachesTheEndpointAlignedToItsSpan() throws {
        let (t, responder) = rig(.completed)
        try t.host.submit([.atcInv(streamID: 3, substreamID: 5, global: true, address: 0x12_3456_7000, size: 4), .sync(SyncParameters())])
        #expect(responder.received == [ATCInvalidation(streamID: 3, substreamID: 5, global: true, address: 0x12_3456_0000, size: 4)])
        #expect(responder.received.first?.spanBytes == 0x10000)
    }

    @Test(arguments: [ATCInvalidationResponse.completedAfter(ticks: 5_000_000), .noResponse])
    func syncFailsWithCERRORATCINVSYNCWhenACompletionDoesNotArrive(_ response: ATCInvalidationResponse) {
        let (t, responder) = rig(response)
        let cons = t.rig.read(.cmdqCons) & 0xFFFFF
        do {
            try t.host.submit([.atcInv(streamID: 3, substreamID: nil, global: false, address: 0, size: 52), .sync(SyncParameters(completion: .irq, msiAddress: 0x4050_0000, msiData: 1))])
            Issue.record("the CMD_SYNC should have failed")
        } catch {
            #expect(error == .commandError(.atcInvalidationSync, index: cons + 1))
        }
        #expect(t.rig.read(.cmdqCons) == (3 << 24) | (cons + 1), "CONS stays on the CMD_SYNC")
        #expect(t.rig.memory32(0x4050_0000) == 0, "no completion signal")
        responder.response = .completed
        t.host.acknowledgeGlobalErrors()
        #expect(t.rig.read(.cmdqCons) & 0xFFFFF == cons + 2, "the CMD_SYNC runs again and completes")
        #expect(t.rig.memory32(0x4050_0000) == 1)
    }

    @Test func timelyOrUnsupportedCompletionsLetTheSyncComplete() throws {
        let (t, responder) = rig(.completedAfter(ticks: 500))
        let cons = t.rig.read(.cmdqCons)
        try t.host.submit([.atcInv(streamID: 3, substreamID: nil, global: false, address: 0, size: 0), .sync(SyncParameters(completion: .irq, msiAddress: 0x4050_0000, msiData: 1))])
        #expect(t.rig.bus.clock.now == 500, "the SMMU waited for the completion")
        #expect(t.rig.read(.cmdqCons) == cons + 2, "both consumed, no error")
        #expect(t.rig.memory32(0x4050_0000) == 1, "the CMD_SYNC signalled completion")
        // §4.5.1: an Unsupported Request answer completes the invalidation without error.
        responder.response = .unsupportedRequest
        try t.host.submit([.atcInv(streamID: 3, substreamID: nil, global: false, address: 0, size: 0), .sync(SyncParameters(completion: .irq, msiAddress: 0x4050_0000, msiData: 2))])
        #expect(responder.received.count == 2)
        #expect(t.rig.read(.cmdqCons) == cons + 4, "CONS passed the CMD_SYNC: ERR stays CERROR_NONE")
        #expect(t.rig.read(.gerror) == t.rig.read(.gerrorn), "no CMDQ_ERR")
        #expect(t.rig.memory32(0x4050_0000) == 2)
        #expect(t.rig.bus.clock.now == 500, "a UR answer is immediate: no further wait")
        #expect(t.events().isEmpty)
    }

    @Test func atcInvalidationIsIgnoredWhileDisabledOrWithoutEndpoints() throws {
        // §4.5.1: CMD_ATC_INV is consumed and IGNORED while SMMUEN == 0.
        let rig = Rig()
        rig.smmu.commandProcessing = .stepped
        let responder = ATCResponder()
        rig.smmu.onATCInvalidation { responder.received.append($0); return .completed }
        rig.startCommandQueue()
        rig.push([Command.atcInv(streamID: 1, substreamID: nil, global: false, address: 0, size: 0)])
        #expect(rig.smmu.runCommandQueue().map(\.outcome) == [.consumed(.noEffect(.smmuDisabled))])
        #expect(responder.received.isEmpty, "SMMUEN == 0")
        #expect(rig.read(.cmdqCons) == 1)
        #expect(!rig.cmdqErrActive)

        // No ATS endpoint behind the StreamID: nothing to wait for, the CMD_SYNC completes.
        let t = TranslationRig()
        let cons = t.rig.read(.cmdqCons)
        let clock = t.rig.bus.clock.now
        try t.host.submit([.atcInv(streamID: 1, substreamID: nil, global: false, address: 0, size: 0), .sync(SyncParameters(completion: .irq, msiAddress: 0x4050_0000, msiData: 9))])
        #expect(t.rig.read(.cmdqCons) == cons + 2)
        #expect(!t.rig.cmdqErrActive)
        #expect(t.rig.memory32(0x4050_0000) == 9)
        #expect(t.rig.bus.clock.now == clock, "no completion was awaited")
        #expect(t.events().isEmpty)
    }
}
