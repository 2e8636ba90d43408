import Platform
import SMMUv3Layout
import VMSA

/// What happened to an event record offered to the event queue (§7.2, §7.4).
public enum EventQueueOutcome: Hashable, Sendable, CustomStringConvertible {
    /// Written at `index` (the PROD value before the write).
    case written(index: UInt32)
    /// A stall record that could not be written yet: it is kept and written when the queue
    /// becomes writable (stall records are never discarded, §7.2.1).
    case heldUntilWritable
    /// Discarded because the queue is full; this caused (or happened during) an overflow.
    case discardedQueueFull
    /// Discarded because EVENTQEN == 0 (not an overflow).
    case discardedQueueDisabled
    /// Discarded because EVENTQ_ABT_ERR is active.
    case discardedAbortError
    /// The write of the record got an external abort: EVENTQ_ABT_ERR activated and the
    /// record is lost (synchronous abort: PROD does not move, §7.2.2).
    case writeAborted
    /// A stall record that could not be written, offered when STALL_MAX records were already
    /// held: only records injected with ``SMMU/recordEvent(_:)`` can get here.
    case discardedTooManyHeld

    public var description: String {
        switch self {
        case .written(let index): "written at \(index)"
        case .heldUntilWritable: "held until the queue is writable"
        case .discardedQueueFull: "discarded: queue full (overflow)"
        case .discardedQueueDisabled: "discarded: EVENTQEN == 0"
        case .discardedAbortError: "discarded: EVENTQ_ABT_ERR active"
        case .writeAborted: "lost: external abort writing the queue"
        case .discardedTooManyHeld: "discarded: STALL_MAX stall records already held"
        }
    }
}

extension SMMU {
    /// PROD.OVFLG / CONS.OVACKFLG (§3.5.1, §7.4, §8.1) as a mask of the 32-bit index.
    var overflowFlagMask: UInt32 { Reg.Queue.overflowFlag.mask32 }

    /// Whether the event queue overflow flags differ (an overflow not yet acknowledged).
    public var eventQueueOverflowActive: Bool { (eventq.prod ^ eventq.cons) & overflowFlagMask != 0 }

    // MARK: Event queue

    /// Offers an event record to the event queue, applying the full/overflow, disabled and
    /// abort rules (§7.2, §7.4) and raising the event queue interrupt on an empty to
    /// non-empty transition. Stall records (Stall == 1) are never discarded.
    ///
    /// A stall record that cannot be written is held (``pendingStallRecords``) while its
    /// transaction stays stalled. Records offered here directly that describe no stalled
    /// transaction are held too, up to STALL_MAX in all; beyond that they are discarded with
    /// a diagnostic (the architecture never has more stall records than stalls).
    @discardableResult
    public func recordEvent(_ record: EventRecord) -> EventQueueOutcome {
        beginOperation()
        defer { endOperation() }
        var outcome = writeEvent(record)
        switch outcome {
        case .written:
            statistics.eventsWritten &+= 1
        case .heldUntilWritable:
            if pendingStallRecords.count < max(configuration.stallMax, 1) {
                pendingStallRecords.append(record)
            } else {
                outcome = .discardedTooManyHeld
                statistics.eventsDiscarded &+= 1
                diagnose(.stallRecordDiscarded, "stall record discarded: \(pendingStallRecords.count) records are already held (STALL_MAX)")
            }
        case .discardedQueueFull, .discardedQueueDisabled, .discardedAbortError, .writeAborted, .discardedTooManyHeld:
            statistics.eventsDiscarded &+= 1
        }
        trace.record(.event, "\(names.evtq): \(record) -> \(outcome)")
        if !clientHandlers.event.isEmpty { deliverEvent(record, outcome) }
        return outcome
    }

    private func writeEvent(_ record: EventRecord) -> EventQueueOutcome {
        let stall = record.isStall
        guard Reg.CR0.eventqen.isSet(cr0Ack) else { return stall ? .heldUntilWritable : .discardedQueueDisabled }
        guard !errorActive(Reg.GERROR.eventqAbtErr) else { return stall ? .heldUntilWritable : .discardedAbortError }
        // An inconsistent PROD/CONS pair is treated as full (§3.5.1 permits this).
        if eventq.isFull || !eventq.isConsistent {
            if !eventq.isConsistent {
                diagnose(.inconsistentQueue(.event), "event queue PROD/CONS inconsistent: treated as full")
            }
            if stall { return .heldUntilWritable }
            if !eventQueueOverflowActive {
                eventq.prod ^= overflowFlagMask
                statistics.eventQueueOverflows &+= 1
                trace.record(.queue, "\(names.evtq): overflow, PROD.OVFLG -> \(eventq.prod >> 31)")
            }
            return .discardedQueueFull
        }
        let geometry = eventq.geometry
        let prod = eventq.prodPointer
        let address = eventq.slotAddress(prod)
        let written = withUnsafeBytes(of: (record.dw0.littleEndian, record.dw1.littleEndian, record.dw2.littleEndian, record.dw3.littleEndian)) {
            bus.dmaWrite(at: address, from: $0)
        }
        guard written else {
            raiseGlobalError(Reg.GERROR.eventqAbtErr)
            return .writeAborted
        }
        let wasEmpty = eventq.isEmpty
        eventq.prod = (eventq.prod & ~geometry.pointerMask) | geometry.increment(prod)
        trace.record(.queue, "\(names.evtq): PROD -> \(geometry.describe(eventq.prodPointer))")
        if wasEmpty { signalInterrupt(.eventQueue) }
        return .written(index: prod)
    }

    /// Writes held stall records while the queue is writable, oldest first. Not re-entered:
    /// a write that frees room while the flush runs is seen by its loop.
    func flushPendingStallRecords() {
        guard !flushingStallRecords else { return }
        flushingStallRecords = true
        defer { flushingStallRecords = false }
        while let record = pendingStallRecords.first {
            let outcome = writeEvent(record)
            if outcome == .heldUntilWritable { return }
            if !pendingStallRecords.isEmpty { pendingStallRecords.removeFirst() }
            if case .written = outcome { statistics.eventsWritten &+= 1 } else { statistics.eventsDiscarded &+= 1 }
            trace.record(.event, "\(names.evtq): held \(record) -> \(outcome)")
            if !clientHandlers.event.isEmpty { deliverEvent(record, outcome) }
        }
    }

    /// Forgets the held record of a stalled transaction that was just resolved: the record
    /// goes with the transaction it describes.
    func discardHeldStallRecord(streamID: UInt32, stag: UInt16) {
        guard !pendingStallRecords.isEmpty else { return }
        pendingStallRecords.removeAll { $0.streamID == streamID && $0.stag == stag }
    }

    /// EVENTQ_CONS write: never guarded (§6.3.96). Freeing space lets held stall records in.
    func writeEventQueueCons(_ value: UInt32) {
        let ackBefore = eventQueueOverflowActive
        eventq.cons = value & (eventq.geometry.pointerMask | overflowFlagMask)
        trace.record(.queue, "\(names.evtq): CONS <- \(eventq.geometry.describe(eventq.consPointer))\(ackBefore && !eventQueueOverflowActive ? " (overflow acknowledged)" : "")")
        if !pendingStallRecords.isEmpty { flushPendingStallRecords() }
    }
}
