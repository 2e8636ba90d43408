import Testing
import Platform
import Kernel

/// Interrupts from the bus reaching threaded handlers in their own contexts.
@Suite struct IRQTests {
    @Test func aWiredPulseWakesTheThreadAndPulsesWhileItRunsCoalesce() {
        let bus = Bus()
        let scheduler = KernelScheduler()
        let irqs = KernelIRQs(bus: bus, scheduler: scheduler, msiDoorbell: 0x4040_0000)
        let irq = irqs.irq(forWiredLine: 64)
        let log = Log()
        irqs.requestThreadedIRQ(irq, name: "evtq") {
            log.append("thread")
            await KernelScheduler.schedule()
            return .handled
        }
        scheduler.spawn("device") {
            bus.interrupts.pulse(line: 64, source: "test")
            await KernelScheduler.schedule()
            // Two more while the thread runs: it runs once more, not twice.
            bus.interrupts.pulse(line: 64, source: "test")
            bus.interrupts.pulse(line: 64, source: "test")
        }
        #expect(scheduler.run() == .completed)
        #expect(log.entries == ["thread", "thread"])
        #expect(irqs.spurious == 0)
    }

    @Test func anMSIToTheDoorbellWakesItsVectorsThreadAnUnknownVectorIsSpuriousAndOtherAddressesAreMemoryWrites() {
        let bus = Bus()
        let scheduler = KernelScheduler()
        let irqs = KernelIRQs(bus: bus, scheduler: scheduler, msiDoorbell: 0x4040_0000)
        let log = Log()
        let evtq = irqs.allocateMSI(), priq = irqs.allocateMSI()
        irqs.requestThreadedIRQ(evtq.irq, name: "evtq") { log.append("evtq"); return .handled }
        irqs.requestThreadedIRQ(priq.irq, name: "priq", handler: { .wakeThread }) { log.append("priq"); return .handled }
        scheduler.spawn("device") {
            _ = bus.deliverMSI(address: priq.address, data: priq.data, source: "test")
            _ = bus.deliverMSI(address: priq.address, data: 0xdead, source: "test")
            _ = bus.deliverMSI(address: 0x5000_0000, data: 7, source: "test")
        }
        #expect(scheduler.run() == .completed)
        #expect(log.entries == ["priq"])
        #expect(irqs.spurious == 1, "the unknown vector only")
        #expect(bus.memory.read32(at: 0x5000_0000) == 7, "an MSI to RAM is a write")
        #expect(evtq.address == priq.address && evtq.data != priq.data && evtq.irq != priq.irq)
    }
}
