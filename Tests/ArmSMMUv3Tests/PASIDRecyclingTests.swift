import Testing
import Platform
import Kernel
import SMMUv3
import Endpoints
import Scenario
@testable import IOMMU
@testable import ArmSMMUv3

/// Seed 001: a PASID is reused only once no page request for its previous bond can be in
/// flight: the USED/STALE/INVALIDATED/FREE context states, Stop Markers, the device driver's
/// invalidate_pasid, the sweeper, and the race between unbind and the Stop Marker explored
/// over 1,000 interleavings (with the design broken on purpose, the exploration finds the
/// violation).
@Suite struct PASIDRecyclingTests {
    final class InUse: @unchecked Sendable {
        var answer: UInt32 = 0
    }

    static func bound(_ world: SVATests.World) throws -> (MMStruct, UInt32) {
        let mm = try SVATests.process(world)
        var result: (Int32, UInt32) = (1, 0)
        world.rig.run { result = await iommu_sva_bind_device(world.dev, mm, nil, world.registry) }
        #expect(result.0 == 0)
        return (mm, result.1)
    }

    static func master(_ world: SVATests.World) throws -> arm_smmu_master_data {
        try #require(world.dev.iommu_fwspec?.iommu_priv as? arm_smmu_master_data)
    }

    @Test func unbindingACleanPASIDFreesItAtOnce() throws {
        let world = try SVATests.setUp()
        let (_, pasid) = try Self.bound(world)
        let context = try #require(Self.master(world).contexts[pasid])
        var ret: Int32 = 1
        world.rig.run { ret = await iommu_sva_unbind_device(world.dev, pasid, world.registry, flags: IOMMU_PASID_CLEAN) }
        #expect(ret == 0 && world.registry.pasids.count == 0 && context.releases == 1 && context.io_mm.frees == 1)
        withExtendedLifetime(world) {}
    }

    @Test func aPASIDTheDeviceStillUsesCannotBeUnbound() throws {
        let world = try SVATests.setUp()
        let (_, pasid) = try Self.bound(world)
        let inUse = InUse()
        iommu_set_svm_ops(world.dev, iommu_svm_ops { _, _, _ in inUse.answer })
        var results: [Int32] = []
        world.rig.run { results.append(await iommu_sva_unbind_device(world.dev, pasid, world.registry, flags: 0)) }
        #expect(results == [-EBUSY] && world.registry.pasids.count == 1)
        inUse.answer = IOMMU_PASID_CLEAN
        world.rig.run { results.append(await iommu_sva_unbind_device(world.dev, pasid, world.registry, flags: 0)) }
        #expect(results == [-EBUSY, 0] && world.registry.pasids.count == 0)
        withExtendedLifetime(world) {}
    }

    @Test func aFlushedPASIDFailsItsLateRequestsAndWaitsForItsStopMarker() throws {
        let world = try SVATests.setUp()
        let (mm, pasid) = try Self.bound(world)
        let master = try Self.master(world)
        world.rig.run { _ = await iommu_sva_unbind_device(world.dev, pasid, world.registry, flags: IOMMU_PASID_FLUSHED) }
        #expect(world.registry.pasids.count == 1 && master.stale_contexts == 1)
        world.rig.run("device") { [model = world.rig.model] in
            _ = model.receivePageRequest(PageRequest(streamID: world.function.streamID, substreamID: pasid, prgIndex: 4, last: true, read: true, write: false, address: 0x40_0000))
        }
        #expect(world.function.responsesReceived.map(\.code) == [.responseFailure], "a late request is failed")
        #expect(mm.translate(0x40_0000) == nil, "and never handed to the process")
        world.rig.run("device") { [model = world.rig.model] in _ = model.receivePageRequest(world.sva.stopMarker(pasid)) }
        #expect(world.registry.pasids.count == 0 && master.stale_contexts == 0)
        #expect(world.function.responsesReceived.count == 1, "no reply to the Stop Marker")
        withExtendedLifetime(world) {}
    }

    @Test func aStopMarkerBeforeUnbindLetsUnbindFreeAtOnce() throws {
        let world = try SVATests.setUp()
        let (_, pasid) = try Self.bound(world)
        world.rig.run("device") { [model = world.rig.model] in _ = model.receivePageRequest(world.sva.stopMarker(pasid)) }
        #expect(world.registry.pasids.count == 1, "a Stop Marker alone does not unbind")
        world.rig.run { _ = await iommu_sva_unbind_device(world.dev, pasid, world.registry, flags: IOMMU_PASID_FLUSHED) }
        #expect(world.registry.pasids.count == 0)
        withExtendedLifetime(world) {}
    }

    @Test func theSweeperFreesStaleContextsAtTheWatermark() throws {
        let world = try SVATests.setUp()
        let master = try Self.master(world)
        let limit = Int(STALE_CONTEXTS_LIMIT(master))
        #expect(limit == 63)
        let mm = try SVATests.process(world)
        world.rig.run {
            for _ in 0..<(limit - 1) {
                let pasid = await iommu_sva_bind_device(world.dev, mm, nil, world.registry).1
                _ = await iommu_sva_unbind_device(world.dev, pasid, world.registry, flags: IOMMU_PASID_FLUSHED)
            }
        }
        #expect(master.stale_contexts == UInt32(limit - 1) && world.registry.pasids.count == limit - 1, "below the watermark nothing is swept")
        world.rig.run {
            let pasid = await iommu_sva_bind_device(world.dev, mm, nil, world.registry).1
            _ = await iommu_sva_unbind_device(world.dev, pasid, world.registry, flags: IOMMU_PASID_FLUSHED)
        }
        #expect(master.stale_contexts == 0 && world.registry.pasids.count == 0, "the sweeper freed them all")
        #expect(master.contexts.isEmpty)
        withExtendedLifetime(world) {}
    }

    @Test func detachingWithABoundPASIDWarnsAndTheSweeperReleasesIt() throws {
        let world = try SVATests.setUp()
        let (_, pasid) = try Self.bound(world)
        let master = try Self.master(world)
        let context = try #require(master.contexts[pasid])
        iommu_set_svm_ops(world.dev, iommu_svm_ops { _, _, _ in 0 })
        world.rig.run { await arm_smmu_detach_dev(world.dev) }
        #expect(world.rig.messages(atMost: .warning).contains("0000:00:02.0: PASID \(pasid) was still bound!"))
        #expect(context.detached && context.releases == 1, "swept once the PRI queue was seen through")
        #expect(master.contexts.isEmpty && master.stale_contexts == 0)
        withExtendedLifetime(world) {}
    }

    /// Unbind (FLUSHED) and an immediate rebind race the device's Stop Marker for the old
    /// bond. Returns a description of what went wrong, or nil.
    static func unbindAgainstStopMarker(seed: UInt64, broken: Bool) throws -> String? {
        let world = try SVATests.setUp(seed: seed)
        world.rig.expectsStaleEntries = true
        // Broken on purpose: the PASID is freed at unbind without waiting for anything.
        world.rig.driver?.releaseAtUnbind = broken
        world.registry.unbindSkipsFlush = broken
        let (mm, pasid) = try Self.bound(world)
        let master = try Self.master(world)
        let old = try #require(master.contexts[pasid])
        var rebound: UInt32 = 0
        world.rig.scheduler.spawn("device") { [model = world.rig.model] in
            _ = model.receivePageRequest(world.sva.stopMarker(pasid))
        }
        world.rig.run("driver") {
            _ = await iommu_sva_unbind_device(world.dev, pasid, world.registry, flags: IOMMU_PASID_FLUSHED)
            rebound = await iommu_sva_bind_device(world.dev, mm, nil, world.registry).1
        }
        defer { withExtendedLifetime(world) {} }
        if old.releases != 1 { return "the old context was released \(old.releases) times" }
        if old.io_mm.frees != 1 { return "the old PASID was freed \(old.io_mm.frees) times" }
        guard let new = master.contexts[rebound] else { return "the new bond has no context" }
        var state: Int64 = 0
        world.rig.run { state = await new.state.read() }
        if state != 0 { return "PASID \(rebound) was handed out while the old bond's Stop Marker was still in the PRI queue: it invalidated the new bond" }
        return nil
    }

    static func explore(_ scheduler: KernelScheduler, broken: Bool) -> String? {
        do {
            return try Self.unbindAgainstStopMarker(seed: scheduler.seed ?? 0, broken: broken)
        } catch {
            return "set-up failed: \(error)"
        }
    }

    @Test func unbindAgainstTheStopMarkerHoldsUnder1000Interleavings() throws {
        let failure = KernelScheduler.sweep(seeds: 1...1000) { scheduler in Self.explore(scheduler, broken: false) }
        #expect(failure == nil, "\(failure?.failure ?? "")")
    }

    @Test func freeingThePASIDAtUnbindIsCaughtByTheExploration() throws {
        let failure = KernelScheduler.sweep(seeds: 1...1000) { scheduler in Self.explore(scheduler, broken: true) }
        #expect(failure != nil, "the broken design must be caught")
        #expect(failure?.failure.contains("was handed out while the old bond's Stop Marker was still in the PRI queue") == true, "\(failure?.failure ?? "")")
    }
}

/// Unbind against page requests of the old bond still in the PRI queue (race B) or the fault
/// queue (race C), with the invariants checked after every scheduling step.
@Suite struct StaleRequestTests {
    /// The old bond's process has a page request in flight while the device driver unbinds it
    /// (FLUSHED, its Stop Marker following the request) and binds another process. Checked at
    /// every step: the new process never gets a page faulted in by the old bond's request, and
    /// the PASID is never bound to the new process while the old bond's request or marker is
    /// still queued. Returns the first violation.
    static func scenario(seed: UInt64, broken: Bool) throws -> String? {
        // PCT: the PRIQ thread, a fault worker or the driver can be stopped mid-way, so the
        // old request may be in the PRI queue (race B) or in the fault queue (race C).
        let world = try SVATests.setUp(seed: seed, strategy: .priorities(changePoints: 3, steps: 4096))
        world.rig.expectsStaleEntries = true
        world.rig.driver?.releaseAtUnbind = broken
        world.registry.unbindSkipsFlush = broken
        let (_, pasid) = try PASIDRecyclingTests.bound(world)
        let other = try SVATests.process(world, asid: 9)
        var violation: String?
        var oldRequestsPending = true
        // PRG responses the device received, by PRG index (1: the Last request; 0: the marker).
        var responses: [UInt16: Int] = [:]
        world.sva.rootComplex.smmu.onPRGResponse { response in
            if response.substreamID == pasid || response.substreamID == nil { responses[response.prgIndex, default: 0] += 1 }
        }
        world.rig.scheduler.afterEachStep = { [registry = world.registry, smmu = world.rig.driver] in
            guard violation == nil, let smmu else { return }
            if responses[1, default: 0] > 1 { violation = "PRG 1 was answered \(responses[1, default: 0]) times" }
            if responses[0, default: 0] > 0 { violation = "the Stop Marker was answered" }
            // The old bond's request reached the new process.
            if other.translate(0x40_5000) != nil { violation = "a page request of the old bond was handled in the new process" }
            // The PASID belongs to the new process while an old request may still be queued.
            let priqPending = !queue_empty(smmu.priq.q) || smmu.priq.handling
            if oldRequestsPending, priqPending, (registry.pasids.idr_find(pasid) as? io_mm)?.mm === other {
                violation = "PASID \(pasid) was bound to a new process with the old bond's requests still queued"
            }
        }
        let stopped = Completion("device stopped")
        world.rig.scheduler.spawn("device") { [model = world.rig.model] in
            _ = model.receivePageRequest(PageRequest(streamID: world.function.streamID, substreamID: pasid, prgIndex: 1, last: true, read: true, write: true, address: 0x40_5000))
            // The device stopped using the PASID: its Stop Marker follows its last request.
            stopped.complete()
            _ = model.receivePageRequest(world.sva.stopMarker(pasid))
        }
        world.rig.run("driver") {
            await stopped.wait()
            _ = await iommu_sva_unbind_device(world.dev, pasid, world.registry, flags: IOMMU_PASID_FLUSHED)
            _ = await iommu_sva_bind_device(world.dev, other, nil, world.registry)
        }
        // Let everything drain, then nothing is pending any more.
        world.rig.run {}
        oldRequestsPending = false
        if violation == nil, responses[1, default: 0] != 1 { violation = "PRG 1 was answered \(responses[1, default: 0]) times, not once" }
        // Nothing leaks once the device goes: unbind the new process, remove the device.
        let master = try PASIDRecyclingTests.master(world)
        world.rig.run {
            for bond in world.registry.bonds(of: world.dev) { _ = await iommu_sva_unbind_device(world.dev, bond.io_mm.pasid, world.registry, flags: IOMMU_PASID_CLEAN) }
            await arm_smmu_remove_device(world.dev)
        }
        if violation == nil, !master.contexts.isEmpty || world.registry.pasids.count != 0 {
            violation = "left behind after remove_device: \(master.contexts.count) contexts, \(world.registry.pasids.count) PASIDs"
        }
        withExtendedLifetime(world) {}
        return violation
    }

    static func explore(_ scheduler: KernelScheduler, broken: Bool) -> String? {
        do {
            return try scenario(seed: scheduler.seed ?? 0, broken: broken)
        } catch {
            return "set-up failed: \(error)"
        }
    }

    @Test func oldRequestsNeverReachTheNextProcessUnder1000Interleavings() {
        let failure = KernelScheduler.sweep(seeds: 1...1000) { Self.explore($0, broken: false) }
        #expect(failure == nil, "\(failure?.failure ?? "")")
    }

    @Test func withoutWaitingTheExplorationFindsAnOldRequestInTheNextProcess() {
        let failure = KernelScheduler.sweep(seeds: 1...1000) { Self.explore($0, broken: true) }
        #expect(failure != nil, "the broken design must be caught")
    }
}

/// The sweeper against the PRIQ thread: a page request of a bond is being reported when the
/// bond is unbound (FLUSHED, no Stop Marker ever comes) and the sweeper, run at every unbind
/// here, is the only thing between the PASID and its reuse (the core's own fault flush is
/// removed). Checked at every step: the old request never faults a page into the process the
/// PASID is given to next.
@Suite struct SweeperRaceTests {
    static func scenario(seed: UInt64, seedsWait: Bool) throws -> String? {
        // Priority scheduling: a context (the PRIQ thread, say) can be starved mid-report.
        let world = try SVATests.setUp(seed: seed, strategy: .priorities(changePoints: 3))
        world.rig.expectsStaleEntries = true
        world.registry.unbindSkipsFlush = true
        world.rig.driver?.priq.flushIgnoresEntryInFlight = seedsWait
        let (_, pasid) = try PASIDRecyclingTests.bound(world)
        let master = try PASIDRecyclingTests.master(world)
        master.avail_contexts = 4  // the watermark is 1: every unbind queues the sweeper
        let other = try SVATests.process(world, asid: 9)
        var violation: String?
        world.rig.scheduler.afterEachStep = {
            if violation == nil, other.translate(0x40_6000) != nil {
                violation = "PASID \(pasid) went to a new process while its old bond's page request was still being reported"
            }
        }
        // The device driver stops the device before unbinding: its last request is sent (seed
        // 001: a request still travelling towards the SMMU after that is a device bug).
        let stopped = Completion("device stopped")
        world.rig.scheduler.spawn("device") { [model = world.rig.model] in
            _ = model.receivePageRequest(PageRequest(streamID: world.function.streamID, substreamID: pasid, prgIndex: 2, last: true, read: true, write: true, address: 0x40_6000))
            stopped.complete()
        }
        world.rig.run("driver") {
            await stopped.wait()
            _ = await iommu_sva_unbind_device(world.dev, pasid, world.registry, flags: IOMMU_PASID_FLUSHED)
            // Wait for the sweeper, then give the PASID space to another process.
            await world.rig.driver?.system_long_wq?.flush()
            _ = await iommu_sva_bind_device(world.dev, other, nil, world.registry)
        }
        world.rig.run {}
        withExtendedLifetime(world) {}
        return violation
    }

    static func explore(_ scheduler: KernelScheduler, seedsWait: Bool) -> String? {
        do {
            return try scenario(seed: scheduler.seed ?? 0, seedsWait: seedsWait)
        } catch {
            return "set-up failed: \(error)"
        }
    }

    @Test func theSweepersWaitHoldsUnder1000Interleavings() {
        let failure = KernelScheduler.sweep(seeds: 1...1000) { Self.explore($0, seedsWait: false) }
        #expect(failure == nil, "\(failure?.failure ?? "")")
    }

    @Test func theSeedsWaitIsCaughtByTheExploration() {
        let failure = KernelScheduler.sweep(seeds: 1...1000) { Self.explore($0, seedsWait: true) }
        #expect(failure?.failure.contains("was still being reported") == true, "\(failure?.failure ?? "no violation found")")
    }
}

/// A PRI queue overflow discards a Stop Marker (seed 001: "Stop Markers only allow to speed up
/// the freeing process"): the context stays stale, holding its PASID, until the sweeper.
@Suite struct LostStopMarkerTests {
    @Test func aStopMarkerLostToAnOverflowLeavesTheSweeperToFreeThePASID() throws {
        let world = try SVATests.setUp()
        let (_, pasid) = try PASIDRecyclingTests.bound(world)
        let master = try PASIDRecyclingTests.master(world)
        let smmu = try #require(world.rig.driver)
        let entries = 1 << Int(smmu.priq.q.max_n_shift)
        world.rig.run { _ = await iommu_sva_unbind_device(world.dev, pasid, world.registry, flags: IOMMU_PASID_FLUSHED) }
        world.rig.run("device") { [model = world.rig.model] in
            // A burst fills the queue (requests without a PASID), then the Stop Marker is lost.
            for index in 0..<entries {
                _ = model.receivePageRequest(PageRequest(streamID: world.function.streamID, prgIndex: UInt16(index % 512), last: false, read: true, write: false, address: 0x40_0000))
            }
            _ = model.receivePageRequest(world.sva.stopMarker(pasid))
        }
        #expect(world.rig.messages(atMost: .error).contains("PRIQ overflow detected -- requests lost"))
        #expect(world.registry.pasids.count == 1 && master.stale_contexts == 1, "without its marker the context stays stale")
        // The sweeper (queued here as the watermark would) frees it once the PRI queue is seen through.
        world.rig.run { smmu.system_long_wq?.queue(master.sweep_contexts) }
        #expect(world.registry.pasids.count == 0 && master.stale_contexts == 0 && master.contexts.isEmpty)
        withExtendedLifetime(world) {}
    }
}

/// A process exits while its page requests are being handled (seed 002's mm_exit against the
/// fault path), explored over 1,000 PCT interleavings. Checked at every step: no group is
/// answered twice and no page appears in the process after it exited; at the end every group
/// was answered once, the Stop Marker freed the PASID exactly once, and nothing is left.
@Suite struct ExitDuringFaultsTests {
    static func scenario(seed: UInt64) throws -> String? {
        let world = try SVATests.setUp(seed: seed, strategy: .priorities(changePoints: 3, steps: 2048))
        world.rig.expectsStaleEntries = true
        let mm = try SVATests.process(world)
        var pasid: UInt32 = 0
        world.rig.run { pasid = await iommu_sva_bind_device(world.dev, mm, nil, world.registry).1 }
        let io_mm = try #require(world.registry.pasids.idr_find(pasid) as? io_mm)
        var responses: [UInt16: Int] = [:]
        world.sva.rootComplex.smmu.onPRGResponse { responses[$0.prgIndex, default: 0] += 1 }
        var violation: String?
        // The pages present when the exit began: none may be added after.
        var presentAtExit: Set<Int>?
        func present() -> Set<Int> { Set((0..<4).filter { mm.translate(0x40_0000 + UInt64($0) << 12) != nil }) }
        world.rig.scheduler.afterEachStep = {
            guard violation == nil else { return }
            if let twice = responses.first(where: { $0.value > 1 }) { violation = "PRG \(twice.key) answered \(twice.value) times" }
            guard mm.isDead else { return }
            if presentAtExit == nil { presentAtExit = present() }
            if let before = presentAtExit, !present().isSubset(of: before) { violation = "a page appeared in the process after it exited" }
        }
        world.rig.scheduler.spawn("device") { [model = world.rig.model] in
            for index in 0..<4 {
                _ = model.receivePageRequest(PageRequest(streamID: world.function.streamID, substreamID: pasid, prgIndex: UInt16(1 + index), last: true, read: true, write: true, address: 0x40_0000 + UInt64(index) << 12))
                await KernelScheduler.schedule()
            }
            _ = model.receivePageRequest(world.sva.stopMarker(pasid))
        }
        world.rig.run("exit") { await mm.exit() }
        world.rig.run {}
        defer { withExtendedLifetime(world) {} }
        if let violation { return violation }
        if (1...4).contains(where: { responses[UInt16($0), default: 0] != 1 }) { return "a group was not answered exactly once: \(responses)" }
        if io_mm.frees != 1 || world.registry.pasids.count != 0 { return "PASID freed \(io_mm.frees) times, \(world.registry.pasids.count) left" }
        if world.exits != [pasid] { return "mm_exit calls: \(world.exits)" }
        return nil
    }

    @Test func exitDuringFaultsHoldsUnder1000Interleavings() {
        let failure = KernelScheduler.sweep(seeds: 1...1000) { scheduler in
            do {
                return try Self.scenario(seed: scheduler.seed ?? 0)
            } catch {
                return "set-up failed: \(error)"
            }
        }
        #expect(failure == nil, "\(failure?.failure ?? "")")
    }
}

/// Two more races of seed 001, each over 1,000 PCT interleavings with the invariants checked
/// at every step: a PRI queue overflow losing the Stop Marker of a bond being unbound (the
/// sweeper must free the PASID, and only after the old requests are through), and detaching a
/// device with a bound PASID while its page requests are in flight.
@Suite struct OverflowAndDetachRaceTests {
    /// Answers per PRG index, and a violation when a group is answered twice.
    final class Answers: @unchecked Sendable {
        var count: [UInt16: Int] = [:]
    }

    static func overflowScenario(seed: UInt64) throws -> String? {
        let world = try SVATests.setUp(seed: seed, strategy: .priorities(changePoints: 3, steps: 4096))
        world.rig.expectsStaleEntries = true
        let (_, pasid) = try PASIDRecyclingTests.bound(world)
        let master = try PASIDRecyclingTests.master(world)
        master.avail_contexts = 4  // every unbind queues the sweeper
        let smmu = try #require(world.rig.driver)
        let entries = 1 << Int(smmu.priq.q.max_n_shift)
        let other = try SVATests.process(world, asid: 9)
        let answers = Answers()
        world.sva.rootComplex.smmu.onPRGResponse { answers.count[$0.prgIndex, default: 0] += 1 }
        var violation: String?
        world.rig.scheduler.afterEachStep = {
            guard violation == nil else { return }
            if other.translate(0x40_7000) != nil { violation = "the old bond's request faulted a page into the next process" }
            if let twice = answers.count.first(where: { $0.value > 1 }) { violation = "PRG \(twice.key) answered \(twice.value) times" }
        }
        let stopped = Completion("device stopped")
        world.rig.scheduler.spawn("device") { [model = world.rig.model] in
            _ = model.receivePageRequest(PageRequest(streamID: world.function.streamID, substreamID: pasid, prgIndex: 7, last: true, read: true, write: true, address: 0x40_7000))
            // A burst without PASID overflows the queue; the Stop Marker is lost.
            for index in 0..<entries { _ = model.receivePageRequest(PageRequest(streamID: world.function.streamID, prgIndex: UInt16(8 + index % 400), last: false, read: true, write: false, address: 0)) }
            stopped.complete()
            _ = model.receivePageRequest(world.sva.stopMarker(pasid))
        }
        world.rig.run("driver") {
            await stopped.wait()
            _ = await iommu_sva_unbind_device(world.dev, pasid, world.registry, flags: IOMMU_PASID_FLUSHED)
            await smmu.system_long_wq?.flush()
            _ = await iommu_sva_bind_device(world.dev, other, nil, world.registry)
        }
        world.rig.run {}
        withExtendedLifetime(world) {}
        if let violation { return violation }
        if master.stale_contexts != 0 || master.contexts.count != 1 { return "stale \(master.stale_contexts), contexts \(master.contexts.count) at the end" }
        return nil
    }

    static func detachScenario(seed: UInt64, asTheSeed: Bool = false) throws -> String? {
        let world = try SVATests.setUp(seed: seed, strategy: .priorities(changePoints: 3, steps: 4096))
        world.rig.expectsStaleEntries = true
        world.rig.driver?.detachAsTheSeed = asTheSeed
        let (_, pasid) = try PASIDRecyclingTests.bound(world)
        let master = try PASIDRecyclingTests.master(world)
        iommu_set_svm_ops(world.dev, iommu_svm_ops { _, _, _ in IOMMU_PASID_FLUSHED })
        let answers = Answers()
        world.sva.rootComplex.smmu.onPRGResponse { answers.count[$0.prgIndex, default: 0] += 1 }
        var violation: String?
        world.rig.scheduler.afterEachStep = {
            guard violation == nil else { return }
            if let twice = answers.count.first(where: { $0.value > 1 }) { violation = "PRG \(twice.key) answered \(twice.value) times" }
        }
        world.rig.scheduler.spawn("device") { [model = world.rig.model] in
            for index in 0..<3 {
                _ = model.receivePageRequest(PageRequest(streamID: world.function.streamID, substreamID: pasid, prgIndex: UInt16(1 + index), last: true, read: true, write: false, address: 0x40_0000 + UInt64(index) << 12))
                await KernelScheduler.schedule()
            }
            _ = model.receivePageRequest(world.sva.stopMarker(pasid))
        }
        world.rig.run("driver") { await arm_smmu_detach_dev(world.dev) }
        world.rig.run {}
        defer { withExtendedLifetime(world) {} }
        if let violation { return violation }
        if (1...3).contains(where: { answers.count[UInt16($0), default: 0] != 1 }) { return "a group was not answered exactly once: \(answers.count)" }
        // The Stop Marker completed the stale context.
        if !master.contexts.isEmpty || master.stale_contexts != 0 { return "left: \(master.contexts.count) contexts, stale \(master.stale_contexts)" }
        return nil
    }

    static func explore(_ scenario: (UInt64) throws -> String?) -> (seed: UInt64, failure: String)? {
        KernelScheduler.sweep(seeds: 1...1000) { scheduler in
            do {
                return try scenario(scheduler.seed ?? 0)
            } catch {
                return "set-up failed: \(error)"
            }
        }
    }

    @Test func aLostStopMarkerHoldsUnder1000Interleavings() {
        let failure = Self.explore(Self.overflowScenario)
        #expect(failure == nil, "\(failure?.failure ?? "")")
    }

    @Test func detachingWithABoundPASIDHoldsUnder1000Interleavings() {
        let failure = Self.explore { try Self.detachScenario(seed: $0) }
        #expect(failure == nil, "\(failure?.failure ?? "")")
    }

    @Test func theSeedsDetachLeavesAnInvalidatedContextStaleForEver() {
        let failure = Self.explore { try Self.detachScenario(seed: $0, asTheSeed: true) }
        #expect(failure?.failure.hasPrefix("left: 1 contexts, stale 1") == true, "\(failure?.failure ?? "no violation found")")
    }
}

/// The sweeper's wait interrupted (seed 001: "Woops, rollback"): the contexts it had claimed
/// go back to STALE and stay for a later sweep.
@Suite struct SweeperRollbackTests {
    @Test func anInterruptedSweepPutsItsContextsBackToStale() throws {
        let world = try SVATests.setUp()
        let smmu = try #require(world.rig.driver)
        let master = try PASIDRecyclingTests.master(world)
        let (_, stale) = try PASIDRecyclingTests.bound(world)
        let busy = try SVATests.process(world, asid: 9)
        var busyPASID: UInt32 = 0
        world.rig.run {
            busyPASID = await iommu_sva_bind_device(world.dev, busy, nil, world.registry).1
            _ = await iommu_sva_unbind_device(world.dev, stale, world.registry, flags: IOMMU_PASID_FLUSHED)
        }
        #expect(master.stale_contexts == 1)
        let param = try #require(world.dev.iommu_param)
        let wq = try #require(smmu.system_long_wq)
        world.rig.run("test") { [model = world.rig.model] in
            // The PRIQ thread will be stuck reporting a request: the device's IOMMU lock is held.
            await param.lock.lock()
            _ = model.receivePageRequest(PageRequest(streamID: world.function.streamID, substreamID: busyPASID, prgIndex: 1, last: true, read: true, write: false, address: 0x40_0000))
            wq.queue(master.sweep_contexts)
            // Once the sweeper waits for the PRIQ thread, interrupt it.
            while smmu.priq.wq.sleepers == 0 { await KernelScheduler.schedule() }
            for worker in wq.workerContexts { worker.sendSignal() }
            while master.sweep_contexts.isRunning { await KernelScheduler.schedule() }
            param.lock.unlock()
        }
        let context = try #require(master.contexts[stale])
        var state: Int64 = 0
        world.rig.run { state = await context.state.read() }
        #expect(state == ARM_SMMU_CONTEXT_STALE, "rolled back")
        #expect(master.stale_contexts == 1 && world.registry.pasids.count == 2)
        for worker in wq.workerContexts { worker.clearSignal() }
        world.rig.run { wq.queue(master.sweep_contexts) }
        #expect(master.contexts[stale] == nil && master.stale_contexts == 0, "a later sweep frees it")
        withExtendedLifetime(world) {}
    }
}
