import Platform
import SMMUv3Layout
import VMSA

/// Something the model noticed that a driver engineer wants to know about: a write it
/// ignored, an access the architecture leaves CONSTRAINED UNPREDICTABLE and how the model
/// resolved it, an inconsistent queue. Diagnostics never change behaviour; they explain it.
public struct SMMUDiagnostic: Hashable, Sendable, CustomStringConvertible {
    /// The kind of diagnostic.
    public enum Kind: Hashable, Sendable {
        /// A write to a register guarded by an enable that is set (or not yet acknowledged
        /// clear) was ignored (SMMUv3.2 behaviour).
        case guardedWriteIgnored(SMMURegister)
        /// A write to a read-only register was ignored.
        case readOnlyWriteIgnored(SMMURegister)
        /// An access of unsupported size or alignment was treated as RAZ/WI (§6.2).
        case illegalAccess(offset: UInt64, size: Int)
        /// A field was rewritten with a different value before its previous update was
        /// acknowledged; the new value was ignored for that field (§6.3.9).
        case updateInProgress(SMMURegister)
        /// GBPA written without Update == 1, or while an update was in progress: ignored.
        case gbpaWriteIgnored
        /// A queue's PROD/CONS pair is inconsistent (§3.5.1); the model stops consuming
        /// (command queue) or treats the queue as full (output queues).
        case inconsistentQueue(SMMUQueue)
        /// Checked mode: a cached STE, L1STD, CD or L1CD differs from memory (a change not
        /// followed by the CFGI command that should follow it).
        case staleConfiguration(streamID: UInt32)
        /// Checked mode: a TLB entry differs from what the translation tables now give (a
        /// change not followed by the TLBI command that should follow it).
        case staleTranslation(streamID: UInt32)
        /// GERRORN toggled a bit whose error was not active (§7.5: CONSTRAINED
        /// UNPREDICTABLE); the model stores it, so the bit reads as an active error.
        case inactiveErrorToggled(UInt32)
        /// A stall record offered with ``SMMU/recordEvent(_:)`` found STALL_MAX records already
        /// held and was discarded.
        case stallRecordDiscarded
    }

    /// Virtual time.
    public let time: UInt64
    /// What happened.
    public let kind: Kind
    /// A readable explanation.
    public let message: String

    public var description: String { message }
}

/// Counters kept by the model.
public struct SMMUStatistics: Hashable, Sendable {
    /// Commands consumed (CONS moved past them).
    public var commandsConsumed = 0
    /// Command queue errors raised (CERROR_*).
    public var commandErrors = 0
    /// Event records written to the event queue.
    public var eventsWritten = 0
    /// Event records discarded (queue disabled, full, or in error).
    public var eventsDiscarded = 0
    /// Event queue overflows signalled (OVFLG toggled).
    public var eventQueueOverflows = 0
    /// PRI queue entries written.
    public var priEntriesWritten = 0
    /// PRI messages discarded (with or without an automatic response).
    public var priMessagesDiscarded = 0
    /// PRI queue overflows signalled.
    public var priQueueOverflows = 0
    /// Interrupts signalled (wired pulses and MSIs, counted once per notification).
    public var interruptsSignalled = 0
}

/// One of the SMMU's three queues (§3.5).
public enum SMMUQueue: Sendable, Hashable, CustomStringConvertible {
    /// The command queue (§4).
    case command
    /// The event queue (§7).
    case event
    /// The PRI queue (§8).
    case pri

    public var description: String {
        switch self {
        case .command: "cmdq"
        case .event: "evtq"
        case .pri: "priq"
        }
    }
}
