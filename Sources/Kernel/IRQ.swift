import Platform

/// `irqreturn_t`.
public enum IRQReturn: Sendable {
    /// `IRQ_NONE`: not this device's interrupt.
    case none
    /// `IRQ_HANDLED`.
    case handled
    /// `IRQ_WAKE_THREAD`: run the threaded handler.
    case wakeThread
}

/// The interrupt subsystem: wired lines and MSIs from the bus become Linux IRQ numbers whose
/// handlers run as `request_threaded_irq` describes. The primary handler runs where the
/// interrupt arrives (inside the access that raised it); the threaded handler runs in its own
/// daemon context (`irq/<n>-<name>`), once per wake-up however many interrupts arrived
/// meanwhile (IRQF_ONESHOT).
public final class KernelIRQs: @unchecked Sendable {
    private struct Action {
        let name: String
        let handler: (() -> IRQReturn)?
        let pending: UnsafeFlagBox
        let wake: WaitQueue
    }

    private final class UnsafeFlagBox: @unchecked Sendable {
        var raised = false
        var stopped = false
    }

    private let scheduler: KernelScheduler
    private var actions: [Int: Action] = [:]
    private var wiredLines: [Int: Int] = [:]
    private var msiVectors: [UInt64: Int] = [:]
    private var nextIRQ = 32
    /// The doorbell MSIs are written to (a GIC ITS translater, say): `data` selects the vector.
    public let msiDoorbell: UInt64
    /// Interrupts that arrived with no handler registered (`irq N: nobody cared`).
    public private(set) var spurious = 0

    /// Takes over `bus`'s wired lines and MSIs (doorbell at `msiDoorbell`, which must be RAM).
    public init(bus: Bus, scheduler: KernelScheduler, msiDoorbell: UInt64) {
        self.scheduler = scheduler
        self.msiDoorbell = msiDoorbell
        bus.interrupts.onWiredInterrupt = { [weak self] line in
            guard let self else { return }
            if let irq = wiredLines[line] { raise(irq) } else { spurious += 1 }
        }
        bus.interrupts.onMSI = { [weak self, weak scheduler] address, data in
            guard let self, let scheduler else { return }
            // An MSI elsewhere is an ordinary memory write (CMD_SYNC's completion word, say). A
            // CPU waiting for it in smp_cond_load_acquire (LDXR + WFE) wakes because the write
            // clears its exclusive monitor, which generates an event.
            guard address == msiDoorbell else {
                scheduler.sendEvent()
                return
            }
            if let irq = msiVectors[UInt64(data)] { raise(irq) } else { spurious += 1 }
        }
        bus.interrupts.onSendEvent = { [weak scheduler] in scheduler?.sendEvent() }
    }

    /// The IRQ number of wired line `line` (`platform_get_irq_byname`).
    public func irq(forWiredLine line: Int) -> Int {
        if let irq = wiredLines[line] { return irq }
        let irq = nextIRQ
        nextIRQ += 1
        wiredLines[line] = irq
        return irq
    }

    /// Routes wired line `line` to `irq` as well (several lines ORed into one interrupt, as
    /// for an SMMU with a combined interrupt).
    public func route(wiredLine line: Int, to irq: Int) {
        wiredLines[line] = irq
    }

    /// Allocates an MSI vector (`platform_msi_domain_alloc_irqs`): the IRQ number and the
    /// address/data pair to program into the device.
    public func allocateMSI() -> (irq: Int, address: UInt64, data: UInt32) {
        let irq = nextIRQ
        nextIRQ += 1
        let data = UInt32(truncatingIfNeeded: irq)
        msiVectors[UInt64(data)] = irq
        return (irq, msiDoorbell, data)
    }

    /// `request_threaded_irq`: `handler` (nil: wake the thread) runs when the interrupt
    /// arrives; `thread` runs in the IRQ's own context when woken.
    public func requestThreadedIRQ(_ irq: Int, name: String, handler: (() -> IRQReturn)? = nil, thread: @escaping () async -> IRQReturn) {
        let pending = UnsafeFlagBox()
        let wake = WaitQueue("irq_thread(\(irq)-\(name))")
        actions[irq] = Action(name: name, handler: handler, pending: pending, wake: wake)
        scheduler.spawn("irq/\(irq)-\(name)", daemon: true) {
            while true {
                await wake.waitEvent { pending.raised || pending.stopped }
                if pending.stopped { return }
                pending.raised = false
                _ = await thread()
            }
        }
    }

    /// Frees an MSI vector from ``allocateMSI()`` (`platform_msi_domain_free_irqs`): its
    /// writes become spurious.
    public func freeMSI(_ irq: Int) {
        msiVectors = msiVectors.filter { $0.value != irq }
        freeIRQ(irq)
    }

    /// `free_irq`: the handler goes and the IRQ thread is stopped (`kthread_stop`): it
    /// finishes the next time the scheduler runs.
    public func freeIRQ(_ irq: Int) {
        guard let action = actions.removeValue(forKey: irq) else { return }
        action.pending.stopped = true
        action.wake.wakeUp()
    }

    /// Frees every requested IRQ (a kernel going away).
    public func freeAll() {
        for irq in actions.keys.sorted() { freeIRQ(irq) }
    }

    private func raise(_ irq: Int) {
        guard let action = actions[irq] else {
            spurious += 1
            return
        }
        switch action.handler?() ?? .wakeThread {
        case .wakeThread:
            action.pending.raised = true
            action.wake.wakeUp()
        case .handled, .none:
            break
        }
    }
}
