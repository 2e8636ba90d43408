import Platform
import Kernel
import IOMMU

/// A kernel world with an IOMMU core and no IOMMU hardware: devices behind a placeholder IOMMU,
/// a domain whose `page_response` records what it is given, a process address space, and the
/// PASID table.
final class CoreRig {
    let bus = Bus()
    let scheduler: KernelScheduler
    let log: KernelLog
    let iommu: platform_device
    let pasids = iommu_pasid_idr()
    let pages: CoherentMemory
    let domain: iommu_domain
    let responses = ResponseLog()

    final class ResponseLog: @unchecked Sendable {
        var messages: [page_response_msg] = []
    }

    init(seed: UInt64? = nil) {
        scheduler = KernelScheduler(seed: seed, clock: bus.clock)
        log = KernelLog(clock: scheduler.clock)
        let irqs = KernelIRQs(bus: bus, scheduler: scheduler, msiDoorbell: 0x0800_0040)
        pages = CoherentMemory(memory: bus.memory, range: 0x8000_0000...0x8FFF_FFFF)
        iommu = platform_device(driver: "test-iommu", name: "iommu0", log: log, resource: KernelResource(start: 0x0900_0000, size: 0x2_0000), bus: bus, irqs: irqs, dma: pages)
        let responses = responses
        domain = iommu_domain(type: .IOMMU_DOMAIN_UNMANAGED, ops: iommu_ops(
            attach_dev: { _, _ in 0 },
            detach_dev: { _, _ in },
            page_response: { _, msg in
                responses.messages.append(msg)
                return 0
            }))
    }

    /// A device attached to the rig's domain.
    func device(_ name: String = "0000:00:02.0") -> IOMMU.device {
        let dev = IOMMU.device(name: name, log: log, smmu_pdev: iommu, ids: [0x10])
        let outcome = run { [domain] in _ = await iommu_attach_device(domain, dev) }
        precondition(outcome == .completed)
        return dev
    }

    /// A process with `areas` bound to `pasid` in the rig's PASID table.
    func process(pasid: UInt32, asid: UInt16 = 1, areas: [VMArea]) -> MMStruct {
        guard let mm = MMStruct(asid: asid, memory: bus.memory, pages: pages) else { fatalError("no memory for the pgd") }
        for area in areas { mm.map(area) }
        precondition(pasids.idr_alloc(io_mm(pasid: pasid, mm: mm), pasid, pasid + 1) == Int32(pasid))
        return mm
    }

    @discardableResult
    func run(_ body: @escaping () async -> Void) -> KernelScheduler.Outcome {
        scheduler.spawn("test", body)
        return scheduler.run()
    }

    static func pageRequest(pasid: UInt32 = 1, group: UInt32, last: Bool, address: UInt64, write: Bool = false) -> iommu_fault_event {
        var evt = iommu_fault_event(type: .IOMMU_FAULT_PAGE_REQ)
        evt.pasid = pasid
        evt.pasid_valid = true
        evt.page_req_group_id = group
        evt.last_req = last
        evt.addr = address
        evt.prot = IOMMU_FAULT_READ | (write ? IOMMU_FAULT_WRITE : 0)
        evt.iommu_private = 0x10
        return evt
    }
}
