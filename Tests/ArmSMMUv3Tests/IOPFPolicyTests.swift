import Testing
import Platform
import Kernel
import SMMUv3
import IOMMU
import ArmSMMUv3
import Scenario

/// IOPF queue policies (seed 000): per fault queue (the PRI queue's, the default), per domain,
/// and one global queue shared across IOMMUs.
@Suite struct IOPFPolicyTests {
    /// Two devices at StreamIDs 0x10 and 0x11, each in its own stage-1 domain, initialised for
    /// SVA under `policy`, with a process bound to each.
    static func setUp(_ policy: (DriverRig) -> iopf_queue_policy) throws -> (DriverRig, [device], [MMStruct], [UInt32], iommu_sva_registry) {
        let rig = try DriverRig()
        #expect(rig.probe() == 0)
        let smmu = try #require(rig.driver)
        smmu.iopf_policy = policy(rig)
        let registry = iommu_sva_registry(pasids: smmu.pasids)
        let pages = CoherentMemory(memory: rig.bus.memory, range: 0x9000_0000...0x90FF_FFFF)
        var devices: [device] = [], processes: [MMStruct] = [], pasids: [UInt32] = []
        for (index, sid) in [UInt32(0x10), 0x11].enumerated() {
            let dev = device(name: "0000:00:0\(2 + index).0", log: rig.log, smmu_pdev: rig.pdev, ids: [sid])
            let domain = try #require(arm_smmu_domain_alloc(rig.faults, .IOMMU_DOMAIN_UNMANAGED))
            let mm = try #require(MMStruct(asid: UInt16(7 + index), memory: rig.bus.memory, pages: pages))
            mm.map(VMArea(start: 0x40_0000, end: 0x80_0000))
            var pasid: UInt32 = 0
            var results: [Int32] = []
            rig.run {
                results.append(await arm_smmu_add_device(dev))
                results.append(await iommu_attach_device(domain, dev))
                results.append(await iommu_sva_device_init(dev, IOMMU_SVA_FEAT_IOPF, 0, nil))
                let bound = await iommu_sva_bind_device(dev, mm, nil, registry)
                results.append(bound.0)
                pasid = bound.1
            }
            #expect(results == [0, 0, 0, 0])
            devices.append(dev)
            processes.append(mm)
            pasids.append(pasid)
        }
        return (rig, devices, processes, pasids, registry)
    }

    static func queues(_ devices: [device]) -> [iopf_queue?] { devices.map { $0.iommu_param?.iopf_param?.queue } }

    @Test func perFaultQueueBothDevicesShareThePRIQueuesQueue() throws {
        let (rig, devices, _, _, _) = try Self.setUp { _ in .perFaultQueue }
        let queues = Self.queues(devices)
        #expect(queues[0] != nil && queues[0] === queues[1] && queues[0] === rig.driver?.priq.iopf)
    }

    @Test func perDomainEachDomainHasItsOwnAndBothServeFaults() throws {
        let (rig, devices, processes, pasids, _) = try Self.setUp { _ in .perDomain }
        let queues = Self.queues(devices)
        #expect(queues[0] != nil && queues[1] != nil && queues[0] !== queues[1])
        rig.run("device") { [model = rig.model] in
            _ = model.receivePageRequest(PageRequest(streamID: 0x10, substreamID: pasids[0], prgIndex: 1, last: true, read: true, write: false, address: 0x40_1000))
            _ = model.receivePageRequest(PageRequest(streamID: 0x11, substreamID: pasids[1], prgIndex: 1, last: true, read: true, write: false, address: 0x40_2000))
        }
        #expect(processes[0].translate(0x40_1000) != nil && processes[1].translate(0x40_2000) != nil)
        withExtendedLifetime(devices) {}
    }

    @Test func aGlobalQueueIsSharedAcrossDomains() throws {
        var global: iopf_queue?
        let (_, devices, _, _, _) = try Self.setUp { rig in
            global = iopf_queue_alloc("global", { _, _ in 0 }, nil, on: rig.scheduler, pasids: rig.driver!.pasids)
            return .global(global!)
        }
        let queues = Self.queues(devices)
        #expect(queues[0] === global && queues[1] === global)
    }

    @Test func anOverflowDiscardsPartialFaultsInEveryQueueThePRIQueueFeeds() throws {
        let (rig, devices, _, pasids, _) = try Self.setUp { _ in .perDomain }
        let entries = 1 << Int(try #require(rig.driver).priq.q.max_n_shift)
        rig.run("device") { [model = rig.model] in
            _ = model.receivePageRequest(PageRequest(streamID: 0x10, substreamID: pasids[0], prgIndex: 3, last: false, read: true, write: false, address: 0x40_3000))
            _ = model.receivePageRequest(PageRequest(streamID: 0x11, substreamID: pasids[1], prgIndex: 3, last: false, read: true, write: false, address: 0x40_3000))
            for index in 0..<entries { _ = model.receivePageRequest(PageRequest(streamID: 0x10, prgIndex: UInt16(100 + index % 300), last: false, read: true, write: false, address: 0)) }
        }
        #expect(devices.allSatisfy { $0.iommu_param?.iopf_param?.partial.isEmpty == true })
    }

    @Test func aDomainsOwnQueueGoesWithTheDomain() throws {
        let (rig, devices, _, pasids, registry) = try Self.setUp { _ in .perDomain }
        let smmu = try #require(rig.driver)
        #expect(smmu.iopf_queues.count == 3, "the PRI queue's and one per domain")
        let dev = devices[0]
        let domain = try #require(dev.domain as? arm_smmu_domain)
        var results: [Int32] = []
        rig.run {
            results.append(await iommu_sva_unbind_device(dev, pasids[0], registry, flags: IOMMU_PASID_CLEAN))
            results.append(await iommu_sva_device_shutdown(dev, registry))
            await iommu_detach_device(domain, dev)
            await arm_smmu_domain_free(domain)
        }
        #expect(results == [0, 0])
        #expect(smmu.iopf_queues.count == 2 && domain.iopf == nil)
        withExtendedLifetime(devices) {}
    }
}
