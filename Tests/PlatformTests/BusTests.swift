import Testing
import Platform

/// A device that records accesses and answers reads with offset + size.
final class RecordingDevice: MMIODevice {
    var writes: [(offset: UInt64, value: UInt64, size: Int)] = []
    override var deviceName: String { "rec" }
    override func mmioRead(offset: UInt64, size: Int) -> UInt64 { offset &+ UInt64(size) }
    override func mmioWrite(offset: UInt64, value: UInt64, size: Int) { writes.append((offset, value, size)) }
    override func registerName(offset: UInt64) -> String? { offset == 0 ? "CTRL" : nil }
}

@Suite struct BusTests {
    @Test func cpuAccessesReachTheMappedDeviceOrMemory() throws {
        let bus = Bus()
        let device = RecordingDevice()
        try bus.map(device, at: 0x1000_0000, size: 0x1000)
        #expect(bus.read32(at: 0x1000_0010) == 0x14)
        #expect(bus.read64(at: 0x1000_0020) == 0x28)
        bus.write32(0xAB, at: 0x1000_0004)
        bus.write64(0xCD, at: 0x1000_0008)
        #expect(device.writes.map(\.offset) == [4, 8])
        #expect(device.writes.map(\.size) == [4, 8])
        bus.write32(0x55, at: 0x1000_1000)
        #expect(bus.memory.read32(at: 0x1000_1000) == 0x55)
        #expect(device.writes.count == 2)
    }

    @Test func overlappingOrEmptyWindowsAreRejected() throws {
        let bus = Bus()
        let first = RecordingDevice(), second = RecordingDevice()
        try bus.map(first, at: 0x2000, size: 0x1000)
        #expect(throws: Bus.MappingError.overlap(base: 0x2800, size: 0x1000, existing: "rec")) {
            try bus.map(second, at: 0x2800, size: 0x1000)
        }
        #expect(throws: Bus.MappingError.invalidWindow(base: 0x9000, size: 0)) {
            try bus.map(second, at: 0x9000, size: 0)
        }
        try bus.map(second, at: 0x3000, size: 0x1000)
    }

    @Test func theBusDoesNotKeepItsDevicesAlive() throws {
        let bus = Bus()
        weak var gone: RecordingDevice?
        do {
            let device = RecordingDevice()
            gone = device
            try bus.map(device, at: 0x2000, size: 0x1000)
            bus.write32(1, at: 0x2000)
            #expect(device.writes.count == 1)
        }
        #expect(gone == nil, "the device was freed when its owner let it go")
        bus.write32(7, at: 0x2000)
        #expect(bus.read32(at: 0x2000) == 7, "its window is gone: the access reaches RAM")
        try bus.map(RecordingDevice(), at: 0x2000, size: 0x1000)
    }

    @Test func anUnmappedDeviceNoLongerSeesAccesses() throws {
        let bus = Bus()
        let device = RecordingDevice()
        try bus.map(device, at: 0x2000, size: 0x1000)
        bus.unmap(device)
        bus.write32(1, at: 0x2000)
        #expect(device.writes.isEmpty)
    }

    @Test func injectedAbortsHitOnlyDeviceAccessesOfTheChosenKind() {
        let bus = Bus()
        bus.faults.injectAbort(0x5000...0x5FFF, on: .read)
        bus.memory.write64(42, at: 0x5000)
        #expect(bus.dmaRead64(at: 0x5000) == nil)
        #expect(bus.dmaRead32(at: 0x4FFE) == nil, "an access overlapping the range aborts")
        #expect(bus.dmaWrite64(7, at: 0x5008))
        #expect(bus.read64(at: 0x5000) == 42, "CPU accesses are not affected")
        #expect(bus.dmaRead64(at: 0x6000) == 0)
        #expect(bus.faults.abortsInjected == 2)
    }

    @Test func countedAbortsExpireAndCanBeRemoved() {
        let bus = Bus()
        bus.faults.injectAbort(0x1000...0x1007, count: 2)
        #expect(bus.dmaRead64(at: 0x1000) == nil)
        #expect(!bus.dmaWrite64(1, at: 0x1000))
        #expect(bus.dmaRead64(at: 0x1000) == 0, "the rule expired after two aborts")
        let handle = bus.faults.injectAbort(0x2000...0x2FFF)
        #expect(bus.dmaRead64(at: 0x2000) == nil)
        bus.faults.remove(handle)
        #expect(bus.dmaRead64(at: 0x2000) == 0)
        #expect(!bus.faults.isActive)
    }

    @Test func deviceAccessesOutsideThePhysicalSpaceAbort() {
        let bus = Bus(memoryMap: .wholePhysicalSpace)
        #expect(bus.dmaRead64(at: 1 << 52) == nil)
        #expect(bus.dmaRead64(at: .max - 3) == nil)
        var buffer = [UInt8](repeating: 0, count: 16)
        let ok = buffer.withUnsafeMutableBytes { bus.dmaRead(at: (1 << 52) - 8, into: $0) }
        #expect(!ok)
        #expect(bus.dmaRead64(at: (1 << 52) - 8) == 0)
    }

    @Test func deviceAccessesOutsideRAMAbortAndCostNothing() throws {
        let bus = Bus(memoryMap: try MemoryMap(ram: [0x1000...0x1FFF, 0x8000_0000...0xBFFF_FFFF]))
        #expect(bus.dmaWrite64(1, at: 0x1FF8))
        #expect(!bus.dmaWrite64(1, at: 0x1FFC), "an access running off the end of a RAM range aborts")
        #expect(bus.dmaRead32(at: 0x2000) == nil)
        #expect(bus.dmaRead64(at: 0xBFFF_FFF8) == 0)
        var random = UInt64(0x1234_5678)
        for _ in 0..<10_000 {
            random = random &* 6364136223846793005 &+ 1442695040888963407
            let address = (random >> 12) & 0x000F_FFFF_FFFF_FFFC
            if address >= 0x8000_0000 && address < 0xC000_0000 { continue }
            _ = bus.deliverMSI(address: address, data: 0xFFFF_FFFF, source: "wild")
        }
        #expect(bus.memory.allocatedPageCount == 1, "wild MSIs allocated nothing")
        #expect(bus.interrupts.deliveredMSICount == 0)
    }

    @Test func deviceAccessesToADeviceWindowAbortButMSIsReachIt() throws {
        let bus = Bus()
        let device = RecordingDevice()
        try bus.map(device, at: 0x2000, size: 0x1000)
        #expect(bus.dmaRead64(at: 0x2000) == nil)
        #expect(!bus.dmaWrite32(5, at: 0x2004))
        #expect(device.writes.isEmpty, "only an MSI reaches a device's registers")
        #expect(bus.deliverMSI(address: 0x2004, data: 5, source: "t") == .delivered)
        #expect(device.writes.map(\.offset) == [4])
    }

    @Test func cpuAccessesOutsideRAMAndDevicesAreDroppedAndCounted() throws {
        let bus = Bus(memoryMap: try MemoryMap(ram: [0...0xFFFF]))
        bus.write64(0xAA, at: 0x1_0000)
        #expect(bus.read64(at: 0x1_0000) == 0)
        #expect(bus.unbackedCPUAccesses == 2)
        #expect(bus.memory.allocatedPageCount == 0)
    }

    @Test func interruptRecordsAreABoundedRingThatCountsWhatItDropped() {
        let bus = Bus()
        bus.interrupts.recordCapacity = 3
        for line in 0..<5 { bus.interrupts.pulse(line: line, source: "s") }
        #expect(bus.interrupts.records.map(\.description) == ["s: wired line 2 pulse", "s: wired line 3 pulse", "s: wired line 4 pulse"])
        #expect(bus.interrupts.droppedRecords == 2)
        #expect(bus.interrupts.pulses(on: 0) == 1, "counts are kept for every pulse")
    }

    @Test func traceLinesAreABoundedRingThatCountsWhatItDropped() {
        let trace = Trace(enabled: .all)
        trace.lineCapacity = 2
        var sunk = 0
        trace.sink = { _ in sunk += 1 }
        for index in 0..<5 { trace.record(.command, "line \(index)") }
        #expect(trace.lines.map(\.description) == ["[000003] cmd     line 3", "[000004] cmd     line 4"])
        #expect(trace.droppedLines == 3)
        #expect(sunk == 5, "the sink sees every line")
        trace.clear()
        #expect(trace.lines.isEmpty && trace.droppedLines == 0)
    }

    @Test func aCapacityOfZeroKeepsNoRecordsButStillCountsAndReports() {
        let bus = Bus(traceCategories: .all)
        bus.interrupts.recordCapacity = 0
        bus.trace.lineCapacity = 0
        var sunk = 0
        bus.trace.sink = { _ in sunk += 1 }
        bus.interrupts.pulse(line: 3, source: "s")
        #expect(bus.interrupts.records.isEmpty && bus.interrupts.droppedRecords == 1)
        #expect(bus.interrupts.pulses(on: 3) == 1)
        #expect(bus.trace.lines.isEmpty && sunk == 1)
    }

    @Test func shrinkingALogKeepsTheNewestAndCountsTheRest() {
        var log = BoundedLog<Int>(capacity: 5)
        for value in 0..<7 { log.append(value) }
        #expect(log.elements == [2, 3, 4, 5, 6] && log.dropped == 2)
        log.resize(to: 2)
        #expect(log.elements == [5, 6] && log.dropped == 5)
        #expect(log.append(7) == 5, "append returns what it drops")
        #expect(log.elements == [6, 7] && log.totalAppended == 8)
    }

    @Test func msisAreMemoryWritesThatCanBeDroppedOrAborted() {
        let bus = Bus()
        #expect(bus.deliverMSI(address: 0x8000, data: 0x11, source: "t") == .delivered)
        #expect(bus.memory.read32(at: 0x8000) == 0x11)
        bus.faults.dropMSIs(to: 0x8000...0x8003, count: 1)
        #expect(bus.deliverMSI(address: 0x8000, data: 0x22, source: "t") == .dropped)
        #expect(bus.memory.read32(at: 0x8000) == 0x11)
        bus.faults.injectAbort(0x9000...0x9003, on: .write)
        #expect(bus.deliverMSI(address: 0x9000, data: 0x33, source: "t") == .aborted)
        #expect(bus.deliverMSI(address: 0x8000, data: 0x44, source: "t") == .delivered)
        #expect(bus.interrupts.deliveredMSICount == 2)
        #expect(bus.interrupts.deliveredMSIs.map(\.data) == [0x11, 0x44])
        #expect(bus.faults.msisDropped == 1)
    }

    @Test func msisToAnMMIOWindowReachTheDevice() throws {
        let bus = Bus()
        let doorbell = RecordingDevice()
        try bus.map(doorbell, at: 0x0800_0000, size: 0x1_0000)
        #expect(bus.deliverMSI(address: 0x0800_0040, data: 9, source: "t") == .delivered)
        #expect(doorbell.writes.first?.offset == 0x40)
        #expect(doorbell.writes.first?.value == 9)
    }

    @Test func anMSIThatDoesNotFitOneDeviceWindowOrIsAbortedThereReachesNoDevice() throws {
        let bus = Bus()
        let first = RecordingDevice(), second = RecordingDevice()
        try bus.map(first, at: 0x2000, size: 0x1000)
        try bus.map(second, at: 0x3000, size: 0x1000)
        // Bytes 0x2FFE...0x3001 span both windows: neither device sees an offset past its end.
        #expect(bus.deliverMSI(address: 0x2FFE, data: 1, source: "t") == .aborted)
        #expect(first.writes.isEmpty && second.writes.isEmpty)
        #expect(bus.deliverMSI(address: 0x2FFC, data: 2, source: "t") == .delivered)
        #expect(first.writes.map(\.offset) == [0xFFC])
        bus.faults.injectAbort(0x3000...0x3003, on: .write)
        #expect(bus.deliverMSI(address: 0x3000, data: 3, source: "t") == .aborted)
        #expect(second.writes.isEmpty)
    }

    /// A device that raises another MSI from its register write, once.
    final class ChainingDevice: MMIODevice {
        weak var bus: Bus?
        override func mmioWrite(offset: UInt64, value: UInt64, size: Int) {
            guard value == 1, let bus else { return }
            bus.deliverMSI(address: 0x8000, data: 2, source: "chained")
        }
    }

    @Test func anMSIRaisedByAnMSIsRegisterWriteComesAfterItEverywhere() throws {
        let bus = Bus()
        let device = ChainingDevice()
        device.bus = bus
        try bus.map(device, at: 0x2000, size: 0x1000)
        var seen: [UInt32] = []
        bus.interrupts.onMSI = { _, data in seen.append(data) }
        bus.deliverMSI(address: 0x2000, data: 1, source: "t")
        #expect(seen == [1, 2])
        #expect(bus.interrupts.deliveredMSIs.map(\.data) == [1, 2])
    }

    @Test func wiredPulsesAreCountedAndReported() {
        let bus = Bus()
        var seen: [Int] = []
        bus.interrupts.onWiredInterrupt = { seen.append($0) }
        bus.interrupts.pulse(line: 3, source: "a")
        bus.interrupts.pulse(line: 3, source: "a")
        bus.interrupts.sendEvent(source: "b")
        #expect(bus.interrupts.pulses(on: 3) == 2)
        #expect(bus.interrupts.sendEventCount == 1)
        #expect(seen == [3, 3])
        #expect(bus.interrupts.records.count == 3)
    }

    @Test func traceRecordsOnlyEnabledCategoriesAndIsDeterministic() throws {
        func run() throws -> [String] {
            let bus = Bus(traceCategories: [.mmio])
            let device = RecordingDevice()
            try bus.map(device, at: 0x1000, size: 0x100)
            bus.write32(5, at: 0x1000)
            _ = bus.read32(at: 0x1004)
            bus.interrupts.pulse(line: 1, source: "x")
            _ = bus.dmaRead64(at: 0)
            return bus.trace.lines.map(\.description)
        }
        let first = try run()
        #expect(first == [
            "[000000] mmio    W32 rec+0x00000 CTRL <- 0x00000005",
            "[000001] mmio    R32 rec+0x00004 -> 0x00000008",
        ])
        #expect(try run() == first)
    }

    @Test func traceCategoryNamesParse() {
        #expect(TraceCategory(names: "mmio,cmd") == [.mmio, .command])
        #expect(TraceCategory(names: "all") == .all)
        #expect(TraceCategory(names: "bogus") == nil)
    }
}
