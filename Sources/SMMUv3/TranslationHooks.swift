import Platform

/// The scope of a TLB invalidation command (§4.4).
enum TLBInvalidation {
    case nhAll(vmid: UInt16)
    case nhASID(vmid: UInt16, asid: UInt16)
    case nhVA(vmid: UInt16, asid: UInt16, address: UInt64, scope: TLBIScope)
    case nhVAA(vmid: UInt16, address: UInt64, scope: TLBIScope)
    case el2All
    case el2ASID(asid: UInt16)
    case el2VA(asid: UInt16, address: UInt64, scope: TLBIScope)
    case el2VAA(address: UInt64, scope: TLBIScope)
    case s12VMAll(vmid: UInt16)
    case s2IPA(vmid: UInt16, address: UInt64, scope: TLBIScope)
    case nsnhAll
}

extension SMMU {
    /// Removes cached STEs (and L1STDs, CDs) for `streamIDs`; returns how many.
    func invalidateConfiguration(streamIDs: ClosedRange<UInt32>, includeL1: Bool) -> Int { 0 }

    /// Removes cached CDs of `streamID` (one SubstreamID, or all when nil); returns how many.
    func invalidateContextDescriptors(streamID: UInt32, substreamID: UInt32?, includeL1: Bool) -> Int { 0 }

    /// Removes TLB entries in `scope`; returns how many.
    func invalidateTLB(_ scope: TLBInvalidation) -> Int { 0 }

    /// Sends an ATS Invalidate Request to the endpoints behind `streamID`.
    func sendATCInvalidation(streamID: UInt32, substreamID: UInt32?, global: Bool, address: UInt64, size: UInt8) -> CommandEffect {
        .noEffect(.noATSEndpoint)
    }

    /// Whether every ATC invalidation sent so far has completed.
    func atcInvalidationsComplete() -> Bool { true }

    /// CMD_RESUME's effect on a matching stalled transaction.
    func resumeStalledTransaction(streamID: UInt32, stag: UInt16, action: ResumeAction) -> CommandEffect {
        .noEffect(.noStalledTransaction)
    }

    /// CMD_STALL_TERM's effect on the stalled transactions of `streamID`.
    func terminateStalledTransactions(streamID: UInt32) -> CommandEffect {
        .noEffect(.noStalledTransaction)
    }

    /// STE.PPAR of a valid STE for `streamID`, or nil when the STE cannot be located or is
    /// invalid (§8.1, used when IDR3.PPS == 0).
    func streamTableEntryForPRIResponse(streamID: UInt32) -> Bool? { nil }
}
