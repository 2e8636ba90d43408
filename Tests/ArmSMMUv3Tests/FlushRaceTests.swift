import Testing
import Platform
import Kernel
import SMMUv3
import IOMMU
@testable import ArmSMMUv3

/// The PRI queue flush against the PRIQ thread: seed 001's wait ("the queue is empty, or the
/// thread finished two batches") passes while the thread is still reporting the last entry it
/// took off the queue. The driver waits for that entry too; with the seed's wait put back
/// (a test-only switch), the same scenario loses the request.
@Suite struct FlushRaceTests {
    static func flushOutcome(seedWait: Bool, seed: UInt64?) throws -> Bool? {
        let (rig, dev, mm, _) = try PageFaultTests.setUp(seed: seed)
        rig.driver?.priq.flushIgnoresEntryInFlight = seedWait
        var pagedInWhenFlushed: Bool?
        rig.scheduler.spawn("device") { [model = rig.model] in
            _ = model.receivePageRequest(PageFaultTests.request(12, last: true, 0x40_c000))
            _ = await iopf_queue_flush_dev(dev)
            pagedInWhenFlushed = mm.translate(0x40_c000) != nil
        }
        rig.scheduler.run()
        return pagedInWhenFlushed
    }

    @Test func theDriversFlushWaitsForTheRequestInFlight() throws {
        #expect(try Self.flushOutcome(seedWait: false, seed: nil) == true)
        for seed in UInt64(1)...200 {
            let outcome = try Self.flushOutcome(seedWait: false, seed: seed)
            #expect(outcome == true, "seed \(seed)")
            if outcome != true { break }
        }
    }

    @Test func theSeedsWaitReturnsBeforeTheRequestReachesTheFaultQueue() throws {
        #expect(try Self.flushOutcome(seedWait: true, seed: nil) == false, "the flush returned with the request still in flight")
    }
}
