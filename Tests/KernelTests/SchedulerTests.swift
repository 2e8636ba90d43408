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

/// Sleeping with a lock dropped, and sweeping seeds for the one that replays a failure.
@Suite struct SweepAndLockedWaitTests {
    @Test func aLockedWaitReleasesTheLockWhileAsleepAndHoldsItAgainAfter() {
        let scheduler = KernelScheduler()
        let lock = SpinLock("q.lock")
        let queue = WaitQueue("q")
        let flag = UnsafeFlag()
        let log = Log()
        scheduler.spawn("waiter") {
            await lock.lock()
            await queue.waitEventLocked(lock) { flag.value }
            log.append("woke holding the lock")
            lock.unlock()
        }
        scheduler.spawn("waker") {
            await lock.lock()
            log.append("waker got the lock")
            flag.value = true
            queue.wakeUp()
            lock.unlock()
        }
        #expect(scheduler.run() == .completed)
        #expect(log.entries == ["waker got the lock", "woke holding the lock"])
    }

    @Test func aSweepNamesTheFirstSeedThatFailsAndThatSeedReplaysIt() {
        /// Two contexts race a read-then-write; the "failure" is a lost update.
        func scenario(_ scheduler: KernelScheduler) -> String? {
            let counter = atomic_t(0)
            for _ in 0..<2 {
                scheduler.spawn("racer") {
                    let value = await counter.read()
                    await counter.set(value + 1)
                }
            }
            scheduler.run()
            let check = KernelScheduler()
            let result = Log()
            check.spawn("check") { result.append("\(await counter.read())") }
            check.run()
            return result.entries == ["2"] ? nil : "lost update: \(result.entries)"
        }
        let found = KernelScheduler.sweep(seeds: 1...100, scenario)
        #expect(found != nil, "some seed interleaves the race")
        if let found {
            #expect(found.failure.hasSuffix("(replay with seed \(found.seed))"))
            #expect(scenario(KernelScheduler(seed: found.seed)) != nil, "the seed replays the failure")
        }
        #expect((UInt64(1)...100).contains { scenario(KernelScheduler(seed: $0)) == nil }, "and some interleaving does not lose")
    }
}

/// The priority (PCT) strategy of a seeded scheduler.
@Suite struct PriorityStrategyTests {
    static func order(seed: UInt64, changePoints: Int) -> [String] {
        let scheduler = KernelScheduler(seed: seed, strategy: .priorities(changePoints: changePoints, steps: 8))
        let log = Log()
        for name in ["a", "b"] {
            scheduler.spawn(name) {
                for _ in 0..<3 {
                    log.append(name)
                    await KernelScheduler.schedule()
                }
            }
        }
        #expect(scheduler.run() == .completed)
        return log.entries
    }

    @Test func withoutChangePointsTheHigherPriorityContextRunsUntilItIsDone() {
        var orders = Set<[String]>()
        for seed in UInt64(1)...20 {
            let order = Self.order(seed: seed, changePoints: 0)
            #expect(order == ["a", "a", "a", "b", "b", "b"] || order == ["b", "b", "b", "a", "a", "a"], "no interleaving: \(order)")
            #expect(Self.order(seed: seed, changePoints: 0) == order, "the same seed replays")
            orders.insert(order)
        }
        #expect(orders.count == 2, "seeds pick either context first")
    }

    @Test func aChangePointStopsTheRunningContextMidway() {
        var interleaved = false
        for seed in UInt64(1)...20 where !interleaved {
            let order = Self.order(seed: seed, changePoints: 3)
            interleaved = order != ["a", "a", "a", "b", "b", "b"] && order != ["b", "b", "b", "a", "a", "a"]
        }
        #expect(interleaved, "some seed demotes a context in the middle of its work")
    }
}
