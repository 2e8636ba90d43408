import Testing
import Platform
import Kernel
import SMMUv3
import IOMMU
import ArmSMMUv3

/// Page requests through the driver, the fault report API and the IOPF queue to the mm fault
/// handler, answered with CMD_PRI_RESP (the SVA tree's PRI path on v4.17's driver).
@Suite struct PageFaultTests {
    final class Responses: @unchecked Sendable {
        var received: [PRGResponse] = []
    }

    /// A probed rig with a master at SID 0x10 attached to a domain, optionally reporting its
    /// faults to the PRI queue's IOPF queue, and a process bound to PASID 1 with one area.
    static func setUp(iopf: Bool = true, seed: UInt64? = nil) throws -> (DriverRig, device, MMStruct, Responses) {
        let rig = try DriverRig(seed: seed)
        #expect(rig.probe() == 0)
        let smmu = try #require(rig.driver)
        let dev = device(name: "0000:00:02.0", log: rig.log, smmu_pdev: rig.pdev, ids: [0x10])
        let domain = try #require(arm_smmu_domain_alloc(rig.faults, .IOMMU_DOMAIN_UNMANAGED))
        let pages = CoherentMemory(memory: rig.bus.memory, range: 0x9000_0000...0x90FF_FFFF)
        let mm = try #require(MMStruct(asid: 7, memory: rig.bus.memory, pages: pages))
        mm.map(VMArea(start: 0x40_0000, end: 0x80_0000))
        #expect(smmu.pasids.idr_alloc(io_mm(pasid: 1, mm: mm), 1, 2) == 1)
        var results: [Int32] = []
        rig.run {
            results.append(await arm_smmu_add_device(dev))
            results.append(await iommu_attach_device(domain, dev))
            if iopf, let queue = smmu.priq.iopf {
                results.append(await iopf_queue_add_device(queue, dev))
                results.append(await iommu_register_device_fault_handler(dev, iommu_queue_iopf, dev))
            }
        }
        #expect(results.allSatisfy { $0 == 0 })
        let responses = Responses()
        rig.model.onPRGResponse { responses.received.append($0) }
        return (rig, dev, mm, responses)
    }

    static func request(_ index: UInt16, last: Bool, _ address: UInt64, write: Bool = false, pasid: UInt32? = 1) -> PageRequest {
        PageRequest(streamID: 0x10, substreamID: pasid, prgIndex: index, last: last, read: true, write: write, address: address)
    }

    @Test func aPageRequestGroupIsPagedInAndAnsweredOnceWithSuccess() throws {
        let (rig, dev, mm, responses) = try Self.setUp()
        rig.run("device") { [model = rig.model] in
            _ = model.receivePageRequest(Self.request(5, last: false, 0x40_1000))
            _ = model.receivePageRequest(Self.request(5, last: true, 0x40_2000, write: true))
        }
        #expect(responses.received == [PRGResponse(streamID: 0x10, substreamID: 1, prgIndex: 5, code: .success, automatic: false)])
        #expect(mm.translate(0x40_1000) != nil && mm.translate(0x40_2000) != nil)
        #expect(dev.iommu_param?.fault_param?.faults.isEmpty == true, "nothing left pending")
    }

    @Test func aRequestOutsideTheProcessIsAnsweredInvalidRequest() throws {
        let (rig, dev, _, responses) = try Self.setUp()
        defer { withExtendedLifetime(dev) {} }
        rig.run("device") { [model = rig.model] in _ = model.receivePageRequest(Self.request(6, last: true, 0x1000)) }
        #expect(responses.received.map(\.code) == [.invalidRequest])
    }

    @Test func withoutAHandlerTheDriverHandlesTheRequestItself() throws {
        let (rig, dev, mm, responses) = try Self.setUp(iopf: false)
        defer { withExtendedLifetime(dev) {} }
        rig.run("device") { [model = rig.model] in _ = model.receivePageRequest(Self.request(7, last: true, 0x40_0000)) }
        #expect(responses.received.map(\.code) == [.success])
        #expect(mm.translate(0x40_0000) != nil)
    }

    @Test func withoutAHandlerOrAProcessTheRequestIsAnsweredWithFailure() throws {
        let (rig, dev, _, responses) = try Self.setUp(iopf: false)
        defer { withExtendedLifetime(dev) {} }
        rig.run("device") { [model = rig.model] in _ = model.receivePageRequest(Self.request(8, last: true, 0x40_0000, pasid: 5)) }
        #expect(responses.received.map(\.code) == [.responseFailure])
    }

    @Test func aPRIQueueOverflowOrphansAPartialGroupAndTheDriverDiscardsIt() throws {
        let (rig, dev, mm, responses) = try Self.setUp()
        let smmu = try #require(rig.driver)
        let entries = 1 << Int(smmu.priq.q.max_n_shift)
        rig.run("device") { [model = rig.model] in
            // Group 9 starts; then a burst the queue cannot hold, in which group 9's Last
            // request is lost.
            _ = model.receivePageRequest(Self.request(9, last: false, 0x40_9000))
            for index in 0..<entries { _ = model.receivePageRequest(Self.request(UInt16(10 + index % 400), last: false, 0x40_0000)) }
            _ = model.receivePageRequest(Self.request(9, last: true, 0x40_a000))
        }
        #expect(rig.messages(atMost: .error).contains("PRIQ overflow detected -- requests lost"))
        #expect(dev.iommu_param?.iopf_param?.partial.isEmpty == true, "every partial fault discarded")
        #expect(mm.translate(0x40_9000) == nil, "group 9 was never handled")
        // The device may retry: a fresh group goes through.
        rig.run("device") { [model = rig.model] in _ = model.receivePageRequest(Self.request(11, last: true, 0x40_b000)) }
        #expect(responses.received.last?.code == .success && responses.received.last?.prgIndex == 11)
    }

    @Test func flushingTheDeviceWaitsForThePRIQueueThreadAndTheFaultQueue() throws {
        let (rig, dev, mm, _) = try Self.setUp()
        var pagedIn: Bool?
        rig.run("device") { [model = rig.model] in
            _ = model.receivePageRequest(Self.request(12, last: true, 0x40_c000))
            _ = await iopf_queue_flush_dev(dev)
            pagedIn = mm.translate(0x40_c000) != nil
        }
        #expect(pagedIn == true)
    }
}
