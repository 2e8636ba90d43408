import Kernel

/// An idr-like PASID allocator that the IOMMU core and device drivers can share (seed 002:
/// "iommu-sva can get its PASID from this external allocator as well, as long as it has an
/// interface similar to idr"). Linux keeps one for the whole system; here each kernel world
/// has its own, so that tests running in parallel do not share PASIDs.
public final class iommu_pasid_idr: @unchecked Sendable {
    private var entries: [UInt32: AnyObject] = [:]
    /// The lowest free PASID is not tracked: allocation scans from `min`, as `idr_alloc` does.
    public init() {}

    /// `idr_alloc(idr, ptr, min, max)`: the lowest free id in `[min, max)` now bound to
    /// `object`, or -ENOSPC.
    public func idr_alloc(_ object: AnyObject, _ min: UInt32, _ max: UInt32) -> Int32 {
        var id = min
        while id < max {
            if entries[id] == nil {
                entries[id] = object
                return Int32(bitPattern: id)
            }
            id += 1
        }
        return -ENOSPC
    }

    /// `idr_alloc` for an object that records its own id: the lowest free id in `[min, max)`
    /// now bound to `make(id)`, or -ENOSPC.
    public func idr_alloc(_ min: UInt32, _ max: UInt32, _ make: (UInt32) -> AnyObject) -> Int32 {
        var id = min
        while id < max {
            if entries[id] == nil {
                entries[id] = make(id)
                return Int32(bitPattern: id)
            }
            id += 1
        }
        return -ENOSPC
    }

    /// `idr_find`.
    public func idr_find(_ id: UInt32) -> AnyObject? { entries[id] }

    /// `idr_remove`: the object that was bound to `id`.
    @discardableResult
    public func idr_remove(_ id: UInt32) -> AnyObject? { entries.removeValue(forKey: id) }

    /// PASIDs in use.
    public var count: Int { entries.count }

    /// `idr_for_each`: every allocated id and its object, lowest id first.
    public func idr_for_each(_ body: (UInt32, AnyObject) -> Void) {
        for id in entries.keys.sorted() {
            if let object = entries[id] { body(id, object) }
        }
    }
}

/// `struct io_mm`: a process address space bound to devices through one PASID.
public final class io_mm {
    /// The PASID.
    public let pasid: UInt32
    /// The address space (nil once the process exited).
    public private(set) var mm: MMStruct?
    /// Its release notifier, while bound.
    var notifier: Int?
    /// References: the core's (while bonds exist) and each IOMMU context using the PASID; the
    /// PASID is freed when the last goes (seed 001: not before the IOMMU says so).
    public private(set) var users = 1
    /// Where the PASID goes back.
    weak var idr: iommu_pasid_idr?
    /// Times the PASID was freed (tests check it happens once).
    public private(set) var frees = 0

    /// Takes a reference for an IOMMU context.
    public func get() { users += 1 }

    /// Drops a reference; the last one frees the PASID.
    public func put() {
        users -= 1
        if users == 0 {
            frees += 1
            idr?.idr_remove(pasid)
        }
    }

    public init(pasid: UInt32, mm: MMStruct) {
        self.pasid = pasid
        self.mm = mm
    }

    /// The process went away.
    public func detachMM() { mm = nil }
}

/// `iommu_sva_find`: the address space bound to `pasid` (nil: none, or it exited).
public func iommu_sva_find(_ idr: iommu_pasid_idr, _ pasid: UInt32) -> MMStruct? {
    ftrace("iommu_sva_find")
    return (idr.idr_find(pasid) as? io_mm)?.mm
}
