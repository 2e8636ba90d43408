import Testing
import Platform
import Kernel

/// Virtual time, completions, atomics and the kernel log of the kernel environment.
@Suite struct PrimitiveTests {
    @Test func sleepingAdvancesVirtualTimeOnlyWhenNothingElseCanRun() {
        let scheduler = KernelScheduler()
        let log = Log()
        scheduler.spawn("sleeper") {
            await KernelScheduler.sleep(for: 1000)
            log.append("woke at \(scheduler.clock.now)")
        }
        scheduler.spawn("busy") {
            for _ in 0..<3 { await KernelScheduler.schedule() }
            log.append("busy done at \(scheduler.clock.now)")
        }
        #expect(scheduler.run() == .completed)
        #expect(log.entries == ["busy done at 0", "woke at 1000"])
    }

    @Test func aTimedWaitTimesOutAtItsDeadlineOrReturnsWhenWoken() {
        let scheduler = KernelScheduler()
        let queue = WaitQueue("wq")
        let flag = UnsafeFlag()
        let log = Log()
        scheduler.spawn("timeout") {
            let met = await queue.waitEventTimeout(500) { flag.value }
            log.append("first \(met) at \(scheduler.clock.now)")
            let second = await queue.waitEventTimeout(10_000) { flag.value }
            log.append("second \(second) at \(scheduler.clock.now)")
        }
        scheduler.spawn("waker") {
            await KernelScheduler.sleep(for: 800)
            flag.value = true
            queue.wakeUp()
        }
        #expect(scheduler.run() == .completed)
        // The 10,000-tick deadline of the second wait was left stale by the wake at 800: the
        // clock stops there.
        #expect(log.entries == ["first false at 500", "second true at 800"])
        #expect(scheduler.clock.now == 800)
    }

    @Test func aCompletionReleasesOneWaiterPerCompleteAndAllAfterCompleteAll() {
        let scheduler = KernelScheduler()
        let done = Completion("done")
        let log = Log()
        for name in ["a", "b", "c"] {
            scheduler.spawn(name) {
                await done.wait()
                log.append(name)
            }
        }
        scheduler.spawn("signaller") {
            done.complete()
            await KernelScheduler.schedule()
            await KernelScheduler.schedule()
            log.append("all")
            done.completeAll()
        }
        #expect(scheduler.run() == .completed)
        #expect(log.entries.first == "a" && log.entries.count == 4)
        #expect(log.entries.filter { $0 != "all" }.sorted() == ["a", "b", "c"])
    }

    @Test func waitingForACompletionWithATimeoutFailsWhenNobodyCompletesIt() {
        let scheduler = KernelScheduler()
        let done = Completion("never")
        let log = Log()
        scheduler.spawn("waiter") { log.append("\(await done.wait(timeout: 250)) at \(scheduler.clock.now)") }
        #expect(scheduler.run() == .completed)
        #expect(log.entries == ["false at 250"])
    }

    @Test func separateReadAndSetLoseUpdatesUnderSomeSeedWhileAtomicAddNeverDoes() {
        var lostUnderSomeSeed = false
        for seed in UInt64(1)...40 {
            let scheduler = KernelScheduler(seed: seed)
            let racy = atomic_t(0), counted = atomic_t(0)
            for _ in 0..<3 {
                scheduler.spawn("incrementer") {
                    for _ in 0..<5 {
                        let value = await racy.read()
                        await racy.set(value + 1)
                        await counted.incrementReturn()
                    }
                }
            }
            #expect(scheduler.run() == .completed)
            let check = KernelScheduler()
            let finals = Log()
            check.spawn("check") { finals.append("\(await racy.read()) \(await counted.read())") }
            check.run()
            let parts = finals.entries[0].split(separator: " ").compactMap { Int($0) }
            #expect(parts[1] == 15, "atomic_inc_return never loses an update (seed \(seed))")
            if parts[0] < 15 { lostUnderSomeSeed = true }
        }
        #expect(lostUnderSomeSeed, "the read-then-set race shows up under some interleaving")
    }

    @Test func devErrPrefixesTheDriverAndDeviceAndTheLogKeepsTheLevel() {
        let clock = VirtualClock()
        let log = KernelLog(capacity: 2, clock: clock)
        let device = KernelDevice(driver: "arm-smmu-v3", name: "arm-smmu-v3.0.auto", log: log)
        dev_info(device, "ias 48-bit, oas 48-bit (features 0x00001fef)")
        clock.advance(by: 5)
        dev_err(device, "EVTQ overflow detected -- events lost")
        #expect(log.texts(atMost: .error) == ["arm-smmu-v3 arm-smmu-v3.0.auto: EVTQ overflow detected -- events lost"])
        #expect(log.lines.last?.time == 5)
        dev_warn(device, "third")
        #expect(log.lines.count == 2 && log.dropped == 1)
    }
}

/// Resources the kernel environment keeps stay bounded however long a run goes on.
@Suite struct KernelResourceTests {
    @Test func timedWaitsWokenEarlyDoNotAccumulateTimers() {
        let scheduler = KernelScheduler()
        let queue = WaitQueue("wq")
        let flag = UnsafeFlag()
        var peak = 0
        scheduler.spawn("waiter") {
            for _ in 0..<1000 {
                flag.value = false
                _ = await queue.waitEventTimeout(1_000_000) { flag.value }
                peak = max(peak, scheduler.armedTimers)
            }
        }
        scheduler.spawn("waker") {
            for _ in 0..<1000 {
                await KernelScheduler.schedule()
                flag.value = true
                queue.wakeUp()
            }
        }
        #expect(scheduler.run() == .completed)
        #expect(peak > 0 && peak <= 130, "peak \(peak) armed timers for 1,000 early-woken waits")
        #expect(scheduler.clock.now == 0, "no deadline was reached")
    }
}

/// printk's zero-padded hex conversions.
@Suite struct PrintkHexTests {
    @Test(arguments: [(UInt64(0), 2, "00"), (0x2a, 5, "0002a"), (0xdead_beef, 8, "deadbeef"), (0x1_0000_0000, 8, "100000000"), (UInt64.max, 16, "ffffffffffffffff"), (7, 0, "7")])
    func valuesArePaddedToTheWidthAndNeverTruncated(value: UInt64, width: Int, text: String) {
        #expect(printkHex(value, width: width) == text)
        #expect(printkHex(value, width: width) == String(repeating: "0", count: max(0, width - String(value, radix: 16).count)) + String(value, radix: 16))
    }
}

/// dev_err_ratelimited and the bitmap the driver allocates identifiers from.
@Suite struct RatelimitAndBitmapTests {
    @Test func tenLinesPer5SecondsThenTheSuppressedCountIsReported() {
        let clock = VirtualClock()
        let log = KernelLog(clock: clock)
        let dev = KernelDevice(driver: "drv", name: "dev0", log: log)
        for _ in 0..<12 { dev_err_ratelimited(dev, "CMD_SYNC timeout") }
        #expect(log.texts() == Array(repeating: "drv dev0: CMD_SYNC timeout", count: 10))
        clock.advance(by: 5_000_000_000)
        dev_err_ratelimited(dev, "CMD_SYNC timeout")
        #expect(log.texts().suffix(2) == ["drv dev0: 2 callbacks suppressed", "drv dev0: CMD_SYNC timeout"])
    }

    @Test func theFirstZeroBitIsFoundAcrossWordsAndAFullMapReportsItsSize() {
        let map = KernelBitmap(bits: 130)
        for bit in 0..<70 { #expect(!map.test_and_set_bit(bit)) }
        #expect(map.test_and_set_bit(3), "already set")
        #expect(map.find_first_zero_bit(130) == 70)
        #expect(map.find_first_zero_bit(64) == 64, "none below the size asked")
        map.clear_bit(5)
        #expect(map.find_first_zero_bit(130) == 5 && !map.test_bit(5))
        for bit in 0..<130 { map.set_bit(bit) }
        #expect(map.find_first_zero_bit(130) == 130)
        #expect(map.test_and_set_bit(500) && !map.test_bit(-1), "out of range: never set")
    }
}
