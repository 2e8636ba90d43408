import Testing
import Kernel
import SMMUv3
import IOMMU
import ArmSMMUv3
import Scenario

/// The DriverSystem example in README.md, kept identical so that the README cannot go stale.
@Suite struct ReadmeDriverExampleTests {
    @Test func theReadmesDriverExampleMapsAndTranslates() throws {
        let system = try DriverSystem(seed: 7)
        precondition(system.probe() == 0)                     // arm_smmu_device_probe through the bus
        let dev = device(name: "0000:00:02.0", log: system.log, smmu_pdev: system.pdev, ids: [0x10])
        let domain = arm_smmu_domain_alloc(system.faults, .IOMMU_DOMAIN_UNMANAGED)!
        system.run {
            _ = await arm_smmu_add_device(dev)
            _ = await arm_smmu_attach_dev(domain, dev)        // CD, STE with CFGI_STE + CMD_SYNC
            _ = await iommu_map(domain, 0x4000_0000, 0x9000_0000, 4096, IOMMU_READ | IOMMU_WRITE)
        }
        #expect(system.model.translate(.read(streamID: 0x10, address: 0x4000_0040)) == .translated(physicalAddress: 0x9000_0040))
        #expect(system.messages().contains("ias 48-bit, oas 48-bit (features 0x00005ff7)"))
    }
}
