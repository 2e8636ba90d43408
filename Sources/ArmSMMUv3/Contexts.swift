import Kernel
import IOMMU

// Safe invalidation and recycling of PASIDs (seed 001, "iommu/arm-smmu-v3: Safe invalidation
// and recycling of PASIDs", the full diff): a context (a master bound to a process through a
// PASID) is USED, then STALE once unbound, INVALIDATED once the device's Stop Marker (or its
// driver) says no page request for it is left, and FREE when both: whoever completes the pair
// releases it, and only then is the PASID reused. Stale contexts that never see a Stop Marker
// (a PRI queue overflow drops them) are swept once the PRIQ thread has been through
// everything that was queued when they became stale.

/// `ARM_SMMU_CONTEXT_STALE`.
public let ARM_SMMU_CONTEXT_STALE: Int64 = 1 << 0
/// `ARM_SMMU_CONTEXT_INVALIDATED`.
public let ARM_SMMU_CONTEXT_INVALIDATED: Int64 = 1 << 1
/// `ARM_SMMU_CONTEXT_FREE`.
public let ARM_SMMU_CONTEXT_FREE: Int64 = ARM_SMMU_CONTEXT_STALE | ARM_SMMU_CONTEXT_INVALIDATED

/// `struct arm_smmu_context`.
public final class arm_smmu_context {
    /// The PASID.
    public let ssid: UInt32
    public private(set) weak var master: arm_smmu_master_data?
    /// The process's PASID reference.
    public let io_mm: io_mm
    /// The process's ASID (for invalidation after it exits).
    public let asid: UInt16
    /// Its CD was cleared (`arm_smmu_detach_task`).
    public internal(set) var detached = false
    /// `kref`: one for being in the master's tree, plus transient ones.
    public let kref = Kref()
    /// `state`: STALE and INVALIDATED bits.
    public let state = atomic64_t(0)
    /// Times it was released (tests check once).
    public internal(set) var releases = 0

    init(ssid: UInt32, master: arm_smmu_master_data, io_mm: io_mm) {
        self.ssid = ssid
        self.master = master
        self.io_mm = io_mm
        asid = io_mm.mm?.asid ?? 0
    }
}

/// `_arm_smmu_put_context` (contexts_lock held): the last reference removes the context and
/// gives the PASID back.
func _arm_smmu_put_context(_ context: arm_smmu_context) async {
    ftrace("_arm_smmu_put_context")
    await context.kref.put {
        context.releases += 1
        if let master = context.master, master.contexts[context.ssid] === context { master.contexts[context.ssid] = nil }
        context.io_mm.put()
    }
}

/// `arm_smmu_invalidate_context`: asks the device driver to stop using the PASID; its
/// IOMMU_PASID_* answer (0: still in use). Without operations, the PASID counts as in use
/// being stopped by the caller (0).
func arm_smmu_invalidate_context(_ context: arm_smmu_context) async -> UInt32 {
    ftrace("arm_smmu_invalidate_context")
    guard let dev = context.master?.dev, let ops = dev.iommu_param?.svm_ops else { return 0 }
    return await ops.invalidate_pasid(dev, context.ssid, nil)
}

/// `arm_smmu_unbind_task`: -EBUSY while the device still uses the PASID. Marks the context
/// STALE; releases it now if it was already invalidated (a Stop Marker came first), if the
/// device cannot fault, or if the device says the PASID is clean; otherwise leaves it for a
/// Stop Marker or the sweeper (queued at the stale watermark).
func arm_smmu_unbind_task(_ master: arm_smmu_master_data, _ pasid: UInt32, _ flags: UInt32) async -> Int32 {
    ftrace("arm_smmu_unbind_task")
    let smmu = master.smmu
    await smmu.contexts_lock.lock()
    guard let context = master.contexts[pasid] else {
        smmu.contexts_lock.unlock()
        return -ESRCH
    }
    await context.kref.get()
    smmu.contexts_lock.unlock()

    var pasid_state = flags & (IOMMU_PASID_FLUSHED | IOMMU_PASID_CLEAN)
    if pasid_state == 0 { pasid_state = await arm_smmu_invalidate_context(context) }
    if pasid_state == 0 {
        // The PASID is in use: nothing can be done.
        await smmu.contexts_lock.lock()
        await _arm_smmu_put_context(context)
        smmu.contexts_lock.unlock()
        return -EBUSY
    }

    var put_context = false
    var val = await context.state.fetchOr(ARM_SMMU_CONTEXT_STALE)
    if val == ARM_SMMU_CONTEXT_INVALIDATED || !master.can_fault || smmu.releaseAtUnbind {
        // A Stop Marker came already (or none can be pending).
        put_context = true
    } else if pasid_state & IOMMU_PASID_CLEAN != 0 {
        // The PASID may be freed now.
        val = await context.state.fetchOr(ARM_SMMU_CONTEXT_INVALIDATED)
        if val == ARM_SMMU_CONTEXT_STALE { put_context = true }
    }

    await smmu.contexts_lock.lock()
    await arm_smmu_detach_task(context)
    // Release the reference taken above.
    await _arm_smmu_put_context(context)
    if put_context {
        await _arm_smmu_put_context(context)
    } else {
        master.stale_contexts &+= 1
        if master.stale_contexts >= STALE_CONTEXTS_LIMIT(master) { smmu.system_long_wq?.queue(master.sweep_contexts) }
    }
    smmu.contexts_lock.unlock()
    return 0
}

/// A Stop Marker for `pasid` (seed 001's special case in the fault handler): the context is
/// INVALIDATED; if it was STALE, this completes the pair and releases it. No reply is sent.
func arm_smmu_handle_stop_marker(_ master: arm_smmu_master_data, _ pasid: UInt32) async {
    ftrace("arm_smmu_handle_stop_marker")
    let smmu = master.smmu
    await smmu.contexts_lock.lock()
    guard let context = master.contexts[pasid] else {
        smmu.contexts_lock.unlock()
        return
    }
    smmu.contexts_lock.unlock()
    let val = await context.state.fetchOr(ARM_SMMU_CONTEXT_INVALIDATED)
    if val == ARM_SMMU_CONTEXT_STALE {
        await smmu.contexts_lock.lock()
        await _arm_smmu_put_context(context)
        // Wrapping, as Linux's u32: the marker can complete a context between unbind's STALE
        // and its count of it, so this may run before the matching increment.
        master.stale_contexts &-= 1
        smmu.contexts_lock.unlock()
    }
}

/// `arm_smmu_sweep_contexts`: claims every STALE context (STALE -> FREE, so nobody else
/// releases it), waits until the PRIQ thread has handled everything queued now (two batches
/// or an empty queue: any page request for those PASIDs has then reached the fault queue),
/// flushes the fault queue, and releases them. An interrupted wait rolls the claim back.
func arm_smmu_sweep_contexts(_ master: arm_smmu_master_data) async {
    ftrace("arm_smmu_sweep_contexts")
    let smmu = master.smmu
    var flush_list: [arm_smmu_context] = []
    await smmu.contexts_lock.lock()
    dev_dbg(smmu.dev, "Sweeping contexts \(master.stale_contexts)/\(master.avail_contexts)")
    for context in master.contexts.keys.sorted().compactMap({ master.contexts[$0] }) {
        let val = await context.state.compareExchange(expected: ARM_SMMU_CONTEXT_STALE, new: ARM_SMMU_CONTEXT_FREE)
        if val == ARM_SMMU_CONTEXT_STALE { flush_list.append(context) }
    }
    smmu.contexts_lock.unlock()
    if flush_list.isEmpty { return }

    if await arm_smmu_flush_priq(smmu) != 0 {
        // Woops, rollback.
        await smmu.contexts_lock.lock()
        for context in flush_list { _ = await context.state.exchange(ARM_SMMU_CONTEXT_STALE) }
        smmu.contexts_lock.unlock()
        return
    }
    for queue in smmu.iopf_queues { await queue.wq.flush() }

    await smmu.contexts_lock.lock()
    for context in flush_list { await _arm_smmu_put_context(context) }
    master.stale_contexts &-= UInt32(flush_list.count)
    smmu.contexts_lock.unlock()
}

/// Seed 001's `arm_smmu_detach_dev` part: every context goes STALE (a bound one is first
/// stopped — "PASID %u was still bound!" when its device driver says it is in use — and its
/// CD cleared); those that cannot have page requests pending are released, the rest left to
/// the sweeper, which is queued.
func arm_smmu_detach_contexts(_ master: arm_smmu_master_data) async {
    ftrace("arm_smmu_detach_contexts")
    let smmu = master.smmu
    guard let dev = master.dev else { return }
    var new_stale_contexts: Int = 0
    await smmu.contexts_lock.lock()
    for context in master.contexts.keys.sorted().compactMap({ master.contexts[$0] }) {
        var pasid_state: UInt32 = 0
        var val = await context.state.fetchOr(ARM_SMMU_CONTEXT_STALE)
        // Someone else is waiting to free this context.
        if val == ARM_SMMU_CONTEXT_FREE { continue }
        if val & ARM_SMMU_CONTEXT_STALE == 0 {
            pasid_state = await arm_smmu_invalidate_context(context)
            if pasid_state == 0 {
                // References to the PASID may still hang around downstream of the SMMU.
                dev_warn(dev.kernelDevice, "PASID \(context.ssid) was still bound!")
            }
            await arm_smmu_detach_task(context)
            new_stale_contexts += 1
        }
        if val & ARM_SMMU_CONTEXT_INVALIDATED == 0 && master.can_fault && pasid_state & IOMMU_PASID_CLEAN == 0 {
            // Its PASID might still be waiting in the pipe.
            continue
        }
        if val & ARM_SMMU_CONTEXT_INVALIDATED != 0 && !smmu.detachAsTheSeed {
            // Not in the seed: a Stop Marker had invalidated the context, and the STALE set
            // above completed the pair, so this detach releases it. The seed went on to set
            // INVALIDATED again, saw FREE and skipped the release, leaving the context stale
            // for ever (no Stop Marker and no sweep can free it any more).
        } else {
            val = await context.state.fetchOr(ARM_SMMU_CONTEXT_INVALIDATED)
            if val == ARM_SMMU_CONTEXT_FREE { continue }
        }
        await _arm_smmu_put_context(context)
        new_stale_contexts -= 1
    }
    master.stale_contexts &+= UInt32(truncatingIfNeeded: new_stale_contexts)
    if master.stale_contexts > 0 { smmu.system_long_wq?.queue(master.sweep_contexts) }
    smmu.contexts_lock.unlock()
}

/// Seed 001's `arm_smmu_remove_device` part: the sweeper is cancelled and every remaining
/// context is forced free ("PASID %u wasn't invalidated": page requests might be pending,
/// but the device is going).
func arm_smmu_remove_contexts(_ master: arm_smmu_master_data) async {
    ftrace("arm_smmu_remove_contexts")
    let smmu = master.smmu
    if let wq = smmu.system_long_wq { _ = await wq.cancelSync(master.sweep_contexts) }
    await smmu.contexts_lock.lock()
    for context in master.contexts.keys.sorted().compactMap({ master.contexts[$0] }) {
        if let dev = master.dev { dev_warn(dev.kernelDevice, "PASID \(context.ssid) wasn't invalidated") }
        let val = await context.state.exchange(ARM_SMMU_CONTEXT_FREE)
        if val != ARM_SMMU_CONTEXT_FREE { await _arm_smmu_put_context(context) }
    }
    smmu.contexts_lock.unlock()
}
