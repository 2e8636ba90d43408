import Testing
import Platform
import Kernel

/// Workqueues and MMIO accessors of the kernel environment.
@Suite struct WorkqueueTests {
    @Test func workRunsInQueueOrderAndFlushWaitsForIt() {
        let scheduler = KernelScheduler()
        let wq = Workqueue("events", on: scheduler)
        let log = Log()
        let first = WorkItem("first") { log.append("first") }
        let second = WorkItem("second") { log.append("second") }
        scheduler.spawn("driver") {
            #expect(wq.queue(first))
            #expect(!wq.queue(first), "queue_work on a pending item returns false")
            wq.queue(second)
            await wq.flush()
            log.append("flushed")
        }
        #expect(scheduler.run() == .completed, "idle workers do not count as a deadlock")
        #expect(log.entries == ["first", "second", "flushed"])
    }

    @Test func cancelWorkSyncDropsAPendingItemAndWaitsForARunningOne() {
        let scheduler = KernelScheduler()
        let wq = Workqueue("wq", on: scheduler)
        let log = Log()
        let slow = WorkItem("slow") {
            log.append("slow start")
            await KernelScheduler.sleep(for: 100)
            log.append("slow end")
        }
        let never = WorkItem("never") { log.append("never ran?!") }
        scheduler.spawn("driver") {
            wq.queue(slow)
            wq.queue(never)
            await KernelScheduler.schedule()
            await KernelScheduler.schedule()
            #expect(await wq.cancelSync(never), "it was pending")
            #expect(!(await wq.cancelSync(slow)), "it was running, not pending")
            log.append("cancelled at \(scheduler.clock.now)")
        }
        #expect(scheduler.run() == .completed)
        #expect(log.entries == ["slow start", "slow end", "cancelled at 100"])
    }

    @Test func anUnboundQueueRunsItemsConcurrently() {
        let scheduler = KernelScheduler()
        let wq = Workqueue("unbound", workers: 2, on: scheduler)
        let log = Log()
        for name in ["a", "b"] {
            wq.queue(WorkItem(name) {
                log.append("\(name) start")
                await KernelScheduler.schedule()
                log.append("\(name) end")
            })
        }
        #expect(scheduler.run() == .completed)
        #expect(log.entries == ["a start", "b start", "a end", "b end"])
    }

    /// A device with one 32-bit register that counts its writes.
    final class Counter: MMIODevice {
        var value: UInt32 = 0
        var writes = 0
        override func mmioRead(offset: UInt64, size: Int) -> UInt64 { UInt64(value) }
        override func mmioWrite(offset: UInt64, value: UInt64, size: Int) {
            self.value = UInt32(truncatingIfNeeded: value)
            writes += 1
        }
    }

    @Test func mmioAccessesReachTheDeviceAndAreSchedulingPoints() throws {
        let bus = Bus()
        let device = Counter()
        try bus.map(device, at: 0x9000_0000, size: 0x1000)
        let register = IOMem(bus: bus, base: 0x9000_0000)
        let scheduler = KernelScheduler()
        let log = Log()
        scheduler.spawn("writer") {
            await writel(1, register)
            await writel(2, register)
        }
        scheduler.spawn("reader") {
            log.append("read \(await readl_relaxed(register))")
        }
        #expect(scheduler.run() == .completed)
        // The reader's access ran between the writer's two writes.
        #expect(log.entries == ["read 1"])
        #expect(device.writes == 2 && device.value == 2)
    }
}
