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
