import Kernel

// The driver-independent IOMMU core (drivers/iommu/iommu.c of the 2018 SVA tree, as far as
// the seed patches need it): devices with their firmware spec and per-device IOMMU state,
// domains with the driver's operations, attach/detach.

/// `struct device` of a master behind an IOMMU, with its `iommu_fwspec` and `iommu_param`.
public final class device {
    /// `dev_name`.
    public let name: String
    /// The log `dev_err` on it writes to.
    public let log: KernelLog
    /// `dev->iommu_fwspec`.
    public var iommu_fwspec: iommu_fwspec?
    /// `dev->iommu_param` (Linux allocates it when the device joins its group; here, with
    /// the device).
    public var iommu_param: iommu_param?
    /// The PCI function, for a PCI master (`dev_is_pci`, `to_pci_dev`).
    public let pci: pci_dev?
    /// The domain attached (`iommu_get_domain_for_dev`).
    public internal(set) var domain: iommu_domain?
    /// References taken by `get_device` and not yet dropped by `put_device`.
    public internal(set) var references = 0
    /// The driver bound to the device (`dev->driver`); see ``device_bind_driver(_:_:)``.
    public internal(set) var driver: String?

    /// A master named `name` whose StreamIDs are `ids`, behind the IOMMU `iommu_fwnode`; a PCI
    /// function when `pci` is given, behind a root complex that supports ATS when
    /// `rootComplexATS` (IORT's ATS attribute).
    public init(name: String, log: KernelLog, smmu_pdev iommu_fwnode: platform_device, ids: [UInt32], pci: pci_dev? = nil, rootComplexATS: Bool = true) {
        self.name = name
        self.log = log
        self.pci = pci
        let fwspec = IOMMU.iommu_fwspec(iommu_fwnode: iommu_fwnode, ids: ids)
        if pci != nil && rootComplexATS { fwspec.flags |= IOMMU_FWSPEC_PCI_RC_ATS }
        iommu_fwspec = fwspec
        iommu_param = IOMMU.iommu_param(name: name)
    }

    /// The `struct device` for `dev_err(dev, …)`.
    public var kernelDevice: KernelDevice { KernelDevice(driver: driver ?? "", name: name, log: log) }
}

/// `get_device`.
public func get_device(_ dev: device) { dev.references += 1 }
/// `put_device`.
public func put_device(_ dev: device) { dev.references -= 1 }

/// `IOMMU_FWSPEC_PCI_RC_ATS`: the root complex supports ATS.
public let IOMMU_FWSPEC_PCI_RC_ATS: UInt32 = 1 << 0

/// `struct iommu_fwspec`: the IOMMU a master is behind and its StreamIDs.
public final class iommu_fwspec {
    /// `iommu_fwnode`: the IOMMU's platform device.
    public let iommu_fwnode: platform_device
    /// `ids`.
    public var ids: [UInt32]
    /// `iommu_priv`: the driver's per-master data.
    public var iommu_priv: AnyObject?
    /// `flags`.
    public var flags: UInt32 = 0

    public init(iommu_fwnode: platform_device, ids: [UInt32]) {
        self.iommu_fwnode = iommu_fwnode
        self.ids = ids
    }
}

/// `struct iommu_param`: the core's per-device IOMMU state, under `lock`.
public final class iommu_param {
    /// `lock`.
    public let lock: KernelMutex
    /// The registered fault handler (`fault_param`).
    public var fault_param: iommu_fault_param?
    /// The IOPF queue the device reports to (`iopf_param`).
    public var iopf_param: iopf_device_param?
    /// SVA state (`sva_param`).
    public var sva_param: iommu_sva_param?
    /// The device driver's PASID operations (`iommu_set_svm_ops`).
    public var svm_ops: iommu_svm_ops?

    init(name: String) {
        lock = KernelMutex("iommu_param(\(name)).lock")
    }
}

/// `IOMMU_DOMAIN_*`.
public enum iommu_domain_type: Sendable {
    case IOMMU_DOMAIN_BLOCKED
    case IOMMU_DOMAIN_IDENTITY
    case IOMMU_DOMAIN_UNMANAGED
    case IOMMU_DOMAIN_DMA
}

/// `struct iommu_ops`, the part the core calls through a domain.
public struct iommu_ops: Sendable {
    public var attach_dev: @Sendable (iommu_domain, device) async -> Int32
    public var detach_dev: @Sendable (iommu_domain, device) async -> Void
    /// Sends a page response down to the device (nil: the IOMMU cannot).
    public var page_response: (@Sendable (device, page_response_msg) async -> Int32)?
    /// SVA (the 2018 tree): prepare a device for binding address spaces (its PASID range
    /// comes back), and undo it.
    public var sva_device_init: (@Sendable (device, inout iommu_sva_param) async -> Int32)?
    public var sva_device_shutdown: (@Sendable (device) async -> Void)?
    /// SVA: make the device's accesses with `io_mm`'s PASID translate through its page
    /// tables; and stop that.
    public var mm_attach: (@Sendable (iommu_domain, device, io_mm) async -> Int32)?
    public var mm_detach: (@Sendable (iommu_domain, device, io_mm, UInt32) async -> Int32)?

    public init(attach_dev: @escaping @Sendable (iommu_domain, device) async -> Int32, detach_dev: @escaping @Sendable (iommu_domain, device) async -> Void, page_response: (@Sendable (device, page_response_msg) async -> Int32)? = nil) {
        self.attach_dev = attach_dev
        self.detach_dev = detach_dev
        self.page_response = page_response
    }
}

/// `struct iommu_domain`: a driver's domain type derives from it (Linux's `container_of`).
open class iommu_domain {
    /// `type`.
    public let type: iommu_domain_type
    /// `ops`.
    public let ops: iommu_ops
    /// `pgsize_bitmap`.
    public var pgsize_bitmap: UInt64 = 0

    public init(type: iommu_domain_type, ops: iommu_ops) {
        self.type = type
        self.ops = ops
    }
}

/// `iommu_get_domain_for_dev`.
public func iommu_get_domain_for_dev(_ dev: device) -> iommu_domain? { dev.domain }

/// `iommu_attach_device`: the driver attaches the device; the core remembers the domain.
public func iommu_attach_device(_ domain: iommu_domain, _ dev: device) async -> Int32 {
    ftrace("iommu_attach_device")
    let ret = await domain.ops.attach_dev(domain, dev)
    if ret == 0 { dev.domain = domain }
    return ret
}

/// `iommu_detach_device`.
public func iommu_detach_device(_ domain: iommu_domain, _ dev: device) async {
    ftrace("iommu_detach_device")
    guard dev.domain === domain else { return }
    await domain.ops.detach_dev(domain, dev)
    dev.domain = nil
}
