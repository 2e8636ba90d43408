import Platform
import SMMUv3Layout
import VMSA

import SMMUv3Layout
import VMSA

/// What the SMMU did with a PRI message (§8).
public enum PRIMessageOutcome: Hashable, Sendable, CustomStringConvertible {
    /// Written to the PRI queue at `index` (the PROD value before the write).
    case queued(index: UInt32)
    /// Discarded without a response (L=0 during overflow, any Stop Marker not queued).
    case discarded
    /// Discarded and answered by the SMMU itself.
    case autoResponded(PRGResponse)
    /// The SMMU does not implement PRI (IDR0.PRI == 0): the message is not accepted.
    case unsupported

    public var description: String {
        switch self {
        case .queued(let index): "queued at \(index)"
        case .discarded: "discarded"
        case .autoResponded(let response): "auto-responded: \(response)"
        case .unsupported: "unsupported (no PRI)"
        }
    }
}

extension SMMU {
    /// Whether the PRI queue overflow condition is active (§8.1).
    public var priQueueOverflowActive: Bool { (priq.prod ^ priq.cons) & overflowFlagMask != 0 }

    // MARK: PRI queue

    /// Offers a PRI message (page request or Stop Marker) to the PRI queue (§8): queues it,
    /// or discards it with or without an automatic PRG Response, following the rules for a
    /// disabled queue, an active PRIQ_ABT_ERR, a full queue and an active overflow. PRG
    /// Responses generated here are also passed to ``onPRGResponse(_:)``.
    @discardableResult
    public func receivePageRequest(_ request: PageRequest) -> PRIMessageOutcome {
        beginOperation()
        defer { endOperation() }
        let outcome = acceptPageRequest(request)
        switch outcome {
        case .queued: statistics.priEntriesWritten &+= 1
        case .discarded, .autoResponded: statistics.priMessagesDiscarded &+= 1
        case .unsupported: break
        }
        trace.record(.pri, "\(names.priq): \(request) -> \(outcome)")
        if case .autoResponded(let response) = outcome { sendPRGResponse(response) }
        return outcome
    }

    private func acceptPageRequest(_ request: PageRequest) -> PRIMessageOutcome {
        guard configuration.pri else { return .unsupported }
        let failure = PRGResponse(streamID: request.streamID, substreamID: nil, prgIndex: request.prgIndex, code: .responseFailure, automatic: true)
        // §8.2: with the effective PRIQEN == 0 or PRIQ_ABT_ERR active nothing is written and
        // every PPR gets a Response Failure without PASID; Stop Markers get nothing.
        guard priQueueEffectivelyEnabled, !errorActive(Reg.GERROR.priqAbtErr) else {
            return request.isStopMarker ? .discarded : .autoResponded(failure)
        }
        if !priQueueOverflowActive && (priq.isFull || !priq.isConsistent) {
            if !priq.isConsistent {
                diagnose(.inconsistentQueue(.pri), "PRI queue PROD/CONS inconsistent: treated as full")
            }
            priq.prod ^= overflowFlagMask
            statistics.priQueueOverflows &+= 1
            trace.record(.queue, "\(names.priq): overflow, PROD.OVFLG -> \(priq.prod >> 31)")
        }
        if priQueueOverflowActive {
            // §8.1: everything is discarded while the overflow is active. A Last page
            // request gets an automatic response; L=0 requests and Stop Markers get none.
            // The LO interrupt still fires for a discarded L=1 message (§6.3.36).
            if request.last && Reg.IRQCfg.lo.isSet(priqIRQ.attributes) { signalInterrupt(.priQueue) }
            guard request.last && !request.isStopMarker else { return .discarded }
            return .autoResponded(overflowResponse(to: request))
        }
        let geometry = priq.geometry
        let prod = priq.prodPointer
        let entry = PRIQEntry(request)
        let written = withUnsafeBytes(of: (entry.dw0.littleEndian, entry.dw1.littleEndian)) {
            bus.dmaWrite(at: priq.slotAddress(prod), from: $0)
        }
        guard written else {
            // The model's PRI queue write aborts are synchronous: the PPR gets an automatic
            // Response Failure (§8.2); a Stop Marker gets nothing.
            raiseGlobalError(Reg.GERROR.priqAbtErr)
            return request.isStopMarker ? .discarded : .autoResponded(failure)
        }
        let wasEmpty = priq.isEmpty
        priq.prod = (priq.prod & ~geometry.pointerMask) | geometry.increment(prod)
        trace.record(.queue, "\(names.priq): PROD -> \(geometry.describe(priq.prodPointer))")
        let lastOnly = Reg.IRQCfg.lo.isSet(priqIRQ.attributes)
        if lastOnly ? request.last : wasEmpty { signalInterrupt(.priQueue) }
        return .queued(index: prod)
    }

    /// The automatic response to a Last page request discarded by an overflow (§8.1).
    private func overflowResponse(to request: PageRequest) -> PRGResponse {
        var response = PRGResponse(streamID: request.streamID, substreamID: nil, prgIndex: request.prgIndex, code: .success, automatic: true)
        guard let pasid = request.substreamID, substreamIDBits > 0 else { return response }
        if Reg.IDR3.pps.isSet(idr3) {
            response.substreamID = pasid
            return response
        }
        switch streamTableEntryForPRIResponse(streamID: request.streamID) {
        case .some(let ppar):
            response.substreamID = ppar ? pasid : nil
        case .none:
            response.code = .responseFailure
        }
        return response
    }

    /// PRIQ_CONS write: never guarded (§6.3.98). Writing OVACKFLG equal to OVFLG ends the
    /// overflow condition.
    func writePRIQueueCons(_ value: UInt32) {
        guard configuration.pri else { return }
        let wasActive = priQueueOverflowActive
        priq.cons = value & (priq.geometry.pointerMask | overflowFlagMask)
        trace.record(.queue, "\(names.priq): CONS <- \(priq.geometry.describe(priq.consPointer))\(wasActive && !priQueueOverflowActive ? " (overflow acknowledged)" : "")")
    }
}
