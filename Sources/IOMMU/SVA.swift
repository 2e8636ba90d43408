import Kernel

// Shared Virtual Addressing (seed 002, "iommu: Introduce Shared Virtual Addressing API" v2
// 01/40 and its discussion): a device driver prepares its device, binds process address
// spaces to it (each gets a PASID from the shared allocator, one PASID per process however
// many devices it is bound to), and unbinds them; when a process exits, every device driver
// bound to it is told (`mm_exit`) and must stop using the PASID, and only once all of them
// returned can the PASID be reused.

/// `IOMMU_SVA_FEAT_IOPF`: the device's page faults are handled through the IOPF queue.
public let IOMMU_SVA_FEAT_IOPF: UInt32 = 1 << 0

/// `iommu_mm_exit_handler_t`: the device driver stops using `pasid` (it may block).
public typealias iommu_mm_exit_handler_t = (device, UInt32, AnyObject?) async -> Int32

/// `struct iommu_sva_param`.
public struct iommu_sva_param {
    public var features: UInt32 = 0
    public var min_pasid: UInt32 = 1
    public var max_pasid: UInt32 = 0
    public var mm_exit: iommu_mm_exit_handler_t?
    public init() {}
}

/// `struct iommu_bond`: one device bound to one io_mm.
public final class iommu_bond {
    public let io_mm: io_mm
    /// The bound device (the registry must not keep it alive).
    public private(set) weak var dev: device?
    public let drvdata: AnyObject?
    init(io_mm: io_mm, dev: device, drvdata: AnyObject?) {
        self.io_mm = io_mm
        self.dev = dev
        self.drvdata = drvdata
    }
}

/// `iommu_sva_device_init`: the IOMMU prepares the device (and narrows its PASID range to
/// `max_pasid` and what it supports); with IOMMU_SVA_FEAT_IOPF its faults are routed to the
/// IOPF queue. -ENODEV without an attached domain that supports SVA, -EBUSY when done already.
public func iommu_sva_device_init(_ dev: device, _ features: UInt32, _ max_pasid: UInt32, _ mm_exit: iommu_mm_exit_handler_t?) async -> Int32 {
    ftrace("iommu_sva_device_init")
    guard let domain = iommu_get_domain_for_dev(dev), let sva_device_init = domain.ops.sva_device_init, let param = dev.iommu_param else { return -ENODEV }
    if param.sva_param != nil { return -EBUSY }
    var sva = iommu_sva_param()
    sva.features = features
    sva.max_pasid = max_pasid
    sva.mm_exit = mm_exit
    var ret = await sva_device_init(dev, &sva)
    if ret != 0 { return ret }
    if features & IOMMU_SVA_FEAT_IOPF != 0 {
        ret = await iommu_register_device_fault_handler(dev, iommu_queue_iopf, dev)
        if ret != 0 {
            await domain.ops.sva_device_shutdown?(dev)
            return ret
        }
    }
    param.sva_param = sva
    return 0
}

/// `iommu_sva_device_shutdown`: every bond of the device must be gone (-EBUSY otherwise).
public func iommu_sva_device_shutdown(_ dev: device, _ registry: iommu_sva_registry) async -> Int32 {
    ftrace("iommu_sva_device_shutdown")
    guard let param = dev.iommu_param, let sva = param.sva_param else { return -ENODEV }
    if registry.bonds(of: dev).count > 0 { return -EBUSY }
    if sva.features & IOMMU_SVA_FEAT_IOPF != 0 { _ = await iommu_unregister_device_fault_handler(dev) }
    await iommu_get_domain_for_dev(dev)?.ops.sva_device_shutdown?(dev)
    param.sva_param = nil
    return 0
}

/// The bonds and io_mms of one kernel world (Linux keeps them in iommu-sva.c's globals),
/// over the shared PASID allocator.
public final class iommu_sva_registry: @unchecked Sendable {
    public let pasids: iommu_pasid_idr
    /// Bonds indexed by device, io_mm and process (each list in bind order), so that a
    /// lookup costs the bonds of one device or process, not of the whole world. Keys are taken
    /// when a bond is made; every lookup still checks identity, so a key left by an object
    /// that went away (a device dropped with bonds left) cannot match another one.
    private var byDevice: [ObjectIdentifier: [iommu_bond]] = [:]
    private var byIOMM: [ObjectIdentifier: [iommu_bond]] = [:]
    private var byProcess: [ObjectIdentifier: [iommu_bond]] = [:]
    private var keys: [ObjectIdentifier: (device: ObjectIdentifier, process: ObjectIdentifier?)] = [:]
    /// Test-only: unbind without flushing the device's faults (with the IOMMU's own wait
    /// also removed, a PASID can then be reused while requests for its old bond are queued).
    var unbindSkipsFlush = false
    let lock = KernelMutex("iommu_sva_lock")

    public init(pasids: iommu_pasid_idr) {
        self.pasids = pasids
    }

    /// The device's bonds.
    public func bonds(of dev: device) -> [iommu_bond] { (byDevice[ObjectIdentifier(dev)] ?? []).filter { $0.dev === dev } }
    /// The io_mm's bonds.
    func bonds(of io_mm: io_mm) -> [iommu_bond] { byIOMM[ObjectIdentifier(io_mm)] ?? [] }
    /// Bonds in the registry.
    public var count: Int { keys.count }

    func add(_ bond: iommu_bond) {
        guard let dev = bond.dev else { return }
        let device = ObjectIdentifier(dev)
        let process = bond.io_mm.mm.map(ObjectIdentifier.init)
        keys[ObjectIdentifier(bond)] = (device, process)
        byDevice[device, default: []].append(bond)
        byIOMM[ObjectIdentifier(bond.io_mm), default: []].append(bond)
        if let process { byProcess[process, default: []].append(bond) }
    }

    func remove(_ bond: iommu_bond) {
        guard let key = keys.removeValue(forKey: ObjectIdentifier(bond)) else { return }
        Self.remove(bond, under: key.device, from: &byDevice)
        Self.remove(bond, under: ObjectIdentifier(bond.io_mm), from: &byIOMM)
        if let process = key.process { Self.remove(bond, under: process, from: &byProcess) }
    }

    private static func remove(_ bond: iommu_bond, under key: ObjectIdentifier, from index: inout [ObjectIdentifier: [iommu_bond]]) {
        index[key]?.removeAll { $0 === bond }
        if index[key]?.isEmpty == true { index[key] = nil }
    }

    /// The io_mm of a live process already bound somewhere.
    func io_mm(for mm: MMStruct) -> IOMMU.io_mm? { byProcess[ObjectIdentifier(mm)]?.first { $0.io_mm.mm === mm }?.io_mm }
}

/// `iommu_sva_bind_device`: binds `mm` to the device, returning its PASID (the process's
/// existing one if it is bound elsewhere, else a new one within the device's range).
public func iommu_sva_bind_device(_ dev: device, _ mm: MMStruct, _ drvdata: AnyObject?, _ registry: iommu_sva_registry) async -> (Int32, UInt32) {
    ftrace("iommu_sva_bind_device")
    guard let domain = iommu_get_domain_for_dev(dev), let mm_attach = domain.ops.mm_attach, let sva = dev.iommu_param?.sva_param else { return (-ENODEV, 0) }
    await registry.lock.lock()
    defer { registry.lock.unlock() }
    if mm.isDead { return (-EINVAL, 0) }
    let bound: io_mm
    var fresh = false
    if let existing = registry.io_mm(for: mm) {
        bound = existing
        if bound.pasid < sva.min_pasid || bound.pasid > sva.max_pasid { return (-ENOSPC, 0) }
        if registry.bonds(of: dev).contains(where: { $0.io_mm === existing }) { return (0, existing.pasid) }
    } else {
        var made: IOMMU.io_mm?
        let id = registry.pasids.idr_alloc(sva.min_pasid, sva.max_pasid &+ 1) { pasid in
            let new = IOMMU.io_mm(pasid: pasid, mm: mm)
            made = new
            return new
        }
        guard id >= 0, let made else { return (id < 0 ? id : -ENOSPC, 0) }
        bound = made
        bound.idr = registry.pasids
        fresh = true
    }
    let ret = await mm_attach(domain, dev, bound)
    if ret != 0 {
        if fresh { registry.pasids.idr_remove(bound.pasid) }
        return (ret, 0)
    }
    registry.add(iommu_bond(io_mm: bound, dev: dev, drvdata: drvdata))
    if fresh {
        bound.notifier = mm.registerNotifier { [weak registry, weak bound] _ in
            guard let registry, let bound else { return }
            await iommu_notifier_release(bound, registry)
        }
    }
    return (0, bound.pasid)
}

/// `IOMMU_PASID_FLUSHED` (seed 001): the device stopped using the PASID and sends a Stop
/// Marker for it (outstanding page requests may still be on their way).
public let IOMMU_PASID_FLUSHED: UInt32 = 1 << 0
/// `IOMMU_PASID_CLEAN`: the device stopped using the PASID and waited for every page request
/// to come back: it can be reused at once.
public let IOMMU_PASID_CLEAN: UInt32 = 1 << 1

/// `struct iommu_svm_ops`: what the device driver tells the IOMMU about its PASIDs.
public struct iommu_svm_ops {
    /// Stops the device using `pasid`: IOMMU_PASID_FLUSHED or IOMMU_PASID_CLEAN as the device
    /// did, or 0 when the PASID is still in use.
    public var invalidate_pasid: (device, UInt32, AnyObject?) async -> UInt32

    public init(invalidate_pasid: @escaping (device, UInt32, AnyObject?) async -> UInt32) {
        self.invalidate_pasid = invalidate_pasid
    }
}

/// `iommu_set_svm_ops`.
public func iommu_set_svm_ops(_ dev: device, _ ops: iommu_svm_ops?) {
    ftrace("iommu_set_svm_ops")
    dev.iommu_param?.svm_ops = ops
}

/// `iommu_sva_unbind_device`: the IOMMU stops the device translating with the PASID (it may
/// refuse with -EBUSY while the device still uses it: see `flags`), faults for it still
/// queued are flushed, and the core's reference to the PASID goes with the last bond (the
/// IOMMU may hold the PASID longer, until it knows no page request for it is in flight).
public func iommu_sva_unbind_device(_ dev: device, _ pasid: UInt32, _ registry: iommu_sva_registry, flags: UInt32 = IOMMU_PASID_CLEAN) async -> Int32 {
    ftrace("iommu_sva_unbind_device")
    guard let domain = iommu_get_domain_for_dev(dev) else { return -ENODEV }
    await registry.lock.lock()
    guard let bond = registry.bonds(of: dev).first(where: { $0.io_mm.pasid == pasid }) else {
        registry.lock.unlock()
        return -ESRCH
    }
    registry.lock.unlock()
    let ret = await domain.ops.mm_detach?(domain, dev, bond.io_mm, flags) ?? 0
    if ret != 0 { return ret }
    // Faults for this PASID still queued must not outlive the bond.
    if !registry.unbindSkipsFlush { _ = await iopf_queue_flush_dev(dev) }
    await registry.lock.lock()
    registry.remove(bond)
    if registry.bonds(of: bond.io_mm).isEmpty { iommu_io_mm_free(bond.io_mm, registry) }
    registry.lock.unlock()
    return 0
}

/// The release notifier of a bound process: every device driver bound to it stops using the
/// PASID (`mm_exit`, which may block), the IOMMU stops translating with it, and only then is
/// the PASID freed for reuse.
func iommu_notifier_release(_ bound: io_mm, _ registry: iommu_sva_registry) async {
    ftrace("iommu_notifier_release")
    await registry.lock.lock()
    let bonds = registry.bonds(of: bound)
    registry.lock.unlock()
    for bond in bonds {
        guard let dev = bond.dev else { continue }
        if let mm_exit = dev.iommu_param?.sva_param?.mm_exit { _ = await mm_exit(dev, bound.pasid, bond.drvdata) }
        // mm_exit returned: the device no longer uses the PASID (it may still send a Stop Marker).
        if let domain = iommu_get_domain_for_dev(dev) { _ = await domain.ops.mm_detach?(domain, dev, bound, IOMMU_PASID_FLUSHED) }
        _ = await iopf_queue_flush_dev(dev)
    }
    await registry.lock.lock()
    for bond in bonds { registry.remove(bond) }
    bound.notifier = nil
    iommu_io_mm_free(bound, registry)
    registry.lock.unlock()
}

/// Drops the core's reference to the io_mm (the PASID goes when the IOMMU's contexts let it)
/// and its notifier; faults can no longer find the process through it.
func iommu_io_mm_free(_ bound: io_mm, _ registry: iommu_sva_registry) {
    ftrace("iommu_io_mm_free")
    if let notifier = bound.notifier, let mm = bound.mm { mm.unregisterNotifier(notifier) }
    bound.notifier = nil
    bound.detachMM()
    bound.put()
}

/// `-ESRCH`.
public let ESRCH: Int32 = 3
