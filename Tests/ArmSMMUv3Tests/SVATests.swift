import Testing
import Platform
import Kernel
import SMMUv3
import Endpoints
import IOMMU
import ArmSMMUv3
import Scenario

/// SVA end to end (seed 002): a PCIe function with ATS and PRI does DMA with a process's
/// PASID; the SMMU walks the process's own page tables; a missing page goes device -> PRIQ ->
/// PRIQ thread -> IOPF queue -> handle_mm_fault -> iommu_page_response -> CMD_PRI_RESP ->
/// device retry; unbind and process exit free the PASID only after the device is done.
@Suite struct SVATests {
    /// An SVA-ready system (Scenario's SVASystem) with the driver tests' checked rig.
    struct World {
        let sva: SVASystem
        let rig: DriverRig
        var function: PCIeFunction { sva.function }
        var dev: device { sva.dev }
        var registry: iommu_sva_registry { sva.registry }
        var exits: [UInt32] { sva.exits }
    }

    static func setUp(seed: UInt64? = nil, strategy: KernelScheduler.Strategy = .uniform) throws -> World {
        let sva = try SVASystem(seed: seed, strategy: strategy)
        return World(sva: sva, rig: DriverRig(system: sva.system))
    }

    static func process(_ world: World, asid: UInt16 = 7) throws -> MMStruct {
        try world.sva.process(asid: asid)
    }

    @Test func aDeviceWritesIntoAProcessThroughItsOwnPageTablesFaultingPagesIn() throws {
        let world = try Self.setUp()
        let mm = try Self.process(world)
        var bound: (Int32, UInt32) = (1, 0)
        world.rig.run { bound = await iommu_sva_bind_device(world.dev, mm, nil, world.registry) }
        #expect(bound.0 == 0 && bound.1 >= 1)
        #expect(world.function.atsEnabled)
        var handle: DMAHandle?
        world.rig.run("device") { handle = world.function.write(0x40_1230, bytes: Array("hello, process".utf8), pasid: bound.1) }
        let dma = try #require(handle)
        #expect(world.function.state(of: dma) == .completed, "\(String(describing: world.function.state(of: dma)))")
        let physical = try #require(mm.translate(0x40_1230), "the page was faulted into the process")
        #expect((0..<14).map { world.rig.bus.memory.read8(at: physical + UInt64($0)) } == Array("hello, process".utf8))
        #expect(world.function.responsesReceived.map(\.code) == [.success])
        withExtendedLifetime(world) {}
    }

    @Test func oneProcessKeepsOnePASIDAndUnbindFreesItAfterTheDevice() throws {
        let world = try Self.setUp()
        let mm = try Self.process(world)
        var pasids: [UInt32] = []
        var results: [Int32] = []
        world.rig.run {
            pasids.append(await iommu_sva_bind_device(world.dev, mm, nil, world.registry).1)
            pasids.append(await iommu_sva_bind_device(world.dev, mm, nil, world.registry).1)
            results.append(await iommu_sva_unbind_device(world.dev, pasids[0], world.registry))
            results.append(await iommu_sva_unbind_device(world.dev, pasids[0], world.registry))
        }
        #expect(pasids[0] == pasids[1])
        #expect(results == [0, -ESRCH])
        #expect(world.registry.pasids.count == 0, "the PASID is free again")
        let smmu = try #require(world.rig.driver)
        #expect(smmu.domainCD(for: world.dev, ssid: pasids[0])?[0] == 0, "the CD is cleared")
        withExtendedLifetime(world) {}
    }

    @Test func bondsAreFoundPerDeviceAndProcessInBindOrder() throws {
        let world = try Self.setUp()
        let first = try Self.process(world, asid: 7)
        let second = try Self.process(world, asid: 8)
        var pasids: [UInt32] = []
        var again: UInt32 = 0
        var results: [Int32] = []
        world.rig.run {
            pasids.append(await iommu_sva_bind_device(world.dev, first, nil, world.registry).1)
            pasids.append(await iommu_sva_bind_device(world.dev, second, nil, world.registry).1)
            results.append(await iommu_sva_unbind_device(world.dev, pasids[0], world.registry, flags: IOMMU_PASID_CLEAN))
            // The second process's bond is still found by its process: binding again returns its PASID.
            again = await iommu_sva_bind_device(world.dev, second, nil, world.registry).1
        }
        #expect(pasids.count == 2 && pasids[0] != pasids[1])
        #expect(results == [0])
        #expect(again == pasids[1])
        #expect(world.registry.bonds(of: world.dev).map(\.io_mm.pasid) == [pasids[1]])
        #expect(world.registry.count == 1)
        world.rig.run { results.append(await iommu_sva_unbind_device(world.dev, pasids[1], world.registry, flags: IOMMU_PASID_CLEAN)) }
        #expect(results == [0, 0])
        #expect(world.registry.count == 0 && world.registry.bonds(of: world.dev).isEmpty)
        withExtendedLifetime(world) {}
    }

    @Test func processExitCallsTheDeviceDriverAndThePASIDWaitsForTheStopMarker() throws {
        let world = try Self.setUp()
        let mm = try Self.process(world)
        var pasid: UInt32 = 0
        world.rig.run { pasid = await iommu_sva_bind_device(world.dev, mm, nil, world.registry).1 }
        world.rig.run { await mm.exit() }
        #expect(world.exits == [pasid], "mm_exit told the device driver")
        #expect(world.registry.pasids.count == 1, "stale: page requests for it may still be in flight")
        // The device's Stop Marker for the PASID.
        world.rig.run("device") { [model = world.rig.model] in
            _ = model.receivePageRequest(world.sva.stopMarker(pasid))
        }
        #expect(world.registry.pasids.count == 0, "the Stop Marker completed the pair")
        #expect(world.function.responsesReceived.isEmpty, "no reply to a Stop Marker")
        let other = try Self.process(world, asid: 8)
        var reused: UInt32 = 0
        world.rig.run { reused = await iommu_sva_bind_device(world.dev, other, nil, world.registry).1 }
        #expect(reused == pasid, "only now can the PASID serve another process")
        withExtendedLifetime(world) {}
    }
}

extension arm_smmu_device {
    /// The CD at `ssid` of the domain `dev` is attached to (for tests).
    func domainCD(for dev: device, ssid: UInt32) -> LE64Pointer? {
        guard let domain = dev.domain as? arm_smmu_domain else { return nil }
        return domain.s1_cfg.cdptr?.advanced(by: Int(ssid) * CTXDESC_CD_DWORDS)
    }
}
