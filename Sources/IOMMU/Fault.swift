import Kernel

// The device fault report API (seed 003, "iommu: introduce device fault report API" v2 10/16,
// with the review's request: the handler belongs to the device's driver and is dropped when
// the driver changes).

/// `enum iommu_fault_type`.
public enum iommu_fault_type: Sendable {
    /// `IOMMU_FAULT_DMA_UNRECOV`: unrecoverable fault.
    case IOMMU_FAULT_DMA_UNRECOV
    /// `IOMMU_FAULT_PAGE_REQ`: page request fault.
    case IOMMU_FAULT_PAGE_REQ
}

/// `IOMMU_FAULT_READ` and the other `prot` bits of a fault.
public let IOMMU_FAULT_READ: UInt32 = 1 << 0
public let IOMMU_FAULT_WRITE: UInt32 = 1 << 1
public let IOMMU_FAULT_EXEC: UInt32 = 1 << 2
public let IOMMU_FAULT_PRIV: UInt32 = 1 << 3

/// `enum page_response_code` (as Int32: a handler returns one or a negative errno).
public let IOMMU_PAGE_RESP_SUCCESS: Int32 = 0
public let IOMMU_PAGE_RESP_INVALID: Int32 = 1
public let IOMMU_PAGE_RESP_FAILURE: Int32 = 2
/// Someone took ownership of the fault and will complete it later.
public let IOMMU_PAGE_RESP_HANDLED: Int32 = 3
/// Not handled here: let the IOMMU driver deal with it.
public let IOMMU_PAGE_RESP_CONTINUE: Int32 = 4

/// `struct iommu_fault_event`.
public struct iommu_fault_event: Sendable, Equatable {
    public var type: iommu_fault_type
    public var addr: UInt64 = 0
    public var pasid: UInt32 = 0
    public var page_req_group_id: UInt32 = 0
    public var last_req = false
    public var pasid_valid = false
    /// `IOMMU_FAULT_*` access bits.
    public var prot: UInt32 = 0
    public var device_private: UInt64 = 0
    /// The IOMMU driver's own data (the StreamID and whether the response needs a PASID,
    /// for the SMMU), returned with the response.
    public var iommu_private: UInt64 = 0

    public init(type: iommu_fault_type) {
        self.type = type
    }
}

/// `struct page_response_msg`.
public struct page_response_msg: Sendable, Equatable {
    public var addr: UInt64 = 0
    public var pasid: UInt32 = 0
    public var resp_code: Int32 = IOMMU_PAGE_RESP_SUCCESS
    public var pasid_present = false
    public var page_req_group_id: UInt32 = 0
    public var private_data: UInt64 = 0

    public init() {}

    /// The response to the page request group `evt` belongs to, with `code`.
    public init(answering evt: iommu_fault_event, _ code: Int32) {
        addr = evt.addr
        pasid = evt.pasid
        pasid_present = evt.pasid_valid
        page_req_group_id = evt.page_req_group_id
        private_data = evt.iommu_private
        resp_code = code
    }
}

/// `iommu_dev_fault_handler_t`: a fault handler and its data.
public typealias iommu_dev_fault_handler_t = (iommu_fault_event, AnyObject?) async -> Int32

/// `struct iommu_fault_param`: the registered handler and the page requests reported to it
/// and not yet answered.
public final class iommu_fault_param {
    public let handler: iommu_dev_fault_handler_t
    /// The handler's data (weak: it is often the device itself, which owns this; the device
    /// reference the registration takes is counted in `device.references`).
    public private(set) weak var data: AnyObject?
    /// Last requests of groups awaiting `iommu_page_response`.
    public var faults: [iommu_fault_event] = []
    public let lock = KernelMutex("iommu_fault_param.lock")
    /// The device's driver when the handler was registered (the handler is that driver's).
    public let owner: String?

    init(handler: @escaping iommu_dev_fault_handler_t, data: AnyObject?, owner: String?) {
        self.handler = handler
        self.data = data
        self.owner = owner
    }
}

/// `iommu_register_device_fault_handler`: one handler per device (-EBUSY otherwise); takes a
/// device reference; -ENOMEM when the parameters cannot be allocated, -EINVAL without IOMMU
/// state.
public func iommu_register_device_fault_handler(_ dev: device, _ handler: @escaping iommu_dev_fault_handler_t, _ data: AnyObject?, faults: AllocationFaults = AllocationFaults()) async -> Int32 {
    ftrace("iommu_register_device_fault_handler")
    guard let param = dev.iommu_param else { return -EINVAL }
    await param.lock.lock()
    defer { param.lock.unlock() }
    // Only one fault handler per device.
    if param.fault_param != nil { return -EBUSY }
    get_device(dev)
    guard let fault_param = kzalloc(faults, { iommu_fault_param(handler: handler, data: data, owner: dev.driver) }) else {
        put_device(dev)
        return -ENOMEM
    }
    param.fault_param = fault_param
    return 0
}

/// `iommu_unregister_device_fault_handler`: -EBUSY while page requests reported to the
/// handler await their response.
public func iommu_unregister_device_fault_handler(_ dev: device) async -> Int32 {
    ftrace("iommu_unregister_device_fault_handler")
    guard let param = dev.iommu_param else { return -EINVAL }
    await param.lock.lock()
    defer { param.lock.unlock() }
    guard let fault_param = param.fault_param else { return -EINVAL }
    // A handler with pending faults cannot go.
    if !fault_param.faults.isEmpty { return -EBUSY }
    param.fault_param = nil
    put_device(dev)
    return 0
}

/// `iommu_has_device_fault_handler`.
public func iommu_has_device_fault_handler(_ dev: device) -> Bool {
    dev.iommu_param?.fault_param != nil
}

/// `iommu_report_device_fault`: hands `evt` to the device's handler (under the device's
/// IOMMU lock), remembering the Last request of a page request group until its response;
/// -EINVAL without a handler.
public func iommu_report_device_fault(_ dev: device, _ evt: iommu_fault_event) async -> Int32 {
    ftrace("iommu_report_device_fault")
    guard let param = dev.iommu_param else { return -EINVAL }
    await param.lock.lock()
    defer { param.lock.unlock() }
    // Faults are only reported when a handler is registered.
    guard let fparam = param.fault_param else { return -EINVAL }
    if evt.type == .IOMMU_FAULT_PAGE_REQ && evt.last_req {
        await fparam.lock.lock()
        fparam.faults.append(evt)
        fparam.lock.unlock()
    }
    return await fparam.handler(evt, fparam.data)
}

/// `iommu_page_response`: sends the response to the pending group it answers (matched by
/// PASID and group index, carrying the IOMMU's private data back) through the domain's
/// `page_response`; -EINVAL when nothing is pending for it ("no pending PRQ, drop response"),
/// -ENODEV without a domain that can respond.
public func iommu_page_response(_ dev: device, _ msg: page_response_msg) async -> Int32 {
    ftrace("iommu_page_response")
    guard let domain = iommu_get_domain_for_dev(dev), let page_response = domain.ops.page_response else { return -ENODEV }
    guard let fparam = dev.iommu_param?.fault_param else { return -EINVAL }
    await fparam.lock.lock()
    defer { fparam.lock.unlock() }
    if fparam.faults.isEmpty {
        dev_warn(dev.kernelDevice, "no pending PRQ, drop response")
        return -EINVAL
    }
    // A matching page request must be pending.
    guard let index = fparam.faults.firstIndex(where: { $0.pasid == msg.pasid && $0.page_req_group_id == msg.page_req_group_id }) else { return -EINVAL }
    var response = msg
    response.private_data = fparam.faults[index].iommu_private
    fparam.faults.remove(at: index)
    return await page_response(dev, response)
}

/// Binds `driver` to the device (`device_bind_driver`, or unbinds with nil). A fault handler
/// belongs to the driver that registered it: when the driver changes (native to a VFIO-like
/// owner or back), the core drops it, answering its pending page requests with failure so
/// that the device does not wait for ever (seed 003's review).
public func device_bind_driver(_ dev: device, _ driver: String?) async {
    ftrace("device_bind_driver")
    dev.driver = driver
    guard let param = dev.iommu_param else { return }
    await param.lock.lock()
    guard let fparam = param.fault_param, fparam.owner != driver else {
        param.lock.unlock()
        return
    }
    param.fault_param = nil
    param.lock.unlock()
    put_device(dev)
    guard let domain = iommu_get_domain_for_dev(dev), let page_response = domain.ops.page_response else { return }
    for evt in fparam.faults { _ = await page_response(dev, page_response_msg(answering: evt, IOMMU_PAGE_RESP_FAILURE)) }
}
