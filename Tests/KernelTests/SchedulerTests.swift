import Testing
import Kernel

/// A log the contexts of one run append to (they run one at a time on one thread).
final class Log: @unchecked Sendable {
    var entries: [String] = []
    func append(_ entry: String) { entries.append(entry) }
}

/// The deterministic scheduler: one context runs at a time, switching only at scheduling points,
/// in a fixed order or one a seed picks, and a run where nothing can proceed is a reported deadlock.
@Suite struct SchedulerTests {
    static func interleaving(seed: UInt64?) -> [String] {
        let scheduler = KernelScheduler(seed: seed)
        let log = Log()
        for name in ["a", "b", "c"] {
            scheduler.spawn(name) {
                for step in 0..<4 {
                    log.append("\(name)\(step)")
                    await KernelScheduler.schedule()
                }
            }
        }
        #expect(scheduler.run() == .completed)
        return log.entries
    }

    @Test func withoutASeedContextsTakeTurnsInTheOrderTheyBecameRunnable() {
        #expect(Self.interleaving(seed: nil) == ["a0", "b0", "c0", "a1", "b1", "c1", "a2", "b2", "c2", "a3", "b3", "c3"])
    }

    @Test func aSeedReplaysItsInterleavingAndSeedsDiffer() {
        let first = Self.interleaving(seed: 42)
        #expect(Self.interleaving(seed: 42) == first)
        #expect(first.sorted() == Self.interleaving(seed: nil).sorted(), "every step runs once")
        let others = Set((1...20).map { Self.interleaving(seed: UInt64($0)) })
        #expect(others.count > 5, "seeds explore different interleavings")
    }

    @Test func aWaitQueueSleeperRunsOnceWokenAndItsConditionHolds() {
        let scheduler = KernelScheduler()
        let queue = WaitQueue("wq")
        let log = Log()
        let flag = UnsafeFlag()
        scheduler.spawn("consumer") {
            await queue.waitEvent { flag.value }
            log.append("consumed")
        }
        scheduler.spawn("producer") {
            await KernelScheduler.schedule()
            log.append("produced")
            flag.value = true
            queue.wakeUp()
        }
        #expect(scheduler.run() == .completed)
        #expect(log.entries == ["produced", "consumed"])
        #expect(queue.sleepers == 0)
    }

    @Test func aLockOrderInversionIsReportedAsADeadlockWithEachWaitPoint() {
        let scheduler = KernelScheduler()
        let a = KernelMutex("a"), b = KernelMutex("b")
        scheduler.spawn("first") {
            await a.lock()
            await KernelScheduler.schedule()
            await b.lock()
        }
        scheduler.spawn("second") {
            await b.lock()
            await KernelScheduler.schedule()
            await a.lock()
        }
        let outcome = scheduler.run()
        #expect(outcome == .deadlock([
            .init(name: "first", waitPoint: "mutex_lock(b)"),
            .init(name: "second", waitPoint: "mutex_lock(a)"),
        ]), "\(outcome)")
    }

    @Test func aMutexSerialisesItsCriticalSectionsUnderEverySeed() {
        for seed in UInt64(1)...50 {
            let scheduler = KernelScheduler(seed: seed)
            let mutex = KernelMutex("m")
            let log = Log()
            for name in ["x", "y", "z"] {
                scheduler.spawn(name) {
                    await mutex.lock()
                    log.append("\(name)+")
                    await KernelScheduler.schedule()
                    log.append("\(name)-")
                    mutex.unlock()
                }
            }
            #expect(scheduler.run() == .completed)
            for pair in stride(from: 0, to: log.entries.count, by: 2) {
                #expect(log.entries[pair].dropLast() == log.entries[pair + 1].dropLast(), "seed \(seed): \(log.entries)")
            }
        }
    }
}

/// A flag shared by the contexts of one run.
final class UnsafeFlag: @unchecked Sendable {
    var value = false
}
