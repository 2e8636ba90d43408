import Kernel

// The I/O page fault queue (seed 000, "iommu: Add a page fault handler" v2 07/40, with
// io-pgfault.c's group handling): page requests are grouped by PRG index until the Last one,
// the group goes to a workqueue, each fault in it is handed to the mm fault handler, and
// exactly one page response goes back per group. The TODO the seed leaves — on a PRI queue
// overflow, discard the partial faults of every device sharing the queue — is implemented
// (`iopf_queue_discard_partial`).

/// The flush callback of an IOPF queue: commit every fault pending in the IOMMU's low-level
/// queue for `dev` (all devices when nil) into the IOPF queue.
public typealias iopf_queue_flush_t = (AnyObject?, device?) async -> Int32

/// `struct iopf_queue`.
public final class iopf_queue {
    /// The unbound workqueue the groups run on.
    public let wq: Workqueue
    let flush: iopf_queue_flush_t
    let flush_arg: AnyObject?
    /// Producers plus the queue's own reference (`refs`).
    public private(set) var refs = 1
    /// The devices reporting to it (for discarding partial faults on overflow; weak: a device
    /// owns its link to the queue).
    var producers: [WeakDevice] = []
    /// The devices reporting to it.
    public var devices: [device] { producers.compactMap(\.device) }
    /// Where the mm of a PASID is found (Linux: the global PASID idr).
    public let pasids: iommu_pasid_idr
    /// Guards `devices`.
    let lock = KernelMutex("iopf_queue.lock")

    init(wq: Workqueue, flush: @escaping iopf_queue_flush_t, flush_arg: AnyObject?, pasids: iommu_pasid_idr) {
        self.wq = wq
        self.flush = flush
        self.flush_arg = flush_arg
        self.pasids = pasids
    }

    func retain() { refs += 1 }
    func release() { refs -= 1 }
}

/// A weak reference to a device.
struct WeakDevice {
    weak var device: device?
}

/// The partial faults one device may have waiting. A device (or a guest driving it) that sends
/// non-Last requests and never the Last one would otherwise grow the list for ever; beyond
/// the limit new partial faults are dropped (the group then fails when its Last arrives, as a
/// group that lost a request to an overflow does).
public let IOPF_PARTIAL_LIMIT = 4096

/// `struct iopf_device_param`: a device's link to its queue and its partial groups.
public final class iopf_device_param {
    public let queue: iopf_queue
    /// Non-Last requests waiting for their group's Last one (at most ``IOPF_PARTIAL_LIMIT``).
    public var partial: [iopf_context] = []
    /// Partial faults dropped at the limit.
    public internal(set) var dropped = 0

    init(queue: iopf_queue) {
        self.queue = queue
    }
}

/// `struct iopf_context`: one fault of a group.
public struct iopf_context {
    public let dev: device
    public let evt: iommu_fault_event

    public init(dev: device, evt: iommu_fault_event) {
        self.dev = dev
        self.evt = evt
    }
}

/// `struct iopf_group`.
final class iopf_group {
    let last_fault: iopf_context
    let faults: [iopf_context]
    let pasids: iommu_pasid_idr

    init(last_fault: iopf_context, faults: [iopf_context], pasids: iommu_pasid_idr) {
        self.last_fault = last_fault
        self.faults = faults
        self.pasids = pasids
    }
}

/// `iopf_complete`: the group's one response.
func iopf_complete(_ dev: device, _ evt: iommu_fault_event, _ status: Int32) async -> Int32 {
    ftrace("iopf_complete")
    return await iommu_page_response(dev, page_response_msg(answering: evt, status))
}

/// `iopf_handle_single`: one fault through the mm fault handler: INVALID without a PASID, an
/// mm for it, a VMA at the address, or the access rights; SUCCESS once the page is in.
public func iopf_handle_single(_ fault: iopf_context, _ pasids: iommu_pasid_idr) async -> Int32 {
    ftrace("iopf_handle_single")
    let evt = fault.evt
    guard evt.pasid_valid, let mm = iommu_sva_find(pasids, evt.pasid) else { return IOMMU_PAGE_RESP_INVALID }
    await mm.mmap_sem.lock()
    defer { mm.mmap_sem.unlock() }
    // Unmapped area
    guard let vma = mm.find_vma(evt.addr) else { return IOMMU_PAGE_RESP_INVALID }
    // Access fault
    if evt.prot & IOMMU_FAULT_READ != 0 && !vma.read { return IOMMU_PAGE_RESP_INVALID }
    if evt.prot & IOMMU_FAULT_WRITE != 0 && !vma.write { return IOMMU_PAGE_RESP_INVALID }
    if evt.prot & IOMMU_FAULT_EXEC != 0 && !vma.execute { return IOMMU_PAGE_RESP_INVALID }
    return mm.handleMMFault(evt.addr, write: evt.prot & IOMMU_FAULT_WRITE != 0) == .handled ? IOMMU_PAGE_RESP_SUCCESS : IOMMU_PAGE_RESP_INVALID
}

/// `iopf_handle_group`: every fault of the group in order (errors are sticky: after one, the
/// rest are not handled), then the one response.
func iopf_handle_group(_ group: iopf_group) async {
    ftrace("iopf_handle_group")
    var status = IOMMU_PAGE_RESP_SUCCESS
    for fault in group.faults where status == IOMMU_PAGE_RESP_SUCCESS {
        status = await iopf_handle_single(fault, group.pasids)
    }
    _ = await iopf_complete(group.last_fault.dev, group.last_fault.evt, status)
}

/// `iommu_queue_iopf`: the fault handler an IOMMU driver registers for IOPF-capable devices
/// (`cookie` is the device). A non-Last request waits in the device's partial list; a Last
/// one takes its group's partial requests (same PRG index) and goes to the workqueue. Called
/// with the device's IOMMU lock held (by `iommu_report_device_fault`).
public func iommu_queue_iopf(_ evt: iommu_fault_event, _ cookie: AnyObject?) async -> Int32 {
    ftrace("iommu_queue_iopf")
    guard let dev = cookie as? device, let param = dev.iommu_param else { return -EINVAL }
    // Not a recoverable page fault.
    if evt.type != .IOMMU_FAULT_PAGE_REQ { return IOMMU_PAGE_RESP_CONTINUE }
    // Holding the device's lock, the queue cannot be unlinked from it.
    guard let iopf_param = param.iopf_param else { return -ENODEV }

    if !evt.last_req {
        if iopf_param.partial.count >= IOPF_PARTIAL_LIMIT {
            iopf_param.dropped += 1
            return -ENOSPC
        }
        // Non-last request of a group: postponed until the last one.
        iopf_param.partial.append(iopf_context(dev: dev, evt: evt))
        return IOMMU_PAGE_RESP_HANDLED
    }

    // The group's partial faults go *before* the last one, in arrival order.
    var faults: [iopf_context] = []
    iopf_param.partial.removeAll { fault in
        guard fault.evt.page_req_group_id == evt.page_req_group_id else { return false }
        faults.append(fault)
        return true
    }
    let last = iopf_context(dev: dev, evt: evt)
    faults.append(last)
    let group = iopf_group(last_fault: last, faults: faults, pasids: iopf_param.queue.pasids)
    iopf_param.queue.wq.queue(WorkItem("iopf_handle_group") { await iopf_handle_group(group) })
    // The completion is postponed.
    return IOMMU_PAGE_RESP_HANDLED
}

/// `iopf_queue_flush_dev`: commits the device's faults pending in the IOMMU (the queue's
/// flush callback), then waits for every queued group. The device's lock is not held while
/// flushing: the PRI queue handler takes it to queue faults, the opposite order.
public func iopf_queue_flush_dev(_ dev: device) async -> Int32 {
    ftrace("iopf_queue_flush_dev")
    guard let param = dev.iommu_param else { return -ENODEV }
    await param.lock.lock()
    let queue = param.iopf_param?.queue
    param.lock.unlock()
    guard let queue else { return -ENODEV }
    _ = await queue.flush(queue.flush_arg, dev)
    // No need to clear the partial list: the PRGs of a decommissioned PASID are whole (the
    // device driver made sure of it) and were submitted by the flush above.
    await queue.wq.flush()
    return 0
}

/// `iopf_queue_add_device`: links the device to `queue`; -EINVAL when it already has one,
/// -ENOMEM, -ENODEV without IOMMU state.
public func iopf_queue_add_device(_ queue: iopf_queue, _ dev: device, faults: AllocationFaults = AllocationFaults()) async -> Int32 {
    ftrace("iopf_queue_add_device")
    guard let param = dev.iommu_param else { return -ENODEV }
    guard let iopf_param = kzalloc(faults, { iopf_device_param(queue: queue) }) else { return -ENOMEM }
    await queue.lock.lock()
    await param.lock.lock()
    var ret = -EINVAL
    if param.iopf_param == nil {
        queue.retain()
        param.iopf_param = iopf_param
        queue.producers.append(WeakDevice(device: dev))
        ret = 0
    }
    param.lock.unlock()
    queue.lock.unlock()
    return ret
}

/// `iopf_queue_remove_device`: unlinks the device from its queue and frees its partial
/// faults (a group whose Last request was lost, to buggy hardware or a PRI queue overflow).
/// Safe on a device not linked to any queue (-EINVAL then); 0 when it was.
@discardableResult
public func iopf_queue_remove_device(_ dev: device) async -> Int32 {
    ftrace("iopf_queue_remove_device")
    guard let param = dev.iommu_param else { return -EINVAL }
    await param.lock.lock()
    let iopf_param = param.iopf_param
    param.iopf_param = nil
    param.lock.unlock()
    guard let iopf_param else { return -EINVAL }
    let queue = iopf_param.queue
    await queue.lock.lock()
    queue.producers.removeAll { $0.device === dev || $0.device == nil }
    queue.release()
    queue.lock.unlock()
    iopf_param.partial.removeAll()
    return 0
}

/// `iopf_queue_discard_partial`: after a PRI queue overflow (which may have dropped the Last
/// request of any group in flight), frees the partial faults of every device sharing the
/// queue: those groups can never complete. Returns how many faults were discarded.
@discardableResult
public func iopf_queue_discard_partial(_ queue: iopf_queue) async -> Int {
    ftrace("iopf_queue_discard_partial")
    await queue.lock.lock()
    defer { queue.lock.unlock() }
    var discarded = 0
    for dev in queue.devices {
        guard let param = dev.iommu_param else { continue }
        await param.lock.lock()
        if let iopf_param = param.iopf_param {
            discarded += iopf_param.partial.count
            iopf_param.partial.removeAll()
        }
        param.lock.unlock()
    }
    return discarded
}

/// `iopf_queue_alloc`: a queue whose groups run on an unbound workqueue named
/// `iopf_queue/<name>` (groups may be handled out of order; requests within a group are
/// ordered), `flush` committing the IOMMU's pending faults; nil when allocation fails.
public func iopf_queue_alloc(_ name: String, _ flush: @escaping iopf_queue_flush_t, _ cookie: AnyObject?, on scheduler: KernelScheduler, pasids: iommu_pasid_idr, faults: AllocationFaults = AllocationFaults(), workers: Int = 2) -> iopf_queue? {
    ftrace("iopf_queue_alloc")
    return kzalloc(faults) { iopf_queue(wq: Workqueue("iopf_queue/\(name)", workers: workers, on: scheduler), flush: flush, flush_arg: cookie, pasids: pasids) }
}

/// `iopf_queue_free`: the producers must have been removed first (WARN: the queue stays).
@discardableResult
public func iopf_queue_free(_ queue: iopf_queue) -> Bool {
    ftrace("iopf_queue_free")
    queue.release()
    guard queue.refs == 0 else {
        queue.retain()
        return false
    }
    queue.wq.destroy()
    return true
}
