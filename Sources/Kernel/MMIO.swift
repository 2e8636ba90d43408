import Platform

/// `void __iomem *`: a CPU mapping of a device's registers on the bus. Every access is a
/// scheduling point (another context, or the hardware, may act between two accesses), and the
/// `_relaxed` forms differ from the others only in the barrier Linux adds, which here is that
/// same scheduling point. A write kicks the scheduler's hardware agents. (Sendable because every
/// kernel context runs on the scheduler's one thread.)
public struct IOMem: @unchecked Sendable {
    /// The bus the device sits on.
    public let bus: Bus
    /// The mapping's base address.
    public let base: UInt64

    public init(bus: Bus, base: UInt64) {
        self.bus = bus
        self.base = base
    }

    /// The mapping at `offset` bytes from this one.
    public func advanced(by offset: UInt64) -> IOMem { IOMem(bus: bus, base: base &+ offset) }
}

/// `readl`.
public func readl(_ address: IOMem) async -> UInt32 {
    await KernelScheduler.schedule()
    return address.bus.read32(at: address.base)
}

/// `readl_relaxed`.
public func readl_relaxed(_ address: IOMem) async -> UInt32 { await readl(address) }

/// `writel`.
public func writel(_ value: UInt32, _ address: IOMem) async {
    await KernelScheduler.schedule()
    address.bus.write32(value, at: address.base)
    KernelContext.current?.scheduler.kickHardware()
}

/// `writel_relaxed`.
public func writel_relaxed(_ value: UInt32, _ address: IOMem) async { await writel(value, address) }

/// `readq`.
public func readq(_ address: IOMem) async -> UInt64 {
    await KernelScheduler.schedule()
    return address.bus.read64(at: address.base)
}

/// `readq_relaxed`.
public func readq_relaxed(_ address: IOMem) async -> UInt64 { await readq(address) }

/// `writeq`.
public func writeq(_ value: UInt64, _ address: IOMem) async {
    await KernelScheduler.schedule()
    address.bus.write64(value, at: address.base)
    KernelContext.current?.scheduler.kickHardware()
}

/// `writeq_relaxed`.
public func writeq_relaxed(_ value: UInt64, _ address: IOMem) async { await writeq(value, address) }

/// Virtual time is in nanoseconds: `udelay(1)` is 1,000 ticks.
public let NSEC_PER_USEC: UInt64 = 1000

/// `udelay` / `usleep_range`: the calling context sleeps `microseconds` of virtual time.
public func udelay(_ microseconds: UInt64) async {
    await KernelScheduler.sleep(for: microseconds &* NSEC_PER_USEC)
}

/// `readl_relaxed_poll_timeout(addr, val, cond, delay_us, timeout_us)`: reads until `condition`
/// holds for the value read, sleeping `delayMicroseconds` between reads, for at most
/// `timeoutMicroseconds` of virtual time; returns the last value read and 0, or -ETIMEDOUT
/// (after one last read, as Linux does).
public func readl_relaxed_poll_timeout(_ address: IOMem, delayMicroseconds: UInt64, timeoutMicroseconds: UInt64, _ condition: (UInt32) -> Bool) async -> (value: UInt32, result: Int32) {
    let clock = KernelContext.current?.scheduler.clock
    let deadline = (clock?.now ?? 0) &+ timeoutMicroseconds &* NSEC_PER_USEC
    while true {
        let value = await readl_relaxed(address)
        if condition(value) { return (value, 0) }
        if let clock, clock.now >= deadline {
            let last = await readl_relaxed(address)
            return (last, condition(last) ? 0 : -ETIMEDOUT)
        }
        if delayMicroseconds == 0 {
            await KernelScheduler.schedule()
        } else {
            await udelay(delayMicroseconds)
        }
        if clock == nil { return (value, -ETIMEDOUT) }
    }
}
