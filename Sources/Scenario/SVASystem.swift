import Platform
import Kernel
import SMMUv3
import Endpoints
import IOMMU
import ArmSMMUv3

/// The driver on the model with one PCIe function (ATS, PRI) at StreamID 0x10 ready for SVA:
/// added, attached to a stage-1 domain, `iommu_sva_device_init` done with the IOPF feature;
/// processes come from a 16 MB page pool in bus memory. The starting point of SVA scenarios,
/// their explorations and benchmarks.
public final class SVASystem {
    public let system: DriverSystem
    public let rootComplex: RootComplex
    public let function: PCIeFunction
    public let dev: device
    public let registry: iommu_sva_registry
    public let pages: CoherentMemory
    /// PASIDs the device driver's `mm_exit` was called for.
    public private(set) var exits: [UInt32] = []

    /// What went wrong setting the system up.
    public struct SetUpError: Error, CustomStringConvertible {
        public let description: String
    }

    public init(seed: UInt64? = nil, strategy: KernelScheduler.Strategy = .uniform) throws {
        system = try DriverSystem(seed: seed, strategy: strategy)
        guard system.probe() == 0, let smmu = system.driver else { throw SetUpError(description: "probe: \(system.messages())") }
        rootComplex = RootComplex(smmu: system.model)
        let function = rootComplex.attach(requesterID: 0x10, ats: false, pri: true, pageRequestCredits: 32)
        self.function = function
        let pci = pci_dev(name: "0000:00:02.0", ats_cap: true)
        pci.onATSControl = { enabled, _ in function.atsEnabled = enabled }
        dev = device(name: "0000:00:02.0", log: system.log, smmu_pdev: system.pdev, ids: [function.streamID], pci: pci)
        guard let domain = arm_smmu_domain_alloc(system.faults, .IOMMU_DOMAIN_UNMANAGED) else { throw SetUpError(description: "no domain") }
        registry = iommu_sva_registry(pasids: smmu.pasids)
        pages = CoherentMemory(memory: system.bus.memory, range: 0x9000_0000...0x90FF_FFFF)
        var results: [Int32] = []
        system.run { [dev] in
            results.append(await arm_smmu_add_device(dev))
            results.append(await iommu_attach_device(domain, dev))
            results.append(await iommu_sva_device_init(dev, IOMMU_SVA_FEAT_IOPF, 0) { [weak self] _, pasid, _ in
                self?.exits.append(pasid)
                return 0
            })
        }
        guard results == [0, 0, 0] else { throw SetUpError(description: "SVA set-up: \(results)") }
    }

    /// A process with one area, 0x40_0000-0x80_0000.
    public func process(asid: UInt16 = 7) throws -> MMStruct {
        guard let mm = MMStruct(asid: asid, memory: system.bus.memory, pages: pages) else { throw SetUpError(description: "no memory for a process") }
        mm.map(VMArea(start: 0x40_0000, end: 0x80_0000))
        return mm
    }

    /// The device's Stop Marker for `pasid`.
    public func stopMarker(_ pasid: UInt32) -> PageRequest {
        PageRequest(streamID: function.streamID, substreamID: pasid, prgIndex: 0, last: true, read: false, write: false, address: 0)
    }
}
