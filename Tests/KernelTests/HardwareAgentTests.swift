import Testing
import Platform
import Kernel

/// Hardware as a context of the scheduler: a doorbell write lets the device act at points the
/// scheduler chooses.
@Suite struct HardwareAgentTests {
    /// A queue-consuming device: software writes PROD, the hardware consumes one entry per
    /// step and advances CONS.
    final class QueueDevice: MMIODevice {
        var prod: UInt32 = 0
        var cons: UInt32 = 0
        override func mmioRead(offset: UInt64, size: Int) -> UInt64 { UInt64(offset == 0 ? prod : cons) }
        override func mmioWrite(offset: UInt64, value: UInt64, size: Int) {
            if offset == 0 { prod = UInt32(truncatingIfNeeded: value) }
        }
        /// One unit of hardware work.
        func step() -> Bool {
            guard cons != prod else { return false }
            cons += 1
            return true
        }
    }

    /// Runs a driver that submits 3 entries and polls CONS; returns how many polls it took.
    static func submitAndPoll(seed: UInt64?) throws -> (polls: Int, cons: UInt32, steps: Int) {
        let bus = Bus()
        let device = QueueDevice()
        try bus.map(device, at: 0x9000_0000, size: 0x1000)
        let scheduler = KernelScheduler(seed: seed)
        let agent = HardwareAgent("queue", on: scheduler, step: device.step)
        let prod = IOMem(bus: bus, base: 0x9000_0000), cons = prod.advanced(by: 4)
        let polls = Log()
        scheduler.spawn("driver") {
            await writel(3, prod)
            while await readl(cons) != 3 { polls.append("poll") }
        }
        #expect(scheduler.run() == .completed)
        return (polls.entries.count, device.cons, agent.steps)
    }

    @Test func theHardwareConsumesAfterTheDoorbellAtPointsTheSchedulerChooses() throws {
        let fixed = try Self.submitAndPoll(seed: nil)
        #expect(fixed.cons == 3 && fixed.steps == 3)
        var pollCounts = Set<Int>()
        for seed in UInt64(1)...30 {
            let run = try Self.submitAndPoll(seed: seed)
            #expect(run.cons == 3 && run.steps == 3, "every seed ends in the same state")
            #expect(try Self.submitAndPoll(seed: seed).polls == run.polls, "a seed replays")
            pollCounts.insert(run.polls)
        }
        #expect(pollCounts.count > 1, "seeds interleave the polls and the consumption differently")
    }
}
