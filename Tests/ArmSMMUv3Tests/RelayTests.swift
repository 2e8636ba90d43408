import Testing
import Platform
import Kernel
import SMMUv3
import IOMMU
@testable import ArmSMMUv3

/// Seed 004: page requests for a PASID whose tables a guest owns go to the device's
/// VFIO-like relay, whose response is passed down; with no handler the driver handles the
/// request itself; each request is reported exactly once. Each bug the review found can be
/// put back (test-only switches), and the checks here catch it.
@Suite struct RelayTests {
    final class Guest: @unchecked Sendable {
        var reported: [iommu_fault_event] = []
    }

    /// A device owned by a VFIO-like driver whose relay hands every fault to a guest.
    static func setUp(relay: Bool) throws -> (DriverRig, device, PageFaultTests.Responses, Guest) {
        let (rig, dev, _, responses) = try PageFaultTests.setUp(iopf: false)
        let guest = Guest()
        if relay {
            var result: Int32 = 1
            rig.run {
                await device_bind_driver(dev, "vfio-pci")
                result = await iommu_register_device_fault_handler(dev, { evt, _ in
                    guest.reported.append(evt)
                    return 0
                }, nil)
            }
            #expect(result == 0)
        }
        return (rig, dev, responses, guest)
    }

    /// The guest answers every Last request it was given, through the host.
    static func guestResponds(_ rig: DriverRig, _ dev: device, _ guest: Guest, code: Int32) {
        rig.run {
            for evt in guest.reported where evt.last_req {
                var msg = page_response_msg()
                msg.pasid = evt.pasid
                msg.pasid_present = evt.pasid_valid
                msg.page_req_group_id = evt.page_req_group_id
                msg.resp_code = code
                _ = await iommu_page_response(dev, msg)
            }
        }
    }

    @Test func aGuestsPageRequestIsRelayedOnceAndItsResponsePassedDown() throws {
        let (rig, dev, responses, guest) = try Self.setUp(relay: true)
        rig.run("device") { [model = rig.model] in
            _ = model.receivePageRequest(PageFaultTests.request(3, last: false, 0x40_0000, pasid: 9))
            _ = model.receivePageRequest(PageFaultTests.request(3, last: true, 0x40_1000, pasid: 9))
        }
        #expect(guest.reported.count == 2, "each request reported exactly once")
        #expect(responses.received.isEmpty, "the host does not answer for the guest")
        Self.guestResponds(rig, dev, guest, code: IOMMU_PAGE_RESP_INVALID)
        #expect(responses.received == [PRGResponse(streamID: 0x10, substreamID: 9, prgIndex: 3, code: .invalidRequest, automatic: false)])
    }

    @Test func reportingTwiceIsCaught() throws {
        let (rig, dev, _, guest) = try Self.setUp(relay: true)
        defer { withExtendedLifetime(dev) {} }
        // Only a request the driver handles itself can be reported again: a relay that
        // declines (returns an error) lets the driver handle it.
        rig.run { _ = await iommu_unregister_device_fault_handler(dev) }
        rig.run {
            _ = await iommu_register_device_fault_handler(dev, { evt, _ in
                guest.reported.append(evt)
                return -EINVAL  // the relay declines: the driver handles the request
            }, nil)
        }
        rig.run("device") { [model = rig.model] in _ = model.receivePageRequest(PageFaultTests.request(4, last: true, 0x40_0000)) }
        #expect(guest.reported.count == 1, "fixed: reported once")
        rig.driver?.prqReportTwice = true
        rig.run("device") { [model = rig.model] in _ = model.receivePageRequest(PageFaultTests.request(5, last: true, 0x40_1000)) }
        #expect(guest.reported.count == 3, "the bug: reported before and after the driver handled it")
    }

    @Test func withNoHandlerTheDriverAnswersAndTheUninitialisedResultWouldHaveLeftTheDeviceWaiting() throws {
        let (rig, dev, responses, _) = try Self.setUp(relay: false)
        defer { withExtendedLifetime(dev) {} }
        rig.run("device") { [model = rig.model] in _ = model.receivePageRequest(PageFaultTests.request(5, last: true, 0x40_0000)) }
        #expect(responses.received.map(\.code) == [.success], "fixed: the driver handled it")
        rig.driver?.prqReportUninitialisedRet = true
        rig.run("device") { [model = rig.model] in _ = model.receivePageRequest(PageFaultTests.request(6, last: true, 0x40_1000)) }
        #expect(responses.received.count == 1, "the bug: no response ever comes for group 6")
    }
}
