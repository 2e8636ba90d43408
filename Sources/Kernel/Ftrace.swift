import Synchronization

/// Whether any scheduler has a tracing listener (``KernelScheduler/onFunctionEntry`` or
/// ``KernelScheduler/onContextStateChange``): while none has, tracepoints cost one relaxed
/// atomic load.
enum KernelTracing {
    /// Listeners set, process-wide.
    static let users = Atomic<Int>(0)

    /// Counts a listener being set or cleared.
    static func listener(was: Bool, is now: Bool) {
        if !was && now { users.add(1, ordering: .relaxed) }
        if was && !now { users.subtract(1, ordering: .relaxed) }
    }
}

/// Marks the entry of a driver function, as the kernel's function tracer (ftrace) sees every
/// function: when the calling context's scheduler has a ``KernelScheduler/onFunctionEntry``
/// listener it is told `function` and the context. It is not a scheduling point, so marking a
/// function changes no interleaving; with no listener anywhere in the process it costs one
/// relaxed atomic load.
public func ftrace(_ function: StaticString) {
    guard KernelTracing.users.load(ordering: .relaxed) != 0 else { return }
    guard let context = KernelContext.current, let listener = context.scheduler.onFunctionEntry else { return }
    listener(function, context)
}
