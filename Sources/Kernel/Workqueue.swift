/// `struct work_struct`: a function a workqueue runs in one of its worker contexts.
public final class WorkItem: @unchecked Sendable {
    /// The work's name (shown in wait points).
    public let name: String
    let function: () async -> Void
    /// Queued and not yet started.
    public internal(set) var isPending = false
    /// Running in a worker now.
    public internal(set) var isRunning = false
    let idle: WaitQueue

    /// `INIT_WORK`.
    public init(_ name: String, _ function: @escaping () async -> Void) {
        self.name = name
        self.function = function
        idle = WaitQueue("cancel_work_sync(\(name))")
    }
}

/// `struct workqueue_struct`: worker contexts (daemons) that run queued work items in order;
/// an unbound queue has several, so its items may run concurrently.
public final class Workqueue: @unchecked Sendable {
    /// Its name (`kworker/<name>`).
    public let name: String
    private var pending: [WorkItem] = []
    private let work: WaitQueue
    private let drained: WaitQueue
    private var running = 0
    private var destroyed = false
    /// The worker contexts (to signal one, say).
    public private(set) var workerContexts: [KernelContext] = []

    /// `alloc_workqueue(name, flags, max_active)`: `workers` worker contexts on `scheduler`
    /// (1: ordered; more: an unbound queue).
    public init(_ name: String, workers: Int = 1, on scheduler: KernelScheduler) {
        self.name = name
        work = WaitQueue("worker_thread(\(name))")
        drained = WaitQueue("flush_workqueue(\(name))")
        for index in 0..<max(workers, 1) {
            let worker = scheduler.spawn("kworker/\(name):\(index)", daemon: true) { [self] in
                while true {
                    await work.waitEvent { !pending.isEmpty || destroyed }
                    if pending.isEmpty { return }
                    let item = pending.removeFirst()
                    item.isPending = false
                    item.isRunning = true
                    running += 1
                    await item.function()
                    running -= 1
                    item.isRunning = false
                    item.idle.wakeUp()
                    drained.wakeUp()
                }
            }
            workerContexts.append(worker)
        }
    }

    /// `queue_work`: false when the item is already pending.
    @discardableResult
    public func queue(_ item: WorkItem) -> Bool {
        guard !item.isPending else { return false }
        item.isPending = true
        pending.append(item)
        work.wakeUp()
        return true
    }

    /// `flush_workqueue`: waits until every item queued before the call has run.
    public func flush() async {
        await drained.waitEvent { pending.isEmpty && running == 0 }
    }

    /// `destroy_workqueue`: the workers finish what is queued, then exit (when the scheduler
    /// next runs); nothing may be queued afterwards.
    public func destroy() {
        destroyed = true
        work.wakeUp()
    }

    /// `cancel_work_sync`: removes the item if pending and waits for it if running; returns
    /// whether it was pending.
    @discardableResult
    public func cancelSync(_ item: WorkItem) async -> Bool {
        let wasPending = item.isPending
        if wasPending {
            pending.removeAll { $0 === item }
            item.isPending = false
            drained.wakeUp()
        }
        await item.idle.waitEvent { !item.isRunning }
        return wasPending
    }
}
