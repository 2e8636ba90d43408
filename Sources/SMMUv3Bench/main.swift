import Foundation
import Platform
import SMMUv3
import SMMUv3Host

/// `smmuv3-bench`: throughput of the model's hot paths, one `BENCH <name> <value> <unit>` line
/// each. Run in release builds (`make bench`).

/// Runs `body` repeatedly in `rounds` windows of at least `window` seconds and returns the best
/// rate in operations per second (the best window is the least disturbed by the machine).
func measure(operationsPerCall: Int, rounds: Int = 5, window: Double = 0.2, _ body: () -> Void) -> Double {
    let clock = ContinuousClock()
    for _ in 0..<3 { body() }
    var best: Double = 0
    for _ in 0..<rounds {
        var calls = 0
        let start = clock.now
        var elapsed: Double = 0
        repeat {
            body()
            calls += 1
            let duration = clock.now - start
            elapsed = Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
        } while elapsed < window
        best = max(best, Double(calls * operationsPerCall) / elapsed)
    }
    return best
}

/// Benchmarks whose name contains this argument run (all when absent).
let filter = CommandLine.arguments.dropFirst().first

func selected(_ name: String) -> Bool { filter.map { name.contains($0) } ?? true }

func report(_ name: String, _ perSecond: Double, unit: String) {
    let millions = (perSecond / 1e6 * 100).rounded() / 100
    print("BENCH \(name) \(millions) M\(unit)/s")
}

func system(_ configure: (inout SMMUConfiguration) -> Void = { _ in }) -> SMMUSystem {
    var configuration = SMMUConfiguration.default
    configure(&configuration)
    do {
        let system = try SMMUSystem(configuration: configuration, eventQueueLog2: 16)
        system.bus.interrupts.keepsRecords = false
        return system
    } catch {
        fatalError("bench set-up: \(error)")
    }
}

nonisolated(unsafe) var sink: UInt64 = 0

func translationLoop(_ system: SMMUSystem, streamID: UInt32, addresses: [UInt64]) -> () -> Void {
    let smmu = system.smmu
    return {
        for address in addresses {
            if case .translated(let physical) = smmu.translate(InboundTransaction(streamID: streamID, address: address, access: .dataRead)) {
                sink &+= physical
            }
        }
    }
}

// TLB hit, stage 1, 4 KB pages.
if selected("tlb_hit_s1_4k") {
    let s = system()
    let pt = s.pageTable()
    let addresses = (0..<256).map { UInt64($0) << 12 | 0x10_0000_0000 }
    for address in addresses { pt.map(address, to: address &+ 0x1_0000_0000) }
    s.stage1Stream(1, cd: CDConfig(table0: pt, asid: 1))
    let loop = translationLoop(s, streamID: 1, addresses: addresses)
    report("tlb_hit_s1_4k", measure(operationsPerCall: addresses.count, loop), unit: "translations")
}

// TLB miss with a full 4-level 4 KB walk: a one-entry TLB and alternating pages.
if selected("walk_s1_4k_4level") {
    let s = system { $0.tlbCapacity = 1 }
    let pt = s.pageTable()
    let addresses: [UInt64] = [0x10_0000_0000, 0x7F_0000_1000]
    for address in addresses { pt.map(address, to: 0x2000) }
    s.stage1Stream(1, cd: CDConfig(table0: pt, asid: 1))
    let loop = translationLoop(s, streamID: 1, addresses: Array(repeating: addresses, count: 64).flatMap { $0 })
    report("walk_s1_4k_4level", measure(operationsPerCall: 128, loop), unit: "walks")
}

// 64 KB granule walk (48-bit input: levels 1 to 3).
if selected("walk_s1_64k") {
    let s = system { $0.tlbCapacity = 1 }
    let pt = s.pageTable(granule: 16)
    let addresses: [UInt64] = [0x10_0000_0000, 0x7F_0001_0000]
    for address in addresses { pt.map(address, to: 0x2_0000) }
    var cd = CDConfig(table0: pt, asid: 1)
    cd.tg0 = 0b01
    s.stage1Stream(1, cd: cd)
    let loop = translationLoop(s, streamID: 1, addresses: Array(repeating: addresses, count: 64).flatMap { $0 })
    report("walk_s1_64k", measure(operationsPerCall: 128, loop), unit: "walks")
}

// Nested stage 1 + stage 2 walk: every stage-1 table access and the output go through stage 2.
if selected("walk_nested_4k") {
    let s = system { $0.tlbCapacity = 1 }
    let s2 = s.pageTable(.stage2, inputBits: 40)
    let s1 = s.pageTable()
    let addresses: [UInt64] = [0x10_0000_0000, 0x7F_0000_1000]
    for (index, address) in addresses.enumerated() { s1.map(address, to: 0x10_0000 + UInt64(index) * 0x1000) }
    s2.map(0x10_0000, to: 0x3_0000_0000)
    s2.map(0x10_1000, to: 0x3_0000_1000)
    let cds = CDTableBuilder(memory: s.bus.memory, arena: s.arena)
    cds.set(0, CDConfig(table0: s1, asid: 1))
    var page = UInt64(0x8000_0000)
    while page < s.arena.next { s2.map(page, to: page); page += 0x1000 }
    var ste = STEConfig(config: .nested)
    ste.s1ContextPointer = cds.pointer
    ste.stage2 = STEConfig.Stage2(s2)
    s.streams.set(1, ste)
    let loop = translationLoop(s, streamID: 1, addresses: Array(repeating: addresses, count: 64).flatMap { $0 })
    report("walk_nested_4k", measure(operationsPerCall: 128, loop), unit: "walks")
}

// Command execution: batches of 255 CMD_TLBI_NH_VA closed by a CMD_SYNC, the queue ring
// filled once so that each batch costs one CMDQ_PROD write.
if selected("commands_tlbi_nh_va_sync") {
    let s = system()
    let pt = s.pageTable()
    for page in 0..<64 { pt.map(UInt64(page) << 12, to: UInt64(page) << 12) }
    s.stage1Stream(1, cd: CDConfig(table0: pt, asid: 1))
    for page in 0..<64 { _ = s.smmu.translate(.read(streamID: 1, address: UInt64(page) << 12)) }
    let queue = s.host.layout.commandQueue
    let log2 = s.host.layout.commandQueueLog2Size
    let size = 1 << log2
    for slot in 0..<size {
        let command: Command = slot == size - 1 ? .sync(SyncParameters()) : .tlbiNHVA(vmid: 0, asid: 1, address: UInt64(slot & 63) << 12, scope: .single(leaf: true))
        s.bus.memory.write64(command.entry.dw0, at: queue + UInt64(slot) * 16)
        s.bus.memory.write64(command.entry.dw1, at: queue + UInt64(slot) * 16 + 8)
    }
    let geometry = QueueIndex(log2Size: log2)
    var prod = UInt32(s.smmu.peek(.cmdqCons)) & geometry.pointerMask
    // Align PROD to the start of the ring pattern.
    while geometry.index(prod) != 0 {
        prod = geometry.increment(prod)
    }
    s.bus.write32(prod, at: s.smmu.base + SMMURegister.cmdqProd.offset)
    let prodAddress = s.smmu.base + SMMURegister.cmdqProd.offset
    let rate = measure(operationsPerCall: size * 16) {
        for _ in 0..<16 {
            prod = (prod &+ UInt32(size)) & geometry.pointerMask
            s.bus.write32(prod, at: prodAddress)
        }
    }
    report("commands_tlbi_nh_va_sync", rate, unit: "commands")
}

// Event production: F_TRANSLATION records into a 64K-entry queue, consumed in batches.
if selected("event_production") {
    let s = system()
    let record = EventRecord.translationFault(TranslationFault(type: .translation, streamID: 1, substreamID: 2, access: .dataRead, inputAddress: 0x1000))
    let geometry = QueueIndex(log2Size: 16)
    let consAddress = s.smmu.base + SMMURegister.eventqCons.offset
    let rate = measure(operationsPerCall: 32768) {
        for _ in 0..<32768 { s.smmu.recordEvent(record) }
        s.bus.write32(UInt32(s.smmu.peek(.eventqProd)) & geometry.pointerMask, at: consAddress)
    }
    report("event_production", rate, unit: "events")
}

if sink == 42 { print("") }
