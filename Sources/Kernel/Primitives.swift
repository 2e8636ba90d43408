import Platform

/// `struct completion`: one context waits for another to signal that something is done.
public final class Completion: @unchecked Sendable {
    private let queue: WaitQueue
    /// Signals not yet consumed (`UInt.max` after ``completeAll()``).
    public private(set) var done: UInt = 0

    /// `init_completion`.
    public init(_ name: String) {
        queue = WaitQueue("wait_for_completion(\(name))")
    }

    /// `complete`: releases one waiter (now or the next to wait).
    public func complete() {
        if done != .max { done += 1 }
        queue.wakeUp()
    }

    /// `complete_all`: releases every waiter, now and later.
    public func completeAll() {
        done = .max
        queue.wakeUp()
    }

    /// `reinit_completion`.
    public func reinit() {
        done = 0
    }

    /// `wait_for_completion`.
    public func wait() async {
        await queue.waitEvent { done > 0 }
        if done != .max { done -= 1 }
    }

    /// `wait_for_completion_timeout`: false when `ticks` passed first.
    public func wait(timeout ticks: UInt64) async -> Bool {
        guard await queue.waitEventTimeout(ticks, { done > 0 }) else { return false }
        if done != .max { done -= 1 }
        return true
    }
}

/// `atomic_t` / `atomic64_t`: every operation is a scheduling point, so another context may run
/// between any two of them, as on a multi-core machine.
public final class KernelAtomic<Value: FixedWidthInteger & Sendable>: @unchecked Sendable {
    private var value: Value

    /// `ATOMIC_INIT(value)`.
    public init(_ value: Value = 0) {
        self.value = value
    }

    /// The value, read from outside the kernel (a test or a tool inspecting a settled
    /// system): no scheduling point.
    public var snapshot: Value { value }

    /// `atomic_read`.
    public func read() async -> Value {
        await KernelScheduler.schedule()
        return value
    }

    /// `atomic_set`.
    public func set(_ newValue: Value) async {
        await KernelScheduler.schedule()
        value = newValue
    }

    /// `atomic_add_return` (wrapping).
    @discardableResult
    public func addReturn(_ delta: Value) async -> Value {
        await KernelScheduler.schedule()
        value = value &+ delta
        return value
    }

    /// `atomic_inc_return`.
    @discardableResult
    public func incrementReturn() async -> Value { await addReturn(1) }

    /// `atomic_dec_return`.
    @discardableResult
    public func decrementReturn() async -> Value { await addReturn(0 &- 1) }

    /// `atomic_fetch_or`: the old value.
    @discardableResult
    public func fetchOr(_ bits: Value) async -> Value {
        await KernelScheduler.schedule()
        let old = value
        value |= bits
        return old
    }

    /// `atomic_xchg`: the old value.
    @discardableResult
    public func exchange(_ newValue: Value) async -> Value {
        await KernelScheduler.schedule()
        let old = value
        value = newValue
        return old
    }

    /// `atomic_cmpxchg`: stores `new` if the value is `expected`; returns the old value.
    @discardableResult
    public func compareExchange(expected: Value, new: Value) async -> Value {
        await KernelScheduler.schedule()
        let old = value
        if old == expected { value = new }
        return old
    }
}

/// `atomic_t`.
public typealias atomic_t = KernelAtomic<Int32>
/// `atomic64_t`.
public typealias atomic64_t = KernelAtomic<Int64>

/// The kernel log (`printk`): every line with its level, kept in a bounded ring that tests read.
public final class KernelLog: @unchecked Sendable {
    /// A printk level.
    public enum Level: Int, Comparable, Sendable, CustomStringConvertible {
        case emergency = 0, error = 3, warning = 4, notice = 5, info = 6, debug = 7
        public static func < (lhs: Level, rhs: Level) -> Bool { lhs.rawValue < rhs.rawValue }
        public var description: String {
            switch self {
            case .emergency: "emerg"
            case .error: "err"
            case .warning: "warn"
            case .notice: "notice"
            case .info: "info"
            case .debug: "debug"
            }
        }
    }

    /// One line.
    public struct Line: Equatable, Sendable, CustomStringConvertible {
        /// The virtual time it was logged at.
        public let time: UInt64
        public let level: Level
        public let text: String
        public var description: String { "[\(time)] <\(level)> \(text)" }
    }

    private var ring: BoundedLog<Line>
    private let clock: VirtualClock

    /// A log keeping the last `capacity` lines.
    public init(capacity: Int = 4096, clock: VirtualClock) {
        ring = BoundedLog(capacity: capacity)
        self.clock = clock
    }

    /// Logs `text` at `level`.
    public func printk(_ level: Level, _ text: String) {
        ring.append(Line(time: clock.now, level: level, text: text))
    }

    /// The lines kept, oldest first.
    public var lines: [Line] { ring.elements }
    /// The texts of the lines at `level` or more severe.
    public func texts(atMost level: Level = .debug) -> [String] { ring.elements.filter { $0.level <= level }.map(\.text) }
    /// Lines dropped because the ring was full.
    public var dropped: Int { ring.dropped }

    /// Per-message state of `printk_ratelimited` (Linux keeps one per call site; here one per
    /// message text): the interval's start and the lines printed and suppressed in it.
    private var limits: [String: (start: UInt64, printed: Int, missed: Int)] = [:]

    /// `__ratelimit` with DEFAULT_RATELIMIT_INTERVAL (5 s) and DEFAULT_RATELIMIT_BURST (10):
    /// whether a line keyed `key` may be printed now. When an interval with suppressed lines
    /// ends, Linux's "callbacks suppressed" line is printed first.
    func ratelimit(_ key: String, prefix: String) -> Bool {
        let interval: UInt64 = 5_000_000_000
        let now = clock.now
        var state = limits[key] ?? (now, 0, 0)
        if now &- state.start >= interval {
            if state.missed > 0 { printk(.warning, "\(prefix): \(state.missed) callbacks suppressed") }
            state = (now, 0, 0)
        }
        let allowed = state.printed < 10
        if allowed { state.printed += 1 } else { state.missed += 1 }
        if limits.count < 1024 || limits[key] != nil { limits[key] = state }
        return allowed
    }
}

/// `struct device`: what `dev_err` and friends prefix their messages with.
public struct KernelDevice: Sendable {
    /// The driver's name (`arm-smmu-v3`).
    public let driver: String
    /// The device's name (`arm-smmu-v3.0.auto`).
    public let name: String
    /// The log it writes to.
    public let log: KernelLog

    /// "driver device", or the device's name alone when no driver is bound.
    var prefix: String { driver.isEmpty ? name : "\(driver) \(name)" }

    public init(driver: String, name: String, log: KernelLog) {
        self.driver = driver
        self.name = name
        self.log = log
    }
}

/// `dev_err`: "driver device: message" at KERN_ERR.
public func dev_err(_ device: KernelDevice, _ message: String) { device.log.printk(.error, "\(device.prefix): \(message)") }
/// `dev_warn`.
public func dev_warn(_ device: KernelDevice, _ message: String) { device.log.printk(.warning, "\(device.prefix): \(message)") }
/// `dev_notice`.
public func dev_notice(_ device: KernelDevice, _ message: String) { device.log.printk(.notice, "\(device.prefix): \(message)") }
/// `dev_info`.
public func dev_info(_ device: KernelDevice, _ message: String) { device.log.printk(.info, "\(device.prefix): \(message)") }
/// printk's `%0<width>x` (and `%0<width>llx`): `value` in lower-case hex, zero-padded to
/// `width` digits (more when it needs them), without a prefix.
public func printkHex(_ value: UInt64, width: Int) -> String {
    let needed = max(1, (64 - value.leadingZeroBitCount + 3) / 4)
    let count = min(max(width, needed), 16)
    return String(unsafeUninitializedCapacity: count) { buffer in
        let digits: StaticString = "0123456789abcdef"
        var remaining = value
        for index in stride(from: count - 1, through: 0, by: -1) {
            buffer[index] = digits.utf8Start[Int(remaining & 0xF)]
            remaining >>= 4
        }
        return count
    }
}

/// `BUG()` / `BUG_ON(true)`: Linux would oops; here the line "kernel BUG at <where>!" is
/// logged at KERN_EMERG (tests look for it) and the caller returns instead of continuing.
public func BUG(_ log: KernelLog, _ location: String) {
    log.printk(.emergency, "kernel BUG at \(location)!")
}
/// `dev_err_ratelimited`: `dev_err`, at most 10 times in 5 s of virtual time per message.
public func dev_err_ratelimited(_ device: KernelDevice, _ message: String) {
    if device.log.ratelimit(message, prefix: device.prefix) { dev_err(device, message) }
}
/// `dev_dbg`.
public func dev_dbg(_ device: KernelDevice, _ message: String) { device.log.printk(.debug, "\(device.prefix): \(message)") }
