import Testing
import Platform
import Kernel

/// Allocation with fault injection, coherent DMA memory, krefs, spinlocks and interruptible
/// waits.
@Suite struct MemoryTests {
    @Test func faultInjectionRefusesExactlyTheNamedAttempts() {
        let faults = AllocationFaults()
        faults.failAttempt(1)
        let results = (0..<3).map { index in kzalloc(faults) { index } }
        #expect(results == [0, nil, 2])
        #expect(faults.attempts == 3 && faults.failures == 1)
        faults.failEverything(true)
        #expect(kzalloc(faults) { 7 } == nil)
    }

    @Test func coherentMemoryIsZeroedAlignedAndReusedAfterRelease() {
        let memory = PhysicalMemory()
        let coherent = CoherentMemory(memory: memory, range: 0x4000_0000...0x4000_FFFF)
        memory.write64(.max, at: 0x4000_0000)
        let queue = coherent.allocate(0x800, alignment: 0x800)
        #expect(queue == 0x4000_0000)
        #expect(memory.read64(at: 0x4000_0000) == 0, "dma_alloc_coherent memory is zeroed")
        let table = coherent.allocate(0x1000, alignment: 0x1000)
        #expect(table == 0x4000_1000)
        #expect(coherent.release(0x4000_0000) && !coherent.release(0x4000_0000))
        #expect(coherent.allocate(0x800, alignment: 0x800) == 0x4000_0000, "the freed block is reused")
        #expect(coherent.allocate(0x10000) == nil, "nothing that large is left")
        coherent.faults.failEverything(true)
        #expect(coherent.allocate(8) == nil)
        #expect(coherent.bytesInUse == 0x1800)
    }

    @Test func theLastKrefPutRunsTheReleaseOnce() {
        let scheduler = KernelScheduler()
        let kref = Kref()
        let log = Log()
        scheduler.spawn("a") {
            await kref.get()
            #expect(!(await kref.put { log.append("released") }))
            #expect(await kref.put { log.append("released") })
        }
        #expect(scheduler.run() == .completed)
        #expect(log.entries == ["released"] && kref.count == 0)
    }

    @Test func aSignalEndsAnInterruptibleWaitWithRestartsys() {
        let scheduler = KernelScheduler()
        let queue = WaitQueue("wq")
        let log = Log()
        let sleeper = scheduler.spawn("sleeper") {
            let result = await queue.waitEventInterruptible { false }
            log.append("\(result)")
        }
        scheduler.spawn("signaller") {
            await KernelScheduler.schedule()
            sleeper.sendSignal()
        }
        #expect(scheduler.run() == .completed)
        #expect(log.entries == ["\(-ERESTARTSYS)"])
    }

    @Test func spinlocksAreNamedAsSuchInADeadlockReport() {
        let scheduler = KernelScheduler()
        let lock = SpinLock("cmdq.lock")
        scheduler.spawn("holder") {
            await lock.lock()
            await lock.lock()
        }
        #expect(scheduler.run() == .deadlock([.init(name: "holder", waitPoint: "spin_lock(cmdq.lock)")]))
    }
}
