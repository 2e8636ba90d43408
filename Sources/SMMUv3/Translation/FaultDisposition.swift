import Platform
import SMMUv3Layout
import VMSA

extension SMMU {
    // MARK: Fault disposition

    /// Records, stalls or terminates a failed transaction as its configuration asks (§3.12,
    /// §5.5, §7.3).
    func dispose(_ failure: TranslationFailure, transaction: InboundTransaction, context: StreamContext, access: AccessAttributes) -> TransactionOutcome {
        let streamID = transaction.streamID
        let substreamID = transaction.substreamID
        func abort(_ record: EventRecord) -> TransactionOutcome {
            recordEvent(record)
            return .aborted(record.type)
        }
        switch failure {
        case .silentAbort:
            return .aborted(nil)
        case .configuration(.badStreamID):
            guard Reg.CR2.recInvSID.isSet(cr2) else { return .aborted(nil) }
            return abort(.badStreamID(streamID: streamID, substreamID: substreamID))
        case .configuration(.steFetch(let address)):
            return abort(.steFetch(streamID: streamID, substreamID: substreamID, fetchAddress: address))
        case .configuration(.configurationConflict):
            return abort(.configurationConflict(streamID: streamID, substreamID: substreamID))
        case .configuration(.badSubstreamID(let reported)):
            return abort(.badSubstreamID(streamID: streamID, substreamID: reported))
        case .configuration(.cdFetch(let address)):
            return abort(.cdFetch(streamID: streamID, substreamID: substreamID, fetchAddress: address))
        case .configuration(.stage2(let fault)), .fault(let fault):
            return disposeFault(fault, transaction: transaction, context: context, access: access)
        case .badSTE:
            return abort(.badSTE(streamID: streamID, substreamID: substreamID))
        case .streamDisabled:
            return abort(.streamDisabled(streamID: streamID, substreamID: substreamID))
        case .badCD:
            return abort(.badCD(streamID: streamID, substreamID: substreamID))
        case .bypassAddressSize:
            return abort(.translationFault(TranslationFault(type: .addressSize, streamID: streamID, substreamID: substreamID, access: access, inputAddress: transaction.address)))
        }
    }

    private func disposeFault(_ fault: WalkFault, transaction: InboundTransaction, context: StreamContext, access: AccessAttributes) -> TransactionOutcome {
        let streamID = transaction.streamID
        let substreamID = transaction.substreamID
        let stage2 = fault.stage == .stage2
        switch fault.type {
        case .walkExternalAbort:
            let record = EventRecord.walkExternalAbort(streamID: streamID, substreamID: substreamID, access: access, stage2: stage2, faultClass: fault.faultClass, inputAddress: transaction.address, fetchAddress: fault.fetchAddress)
            recordEvent(record)
            return .aborted(.walkExternalAbort)
        case .tlbConflict:
            recordEvent(.tlbConflict(streamID: streamID, substreamID: substreamID, access: access, stage2: stage2, inputAddress: transaction.address, ipa: fault.ipa))
            return .aborted(.tlbConflict)
        default:
            break
        }
        // Stage 1 faults follow CD.S/R/A; stage 2 faults follow STE.S2S/S2R with A == 1.
        let stall: Bool, record: Bool, abortOnTerminate: Bool
        if stage2 {
            (stall, record, abortOnTerminate) = (context.stage2Stall, context.stage2Record, true)
        } else if context.hasCD {
            (stall, record, abortOnTerminate) = (context.stage1Stall, context.stage1Record, context.stage1Abort || configuration.terminateAlwaysAborts)
        } else {
            (stall, record, abortOnTerminate) = (false, true, true)
        }
        var description = TranslationFault(type: fault.type, streamID: streamID, substreamID: substreamID, access: access, stage2: stage2, faultClass: fault.faultClass, inputAddress: transaction.address, ipa: fault.ipa, translationTableRead: fault.translationTableRead)
        if stall && stalledTransactions.count < configuration.stallMax {
            let stag = allocateSTAG(streamID: streamID)
            description.stall = true
            description.stag = stag
            stalledTransactions.append(StalledTransaction(transaction: transaction, stag: stag))
            recordEvent(.translationFault(description))
            return .stalled(stag: stag)
        }
        if stall || record { recordEvent(.translationFault(description)) }
        let event: EventType? = (stall || record) ? fault.type : nil
        return abortOnTerminate || stall ? .aborted(event) : .terminatedRAZ(event)
    }
}
