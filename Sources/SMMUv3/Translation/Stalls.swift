import Platform
import SMMUv3Layout
import VMSA

extension SMMU {
    // MARK: Stalls (§3.12, §4.7.1, §4.7.2)

    /// The transactions stalled now, oldest first (StreamID, STAG, transaction).
    public var stalled: [(streamID: UInt32, stag: UInt16, transaction: InboundTransaction)] {
        stalledTransactions.map { ($0.transaction.streamID, $0.stag, $0.transaction) }
    }

    /// A STAG no stalled transaction uses (§3.12.2): the next in turn, skipping those in use.
    func allocateSTAG(streamID: UInt32) -> UInt16 {
        while true {
            let candidate = nextSTAG
            nextSTAG &+= 1
            if !stalledTransactions.contains(where: { $0.stag == candidate }) { return candidate }
        }
    }

    /// CMD_RESUME: resolves the stalled transaction matching StreamID and STAG; a retry
    /// re-translates it as if newly arrived.
    func resumeStalledTransaction(streamID: UInt32, stag: UInt16, action: ResumeAction) -> CommandEffect {
        guard let index = stalledTransactions.firstIndex(where: { $0.transaction.streamID == streamID && $0.stag == stag }) else {
            return .noEffect(.noStalledTransaction)
        }
        let stalled = stalledTransactions.remove(at: index)
        let outcome: TransactionOutcome
        switch action {
        case .retry: outcome = translate(stalled.transaction)
        case .abort: outcome = .aborted(nil)
        case .terminate: outcome = configuration.terminateAlwaysAborts ? .aborted(nil) : .terminatedRAZ(nil)
        }
        trace.record(.translation, "\(names.xlat): RESUME sid=\(hex(streamID)) stag=\(hex(stag)) \(action): \(stalled.transaction) \(outcome)")
        announceStallResolution(stalled, outcome)
        return .stallsResolved(count: 1)
    }

    /// CMD_STALL_TERM: every stalled transaction of `streamID` is aborted.
    func terminateStalledTransactions(streamID: UInt32) -> CommandEffect {
        let matching = stalledTransactions.filter { $0.transaction.streamID == streamID }
        guard !matching.isEmpty else { return .noEffect(.noStalledTransaction) }
        stalledTransactions.removeAll { $0.transaction.streamID == streamID }
        for stalled in matching { announceStallResolution(stalled, .aborted(nil)) }
        return .stallsResolved(count: matching.count)
    }

    /// SMMUEN 1 -> 0 (§6.3.9.6): all stalled transactions are aborted, and the stall records
    /// still held for them go too (as does any held record injected with ``recordEvent(_:)``).
    func abortAllStalledTransactions() {
        let all = stalledTransactions
        stalledTransactions.removeAll()
        for stalled in all { announceStallResolution(stalled, .aborted(nil)) }
        pendingStallRecords.removeAll()
    }
}
