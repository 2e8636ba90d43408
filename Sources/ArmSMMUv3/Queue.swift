import Platform
import Kernel
import IOMMU

// Low-level queue manipulation (Linux's queue_* helpers): the driver's shadow PROD/CONS, the
// index/wrap/overflow split by max_n_shift, and entries in coherent memory.

/// `Q_IDX(q, p)`.
@inlinable public func Q_IDX(_ q: arm_smmu_queue, _ p: UInt32) -> UInt32 { p & ((1 << q.max_n_shift) &- 1) }
/// `Q_WRP(q, p)`.
@inlinable public func Q_WRP(_ q: arm_smmu_queue, _ p: UInt32) -> UInt32 { p & (1 << q.max_n_shift) }
/// `Q_OVF(q, p)`.
@inlinable public func Q_OVF(_ q: arm_smmu_queue, _ p: UInt32) -> UInt32 { p & UInt32(Q_OVERFLOW_FLAG) }
/// `Q_ENT(q, p)`: the physical address of the entry at index `p`.
@inlinable public func Q_ENT(_ q: arm_smmu_queue, _ p: UInt32) -> UInt64 {
    q.base_dma &+ UInt64(Q_IDX(q, p)) &* UInt64(q.ent_dwords) &* 8
}

/// `-EAGAIN`.
public let EAGAIN: Int32 = 11
/// `-EOVERFLOW`.
public let EOVERFLOW: Int32 = 75

/// `queue_full`.
public func queue_full(_ q: arm_smmu_queue) -> Bool {
    Q_IDX(q, q.prod) == Q_IDX(q, q.cons) && Q_WRP(q, q.prod) != Q_WRP(q, q.cons)
}

/// `queue_empty`.
public func queue_empty(_ q: arm_smmu_queue) -> Bool {
    Q_IDX(q, q.prod) == Q_IDX(q, q.cons) && Q_WRP(q, q.prod) == Q_WRP(q, q.cons)
}

/// `queue_sync_cons`: reads CONS from the hardware.
public func queue_sync_cons(_ q: arm_smmu_queue) async {
    guard let register = q.cons_reg else { return }
    q.cons = await readl_relaxed(register)
}

/// `queue_inc_cons`: consumes one entry and tells the hardware.
public func queue_inc_cons(_ q: arm_smmu_queue) async {
    let cons = (Q_WRP(q, q.cons) | Q_IDX(q, q.cons)) &+ 1
    q.cons = Q_OVF(q, q.cons) | Q_WRP(q, cons) | Q_IDX(q, cons)
    if let register = q.cons_reg { await writel(q.cons, register) }
}

/// `queue_sync_prod`: reads PROD from the hardware; -EOVERFLOW when its overflow flag moved.
public func queue_sync_prod(_ q: arm_smmu_queue) async -> Int32 {
    guard let register = q.prod_reg else { return 0 }
    let prod = await readl_relaxed(register)
    let ret: Int32 = Q_OVF(q, prod) != Q_OVF(q, q.prod) ? -EOVERFLOW : 0
    q.prod = prod
    return ret
}

/// `queue_inc_prod`: publishes one more entry to the hardware.
public func queue_inc_prod(_ q: arm_smmu_queue) async {
    let prod = (Q_WRP(q, q.prod) | Q_IDX(q, q.prod)) &+ 1
    q.prod = Q_OVF(q, q.prod) | Q_WRP(q, prod) | Q_IDX(q, prod)
    if let register = q.prod_reg { await writel(q.prod, register) }
}

/// `Q_ENT` as a CPU pointer.
func queue_entry(_ q: arm_smmu_queue, _ p: UInt32) -> LE64Pointer? {
    q.base?.advanced(by: Int(Q_IDX(q, p)) &* q.ent_dwords)
}

/// `queue_write`: copies `n_dwords` doublewords of `src` to `dst`.
public func queue_write(_ dst: LE64Pointer, _ src: [UInt64], _ n_dwords: Int) {
    for index in 0..<min(n_dwords, src.count) { dst[index] = src[index] }
}

/// `queue_read`: `n_dwords` doublewords from `src`.
public func queue_read(_ src: LE64Pointer, _ n_dwords: Int) -> [UInt64] {
    (0..<n_dwords).map { src[$0] }
}

/// `queue_insert_raw`: writes `ent` at PROD and publishes it; -ENOSPC when full.
public func queue_insert_raw(_ q: arm_smmu_queue, _ ent: [UInt64]) async -> Int32 {
    if queue_full(q) { return -ENOSPC }
    guard let slot = queue_entry(q, q.prod) else { return -ENOSPC }
    queue_write(slot, ent, q.ent_dwords)
    await queue_inc_prod(q)
    return 0
}

/// `queue_remove_raw`: reads the entry at CONS and consumes it; nil (-EAGAIN) when empty.
public func queue_remove_raw(_ q: arm_smmu_queue) async -> [UInt64]? {
    if queue_empty(q) { return nil }
    guard let slot = queue_entry(q, q.cons) else { return nil }
    let entry = queue_read(slot, q.ent_dwords)
    await queue_inc_cons(q)
    return entry
}
