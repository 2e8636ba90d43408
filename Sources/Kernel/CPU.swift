/// The event register WFE waits on (Arm ARM D1.6 "Wait for Event"): SEV sets it, WFE clears it
/// or sleeps until it is set. Linux arm64 also runs the timer event stream
/// (`CONFIG_ARM_ARCH_TIMER_EVTSTREAM`, every 100 µs), so a WFE never sleeps longer than that.
final class EventRegister {
    var isSet = false
    let wake = WaitQueue("wfe")
}

/// The event stream period: a WFE returns after at most this much virtual time.
public let ARCH_TIMER_EVT_STREAM_PERIOD_US: UInt64 = 100

extension KernelScheduler {
    /// `sev()`: sets every processor's event register and wakes the ones in WFE.
    public func sendEvent() {
        events.isSet = true
        events.wake.wakeUp()
    }
}

/// `wfe()`: returns at once (clearing it) when the event register is set, otherwise sleeps
/// until an SEV or the next event-stream tick. A scheduling point either way.
public func wfe() async {
    guard let scheduler = KernelContext.current?.scheduler else { return }
    let events = scheduler.events
    if !events.isSet {
        _ = await events.wake.waitEventTimeout(ARCH_TIMER_EVT_STREAM_PERIOD_US &* NSEC_PER_USEC) { events.isSet }
    } else {
        await KernelScheduler.schedule()
    }
    events.isSet = false
}

/// `cpu_relax()`: a scheduling point.
public func cpu_relax() async {
    await KernelScheduler.schedule()
}

/// `ktime_get()` in nanoseconds of virtual time (0 outside a kernel context).
public func ktime_get() -> UInt64 {
    KernelContext.current?.scheduler.clock.now ?? 0
}
