/// The categories a ``Trace`` can record, each switchable on its own.
public struct TraceCategory: OptionSet, Sendable, Hashable, CustomStringConvertible {
    public let rawValue: UInt32
    @inlinable public init(rawValue: UInt32) { self.rawValue = rawValue }

    /// CPU accesses to memory-mapped registers.
    @inlinable public static var mmio: TraceCategory { TraceCategory(rawValue: 1 << 0) }
    /// Commands consumed from the command queue and what they did.
    @inlinable public static var command: TraceCategory { TraceCategory(rawValue: 1 << 1) }
    /// Event records produced (or discarded).
    @inlinable public static var event: TraceCategory { TraceCategory(rawValue: 1 << 2) }
    /// Queue pointer moves (PROD/CONS, wrap, overflow flags).
    @inlinable public static var queue: TraceCategory { TraceCategory(rawValue: 1 << 3) }
    /// Wired interrupt pulses, MSIs and SEV wake-ups.
    @inlinable public static var interrupt: TraceCategory { TraceCategory(rawValue: 1 << 4) }
    /// Global errors (GERROR activation and acknowledge).
    @inlinable public static var error: TraceCategory { TraceCategory(rawValue: 1 << 5) }
    /// PRI messages and responses.
    @inlinable public static var pri: TraceCategory { TraceCategory(rawValue: 1 << 6) }
    /// Device (DMA) accesses to memory. Verbose; off in ``TraceCategory/standard``.
    @inlinable public static var dma: TraceCategory { TraceCategory(rawValue: 1 << 7) }
    /// Model diagnostics: ignored guarded writes, CONSTRAINED UNPREDICTABLE choices taken,
    /// inconsistent queue states.
    @inlinable public static var diagnostic: TraceCategory { TraceCategory(rawValue: 1 << 8) }
    /// Control register handshakes (CR0/CR0ACK, IRQ_CTRL/ACK, GBPA.Update).
    @inlinable public static var control: TraceCategory { TraceCategory(rawValue: 1 << 9) }
    /// Translation of inbound transactions.
    @inlinable public static var translation: TraceCategory { TraceCategory(rawValue: 1 << 10) }

    /// Driver function entries (the kernel's ftrace function tracer): which kernel context
    /// entered which driver function. Verbose; off in ``TraceCategory/standard``.
    @inlinable public static var function: TraceCategory { TraceCategory(rawValue: 1 << 11) }

    /// Every category.
    public static let all = TraceCategory(rawValue: (1 << 12) - 1)
    /// Every category except ``dma``, ``translation`` and ``function``.
    public static let standard: TraceCategory = all.subtracting([.dma, .translation, .function])

    /// The categories with their short names, in the order they are printed.
    public static let named: [(TraceCategory, String)] = [
        (.mmio, "mmio"), (.command, "cmd"), (.event, "evt"), (.queue, "queue"),
        (.interrupt, "irq"), (.error, "gerror"), (.pri, "pri"), (.dma, "dma"),
        (.diagnostic, "diag"), (.control, "ctrl"), (.translation, "xlat"), (.function, "func"),
    ]

    /// The short name of a single category (or a `+`-joined list).
    public var description: String {
        TraceCategory.named.filter { contains($0.0) }.map(\.1).joined(separator: "+")
    }

    /// Parses a comma-separated list of short names (`mmio,cmd`), `all` or `standard`.
    public init?(names: String) {
        var result: TraceCategory = []
        for raw in names.split(separator: ",") {
            let name = String(raw.filter { !$0.isWhitespace })
            switch name {
            case "all": result.formUnion(.all)
            case "standard": result.formUnion(.standard)
            case "none", "": continue
            default:
                guard let match = TraceCategory.named.first(where: { $0.1 == name }) else { return nil }
                result.formUnion(match.0)
            }
        }
        self = result
    }
}

/// One line of the trace.
public struct TraceLine: Sendable, Hashable, CustomStringConvertible {
    /// Position of the line in the trace, starting at 0.
    public let sequence: UInt64
    /// The virtual time at which the line was recorded.
    public let time: UInt64
    /// The category that produced it.
    public let category: TraceCategory
    /// The human-readable text.
    public let text: String

    /// `[seq] category text`, fixed-width so traces diff cleanly.
    public var description: String {
        let seq = String(sequence)
        let padded = String(repeating: "0", count: max(0, 6 - seq.count)) + seq
        let name = category.description
        return "[\(padded)] \(name)\(String(repeating: " ", count: max(0, 7 - name.count))) \(text)"
    }
}

/// A deterministic trace: every register access, command, event, queue pointer move and
/// interrupt as one readable line. The same inputs produce a byte-identical trace.
///
/// Recording costs one bit test when a category is off: messages are built only for
/// enabled categories.
public final class Trace {
    /// The categories being recorded. Empty by default (fastest).
    @exclusivity(unchecked) public var enabled: TraceCategory
    /// Called with every recorded line (for example to print it as it happens).
    public var sink: ((TraceLine) -> Void)?
    private var kept = BoundedLog<TraceLine>(capacity: Trace.defaultLineCapacity)
    /// How many lines ``lines`` keeps by default.
    public static let defaultLineCapacity = 65536
    /// The source of the virtual time stamped on each line.
    public let clock: VirtualClock
    private var nextSequence: UInt64 = 0

    /// Creates a trace recording `enabled` categories.
    public init(enabled: TraceCategory = [], clock: VirtualClock = VirtualClock()) {
        self.enabled = enabled
        self.clock = clock
    }

    /// Whether `category` is being recorded.
    @inlinable
    public func isEnabled(_ category: TraceCategory) -> Bool {
        !enabled.isDisjoint(with: category)
    }

    /// Records a line if `category` is enabled; `text` is evaluated only then.
    @inlinable
    public func record(_ category: TraceCategory, _ text: @autoclosure () -> String) {
        if !enabled.isDisjoint(with: category) {
            append(category, text())
        }
    }

    @usableFromInline
    func append(_ category: TraceCategory, _ text: String) {
        let line = TraceLine(sequence: nextSequence, time: clock.now, category: category, text: text)
        nextSequence &+= 1
        kept.append(line)
        sink?(line)
    }

    /// The most recent lines, oldest first (at most ``lineCapacity``; every line also goes to
    /// ``sink``).
    public var lines: [TraceLine] { kept.elements }

    /// How many lines ``lines`` keeps (0: none, when ``sink`` is all you need); older ones are
    /// dropped and counted in ``droppedLines``.
    public var lineCapacity: Int {
        get { kept.capacity }
        set { kept.resize(to: newValue) }
    }

    /// Lines dropped from ``lines`` to make room.
    public var droppedLines: Int { kept.dropped }

    /// Forgets the kept lines and the dropped count (the sequence numbering continues).
    public func clear() {
        kept.removeAll()
    }

    /// The kept lines of `category`, as text.
    public func texts(_ category: TraceCategory = .all) -> [String] {
        lines.filter { !$0.category.isDisjoint(with: category) }.map(\.text)
    }
}

/// A deterministic virtual clock, advanced explicitly by whoever drives the platform.
/// Nothing in the model reads wall-clock time.
public final class VirtualClock {
    /// The current time in ticks.
    public private(set) var now: UInt64 = 0

    /// Creates a clock at time 0.
    public init() {}

    /// Advances the clock by `ticks` (saturating).
    public func advance(by ticks: UInt64) {
        let (sum, overflow) = now.addingReportingOverflow(ticks)
        now = overflow ? .max : sum
    }
}
