import Testing
import Platform
import Kernel
import SMMUv3
import IOMMU
import ArmSMMUv3
import Scenario

/// A dropped driver system is freed whatever the test left behind (masters never removed,
/// PASIDs still bound, a second SMMU): thousands of tests and fuzz runs build systems, so
/// none may keep the last one's memory. Only the scheduler may outlive it (contexts a run left
/// blocked are parked for the rest of the process).
@Suite struct TeardownTests {
    @Test(arguments: ["probe", "add-device", "attach", "map", "page-request", "sva-bind", "two-smmus"])
    func aDroppedDriverSystemIsFreed(stage: String) throws {
        let stages = ["probe", "add-device", "attach", "map", "page-request", "sva-bind", "two-smmus"]
        let depth = try #require(stages.firstIndex(of: stage))
        weak var smmu: arm_smmu_device?
        weak var system: DriverSystem?
        weak var bus: Bus?
        weak var pasids: iommu_pasid_idr?
        do {
            let rig = try DriverRig(seed: 3)
            if depth >= 6 { try rig.system.addSMMU() }
            #expect(rig.probe() == 0)
            smmu = rig.driver
            system = rig.system
            bus = rig.bus
            pasids = rig.driver?.pasids
            let dev = device(name: "0000:00:02.0", log: rig.log, smmu_pdev: rig.pdev, ids: [0x10])
            let domain = try #require(arm_smmu_domain_alloc(rig.faults, .IOMMU_DOMAIN_UNMANAGED))
            let registry = iommu_sva_registry(pasids: try #require(rig.driver).pasids)
            let pages = CoherentMemory(memory: rig.bus.memory, range: 0x9000_0000...0x90FF_FFFF)
            let mm = try #require(MMStruct(asid: 5, memory: rig.bus.memory, pages: pages))
            mm.map(VMArea(start: 0x40_0000, end: 0x80_0000))
            rig.run { [model = rig.model] in
                if depth >= 1 { _ = await arm_smmu_add_device(dev) }
                if depth >= 2 { _ = await arm_smmu_attach_dev(domain, dev) }
                if depth >= 3 { _ = await iommu_map(domain, 0x4000_0000, 0x9000_0000, 2 * SZ_4K, IOMMU_READ | IOMMU_WRITE) }
                if depth >= 4 { _ = model.receivePageRequest(PageRequest(streamID: 0x10, prgIndex: 3, last: true, read: true, write: false, address: 0x6000_0000)) }
                if depth >= 5 {
                    _ = await iommu_sva_device_init(dev, IOMMU_SVA_FEAT_IOPF, 0, nil)
                    let (_, pasid) = await iommu_sva_bind_device(dev, mm, nil, registry)
                    // Unbound without its Stop Marker: the context stays stale, the PASID held.
                    _ = await iommu_sva_unbind_device(dev, pasid, registry, flags: IOMMU_PASID_FLUSHED)
                    _ = await iommu_sva_bind_device(dev, mm, nil, registry)
                }
            }
        }
        #expect(system == nil)
        #expect(smmu == nil)
        #expect(bus == nil)
        #expect(pasids == nil)
    }
}
