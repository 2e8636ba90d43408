// swift-tools-version:6.0
import PackageDescription

let package = Package(
    name: "SMMUv3Model",
    products: [
        .library(name: "Platform", targets: ["Platform"]),
        .library(name: "SMMUv3Layout", targets: ["SMMUv3Layout"]),
        .library(name: "VMSA", targets: ["VMSA"]),
        .library(name: "SMMUv3", targets: ["SMMUv3"]),
        .library(name: "SMMUv3Host", targets: ["SMMUv3Host"]),
        .library(name: "Endpoints", targets: ["Endpoints"]),
        .library(name: "Kernel", targets: ["Kernel"]),
        .library(name: "IOMMU", targets: ["IOMMU"]),
        .library(name: "ArmSMMUv3", targets: ["ArmSMMUv3"]),
        .library(name: "Scenario", targets: ["Scenario"]),
        .executable(name: "smmuv3", targets: ["SMMUv3CLI"]),
        .executable(name: "smmuv3-bench", targets: ["SMMUv3Bench"]),
    ],
    targets: [
        // Layer 1: bus, sparse physical memory, interrupts, trace, fault injection.
        .target(name: "Platform"),
        // The SMMUv3 spec's layouts: registers, commands, STE/CD/L1 descriptors, event records,
        // PRI queue entries, queue indices; their encodings and validity reasons. No behaviour.
        .target(name: "SMMUv3Layout", dependencies: ["Platform"]),
        // VMSAv8-64 translation tables (Arm ARM D8): descriptor layouts, walk parameters, the walk
        // over any descriptor reader, permission rules. Shared by the SMMU, page-table builders
        // and checks of CPU page tables; knows nothing of the SMMU.
        .target(name: "VMSA", dependencies: ["Platform"]),
        // Layer 2: the SMMUv3 hardware model (re-exports SMMUv3Layout).
        .target(name: "SMMUv3", dependencies: ["Platform", "SMMUv3Layout", "VMSA"]),
        // A register-level agent for hardware tests (command submission, queue draining) and
        // table builders; it takes over an SMMU the driver brought up.
        .target(name: "SMMUv3Host", dependencies: ["Platform", "SMMUv3Layout", "VMSA", "SMMUv3"]),
        // Layer 3: PCIe functions (ATS, PRI, PASID) behind a root complex.
        .target(name: "Endpoints", dependencies: ["Platform", "SMMUv3Layout", "SMMUv3"]),
        // Layer 4: the deterministic kernel environment the driver port runs in.
        .target(name: "Kernel", dependencies: ["Platform", "VMSA"]),
        // Layer 5: the IOMMU core (devices, domains, the fault report API, the IOPF queue, SVA,
        // the PASID allocator), driver-independent.
        .target(name: "IOMMU", dependencies: ["Kernel"]),
        // Layer 5: the Swift port of the Linux arm-smmu-v3 driver and io-pgtable-arm. It talks
        // to the model only through the bus; it never imports SMMUv3.
        .target(name: "ArmSMMUv3", dependencies: ["Platform", "Kernel", "IOMMU"]),
        // Layer 6: scenarios — the driver on the model with endpoints, in one kernel world.
        .target(name: "Scenario", dependencies: ["Platform", "SMMUv3Layout", "VMSA", "SMMUv3", "SMMUv3Host", "Endpoints", "Kernel", "IOMMU", "ArmSMMUv3"]),
        .executableTarget(name: "SMMUv3CLI", dependencies: ["Platform", "SMMUv3Layout", "SMMUv3", "SMMUv3Host", "Endpoints", "Scenario"]),
        // Throughput of the hot paths (`make bench`, release builds).
        .executableTarget(name: "SMMUv3Bench", dependencies: ["Platform", "SMMUv3Layout", "VMSA", "SMMUv3", "SMMUv3Host", "Kernel", "Endpoints", "ArmSMMUv3", "Scenario"]),
        .testTarget(name: "PlatformTests", dependencies: ["Platform"]),
        .testTarget(name: "VMSATests", dependencies: ["Platform", "VMSA"]),
        .testTarget(name: "KernelTests", dependencies: ["Platform", "VMSA", "Kernel"]),
        .testTarget(name: "IOMMUTests", dependencies: ["Platform", "Kernel", "IOMMU"]),
        .testTarget(name: "ArmSMMUv3Tests", dependencies: ["Platform", "SMMUv3Layout", "VMSA", "Kernel", "SMMUv3", "SMMUv3Host", "Endpoints", "IOMMU", "ArmSMMUv3", "Scenario"]),
        .testTarget(name: "SMMUv3Tests", dependencies: ["Platform", "SMMUv3Layout", "VMSA", "SMMUv3", "SMMUv3Host", "Scenario"]),
        .testTarget(name: "ScenarioTests", dependencies: ["Platform", "SMMUv3Layout", "VMSA", "SMMUv3", "SMMUv3Host", "Endpoints", "Kernel", "IOMMU", "ArmSMMUv3", "Scenario"]),
        .testTarget(name: "EndpointsTests", dependencies: ["Platform", "SMMUv3Layout", "VMSA", "SMMUv3", "SMMUv3Host", "Endpoints", "Scenario"]),
    ]
)
