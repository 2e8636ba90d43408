import Platform
import SMMUv3Layout

/// A registered handler (``SMMU/onPRGResponse(_:)`` and its siblings), to remove it with
/// ``SMMU/removeHandler(_:)``.
public struct SMMUHandlerRegistration: Hashable, Sendable {
    let id: Int
}

/// The handlers of what an SMMU sends towards the devices behind it: PRG Responses (§8.4),
/// ATS Invalidate Requests (§3.9.1.4) and the outcome of stalled transactions (§3.12.2). Any
/// number may be registered; none replaces another.
struct ClientHandlers {
    var nextID = 0
    var prgResponse: [(id: Int, handler: (PRGResponse) -> Void)] = []
    var atcInvalidation: [(id: Int, handler: (ATCInvalidation) -> ATCInvalidationResponse?)] = []
    var stallResolved: [(id: Int, handler: (InboundTransaction, TransactionOutcome) -> Void)] = []
    var event: [(id: Int, handler: (EventRecord, EventQueueOutcome) -> Void)] = []
    var command: [(id: Int, handler: (CommandStep) -> Void)] = []

    mutating func register() -> SMMUHandlerRegistration {
        nextID += 1
        return SMMUHandlerRegistration(id: nextID)
    }

    mutating func remove(_ registration: SMMUHandlerRegistration) {
        prgResponse.removeAll { $0.id == registration.id }
        atcInvalidation.removeAll { $0.id == registration.id }
        stallResolved.removeAll { $0.id == registration.id }
        event.removeAll { $0.id == registration.id }
        command.removeAll { $0.id == registration.id }
    }
}

extension SMMU {
    /// Calls `handler` with every PRG Response the SMMU sends to an endpoint (from CMD_PRI_RESP
    /// or generated automatically), after the handlers registered before it.
    @discardableResult
    public func onPRGResponse(_ handler: @escaping (PRGResponse) -> Void) -> SMMUHandlerRegistration {
        let registration = clientHandlers.register()
        clientHandlers.prgResponse.append((registration.id, handler))
        return registration
    }

    /// Offers every ATS Invalidate Request (CMD_ATC_INV, §3.9.1.4) to `handler` after the
    /// handlers registered before it, until one answers (returns non-nil): the endpoint behind
    /// the StreamID. With no answer CMD_ATC_INV has no effect.
    @discardableResult
    public func onATCInvalidation(_ handler: @escaping (ATCInvalidation) -> ATCInvalidationResponse?) -> SMMUHandlerRegistration {
        let registration = clientHandlers.register()
        clientHandlers.atcInvalidation.append((registration.id, handler))
        return registration
    }

    /// Calls `handler` when a stalled transaction is resolved by CMD_RESUME (retry, abort or
    /// terminate), CMD_STALL_TERM or SMMUEN being cleared, with its new outcome.
    @discardableResult
    public func onStallResolved(_ handler: @escaping (InboundTransaction, TransactionOutcome) -> Void) -> SMMUHandlerRegistration {
        let registration = clientHandlers.register()
        clientHandlers.stallResolved.append((registration.id, handler))
        return registration
    }

    /// Calls `handler` with every event record the SMMU produces and what became of it
    /// (written to the Event queue, held, or discarded, §7.2) — an observer for tools, such as
    /// fixture expectations; the driver sees only what reaches the queue.
    @discardableResult
    public func onEvent(_ handler: @escaping (EventRecord, EventQueueOutcome) -> Void) -> SMMUHandlerRegistration {
        let registration = clientHandlers.register()
        clientHandlers.event.append((registration.id, handler))
        return registration
    }

    /// Calls `handler` with every command the command processor consumes or stops on (§4, §7.1),
    /// after it took effect: the decoded command, its queue slot and its effect or error —
    /// an observer for steppers and tracers, whoever drives the queue.
    @discardableResult
    public func onCommand(_ handler: @escaping (CommandStep) -> Void) -> SMMUHandlerRegistration {
        let registration = clientHandlers.register()
        clientHandlers.command.append((registration.id, handler))
        return registration
    }

    /// Tells every command observer about a step.
    func deliverCommand(_ step: CommandStep) {
        for entry in clientHandlers.command { entry.handler(step) }
    }

    /// Tells every event observer about a record.
    func deliverEvent(_ record: EventRecord, _ outcome: EventQueueOutcome) {
        for entry in clientHandlers.event { entry.handler(record, outcome) }
    }

    /// Removes a handler; the others stay.
    public func removeHandler(_ registration: SMMUHandlerRegistration) {
        clientHandlers.remove(registration)
    }

    /// Sends a PRG Response to every PRG Response handler (a handler may register or remove
    /// handlers: the ones registered when the response was sent get it).
    func deliver(_ response: PRGResponse) {
        for entry in clientHandlers.prgResponse { entry.handler(response) }
    }

    /// The first answer to an ATS Invalidate Request, or nil when no handler answers.
    func deliver(_ request: ATCInvalidation) -> ATCInvalidationResponse? {
        for entry in clientHandlers.atcInvalidation {
            if let response = entry.handler(request) { return response }
        }
        return nil
    }

    /// Tells every stall handler how a stalled transaction ended.
    func deliverStallResolution(_ transaction: InboundTransaction, _ outcome: TransactionOutcome) {
        for entry in clientHandlers.stallResolved { entry.handler(transaction, outcome) }
    }
}
