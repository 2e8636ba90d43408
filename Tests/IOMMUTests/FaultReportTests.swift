import Testing
import Platform
import Kernel
import IOMMU

/// The device fault report API (seed 003).
@Suite struct FaultReportTests {
    final class Seen: @unchecked Sendable {
        var events: [iommu_fault_event] = []
    }

    @Test func oneHandlerPerDeviceHoldingADeviceReference() {
        let rig = CoreRig()
        let dev = rig.device()
        var results: [Int32] = []
        rig.run {
            results.append(await iommu_register_device_fault_handler(dev, { _, _ in 0 }, nil))
            results.append(await iommu_register_device_fault_handler(dev, { _, _ in 0 }, nil))
        }
        #expect(results == [0, -EBUSY])
        #expect(dev.references == 1)
        rig.run { results.append(await iommu_unregister_device_fault_handler(dev)) }
        #expect(results.last == 0 && dev.references == 0)
    }

    @Test func aFailedAllocationReturnsENOMEMAndDropsTheReference() {
        let rig = CoreRig()
        let dev = rig.device()
        let faults = AllocationFaults()
        faults.failEverything(true)
        var result: Int32 = 1
        rig.run { result = await iommu_register_device_fault_handler(dev, { _, _ in 0 }, nil, faults: faults) }
        #expect(result == -ENOMEM && dev.references == 0 && !iommu_has_device_fault_handler(dev))
    }

    @Test func reportsReachTheHandlerAndTheLastRequestWaitsForItsResponse() {
        let rig = CoreRig()
        let dev = rig.device()
        let seen = Seen()
        var results: [Int32] = []
        rig.run {
            results.append(await iommu_report_device_fault(dev, CoreRig.pageRequest(group: 1, last: true, address: 0x1000)))
            _ = await iommu_register_device_fault_handler(dev, { evt, _ in
                seen.events.append(evt)
                return IOMMU_PAGE_RESP_HANDLED
            }, nil)
            results.append(await iommu_report_device_fault(dev, CoreRig.pageRequest(group: 1, last: false, address: 0x1000)))
            results.append(await iommu_report_device_fault(dev, CoreRig.pageRequest(group: 1, last: true, address: 0x2000)))
            results.append(await iommu_unregister_device_fault_handler(dev))
            var msg = page_response_msg()
            msg.pasid = 1
            msg.page_req_group_id = 2
            results.append(await iommu_page_response(dev, msg))
            msg.page_req_group_id = 1
            results.append(await iommu_page_response(dev, msg))
            results.append(await iommu_page_response(dev, msg))
            results.append(await iommu_unregister_device_fault_handler(dev))
        }
        #expect(results == [-EINVAL, IOMMU_PAGE_RESP_HANDLED, IOMMU_PAGE_RESP_HANDLED, -EBUSY, -EINVAL, 0, -EINVAL, 0])
        #expect(seen.events.count == 2)
        #expect(rig.responses.messages.count == 1 && rig.responses.messages.first?.private_data == 0x10, "the IOMMU's private data comes back")
        #expect(rig.log.texts() == ["0000:00:02.0: no pending PRQ, drop response"])
    }

    @Test func changingTheDriverDropsItsHandlerAndFailsItsPendingRequests() {
        let rig = CoreRig()
        let dev = rig.device()
        rig.run {
            await device_bind_driver(dev, "vfio-pci")
            _ = await iommu_register_device_fault_handler(dev, { _, _ in IOMMU_PAGE_RESP_HANDLED }, nil)
            _ = await iommu_report_device_fault(dev, CoreRig.pageRequest(group: 4, last: true, address: 0x4000))
            await device_bind_driver(dev, "vfio-pci")  // the same driver: kept
        }
        #expect(iommu_has_device_fault_handler(dev))
        rig.run { await device_bind_driver(dev, "native-driver") }
        #expect(!iommu_has_device_fault_handler(dev) && dev.references == 0)
        #expect(rig.responses.messages.map(\.resp_code) == [IOMMU_PAGE_RESP_FAILURE])
        #expect(rig.responses.messages.first?.page_req_group_id == 4)
    }
}

/// The PASID allocator SVA shares with device drivers (seed 002).
@Suite struct PASIDAllocatorTests {
    final class DriverContext {}

    @Test func aDeviceDriversOwnPASIDIsSkippedBySVAAndReusableOnceRemoved() {
        let idr = iommu_pasid_idr()
        let mine = DriverContext()
        #expect(idr.idr_alloc(mine, 1, 16) == 1, "the device driver takes PASID 1 for its own use")
        let rig = CoreRig()
        guard let mm = MMStruct(asid: 1, memory: rig.bus.memory, pages: rig.pages) else {
            Issue.record("no memory")
            return
        }
        #expect(idr.idr_alloc(io_mm(pasid: 2, mm: mm), 1, 16) == 2, "the next allocation skips it")
        #expect(idr.idr_find(1) === mine && iommu_sva_find(idr, 2) === mm && iommu_sva_find(idr, 1) == nil)
        #expect(idr.idr_remove(1) === mine)
        #expect(idr.idr_alloc(DriverContext(), 1, 16) == 1, "freed, the lowest PASID is handed out again")
        #expect(idr.idr_alloc(DriverContext(), 16, 17) == 16 && idr.idr_alloc(DriverContext(), 16, 17) == -ENOSPC)
    }
}
