/// A device with memory-mapped registers, mapped on a ``Bus``.
///
/// Subclass it and override the accessors. The bus calls them with the offset from the
/// mapping base and the access size in bytes (1, 2, 4 or 8; the bus itself never splits or
/// merges accesses, so a device sees exactly what the CPU issued and applies its own rules
/// for unsupported sizes or alignment).
open class MMIODevice {
    /// Creates a device.
    public init() {}

    /// A short name used in traces.
    open var deviceName: String { "device" }

    /// Reads `size` bytes at `offset`. The default reads as zero.
    open func mmioRead(offset: UInt64, size: Int) -> UInt64 { 0 }

    /// Writes the low `size` bytes of `value` at `offset`. The default ignores the write.
    open func mmioWrite(offset: UInt64, value: UInt64, size: Int) {}

    /// The name of the register at `offset`, if any (used in traces).
    open func registerName(offset: UInt64) -> String? { nil }
}

/// Which accesses a fault-injection rule applies to.
public struct AccessKinds: OptionSet, Sendable, Hashable {
    public let rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue }
    /// Device reads.
    public static let read = AccessKinds(rawValue: 1)
    /// Device writes (including MSIs).
    public static let write = AccessKinds(rawValue: 2)
    /// Both.
    public static let readWrite: AccessKinds = [.read, .write]
}

/// A handle returned when a fault is injected, used to remove it.
public struct FaultHandle: Sendable, Hashable {
    let id: Int
}

/// Fault injection on device (DMA) accesses: address ranges that return an external abort,
/// and MSIs that are silently dropped. CPU accesses are never affected, so a test can still
/// set up tables in a range whose device accesses abort.
public final class FaultInjector {
    /// One installed rule; `kinds` only matters for aborts (an MSI is always a write).
    struct Rule {
        let handle: FaultHandle
        let range: ClosedRange<UInt64>
        let kinds: AccessKinds
        var remaining: Int?
    }

    private var abortRules: [Rule] = []
    private var dropRules: [Rule] = []
    private var nextID = 0

    /// Whether any rule is installed (checked first on every device access).
    @exclusivity(unchecked) public private(set) var isActive = false
    /// The number of device accesses that were aborted by a rule.
    public private(set) var abortsInjected = 0
    /// The number of MSIs that were dropped by a rule.
    public private(set) var msisDropped = 0

    init() {}

    /// Makes device accesses of `kinds` that touch `range` return an external abort, for the
    /// next `count` matching accesses (forever when `count` is nil). A rule whose count is used
    /// up is removed. A `count` below 1 installs nothing.
    @discardableResult
    public func injectAbort(_ range: ClosedRange<UInt64>, on kinds: AccessKinds = .readWrite, count: Int? = nil) -> FaultHandle {
        let handle = makeHandle()
        if let count, count < 1 { return handle }
        abortRules.append(Rule(handle: handle, range: range, kinds: kinds, remaining: count))
        isActive = true
        return handle
    }

    /// Makes the next `count` MSIs (all of them when nil) whose address is in `range`
    /// disappear: no memory write and no abort.
    @discardableResult
    public func dropMSIs(to range: ClosedRange<UInt64>, count: Int? = nil) -> FaultHandle {
        let handle = makeHandle()
        if let count, count < 1 { return handle }
        dropRules.append(Rule(handle: handle, range: range, kinds: .write, remaining: count))
        isActive = true
        return handle
    }

    /// Removes one rule.
    public func remove(_ handle: FaultHandle) {
        abortRules.removeAll { $0.handle == handle }
        dropRules.removeAll { $0.handle == handle }
        refreshActivity()
    }

    /// Removes every rule.
    public func removeAll() {
        abortRules.removeAll()
        dropRules.removeAll()
        isActive = false
    }

    private func refreshActivity() {
        isActive = !abortRules.isEmpty || !dropRules.isEmpty
    }

    private func makeHandle() -> FaultHandle {
        nextID += 1
        return FaultHandle(id: nextID)
    }

    /// Whether a device access of `length` bytes at `address` aborts (consuming one use).
    func aborts(_ address: UInt64, length: Int, kind: AccessKinds) -> Bool {
        let last = address &+ UInt64(max(length, 1) - 1)
        guard Self.consumeFirstRule(in: &abortRules, where: {
            $0.kinds.contains(kind) && $0.range.lowerBound <= last && address <= $0.range.upperBound
        }) else { return false }
        refreshActivity()
        abortsInjected += 1
        return true
    }

    /// Whether an MSI to `address` is dropped (consuming one use).
    func dropsMSI(to address: UInt64) -> Bool {
        guard Self.consumeFirstRule(in: &dropRules, where: { $0.range.contains(address) }) else { return false }
        refreshActivity()
        msisDropped += 1
        return true
    }

    /// Finds the first rule that matches, uses it once (removing it when its count runs out)
    /// and says whether one matched.
    private static func consumeFirstRule(in rules: inout [Rule], where matches: (Rule) -> Bool) -> Bool {
        guard let index = rules.firstIndex(where: matches) else { return false }
        if let remaining = rules[index].remaining {
            if remaining <= 1 {
                rules.remove(at: index)
            } else {
                rules[index].remaining = remaining - 1
            }
        }
        return true
    }
}

/// The system bus: routes CPU MMIO accesses to mapped devices by physical address, gives
/// devices DMA access to RAM, and delivers MSIs as real memory (or register) writes.
/// Little-endian.
///
/// Two kinds of access exist:
/// - CPU accesses (`read32(at:)`, `write64(_:at:)`, ...): what a driver does. They reach a
///   mapped device or RAM and are never affected by fault injection. A CPU access that hits
///   neither reads as zero and its write is dropped (counted in ``unbackedCPUAccesses``).
/// - Device accesses (`dmaRead64(at:)`, `dmaWrite32(_:at:)`, ...): what the SMMU and
///   endpoints do. They reach RAM only and return `nil`/`false` for an external abort: an
///   address outside RAM (see ``MemoryMap``), inside a device window, or made to abort by
///   ``faults``. The one device access that may reach a device's registers is an MSI
///   (``deliverMSI(address:data:source:)``), which is how an MSI can ring a doorbell, or land
///   on the sender's own registers.
///
/// The bus does not own its devices: it refers to them weakly, and a device that goes away
/// is unmapped. Devices keep the bus alive (they need it for DMA), so dropping the last
/// reference to a device frees it, and dropping the device and the bus frees the platform.
public final class Bus {
    struct Region {
        let base: UInt64
        let size: UInt64
        weak var device: MMIODevice?
        @inline(__always) func contains(_ address: UInt64) -> Bool { address &- base < size && address >= base }
    }

    /// The physical memory (RAM) behind the bus.
    public let memory: PhysicalMemory
    /// The interrupt fabric.
    public let interrupts: InterruptController
    /// The platform trace.
    public let trace: Trace
    /// The platform's virtual clock.
    public let clock: VirtualClock
    /// Fault injection on device accesses.
    public let faults = FaultInjector()
    /// CPU accesses that hit neither RAM nor a device (reads returned zero, writes were dropped).
    public private(set) var unbackedCPUAccesses = 0

    private var regions: [Region] = []
    /// The lowest and highest addresses of any device window (for the inlined RAM check).
    @exclusivity(unchecked) @usableFromInline var mmioLow: UInt64 = .max
    @exclusivity(unchecked) @usableFromInline var mmioHigh: UInt64 = 0

    /// Creates a bus with empty RAM laid out by `memoryMap`, no devices and a trace recording
    /// `traceCategories`.
    public init(traceCategories: TraceCategory = [], memoryMap: MemoryMap = .default) {
        let clock = VirtualClock()
        self.clock = clock
        self.memory = PhysicalMemory(map: memoryMap)
        self.trace = Trace(enabled: traceCategories, clock: clock)
        self.interrupts = InterruptController(trace: trace)
    }

    /// Errors from ``map(_:at:size:)``.
    public enum MappingError: Error, Equatable, CustomStringConvertible {
        /// The new window overlaps an existing device window.
        case overlap(base: UInt64, size: UInt64, existing: String)
        /// The window is empty, wraps around or leaves the physical space.
        case invalidWindow(base: UInt64, size: UInt64)

        public var description: String {
            switch self {
            case .overlap(let base, let size, let existing):
                "MMIO window \(hex(base))+\(hex(size)) overlaps \(existing)"
            case .invalidWindow(let base, let size):
                "invalid MMIO window \(hex(base))+\(hex(size))"
            }
        }
    }

    /// Maps `device` at `[base, base + size)`. A device window hides any RAM behind it.
    public func map(_ device: MMIODevice, at base: UInt64, size: UInt64) throws(MappingError) {
        guard size > 0, PhysicalMemory.contains(base, length: Int(clamping: size)) else {
            throw .invalidWindow(base: base, size: size)
        }
        pruneUnmappedDevices()
        for region in regions where base < region.base &+ region.size && region.base < base &+ size {
            throw .overlap(base: base, size: size, existing: region.device?.deviceName ?? "device")
        }
        regions.append(Region(base: base, size: size, device: device))
        regions.sort { $0.base < $1.base }
        recomputeWindowBounds()
    }

    /// Removes every window of `device`.
    public func unmap(_ device: MMIODevice) {
        regions.removeAll { $0.device == nil || $0.device === device }
        recomputeWindowBounds()
    }

    private func pruneUnmappedDevices() {
        if regions.contains(where: { $0.device == nil }) {
            regions.removeAll { $0.device == nil }
            recomputeWindowBounds()
        }
    }

    private func recomputeWindowBounds() {
        mmioLow = regions.map(\.base).min() ?? .max
        mmioHigh = regions.map { $0.base &+ $0.size &- 1 }.max() ?? 0
    }

    /// The device mapped at `address` and the offset into its window; with `length`, only
    /// when the window holds all `length` bytes.
    @inline(__always)
    private func device(at address: UInt64, length: UInt64 = 1) -> (MMIODevice, UInt64)? {
        guard address >= mmioLow, address <= mmioHigh else { return nil }
        for region in regions where region.contains(address) {
            guard let device = region.device, region.size &- (address &- region.base) >= length else { return nil }
            return (device, address &- region.base)
        }
        return nil
    }

    // MARK: CPU accesses

    private func cpuRead(_ address: UInt64, size: Int) -> UInt64 {
        if let (device, offset) = device(at: address) {
            let value = device.mmioRead(offset: offset, size: size)
            if trace.isEnabled(.mmio) { traceMMIO(device, offset: offset, size: size, value: value, write: false) }
            return value
        }
        if !memory.isRAM(address, length: size) { unbackedCPUAccesses &+= 1 }
        switch size {
        case 1: return UInt64(memory.read8(at: address))
        case 2: return UInt64(memory.read16(at: address))
        case 4: return UInt64(memory.read32(at: address))
        default: return memory.read64(at: address)
        }
    }

    private func cpuWrite(_ value: UInt64, _ address: UInt64, size: Int) {
        if let (device, offset) = device(at: address) {
            if trace.isEnabled(.mmio) { traceMMIO(device, offset: offset, size: size, value: value, write: true) }
            device.mmioWrite(offset: offset, value: value, size: size)
            return
        }
        if !memory.isRAM(address, length: size) {
            unbackedCPUAccesses &+= 1
            return
        }
        switch size {
        case 1: memory.write8(UInt8(truncatingIfNeeded: value), at: address)
        case 2: memory.write16(UInt16(truncatingIfNeeded: value), at: address)
        case 4: memory.write32(UInt32(truncatingIfNeeded: value), at: address)
        default: memory.write64(value, at: address)
        }
    }

    private func traceMMIO(_ device: MMIODevice, offset: UInt64, size: Int, value: UInt64, write: Bool) {
        let name = device.registerName(offset: offset).map { " " + $0 } ?? ""
        let arrow = write ? "<-" : "->"
        trace.record(.mmio, "\(write ? "W" : "R")\(size * 8) \(device.deviceName)+\(hex(offset, digits: 5))\(name) \(arrow) \(hex(value, digits: size * 2))")
    }

    /// CPU 8-bit read (memory or MMIO).
    public func read8(at address: UInt64) -> UInt8 { UInt8(truncatingIfNeeded: cpuRead(address, size: 1)) }
    /// CPU 16-bit read (memory or MMIO).
    public func read16(at address: UInt64) -> UInt16 { UInt16(truncatingIfNeeded: cpuRead(address, size: 2)) }
    /// CPU 32-bit read (memory or MMIO).
    public func read32(at address: UInt64) -> UInt32 { UInt32(truncatingIfNeeded: cpuRead(address, size: 4)) }
    /// CPU 64-bit read (memory or MMIO).
    public func read64(at address: UInt64) -> UInt64 { cpuRead(address, size: 8) }
    /// CPU 8-bit write (memory or MMIO).
    public func write8(_ value: UInt8, at address: UInt64) { cpuWrite(UInt64(value), address, size: 1) }
    /// CPU 16-bit write (memory or MMIO).
    public func write16(_ value: UInt16, at address: UInt64) { cpuWrite(UInt64(value), address, size: 2) }
    /// CPU 32-bit write (memory or MMIO).
    public func write32(_ value: UInt32, at address: UInt64) { cpuWrite(UInt64(value), address, size: 4) }
    /// CPU 64-bit write (memory or MMIO).
    public func write64(_ value: UInt64, at address: UInt64) { cpuWrite(value, address, size: 8) }

    // MARK: Device (DMA) accesses

    /// Whether a device access to `[address, address + length)` gets an external abort: it
    /// leaves RAM, touches a device window, or an injected rule says so.
    @inline(__always)
    private func deviceAccessAborts(_ address: UInt64, length: Int, kind: AccessKinds) -> Bool {
        if !memory.isRAM(address, length: length) || overlapsDevice(address, length: length) { return true }
        return faults.isActive && faults.aborts(address, length: length, kind: kind)
    }

    /// Device 32-bit read of RAM; `nil` on external abort.
    public func dmaRead32(at address: UInt64) -> UInt32? {
        if deviceAccessAborts(address, length: 4, kind: .read) { noteAbort(address, 4, write: false); return nil }
        let value = memory.read32(at: address)
        trace.record(.dma, "R32 \(hex(address, digits: 13)) -> \(hex(value, digits: 8))")
        return value
    }

    /// Whether `length` (1...16) bytes at `address` lie in RAM, clear of every device window
    /// (the address part of the inlined fast path).
    @inlinable @inline(__always)
    func isPlainRAM(_ address: UInt64, length: Int) -> Bool {
        let last = address &+ UInt64(length &- 1)
        return last >= address && (last < mmioLow || address > mmioHigh) && memory.isRAM(address, length: length)
    }

    /// Whether a device access of `length` bytes at `address` certainly reaches RAM with no
    /// fault rule, device window or trace to consult (the inlined fast path).
    @inlinable @inline(__always)
    func reachesPlainRAM(_ address: UInt64, length: Int) -> Bool {
        devicesReadPlainRAM && isPlainRAM(address, length: length)
    }

    /// Whether device reads need nothing but the address checks: no fault rule is installed
    /// and DMA is not traced. Lets a caller doing a burst of reads (a table walk) use
    /// ``plainRead64(at:)``.
    @inlinable @inline(__always)
    public var devicesReadPlainRAM: Bool { !faults.isActive && !trace.isEnabled(.dma) }

    /// A device 64-bit read of RAM when ``devicesReadPlainRAM`` holds (checked by the caller);
    /// `nil` on external abort (outside RAM or in a device window).
    @inlinable @inline(__always)
    public func plainRead64(at address: UInt64) -> UInt64? {
        if isPlainRAM(address, length: 8) { return memory.read64(at: address) }
        return checkedDMARead64(at: address)
    }

    /// Device 64-bit read of RAM; `nil` on external abort.
    @inlinable @inline(__always)
    public func dmaRead64(at address: UInt64) -> UInt64? {
        if reachesPlainRAM(address, length: 8) { return memory.read64(at: address) }
        return checkedDMARead64(at: address)
    }

    @usableFromInline
    func checkedDMARead64(at address: UInt64) -> UInt64? {
        if deviceAccessAborts(address, length: 8, kind: .read) { noteAbort(address, 8, write: false); return nil }
        let value = memory.read64(at: address)
        trace.record(.dma, "R64 \(hex(address, digits: 13)) -> \(hex(value, digits: 16))")
        return value
    }

    /// Device read of two consecutive doublewords (a 16-byte queue entry); `nil` on external
    /// abort.
    @inlinable @inline(__always)
    public func dmaRead128(at address: UInt64) -> (UInt64, UInt64)? {
        if reachesPlainRAM(address, length: 16) { return (memory.read64(at: address), memory.read64(at: address &+ 8)) }
        return checkedDMARead128(at: address)
    }

    @usableFromInline
    func checkedDMARead128(at address: UInt64) -> (UInt64, UInt64)? {
        if deviceAccessAborts(address, length: 16, kind: .read) { noteAbort(address, 16, write: false); return nil }
        let low = memory.read64(at: address), high = memory.read64(at: address &+ 8)
        trace.record(.dma, "R128 \(hex(address, digits: 13)) -> \(hex(low, digits: 16)) \(hex(high, digits: 16))")
        return (low, high)
    }

    /// Device 32-bit write to RAM; `false` on external abort.
    @discardableResult
    public func dmaWrite32(_ value: UInt32, at address: UInt64) -> Bool {
        if deviceAccessAborts(address, length: 4, kind: .write) { noteAbort(address, 4, write: true); return false }
        trace.record(.dma, "W32 \(hex(address, digits: 13)) <- \(hex(value, digits: 8))")
        memory.write32(value, at: address)
        return true
    }

    /// Device 64-bit write to RAM; `false` on external abort.
    @discardableResult
    public func dmaWrite64(_ value: UInt64, at address: UInt64) -> Bool {
        if deviceAccessAborts(address, length: 8, kind: .write) { noteAbort(address, 8, write: true); return false }
        trace.record(.dma, "W64 \(hex(address, digits: 13)) <- \(hex(value, digits: 16))")
        memory.write64(value, at: address)
        return true
    }

    /// Device read of `buffer.count` bytes of RAM; `false` (buffer untouched) on external abort.
    public func dmaRead(at address: UInt64, into buffer: UnsafeMutableRawBufferPointer) -> Bool {
        if deviceAccessAborts(address, length: buffer.count, kind: .read) { noteAbort(address, buffer.count, write: false); return false }
        memory.read(at: address, into: buffer)
        trace.record(.dma, "R\(buffer.count * 8) \(hex(address, digits: 13))")
        return true
    }

    /// Device write of the bytes of `buffer` to RAM; `false` (memory untouched) on external abort.
    @discardableResult
    public func dmaWrite(at address: UInt64, from buffer: UnsafeRawBufferPointer) -> Bool {
        if deviceAccessAborts(address, length: buffer.count, kind: .write) { noteAbort(address, buffer.count, write: true); return false }
        memory.write(at: address, from: buffer)
        trace.record(.dma, "W\(buffer.count * 8) \(hex(address, digits: 13))")
        return true
    }

    @inline(__always)
    private func overlapsDevice(_ address: UInt64, length: Int) -> Bool {
        let last = address &+ UInt64(max(length, 1) - 1)
        guard last >= mmioLow, address <= mmioHigh else { return false }
        return regions.contains { $0.device != nil && $0.base <= last && address <= $0.base &+ $0.size &- 1 }
    }

    private func noteAbort(_ address: UInt64, _ length: Int, write: Bool) {
        trace.record(.dma, "\(write ? "W" : "R")\(length * 8) \(hex(address, digits: 13)) EXTERNAL ABORT")
    }

    /// Performs an MSI: a 32-bit device write of `data` to `address` on behalf of `source`,
    /// recorded by ``interrupts``. It reaches a device's registers when `address` is in a
    /// device window (a doorbell, or any register), RAM otherwise; anywhere else it aborts.
    /// Returns what happened; `.aborted` must be logged by the sender as the architecture says.
    @discardableResult
    public func deliverMSI(address: UInt64, data: UInt32, source: String) -> MSIOutcome {
        if faults.isActive && faults.dropsMSI(to: address) {
            interrupts.noteMSI(address: address, data: data, outcome: .dropped, source: source)
            return .dropped
        }
        if let (target, offset) = device(at: address, length: 4),
           !(faults.isActive && faults.aborts(address, length: 4, kind: .write)) {
            // Recorded and reported before the register write, so that an MSI that write
            // causes comes after this one in the records and to ``InterruptController/onMSI``.
            interrupts.noteMSI(address: address, data: data, outcome: .delivered, source: source)
            interrupts.notifyMSI(address: address, data: data)
            target.mmioWrite(offset: offset, value: UInt64(data), size: 4)
            return .delivered
        }
        let outcome: MSIOutcome = dmaWrite32(data, at: address) ? .delivered : .aborted
        interrupts.noteMSI(address: address, data: data, outcome: outcome, source: source)
        if outcome == .delivered { interrupts.notifyMSI(address: address, data: data) }
        return outcome
    }
}
