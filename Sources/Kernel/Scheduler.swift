import Foundation
import Synchronization
import Platform

/// The deterministic scheduler of the kernel environment: every kernel context (a kernel
/// thread, an IRQ thread, a workqueue worker, a hardware agent) is a Swift task whose jobs run
/// only here, one at a time, on the thread that calls ``run()``. A scheduling point (a lock, an
/// atomic, an MMIO access, a wait, a wake) is an `await` that hands the choice of what runs
/// next to the scheduler, which takes the oldest runnable job (no seed) or one picked by a
/// seeded xorshift generator (a seed): the same seed gives the same interleaving.
///
/// When nothing is runnable but some context has not finished, ``run()`` stops and reports a
/// deadlock with every blocked context's wait point instead of hanging.
///
/// Kernel code must not hop to other executors (actors, the main actor): its jobs would then
/// run outside the scheduler's order.
public final class KernelScheduler: TaskExecutor, @unchecked Sendable {
    /// How a ``run()`` ended.
    public enum Outcome: Equatable, Sendable, CustomStringConvertible {
        /// Every context finished.
        case completed
        /// Nothing could run while these contexts were blocked, each at its wait point.
        case deadlock([BlockedContext])
        /// ``requestPause()`` stopped the run after the job that asked; runnable contexts stay
        /// queued and the next ``run()`` goes on from there.
        case paused

        public var description: String {
            switch self {
            case .completed: "completed"
            case .paused: "paused"
            case .deadlock(let blocked):
                "deadlock: " + blocked.map { "\($0.name) waiting in \($0.waitPoint)" }.joined(separator: "; ")
            }
        }
    }

    /// A context that cannot run, and where it waits.
    public struct BlockedContext: Equatable, Sendable {
        /// The context's name.
        public let name: String
        /// What it waits for (a wait queue's or lock's name).
        public let waitPoint: String

        /// A blocked context.
        public init(name: String, waitPoint: String) {
            self.name = name
            self.waitPoint = waitPoint
        }
    }

    /// The seed of the interleaving (nil: oldest runnable first).
    public let seed: UInt64?
    /// Virtual time: it advances only when every context is blocked and one waits for a
    /// deadline, to that deadline.
    public let clock: VirtualClock
    /// Timed waits, in the order they were armed (the earliest deadline fires first; ties in
    /// arming order).
    private var timers: [(deadline: UInt64, waiter: Waiter)] = []
    private var liveTimersAtLastPrune = 0
    private var random: UInt64
    @exclusivity(unchecked) private var ready: [UnownedJob] = []
    @exclusivity(unchecked) private var readyHead = 0
    private var contexts: [KernelContext] = []
    /// Scheduling decisions taken (jobs run).
    @exclusivity(unchecked) public private(set) var switches = 0
    /// The processors' event register, set by SEV and waited for by WFE.
    let events = EventRegister()
    /// Called after every scheduling step (every job run): where tests check invariants that
    /// must hold at every point of an interleaving.
    public var afterEachStep: (() -> Void)?
    /// Set by ``requestPause()``: the run stops after the current job.
    @exclusivity(unchecked) private var pauseRequested = false

    /// Stops the current ``run()`` once the running job reaches its next scheduling point (a
    /// stepper's breakpoint): `run()` returns ``Outcome/paused`` with every other context where
    /// it was, and a later `run()` continues the same interleaving (the seed's choices are not
    /// redrawn). Outside a run, the next run stops after its first job.
    public func requestPause() {
        pauseRequested = true
    }

    /// Every context not yet finished, in the order they were spawned (finished ones are
    /// forgotten when a run ends).
    public var liveContexts: [KernelContext] { contexts.filter { $0.state != .finished } }

    /// Called when a kernel context enters a function marked with ``ftrace(_:)``: the function
    /// tracer (`--trace function`) and a stepper's function breakpoints. Setting it turns the
    /// tracepoints on process-wide (each stays one relaxed atomic load while no scheduler has one).
    public var onFunctionEntry: ((StaticString, KernelContext) -> Void)? {
        didSet { KernelTracing.listener(was: oldValue != nil, is: onFunctionEntry != nil) }
    }

    /// Called when a kernel context blocks (at its wait point), becomes runnable again or
    /// finishes: a timeline of every context (`--perfetto`). Costs nothing measurable while no
    /// scheduler in the process has a listener.
    public var onContextStateChange: ((KernelContext) -> Void)? {
        didSet { KernelTracing.listener(was: oldValue != nil, is: onContextStateChange != nil) }
    }

    deinit {
        KernelTracing.listener(was: onFunctionEntry != nil, is: false)
        KernelTracing.listener(was: onContextStateChange != nil, is: false)
    }

    /// Kernel-wide objects of this world, one per type (see ``global(_:_:)``).
    private var globals: [ObjectIdentifier: AnyObject] = [:]

    /// The kernel-wide object of type `T` in this world (what Linux keeps in a static
    /// variable, such as the PASID idr every IOMMU shares), made by `make` on first use. Each
    /// scheduler is its own world, so tests running in parallel share nothing.
    public func global<T: AnyObject>(_ type: T.Type, _ make: () -> T) -> T {
        if let existing = globals[ObjectIdentifier(type)] as? T { return existing }
        let made = make()
        globals[ObjectIdentifier(type)] = made
        return made
    }

    /// Forgets every kernel-wide object: the world is being torn down. A kernel-wide table can
    /// close a reference cycle through this scheduler (the PASID idr holds bonds, which hold
    /// devices, whose platform device holds the interrupt controller, which holds the
    /// scheduler), so whoever ends a world calls this.
    public func dropGlobals() {
        globals.removeAll()
    }

    /// The hardware agents, kicked by register writes.
    @exclusivity(unchecked) private(set) var hardwareAgents: [HardwareAgent] = []

    func register(_ agent: HardwareAgent) {
        hardwareAgents.append(agent)
    }

    /// How a seeded scheduler picks the next job.
    public enum Strategy: Sendable, Equatable {
        /// Any runnable job, uniformly at random (the default).
        case uniform
        /// Probabilistic concurrency testing (PCT): each context gets a distinct random priority
        /// when spawned and the highest-priority runnable job runs; at `changePoints` random
        /// steps (among the first `steps`) the running context drops below every other. A context
        /// can so be stopped in the middle of what it does and starved for as long as others
        /// can run, which uniform choice makes exponentially unlikely.
        case priorities(changePoints: Int, steps: Int = 4096)
    }

    /// The strategy of a seeded scheduler.
    public let strategy: Strategy

    /// A scheduler; `seed` picks a reproducible pseudo-random interleaving, drawn as
    /// `strategy` says.
    public init(seed: UInt64? = nil, strategy: Strategy = .uniform, clock: VirtualClock = VirtualClock()) {
        self.seed = seed
        self.strategy = strategy
        self.clock = clock
        random = seed.map { $0 == 0 ? 0x9E37_79B9_7F4A_7C15 : $0 } ?? 0
        if seed != nil, case .priorities(let count, let steps) = strategy {
            for _ in 0..<max(count, 0) { changePoints.insert(Int(nextRandom() % UInt64(max(steps, 1)))) }
        }
    }

    /// PCT: the effective priority of each context, by its job priority (distinct per
    /// context), and the steps where the running context is demoted.
    private var effectivePriority: [UInt8: Int] = [:]
    private var changePoints: Set<Int> = []
    private var lowestPriority = 0

    private var usesPriorities: Bool {
        if case .priorities = strategy { return seed != nil }
        return false
    }

    /// A distinct random job priority for a new context (nil: no priorities, or all 255 taken).
    private func contextPriority() -> TaskPriority? {
        guard usesPriorities, effectivePriority.count < 255 else { return nil }
        var value = UInt8(1 + nextRandom() % 255)
        while effectivePriority[value] != nil { value = value == 255 ? 1 : value + 1 }
        effectivePriority[value] = Int(value)
        return TaskPriority(rawValue: value)
    }

    public func enqueue(_ job: consuming ExecutorJob) {
        ready.append(UnownedJob(job))
    }

    /// Starts a context running `body` (it runs when ``run()`` picks it). A `daemon` (a worker
    /// or IRQ thread waiting for work) may still be blocked when a run completes.
    @discardableResult
    ///
    /// `body` need not be `Sendable`: every context's code runs on the thread that calls
    /// ``run()``, one job at a time, so kernel code shares model objects freely.
    public func spawn(_ name: String, daemon: Bool = false, _ body: @escaping () async -> Void) -> KernelContext {
        let context = KernelContext(name: name, scheduler: self, daemon: daemon)
        contexts.append(context)
        let work = SingleThreaded(body)
        // With priorities, the job priority carries the context's (1...255; Swift propagates
        // it to every job of the task).
        let priority = contextPriority()
        Task(executorPreference: self, priority: priority) {
            await KernelContext.$current.withValue(context) {
                await work.value()
            }
            context.state = .finished
        }
        return context
    }

    private func nextRandom() -> UInt64 {
        random ^= random << 13
        random ^= random >> 7
        random ^= random << 17
        return random
    }

    /// Runs contexts until all have finished or none can run.
    @discardableResult
    public func run() -> Outcome {
        let executor = asUnownedTaskExecutor()
        while readyHead < ready.count || fireEarliestTimer() {
            let job: UnownedJob
            if seed == nil {
                job = ready[readyHead]
                readyHead += 1
            } else if usesPriorities {
                func effective(_ job: UnownedJob) -> Int { effectivePriority[job.priority.rawValue] ?? Int(job.priority.rawValue) }
                var pick = readyHead
                for index in readyHead..<ready.count where effective(ready[index]) > effective(ready[pick]) { pick = index }
                let chosen = ready.remove(at: pick)
                ready.insert(chosen, at: readyHead)
                job = chosen
                readyHead += 1
                if changePoints.contains(switches) {
                    // Demote the running context below every other.
                    lowestPriority -= 1
                    effectivePriority[chosen.priority.rawValue] = lowestPriority
                }
            } else {
                let runnable = ready.count - readyHead
                let pick = readyHead + Int(nextRandom() % UInt64(runnable))
                ready.swapAt(pick, readyHead)
                job = ready[readyHead]
                readyHead += 1
            }
            if readyHead > 1024 && readyHead * 2 > ready.count {
                ready.removeFirst(readyHead)
                readyHead = 0
            }
            switches &+= 1
            job.runSynchronously(on: executor)
            afterEachStep?()
            if pauseRequested {
                pauseRequested = false
                return .paused
            }
        }
        ready.removeAll(keepingCapacity: true)
        readyHead = 0
        // Finished contexts are done with: keeping them would make every run slower than the last.
        // Parked ones that finished (an IRQ thread stopped by free_irq, say) leave the parking.
        let finishedParked = Set(contexts.filter { $0.isParked && $0.state == .finished }.map(ObjectIdentifier.init))
        if !finishedParked.isEmpty { Self.parked.withLock { $0.removeAll { finishedParked.contains(ObjectIdentifier($0)) } } }
        contexts.removeAll { $0.state == .finished }
        // Contexts left blocked (idle daemons, deadlocked contexts) may never run again, and
        // their suspended tasks (which hold the scheduler) would become unreachable once their
        // wait queues go: they are parked, reachable, for the rest of the process. A suspended
        // task cannot be unwound without making every wait throw.
        let parking = contexts.filter { context in
            if case .blocked = context.state { !context.isParked } else { false }
        }
        for context in parking { context.isParked = true }
        if !parking.isEmpty { Self.parked.withLock { $0.append(contentsOf: parking) } }
        let blockedContexts = contexts.filter { context in
            if case .blocked = context.state { !context.isDaemon } else { false }
        }
        guard !blockedContexts.isEmpty else { return .completed }
        return .deadlock(blockedContexts.map { context in
            if case .blocked(let point) = context.state { return BlockedContext(name: context.name, waitPoint: point) }
            return BlockedContext(name: context.name, waitPoint: "")
        })
    }

    /// With nothing runnable: advances the clock to the earliest armed deadline and times out
    /// its waiter (if still waiting); false when no timer is armed.
    private func fireEarliestTimer() -> Bool {
        while !timers.isEmpty {
            var earliest = 0
            for index in timers.indices where timers[index].deadline < timers[earliest].deadline { earliest = index }
            let timer = timers.remove(at: earliest)
            // A waiter woken before its deadline leaves a stale timer: it must not move time.
            guard timer.waiter.isWaiting else { continue }
            if timer.deadline > clock.now { clock.advance(by: timer.deadline - clock.now) }
            if timer.waiter.resume(timedOut: true) { return true }
        }
        return false
    }

    /// Arms a deadline for `waiter`.
    func arm(_ waiter: Waiter, after ticks: UInt64) {
        let (deadline, overflow) = clock.now.addingReportingOverflow(ticks)
        // A wait woken before its deadline leaves its timer behind; drop those once they
        // could outnumber the live ones, so that timed waits woken early (the common case)
        // cannot grow the list during a busy run.
        if timers.count >= 64 && timers.count >= 2 * liveTimersAtLastPrune {
            timers.removeAll { !$0.waiter.isWaiting }
            liveTimersAtLastPrune = timers.count
        }
        timers.append((overflow ? .max : deadline, waiter))
    }

    /// Armed timers, stale ones included (a stale one belongs to a wait already woken).
    public var armedTimers: Int { timers.count }

    /// `msleep`/`udelay`: the calling context sleeps `ticks` of virtual time (others run; the
    /// clock advances when none can).
    public static func sleep(for ticks: UInt64) async {
        guard let context = KernelContext.current else { return }
        let waiter = Waiter(context: context)
        await waiter.suspend(point: "sleep(\(ticks))") { context.scheduler.arm(waiter, after: ticks) }
    }

    /// Contexts left blocked by a run, kept with their suspended tasks.
    private static let parked = ParkedContexts()

    /// Runs `scenario` once per seed in `seeds` on a fresh scheduler, stopping at the first
    /// seed for which it returns a failure description; returns that seed and description so
    /// that the caller can print the seed that replays it (nil: every seed passed).
    public static func sweep(seeds: ClosedRange<UInt64>, _ scenario: (KernelScheduler) -> String?) -> (seed: UInt64, failure: String)? {
        for seed in seeds {
            if let failure = scenario(KernelScheduler(seed: seed)) { return (seed, "\(failure) (replay with seed \(seed))") }
        }
        return nil
    }

    /// The scheduler the calling kernel context runs on (nil outside one).
    public static var current: KernelScheduler? { KernelContext.current?.scheduler }

    /// A scheduling point: another runnable context may run before this one continues.
    public static func schedule() async {
        await Task.yield()
    }
}

/// One kernel context (a kernel thread, an IRQ thread, a worker, a hardware agent).
public final class KernelContext: @unchecked Sendable {
    /// Where a context is.
    public enum State: Equatable, Sendable {
        case runnable
        case blocked(String)
        case finished
    }

    /// The context's name (`irq/evtq`, `kworker/0`...).
    public let name: String
    /// Whether it may stay blocked when a run completes (a worker or IRQ thread).
    public let isDaemon: Bool
    /// Whether a run left it blocked and parked it.
    var isParked = false
    unowned let scheduler: KernelScheduler
    /// Its state.
    public internal(set) var state = State.runnable {
        didSet {
            if KernelTracing.users.load(ordering: .relaxed) != 0 { scheduler.onContextStateChange?(self) }
        }
    }
    /// While blocked: how to resume it.
    var continuation: UnsafeContinuation<Void, Never>?
    /// While in an interruptible wait: the wait a signal ends.
    var interruptibleWaiter: Waiter?
    /// A signal was sent and not yet consumed (`signal_pending`).
    public internal(set) var signalPending = false

    /// Sends the context a signal: an interruptible wait it is in (or enters) returns
    /// -ERESTARTSYS.
    public func sendSignal() {
        signalPending = true
        interruptibleWaiter?.resume(timedOut: false)
    }

    /// Consumes a pending signal (as returning to user space would).
    public func clearSignal() {
        signalPending = false
    }

    init(name: String, scheduler: KernelScheduler, daemon: Bool) {
        self.name = name
        self.scheduler = scheduler
        isDaemon = daemon
    }

    /// The context the running code belongs to.
    @TaskLocal public static var current: KernelContext?
}

/// One sleeping context: resumed once, by a wake-up or by its deadline, whichever comes first.
final class Waiter {
    let context: KernelContext?
    private var continuation: UnsafeContinuation<Void, Never>?
    /// Whether its deadline resumed it.
    private(set) var timedOut = false

    init(context: KernelContext?) {
        self.context = context
    }

    /// Suspends the calling context at `point`; `arm` runs once it is parked (to queue it or set
    /// its deadline).
    func suspend(point: String, arm: () -> Void) async {
        await withUnsafeContinuation { (continuation: UnsafeContinuation<Void, Never>) in
            self.continuation = continuation
            context?.state = .blocked(point)
            context?.continuation = continuation
            arm()
        }
    }

    /// Makes it runnable; false when something else already did.
    @discardableResult
    func resume(timedOut: Bool) -> Bool {
        guard let continuation else { return false }
        self.continuation = nil
        self.timedOut = timedOut
        context?.state = .runnable
        context?.continuation = nil
        continuation.resume()
        return true
    }

    var isWaiting: Bool { continuation != nil }
}

/// A wait queue (`wait_queue_head_t`): contexts sleep on it until woken.
public final class WaitQueue: @unchecked Sendable {
    /// Unchecked exclusivity: touched on every wait and wake, by one job at a time.
    @exclusivity(unchecked) private var waiters: [Waiter] = []
    /// The name shown as the wait point of its sleepers.
    public let name: String

    public init(_ name: String) {
        self.name = name
    }

    /// `wait_event`: sleeps until `condition` holds, checking it on every wake.
    public func waitEvent(_ condition: () -> Bool) async {
        while !condition() {
            let waiter = Waiter(context: KernelContext.current)
            await waiter.suspend(point: name) { waiters.append(waiter) }
        }
    }

    /// `wait_event_interruptible`: like ``waitEvent(_:)``, but a signal ends the wait: 0 when
    /// the condition holds, -ERESTARTSYS when a signal is pending.
    public func waitEventInterruptible(_ condition: () -> Bool) async -> Int32 {
        let context = KernelContext.current
        while !condition() {
            if context?.signalPending == true { return -ERESTARTSYS }
            let waiter = Waiter(context: context)
            context?.interruptibleWaiter = waiter
            await waiter.suspend(point: name) { waiters.append(waiter) }
            context?.interruptibleWaiter = nil
        }
        return 0
    }

    /// `wait_event_lock_irq` / `wait_event_interruptible_locked`: called with `lock` held;
    /// sleeps with it released until `condition` (checked under the lock) holds, and returns
    /// with it held again.
    public func waitEventLocked(_ lock: SpinLock, _ condition: () -> Bool) async {
        while !condition() {
            let waiter = Waiter(context: KernelContext.current)
            await waiter.suspend(point: name) {
                waiters.append(waiter)
                lock.unlock()
            }
            await lock.lock()
        }
    }

    /// `wait_event_interruptible_locked`: ``waitEventLocked(_:_:)`` that a signal ends: 0 when
    /// the condition holds, -ERESTARTSYS when a signal is pending (the lock held either way).
    public func waitEventInterruptibleLocked(_ lock: SpinLock, _ condition: () -> Bool) async -> Int32 {
        let context = KernelContext.current
        while !condition() {
            if context?.signalPending == true { return -ERESTARTSYS }
            let waiter = Waiter(context: context)
            context?.interruptibleWaiter = waiter
            await waiter.suspend(point: name) {
                waiters.append(waiter)
                lock.unlock()
            }
            context?.interruptibleWaiter = nil
            await lock.lock()
        }
        return 0
    }

    /// `wait_event_timeout`: sleeps until `condition` holds or `ticks` of virtual time pass;
    /// returns whether the condition held.
    public func waitEventTimeout(_ ticks: UInt64, _ condition: () -> Bool) async -> Bool {
        guard let context = KernelContext.current else { return condition() }
        let deadline = context.scheduler.clock.now &+ ticks
        while !condition() {
            let now = context.scheduler.clock.now
            guard now < deadline else { return condition() }
            let waiter = Waiter(context: context)
            await waiter.suspend(point: name) {
                waiters.append(waiter)
                context.scheduler.arm(waiter, after: deadline - now)
            }
            if waiter.timedOut { return condition() }
        }
        return true
    }

    /// `wake_up`: makes every sleeper runnable (each re-checks its condition).
    public func wakeUp() {
        let woken = waiters
        waiters.removeAll()
        for waiter in woken { waiter.resume(timedOut: false) }
    }

    /// How many contexts sleep here.
    public var sleepers: Int { waiters.filter(\.isWaiting).count }
}

/// A sleeping lock (`struct mutex`): a context that finds it held sleeps until it is released.
public final class KernelMutex: @unchecked Sendable {
    private let queue: WaitQueue
    /// The holder, if any.
    @exclusivity(unchecked) public private(set) var owner: KernelContext?
    @exclusivity(unchecked) private var held = false

    /// `mutex_init`.
    public init(_ name: String) {
        queue = WaitQueue("mutex_lock(\(name))")
    }

    /// A lock whose wait point is `name` as given (spinlocks).
    init(_ name: String, named: Bool) {
        queue = WaitQueue(name)
    }

    /// `mutex_lock`: a scheduling point, then the lock (sleeping while another context holds it).
    public func lock() async {
        await KernelScheduler.schedule()
        await queue.waitEvent { !held }
        held = true
        owner = KernelContext.current
    }

    /// `mutex_unlock`.
    public func unlock() {
        held = false
        owner = nil
        queue.wakeUp()
    }
}

/// A value handed to a task of the scheduler: safe to share because every kernel context runs
/// on the scheduler's one thread.
struct SingleThreaded<Value>: @unchecked Sendable {
    let value: Value
    init(_ value: Value) { self.value = value }
}

/// The contexts runs left blocked, shared by every scheduler (each on its own thread). Guarded
/// by a pthread mutex (NSLock) rather than Synchronization's futex-based `Mutex`, which
/// ThreadSanitizer cannot see and so reports as a race.
final class ParkedContexts: @unchecked Sendable {
    private let lock = NSLock()
    private var contexts: [KernelContext] = []

    func withLock<Result>(_ body: (inout [KernelContext]) -> Result) -> Result {
        lock.lock()
        defer { lock.unlock() }
        return body(&contexts)
    }
}
