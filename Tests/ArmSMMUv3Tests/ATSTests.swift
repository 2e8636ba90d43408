import Testing
import Platform
import Kernel
import SMMUv3
import Endpoints
import IOMMU
import ArmSMMUv3

/// ATS through the driver (Linux v5.2's logic on the v4.17 driver): enabled at the PCI
/// function on attach, translated DMA cached in the device's ATC, and the ATC invalidated on
/// unmap and on detach.
@Suite struct ATSTests {
    static func setUp() throws -> (DriverRig, PCIeFunction, device, arm_smmu_domain, RootComplex) {
        let rig = try DriverRig()
        rig.model.checkedMode = true
        #expect(rig.probe() == 0)
        let rootComplex = RootComplex(smmu: rig.model)
        let function = rootComplex.attach(requesterID: 0x10, ats: false)
        let pci = pci_dev(name: "0000:00:02.0", ats_cap: true)
        pci.onATSControl = { enabled, _ in function.atsEnabled = enabled }
        let dev = device(name: "0000:00:02.0", log: rig.log, smmu_pdev: rig.pdev, ids: [function.streamID], pci: pci)
        let domain = try #require(arm_smmu_domain_alloc(rig.faults, .IOMMU_DOMAIN_UNMANAGED))
        var results: [Int32] = []
        rig.run { results = [await arm_smmu_add_device(dev), await arm_smmu_attach_dev(domain, dev)] }
        #expect(results == [0, 0])
        return (rig, function, dev, domain, rootComplex)
    }

    @Test func attachEnablesATSWithTheSmallestGranuleAsSTUAndSetsSTE_EATS() throws {
        let (rig, function, dev, _, rootComplex) = try Self.setUp()
        defer { withExtendedLifetime(rootComplex) {} }
        #expect(function.atsEnabled)
        #expect(dev.pci?.ats_stu == 12)
        let smmu = try #require(rig.driver)
        let ste = try #require(arm_smmu_get_step_for_sid(smmu, function.streamID))
        #expect(FIELD_GET(STRTAB_STE_1_EATS, ste[1]) == STRTAB_STE_1_EATS_TRANS)
    }

    @Test func unmapInvalidatesTheDevicesATCAndTheNextAccessFails() throws {
        let (rig, function, dev, domain, rootComplex) = try Self.setUp()
        defer { withExtendedLifetime((rootComplex, dev)) {} }
        let iova: UInt64 = 0x4000_0000, pa: UInt64 = 0x9000_0000
        rig.bus.memory.write64(0x1122_3344_5566_7788, at: pa + 8)
        rig.run { _ = await iommu_map(domain, iova, pa, SZ_4K, IOMMU_READ | IOMMU_WRITE) }
        let first = function.read(iova + 8, length: 8)
        #expect(function.state(of: first) == .completed)
        #expect(function.data(of: first) == [0x88, 0x77, 0x66, 0x55, 0x44, 0x33, 0x22, 0x11])
        #expect(function.atcEntryCount == 1, "the translation is cached in the device")

        var unmapped: UInt64 = 0
        rig.run { unmapped = await iommu_unmap(domain, iova, SZ_4K) }
        #expect(unmapped == SZ_4K)
        let invalidation = try #require(function.invalidationsReceived.last)
        #expect(invalidation.streamID == function.streamID && invalidation.address == iova && invalidation.size == 0)
        #expect(function.atcEntryCount == 0)
        let second = function.read(iova + 8, length: 8)
        guard case .failed = function.state(of: second) else {
            Issue.record("DMA after unmap: \(String(describing: function.state(of: second)))")
            return
        }
        #expect(rig.model.diagnostics.filter { if case .staleTranslation = $0.kind { true } else { false } }.isEmpty)
    }

    @Test func detachInvalidatesTheWholeATCAndDisablesATS() throws {
        let (rig, function, dev, _, rootComplex) = try Self.setUp()
        defer { withExtendedLifetime(rootComplex) {} }
        rig.run { await arm_smmu_detach_dev(dev) }
        #expect(!function.atsEnabled)
        let invalidation = try #require(function.invalidationsReceived.last)
        #expect(invalidation.size == UInt8(ATC_INV_SIZE_ALL))
    }

    @Test(arguments: [(UInt64(0x1000), UInt64(0x1000), UInt64(0x1000), UInt8(0)), (0x3000, 0x2000, 0x0, 3), (0x7_F000, 0x2000, 0x0, 8)])
    func anATCInvalidationCoversTheRangeWithOneAlignedPowerOfTwo(iova: UInt64, size: UInt64, address: UInt64, log2Pages: UInt8) {
        let cmd = arm_smmu_atc_inv_to_cmd(0, iova, size)
        #expect(cmd.atc.addr == address && cmd.atc.size == log2Pages)
        #expect(cmd.atc.addr <= iova && cmd.atc.addr + (UInt64(1) << (12 + UInt64(cmd.atc.size))) >= iova + size)
    }

    @Test func anATCInvalidationTimeoutIsReportedAndTheCMD_SYNCRetried() throws {
        let (rig, function, dev, domain, rootComplex) = try Self.setUp()
        defer { withExtendedLifetime((rootComplex, dev)) {} }
        rig.run { _ = await iommu_map(domain, 0x4000_0000, 0x9000_0000, SZ_4K, IOMMU_READ) }
        function.invalidationResponse = .noResponse
        var unmapped: UInt64 = 0
        let outcome = rig.run { unmapped = await iommu_unmap(domain, 0x4000_0000, SZ_4K) }
        #expect(outcome == .completed)
        let errors = rig.messages(atMost: .error)
        #expect(errors.count == 1 && errors.first?.hasPrefix("CMDQ error (cons 0x03") == true && errors.first?.hasSuffix("): ATC invalidate timeout") == true, "\(errors)")
        #expect(unmapped == SZ_4K, "the retried CMD_SYNC completed")
        #expect(rig.model.peek(.gerror) == rig.model.peek(.gerrorn))
    }
}
