import Testing
import Platform
import Kernel
import SMMUv3
import IOMMU
import ArmSMMUv3
import Scenario

/// One IOPF queue for a platform with two SMMUs (seed 000's "one global workqueue" policy):
/// both SMMUs draw PASIDs from the kernel's one PASID space, both PRI queues feed the same
/// IOPF queue, and flushing it for a device drains the PRI queue of that device's SMMU.
@Suite struct GlobalIOPFQueueTests {
    struct World {
        let rig: DriverRig
        let second: (model: SMMU, pdev: platform_device)
        let queue: iopf_queue
        let registry: iommu_sva_registry
        /// A device behind each SMMU (StreamID 0x10 on both).
        let devices: [device]
        let mm: MMStruct
        var models: [SMMU] { [rig.model, second.model] }
    }

    static func setUp(bindBoth: Bool = true) throws -> World {
        let rig = try DriverRig()
        let second = try rig.system.addSMMU()
        second.model.checkedMode = true
        #expect(rig.probe() == 0)
        var ret: Int32 = 1
        rig.run { ret = await driver_probe_device(second.pdev, arm_smmu_device_probe) }
        #expect(ret == 0)
        let first = try #require(rig.driver)
        let other = try #require(second.pdev.drvdata as? arm_smmu_device)
        #expect(first.pasids === other.pasids, "one PASID space for the kernel")
        let queue = try #require(iopf_queue_alloc("global", arm_smmu_iopf_queue_flush, nil, on: rig.scheduler, pasids: first.pasids))
        first.iopf_policy = .global(queue)
        other.iopf_policy = .global(queue)
        let registry = iommu_sva_registry(pasids: first.pasids)
        let pages = CoherentMemory(memory: rig.bus.memory, range: 0x9000_0000...0x90FF_FFFF)
        let mm = try #require(MMStruct(asid: 9, memory: rig.bus.memory, pages: pages))
        mm.map(VMArea(start: 0x40_0000, end: 0x80_0000))
        var devices: [device] = []
        for (index, pdev) in [rig.pdev, second.pdev].enumerated() {
            let dev = device(name: "0000:0\(index):02.0", log: rig.log, smmu_pdev: pdev, ids: [0x10])
            let domain = try #require(arm_smmu_domain_alloc(rig.faults, .IOMMU_DOMAIN_UNMANAGED))
            var results: [Int32] = []
            rig.run {
                results.append(await arm_smmu_add_device(dev))
                results.append(await iommu_attach_device(domain, dev))
                results.append(await iommu_sva_device_init(dev, IOMMU_SVA_FEAT_IOPF, 0, nil))
            }
            #expect(results == [0, 0, 0])
            devices.append(dev)
        }
        if bindBoth {
            var pasids: [UInt32] = []
            rig.run {
                for dev in devices { pasids.append(await iommu_sva_bind_device(dev, mm, nil, registry).1) }
            }
            #expect(pasids.count == 2 && pasids[0] == pasids[1] && pasids[0] != 0, "one PASID for the process on both SMMUs: \(pasids)")
        }
        return World(rig: rig, second: second, queue: queue, registry: registry, devices: devices, mm: mm)
    }

    @Test func bothSMMUsShareOnePASIDSpaceAndOneIOPFQueue() throws {
        let world = try Self.setUp()
        #expect(world.devices.allSatisfy { $0.iommu_param?.iopf_param?.queue === world.queue })
        // Each SMMU's stream table holds its own STE for StreamID 0x10.
        #expect(world.models[0].inspectStructures(streamID: 0x10, substreamID: 1).cd != nil)
        #expect(world.models[1].inspectStructures(streamID: 0x10, substreamID: 1).cd != nil)
        withExtendedLifetime(world.devices) {}
    }

    @Test func pageRequestsThroughEitherSMMUAreHandledByTheGlobalQueue() throws {
        let world = try Self.setUp()
        var responses: [[PRGResponse]] = [[], []]
        for (index, model) in world.models.enumerated() { model.onPRGResponse { responses[index].append($0) } }
        world.rig.run("devices") { [models = world.models] in
            _ = models[0].receivePageRequest(PageRequest(streamID: 0x10, substreamID: 1, prgIndex: 4, last: true, read: true, write: true, address: 0x40_1000))
            _ = models[1].receivePageRequest(PageRequest(streamID: 0x10, substreamID: 1, prgIndex: 5, last: true, read: true, write: true, address: 0x40_2000))
        }
        #expect(world.mm.translate(0x40_1000) != nil && world.mm.translate(0x40_2000) != nil)
        // Each response goes back through the SMMU the request came from.
        #expect(responses[0].map(\.prgIndex) == [4] && responses[0].first?.code == .success)
        #expect(responses[1].map(\.prgIndex) == [5] && responses[1].first?.code == .success)
        withExtendedLifetime(world.devices) {}
    }

    @Test func flushingForADeviceDrainsThePRIQueueOfItsOwnSMMU() throws {
        let world = try Self.setUp()
        var flushed: Int32 = 1
        var handledWhenFlushed = false
        // The request sits in the second SMMU's PRI queue when the flush starts: the flush
        // returns only once that PRI queue's thread has handed it to the IOPF queue and the
        // IOPF queue has handled it (the page is in the process; the PRG response itself goes
        // out without a CMD_SYNC, as Linux issues it).
        world.rig.run("driver") { [model = world.second.model, dev = world.devices[1], mm = world.mm] in
            _ = model.receivePageRequest(PageRequest(streamID: 0x10, substreamID: 1, prgIndex: 6, last: true, read: true, write: false, address: 0x40_3000))
            flushed = await iopf_queue_flush_dev(dev)
            handledWhenFlushed = mm.translate(0x40_3000) != nil
        }
        #expect(flushed == 0)
        #expect(handledWhenFlushed, "the flush waited for the second SMMU's PRI queue and the IOPF queue")
        withExtendedLifetime(world.devices) {}
    }

    @Test func aFlushThatIgnoredTheDevicesSMMUWouldReturnEarly() throws {
        // The same flush aimed at the first SMMU (the bug a global queue invites): it finds
        // that PRI queue empty and returns before the request is handled.
        let world = try Self.setUp()
        let first = try #require(world.rig.driver)
        var handledWhenFlushed = true
        world.rig.run("driver") { [model = world.second.model, mm = world.mm] in
            _ = model.receivePageRequest(PageRequest(streamID: 0x10, substreamID: 1, prgIndex: 6, last: true, read: true, write: false, address: 0x40_3000))
            _ = await arm_smmu_iopf_queue_flush(first, nil)
            handledWhenFlushed = mm.translate(0x40_3000) != nil
        }
        #expect(!handledWhenFlushed)
        #expect(world.mm.translate(0x40_3000) != nil, "handled later all the same")
        withExtendedLifetime(world.devices) {}
    }

    @Test func anOverflowOnOneSMMUDiscardsThePartialFaultsOfEveryDeviceInTheGlobalQueue() throws {
        let world = try Self.setUp()
        let entries = 1 << Int(try #require(world.rig.driver).priq.q.max_n_shift)
        world.rig.run("devices") { [models = world.models] in
            _ = models[0].receivePageRequest(PageRequest(streamID: 0x10, substreamID: 1, prgIndex: 3, last: false, read: true, write: false, address: 0x40_3000))
            _ = models[1].receivePageRequest(PageRequest(streamID: 0x10, substreamID: 1, prgIndex: 3, last: false, read: true, write: false, address: 0x40_4000))
        }
        #expect(world.devices.allSatisfy { $0.iommu_param?.iopf_param?.partial.count == 1 })
        // Only the first SMMU's PRI queue overflows; iopf_queue_discard_partial works per IOPF
        // queue (as in Linux), so the device behind the second SMMU loses its partial fault too.
        world.rig.run("flood") { [model = world.models[0]] in
            for index in 0...entries { _ = model.receivePageRequest(PageRequest(streamID: 0x10, prgIndex: UInt16(100 + index % 300), last: false, read: true, write: false, address: 0)) }
        }
        #expect(world.rig.messages(atMost: .error).contains("PRIQ overflow detected -- requests lost"))
        #expect(world.devices.allSatisfy { $0.iommu_param?.iopf_param?.partial.isEmpty == true })
        withExtendedLifetime(world.devices) {}
    }

    @Test func aSystemHoldsAtMostEightSMMUs() throws {
        let system = try DriverSystem()
        for _ in 1..<DriverSystem.maximumSMMUs { try system.addSMMU() }
        let error = #expect(throws: DriverSystem.TooManySMMUs.self) { try system.addSMMU() }
        #expect(error?.limit == 8)
        // Each has its own register frame, in the 128 KB slots after the first.
        #expect(Set(system.others.map(\.pdev.resource.start)).count == 7)
        #expect(system.others.allSatisfy { $0.pdev.resource.start > 0x0900_0000 && $0.pdev.resource.start < 0x0910_0000 })
    }
}
