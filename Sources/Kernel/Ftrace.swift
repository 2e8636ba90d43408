import Synchronization

/// Whether any scheduler listens to function entries (see
/// ``KernelScheduler/onFunctionEntry``).
enum FunctionTracing {
    /// Schedulers with a function-entry listener, process-wide.
    static let users = Atomic<Int>(0)
}

/// Marks the entry of a driver function, as the kernel's function tracer (ftrace) sees every
/// function: when the calling context's scheduler has a ``KernelScheduler/onFunctionEntry``
/// listener it is told `function` and the context. It is not a scheduling point, so marking a
/// function changes no interleaving; with no listener anywhere in the process it costs one
/// relaxed atomic load.
public func ftrace(_ function: StaticString) {
    guard FunctionTracing.users.load(ordering: .relaxed) != 0 else { return }
    guard let context = KernelContext.current, let listener = context.scheduler.onFunctionEntry else { return }
    listener(function, context)
}
