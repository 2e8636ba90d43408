import Testing
import Platform
import Kernel
import SMMUv3
import IOMMU
import ArmSMMUv3

/// Domains through the driver: attach, map, DMA through the model, unmap with TLB
/// invalidation, at every granule and both stages, with the model in checked mode.
@Suite struct DomainTests {
    enum Granule: Int, CaseIterable, CustomTestStringConvertible {
        case g4K = 12, g16K = 14, g64K = 16
        var testDescription: String { "\(1 << (rawValue - 10))K" }
        var size: UInt64 { UInt64(1) << UInt64(rawValue) }
        /// The block size one level up.
        var block: UInt64 { size << UInt64(rawValue - 3) }
    }

    /// A probed rig whose SMMU supports only `granule`, in checked mode.
    static func rig(_ granule: Granule, seed: UInt64? = nil) throws -> DriverRig {
        var configuration = SMMUConfiguration.default
        configuration.granule4K = granule == .g4K
        configuration.granule16K = granule == .g16K
        configuration.granule64K = granule == .g64K
        let rig = try DriverRig(configuration: configuration, seed: seed)
        rig.model.checkedMode = true
        #expect(rig.probe() == 0)
        return rig
    }

    /// Adds a master with `sid` and attaches it to a new UNMANAGED domain of `stage`.
    static func attach(_ rig: DriverRig, sid: UInt32 = 0x10, stage: arm_smmu_domain_stage = .ARM_SMMU_DOMAIN_S1) throws -> (device, arm_smmu_domain) {
        let dev = device(name: "0000:00:02.0", log: rig.log, smmu_pdev: rig.pdev, ids: [sid])
        let domain = try #require(arm_smmu_domain_alloc(rig.faults, .IOMMU_DOMAIN_UNMANAGED))
        domain.stage = stage
        var results: [Int32] = []
        rig.run { results = [await arm_smmu_add_device(dev), await arm_smmu_attach_dev(domain, dev)] }
        #expect(results == [0, 0])
        return (dev, domain)
    }

    static func read(_ sid: UInt32, _ address: UInt64) -> InboundTransaction {
        InboundTransaction(streamID: sid, address: address, access: AccessAttributes(read: true))
    }

    static func staleDiagnostics(_ rig: DriverRig) -> [SMMUDiagnostic] {
        rig.model.diagnostics.filter {
            switch $0.kind {
            case .staleConfiguration, .staleTranslation: true
            default: false
            }
        }
    }

    @Test(arguments: Granule.allCases, [arm_smmu_domain_stage.ARM_SMMU_DOMAIN_S1, .ARM_SMMU_DOMAIN_S2])
    func aDeviceReachesTheMappedMemoryAndFaultsOnceUnmapped(granule: Granule, stage: arm_smmu_domain_stage) throws {
        let rig = try Self.rig(granule)
        let (_, domain) = try Self.attach(rig, stage: stage)
        #expect(domain.pgsize_bitmap == [Granule.g4K: SZ_4K | SZ_2M | SZ_1G, .g16K: SZ_16K | SZ_32M, .g64K: SZ_64K | SZ_512M][granule])
        let iova: UInt64 = 0x4000_0000, page: UInt64 = 0x9000_0000, blockIOVA: UInt64 = 0x1_0000_0000, blockPA: UInt64 = 0x2_0000_0000
        var results: [Int32] = []
        rig.run {
            results.append(await iommu_map(domain, iova, page, granule.size, IOMMU_READ | IOMMU_WRITE))
            results.append(await iommu_map(domain, blockIOVA, blockPA, granule.block, IOMMU_READ))
        }
        #expect(results == [0, 0])
        #expect(arm_smmu_iova_to_phys(domain, iova + 0x123) == page + 0x123)
        #expect(arm_smmu_iova_to_phys(domain, blockIOVA + granule.block - 8) == blockPA + granule.block - 8)
        #expect(rig.model.translate(Self.read(0x10, iova + 0x123)) == .translated(physicalAddress: page + 0x123))
        #expect(rig.model.translate(Self.read(0x10, blockIOVA + granule.size * 3 + 4)) == .translated(physicalAddress: blockPA + granule.size * 3 + 4))

        var unmapped: UInt64 = 0
        rig.run { unmapped = await iommu_unmap(domain, iova, granule.size) }
        #expect(unmapped == granule.size)
        #expect(arm_smmu_iova_to_phys(domain, iova) == 0)
        let outcome = rig.model.translate(Self.read(0x10, iova + 0x123))
        #expect(outcome == .aborted(.translation), "F_TRANSLATION, \(outcome)")
        rig.run {}  // the event queue thread
        #expect(rig.messages().contains("event 0x10 received:"))
        #expect(Self.staleDiagnostics(rig).isEmpty, "\(Self.staleDiagnostics(rig))")
    }

    @Test(arguments: Granule.allCases)
    func unmappingPartOfABlockSplitsItAndKeepsTheRest(granule: Granule) throws {
        let rig = try Self.rig(granule)
        let (_, domain) = try Self.attach(rig)
        let iova: UInt64 = 0x1_0000_0000, pa: UInt64 = 0x2_0000_0000
        var unmapped: UInt64 = 0
        rig.run {
            _ = await iommu_map(domain, iova, pa, granule.block, IOMMU_READ | IOMMU_WRITE)
            _ = rig.model.translate(Self.read(0x10, iova + granule.size))  // cache the block
            unmapped = await iommu_unmap(domain, iova + granule.size, granule.size)
        }
        #expect(unmapped == granule.size)
        #expect(rig.model.translate(Self.read(0x10, iova + 8)) == .translated(physicalAddress: pa + 8))
        #expect(rig.model.translate(Self.read(0x10, iova + 2 * granule.size)) == .translated(physicalAddress: pa + 2 * granule.size))
        if case .translated = rig.model.translate(Self.read(0x10, iova + granule.size)) { Issue.record("the unmapped page still translates") }
        #expect(Self.staleDiagnostics(rig).isEmpty, "\(Self.staleDiagnostics(rig))")
    }

    @Test func checkedModeCatchesAnUnmapWhoseTLBInvalidationWasRemoved() throws {
        let rig = try Self.rig(.g4K)
        rig.expectsStaleEntries = true
        let (_, domain) = try Self.attach(rig)
        let iova: UInt64 = 0x4000_0000
        rig.run { _ = await iommu_map(domain, iova, 0x9000_0000, SZ_4K, IOMMU_READ) }
        #expect(rig.model.translate(Self.read(0x10, iova)) == .translated(physicalAddress: 0x9000_0000))
        // The driver with its TLBI removed from the unmap path.
        domain.pgtbl_ops?.cfg.tlb.tlb_add_flush = { _, _, _, _ in }
        rig.run { _ = await iommu_unmap(domain, iova, SZ_4K) }
        #expect(rig.model.translate(Self.read(0x10, iova)) == .translated(physicalAddress: 0x9000_0000), "stale, as hardware would be")
        #expect(Self.staleDiagnostics(rig).map(\.kind) == [.staleTranslation(streamID: 0x10)])
    }

    @Test func detachingAbortsTheStreamAgainAndFreeingReleasesTheASID() throws {
        let rig = try Self.rig(.g4K)
        let (dev, domain) = try Self.attach(rig)
        let smmu = try #require(rig.driver)
        let asid = domain.s1_cfg.cd.asid
        #expect(smmu.asid_map.test_bit(Int(asid)))
        rig.run {
            _ = await iommu_map(domain, 0x4000_0000, 0x9000_0000, SZ_4K, IOMMU_READ)
            await arm_smmu_detach_dev(dev)
            await arm_smmu_domain_free(domain)
        }
        #expect(!smmu.asid_map.test_bit(Int(asid)))
        #expect(rig.model.translate(Self.read(0x10, 0x4000_0000)) == .aborted(nil), "disable_bypass: an unattached stream aborts")
        #expect(Self.staleDiagnostics(rig).isEmpty, "\(Self.staleDiagnostics(rig))")
    }
}
