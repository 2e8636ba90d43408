/// What happened to a message-signalled interrupt write.
public enum MSIOutcome: Sendable, Hashable, CustomStringConvertible {
    /// The 32-bit write reached memory (or an MMIO doorbell).
    case delivered
    /// The write got an external abort (the sender must log it, e.g. GERROR.MSI_*_ABT_ERR).
    case aborted
    /// The write was silently lost (fault injection); the sender sees success.
    case dropped

    public var description: String {
        switch self {
        case .delivered: "delivered"
        case .aborted: "aborted"
        case .dropped: "dropped"
        }
    }
}

/// One interrupt as observed by the platform.
public struct InterruptRecord: Sendable, Hashable, CustomStringConvertible {
    /// The kind of notification.
    public enum Kind: Sendable, Hashable {
        /// A pulse on a wired (edge-triggered) interrupt line.
        case wired(line: Int)
        /// A 32-bit MSI write of `data` to `address`.
        case msi(address: UInt64, data: UInt32, outcome: MSIOutcome)
        /// A send-event (SEV) wake-up for processors waiting in WFE.
        case sendEvent
    }

    /// Virtual time of the notification.
    public let time: UInt64
    /// The name of the source, e.g. `"smmu.evtq"`.
    public let source: String
    /// What was signalled.
    public let kind: Kind

    public var description: String {
        switch kind {
        case .wired(let line): "\(source): wired line \(line) pulse"
        case .msi(let address, let data, let outcome): "\(source): MSI \(hex(data, digits: 8)) -> \(hex(address)) \(outcome)"
        case .sendEvent: "\(source): SEV"
        }
    }
}

/// The platform's interrupt fabric: edge-triggered wired lines, MSI bookkeeping and the
/// send-event (WFE wake-up) signal. Interrupts are effectively edge-triggered: there is no
/// pending state to clear, only a count of pulses per line and a log of recent notifications.
public final class InterruptController {
    /// Pulses received per wired line.
    public private(set) var pulseCounts: [Int: Int] = [:]
    /// MSIs delivered (not counting aborted or dropped ones).
    public private(set) var deliveredMSICount = 0
    /// Send-event wake-ups received.
    public private(set) var sendEventCount = 0
    private var log = BoundedLog<InterruptRecord>(capacity: InterruptController.defaultRecordCapacity)
    /// Called after a wired line pulses (the line number is passed).
    public var onWiredInterrupt: ((Int) -> Void)?
    /// Called after an MSI is delivered.
    public var onMSI: ((UInt64, UInt32) -> Void)?
    /// Called after a send-event wake-up (processors in WFE resume).
    public var onSendEvent: (() -> Void)?

    /// How many notifications ``records`` keeps by default.
    public static let defaultRecordCapacity = 4096

    private let trace: Trace

    /// Creates an interrupt controller that records into `trace`.
    public init(trace: Trace) {
        self.trace = trace
    }

    /// The most recent notifications, oldest first (at most ``recordCapacity``).
    public var records: [InterruptRecord] { log.elements }

    /// How many notifications ``records`` keeps (0: none; counts are kept either way); older
    /// ones are dropped and counted.
    public var recordCapacity: Int {
        get { log.capacity }
        set { log.resize(to: newValue) }
    }

    /// Notifications dropped from ``records`` to make room.
    public var droppedRecords: Int { log.dropped }

    /// The number of pulses seen on `line`.
    public func pulses(on line: Int) -> Int { pulseCounts[line, default: 0] }

    /// Pulses the wired line `line` on behalf of `source`.
    public func pulse(line: Int, source: String) {
        pulseCounts[line, default: 0] &+= 1
        log.append(InterruptRecord(time: trace.clock.now, source: source, kind: .wired(line: line)))
        trace.record(.interrupt, "\(source): wired line \(line) pulse")
        onWiredInterrupt?(line)
    }

    /// Sends a WFE wake-up event on behalf of `source`.
    public func sendEvent(source: String) {
        sendEventCount &+= 1
        log.append(InterruptRecord(time: trace.clock.now, source: source, kind: .sendEvent))
        trace.record(.interrupt, "\(source): SEV")
        onSendEvent?()
    }

    /// Records an MSI attempt (performed by ``Bus/deliverMSI(address:data:source:)``).
    func noteMSI(address: UInt64, data: UInt32, outcome: MSIOutcome, source: String) {
        if outcome == .delivered { deliveredMSICount &+= 1 }
        let record = InterruptRecord(time: trace.clock.now, source: source, kind: .msi(address: address, data: data, outcome: outcome))
        log.append(record)
        trace.record(.interrupt, record.description)
    }

    /// Tells ``onMSI`` that an MSI was delivered.
    func notifyMSI(address: UInt64, data: UInt32) {
        onMSI?(address, data)
    }

    /// The MSIs among ``records`` as `(address, data)` pairs, in order, delivered ones only.
    public var deliveredMSIs: [(address: UInt64, data: UInt32)] {
        records.compactMap {
            if case .msi(let address, let data, .delivered) = $0.kind { return (address, data) }
            return nil
        }
    }

    /// Forgets the recorded notifications and counts.
    public func reset() {
        pulseCounts = [:]
        deliveredMSICount = 0
        sendEventCount = 0
        log.removeAll()
    }
}
