// swift-tools-version:6.0
import PackageDescription

let package = Package(
    name: "SMMUv3Model",
    products: [
        .library(name: "Platform", targets: ["Platform"]),
        .library(name: "SMMUv3", targets: ["SMMUv3"]),
        .library(name: "SMMUv3Host", targets: ["SMMUv3Host"]),
        .library(name: "Endpoints", targets: ["Endpoints"]),
        .executable(name: "smmuv3", targets: ["SMMUv3CLI"]),
        .executable(name: "smmuv3-bench", targets: ["SMMUv3Bench"]),
    ],
    targets: [
        // Layer 1: bus, sparse physical memory, interrupts, trace, fault injection.
        .target(name: "Platform"),
        // Layer 2: the SMMUv3 hardware model.
        .target(name: "SMMUv3", dependencies: ["Platform"]),
        // A minimal software agent that drives the model through the bus only
        // (Linux-order bring-up, command submission, queue draining).
        .target(name: "SMMUv3Host", dependencies: ["Platform", "SMMUv3"]),
        // Layer 3: PCIe functions (ATS, PRI, PASID) behind a root complex.
        .target(name: "Endpoints", dependencies: ["Platform", "SMMUv3"]),
        .executableTarget(name: "SMMUv3CLI", dependencies: ["Platform", "SMMUv3", "SMMUv3Host", "Endpoints"]),
        // Throughput of the hot paths (`make bench`, release builds).
        .executableTarget(name: "SMMUv3Bench", dependencies: ["Platform", "SMMUv3", "SMMUv3Host"]),
        .testTarget(name: "PlatformTests", dependencies: ["Platform"]),
        .testTarget(name: "SMMUv3Tests", dependencies: ["Platform", "SMMUv3", "SMMUv3Host"]),
        .testTarget(name: "EndpointsTests", dependencies: ["Platform", "SMMUv3", "SMMUv3Host", "Endpoints"]),
    ]
)
