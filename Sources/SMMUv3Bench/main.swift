import Foundation
import Platform
import Kernel
import SMMUv3
import SMMUv3Host
import IOMMU
import ArmSMMUv3
import Scenario

/// `smmuv3-bench`: throughput of the model's hot paths and how they scale, one
/// `BENCH <name> <value> <unit>` line each. Run in release builds (`make bench`).
///
/// `smmuv3-bench [FILTER]` runs the benchmarks whose name contains FILTER (all when absent).
/// The peak-memory figure is measured in a child process of its own, so that it counts
/// nothing but its scenario.

/// Runs `body` repeatedly in `rounds` windows of at least `window` seconds and returns the best
/// rate in operations per second (the best window is the least disturbed by the machine).
///
/// With `SMMUV3_BENCH_CALLS=N` in the environment, `body` runs exactly N times and nothing is
/// timed: for instruction-count profiles (`valgrind --tool=callgrind`).
func measure(operationsPerCall: Int, rounds: Int = 5, window: Double = 0.2, _ body: () -> Void) -> Double {
    if let calls = fixedCalls {
        for _ in 0..<calls { body() }
        return 0
    }
    let clock = ContinuousClock()
    body()
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

/// ``measure(operationsPerCall:rounds:window:_:)`` for several bodies at once, their windows
/// interleaved (one window of each per round), so that a disturbance of the machine affects all
/// of them alike; returns each body's best rate.
func measureAlternating(operationsPerCall: Int, rounds: Int = 7, window: Double = 0.2, _ bodies: [() -> Void]) -> [Double] {
    if fixedCalls != nil { return bodies.map { measure(operationsPerCall: operationsPerCall, $0) } }
    var best = [Double](repeating: 0, count: bodies.count)
    for _ in 0..<rounds {
        for (index, body) in bodies.enumerated() {
            best[index] = max(best[index], measure(operationsPerCall: operationsPerCall, rounds: 1, window: window, body))
        }
    }
    return best
}

let fixedCalls = ProcessInfo.processInfo.environment["SMMUV3_BENCH_CALLS"].flatMap { Int($0) }
let arguments = Array(CommandLine.arguments.dropFirst())
/// `--child NAME` runs one benchmark in this process (used for the memory figure).
let childBenchmark: String? = arguments.first == "--child" ? arguments.dropFirst().first : nil
/// Benchmarks whose name contains this argument run (all when absent).
let filter = childBenchmark == nil ? arguments.first : nil

func selected(_ name: String) -> Bool {
    if let childBenchmark { return name == childBenchmark }
    return filter.map { name.contains($0) } ?? true
}

/// Like ``report(_:_:unit:)`` for rates in the thousands: `BENCH <name> <value> k<unit>/s`.
func reportThousands(_ name: String, _ perSecond: Double, unit: String) {
    let thousands = (perSecond / 1e3 * 100).rounded() / 100
    print("BENCH \(name) \(thousands) k\(unit)/s")
    fflush(nil)
}

func report(_ name: String, _ perSecond: Double, unit: String) {
    let millions = (perSecond / 1e6 * 100).rounded() / 100
    print("BENCH \(name) \(millions) M\(unit)/s")
    fflush(nil)
}

func system(streamTableLog2: Int = 8, _ configure: (inout SMMUConfiguration) -> Void = { _ in }) -> SMMUSystem {
    var configuration = SMMUConfiguration.default
    configure(&configuration)
    do {
        let system = try SMMUSystem(configuration: configuration, streamTableLog2Size: streamTableLog2, eventQueueLog2: 16)
        // A 64K-entry event queue (Linux's is at most 128 entries), so that nothing overflows.
        try system.host.replaceEventQueue(at: system.arena.allocate(32 << 16, alignment: 32 << 16), log2Size: 16)
        system.bus.interrupts.recordCapacity = 0
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

// MARK: TLB hits

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

// TLB hits spread over many streams, each with its own STE, CD and ASID (sharing one page
// table): the configuration caches and the TLB must hold them all.
for streams in [1, 64, 4096, 65536] where selected("tlb_hit_streams_\(streams)") {
    let s = system(streamTableLog2: 16)
    let pt = s.pageTable()
    let pages = max(1, 4096 / streams)
    for page in 0..<pages { pt.map(0x10_0000_0000 + UInt64(page) << 12, to: 0x1_0000_0000 + UInt64(page) << 12) }
    for stream in 0..<streams {
        s.stage1Stream(UInt32(stream), cd: CDConfig(table0: pt, asid: UInt16(truncatingIfNeeded: stream)))
    }
    var transactions: [InboundTransaction] = []
    for page in 0..<pages {
        for stream in 0..<streams {
            transactions.append(.read(streamID: UInt32(stream), address: 0x10_0000_0000 + UInt64(page) << 12 | 0x40))
        }
    }
    let smmu = s.smmu
    let rate = measure(operationsPerCall: transactions.count) {
        for transaction in transactions {
            if case .translated(let physical) = smmu.translate(transaction) { sink &+= physical }
        }
    }
    report("tlb_hit_streams_\(streams)", rate, unit: "translations")
}

// MARK: Working sets

/// One stream touching `pages` distinct 4 KB pages round robin (a stride that visits every one
/// before returning to the first), ``workingSetCall`` translations per ``run()``.
final class WorkingSet {
    let smmu: SMMU
    let pages: Int
    let stride: Int
    let base: UInt64 = 0x10_0000_0000
    @exclusivity(unchecked) var addresses = [UInt64](repeating: 0, count: workingSetCall)
    @exclusivity(unchecked) var page = 0

    init(pages: Int, tlbCapacity: Int? = nil) {
        let s = system { if let tlbCapacity { $0.tlbCapacity = tlbCapacity } }
        let pt = s.pageTable()
        for page in 0..<pages { pt.map(base + UInt64(page) << 12, to: 0x1_0000_0000 + UInt64(page) << 12) }
        s.stage1Stream(1, cd: CDConfig(table0: pt, asid: 1))
        smmu = s.smmu
        self.pages = pages
        stride = pages > 1 ? 4099 % pages : 0
    }

    func run() {
        // Local copies (the array moved out, not copied): the loops touch no class storage.
        var addresses: [UInt64] = []
        swap(&addresses, &self.addresses)
        var page = self.page
        let smmu = self.smmu, pages = self.pages, stride = self.stride, base = self.base
        for index in 0..<addresses.count {
            addresses[index] = base + UInt64(page) << 12
            page = pages > 1 ? (page + stride) % pages : 0
        }
        for address in addresses {
            if case .translated(let physical) = smmu.translate(.read(streamID: 1, address: address)) { sink &+= physical }
        }
        swap(&addresses, &self.addresses)
        self.page = page
    }
}

let workingSetCall = 65536

// Hits while the working set fits the TLB, walks (keeping the rest of the TLB) beyond it.
for pages in [1, 4096, 262_144] where selected("working_set_\(pages)_pages") {
    let workingSet = WorkingSet(pages: pages)
    report("working_set_\(pages)_pages", measure(operationsPerCall: workingSetCall, workingSet.run), unit: "translations")
}

// The largest working set with the default TLB, and again with a one-entry TLB where every
// access walks: the first must be no slower. The two alternate, window by window, so that both
// see the same machine.
if selected("working_set_1048576_pages") || selected("working_set_1048576_pages_walked") {
    let names = ["working_set_1048576_pages", "working_set_1048576_pages_walked"].filter(selected)
    let workingSets = names.map { WorkingSet(pages: 1_048_576, tlbCapacity: $0.hasSuffix("walked") ? 1 : nil) }
    for (name, rate) in zip(names, measureAlternating(operationsPerCall: workingSetCall, workingSets.map { $0.run })) {
        report(name, rate, unit: "translations")
    }
}

// MARK: Walks

/// Translates `address` once so that the stream's one-entry copy of its most recent translation
/// holds it (it is kept until a TLB invalidation): the pages measured then always miss.
func pinRecentTranslation(_ system: SMMUSystem, streamID: UInt32, address: UInt64) {
    for _ in 0..<2 {
        guard case .translated = system.smmu.translate(.read(streamID: streamID, address: address)) else { fatalError("bench set-up: pin") }
    }
}

// TLB miss with a full 4-level 4 KB walk: a one-entry TLB and alternating pages; the STE and
// CD stay cached.
if selected("walk_s1_4k_4level") {
    let s = system { $0.tlbCapacity = 1 }
    let pt = s.pageTable()
    let addresses: [UInt64] = [0x10_0000_0000, 0x7F_0000_1000]
    for address in addresses { pt.map(address, to: 0x2000) }
    pt.map(0x3F_0000_0000, to: 0x3000)
    s.stage1Stream(1, cd: CDConfig(table0: pt, asid: 1))
    pinRecentTranslation(s, streamID: 1, address: 0x3F_0000_0000)
    let loop = translationLoop(s, streamID: 1, addresses: Array(repeating: addresses, count: 64).flatMap { $0 })
    report("walk_s1_4k_4level", measure(operationsPerCall: 128, loop), unit: "walks")
}

// The same walk with a cold configuration cache: two streams alternate through one-entry STE
// and CD caches, so every translation fetches and decodes its STE and CD first.
if selected("walk_s1_4k_cold_config") {
    let s = system { $0.tlbCapacity = 1; $0.configurationCacheCapacity = 1 }
    let pt = s.pageTable()
    let addresses: [UInt64] = [0x10_0000_0000, 0x7F_0000_1000]
    for address in addresses { pt.map(address, to: 0x2000) }
    s.stage1Stream(1, cd: CDConfig(table0: pt, asid: 1))
    s.stage1Stream(2, cd: CDConfig(table0: pt, asid: 2))
    let smmu = s.smmu
    let rate = measure(operationsPerCall: 128) {
        for index in 0..<128 {
            let streamID = UInt32(1 + index % 2)
            if case .translated(let physical) = smmu.translate(.read(streamID: streamID, address: addresses[(index / 2) % 2])) { sink &+= physical }
        }
    }
    report("walk_s1_4k_cold_config", rate, unit: "walks")
}

// 64 KB granule walk (48-bit input: levels 1 to 3).
if selected("walk_s1_64k") {
    let s = system { $0.tlbCapacity = 1 }
    let pt = s.pageTable(granule: 16)
    let addresses: [UInt64] = [0x10_0000_0000, 0x7F_0001_0000]
    for address in addresses { pt.map(address, to: 0x2_0000) }
    pt.map(0x3F_0000_0000, to: 0x3_0000)
    var cd = CDConfig(table0: pt, asid: 1)
    cd.tg0 = 0b01
    s.stage1Stream(1, cd: cd)
    pinRecentTranslation(s, streamID: 1, address: 0x3F_0000_0000)
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
    s1.map(0x3F_0000_0000, to: 0x10_2000)
    s2.map(0x10_0000, to: 0x3_0000_0000)
    s2.map(0x10_1000, to: 0x3_0000_1000)
    s2.map(0x10_2000, to: 0x3_0000_2000)
    let cds = CDTableBuilder(memory: s.bus.memory, arena: s.arena)
    cds.set(0, CDConfig(table0: s1, asid: 1))
    var page = UInt64(0x8000_0000)
    while page < s.arena.next { s2.map(page, to: page); page += 0x1000 }
    var ste = STEConfig(config: .nested)
    ste.s1ContextPointer = cds.pointer
    ste.stage2 = STEConfig.Stage2(s2)
    s.streams.set(1, ste)
    pinRecentTranslation(s, streamID: 1, address: 0x3F_0000_0000)
    let loop = translationLoop(s, streamID: 1, addresses: Array(repeating: addresses, count: 64).flatMap { $0 })
    report("walk_nested_4k", measure(operationsPerCall: 128, loop), unit: "walks")
}

// MARK: Commands and events

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

// MARK: Memory

/// The peak resident set of this process in bytes (Linux: VmHWM).
func peakResidentBytes() -> UInt64 {
    guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return 0 }
    for line in status.split(separator: "\n") where line.hasPrefix("VmHWM:") {
        let kilobytes = line.split(separator: " ").compactMap { UInt64($0) }.first ?? 0
        return kilobytes * 1024
    }
    return 0
}

// MARK: Kernel environment

// Context switches of the deterministic kernel scheduler: four contexts taking turns at
// scheduling points, with the fixed order and with a seeded one.
let switchesPerCall = 4 * 16_384
/// Kept out of top-level code: closures written there are main-actor isolated, and a kernel
/// context whose body hops to the main actor never runs on the scheduler.
func contextSwitches(seed: UInt64?) -> Double {
    measure(operationsPerCall: switchesPerCall) {
        let scheduler = KernelScheduler(seed: seed)
        for _ in 0..<4 {
            scheduler.spawn("bench") {
                for _ in 0..<16_384 { await KernelScheduler.schedule() }
            }
        }
        guard scheduler.run() == .completed, scheduler.switches >= switchesPerCall else {
            fatalError("the contexts did not run: \(scheduler.switches) switches")
        }
    }
}

for (name, seed) in [("kernel_context_switches", UInt64?.none), ("kernel_context_switches_seeded", UInt64?.some(7))] where selected(name) {
    report(name, contextSwitches(seed: seed), unit: "switches")
}

// A PRI page request end to end through the driver port: the device's request goes into the
// PRIQ, its MSI wakes the PRIQ thread, arm_smmu_handle_ppr answers with CMD_PRI_RESP, the
// SMMU's agent consumes it and the response reaches the device, which then sends the next.
/// Counts the PRG responses the device received and wakes it.
final class ResponseCounter: @unchecked Sendable {
    var count = 0
    let arrived = WaitQueue("device: PRG response")
}

func priEndToEnd() throws -> Double {
    let system = try DriverSystem()
    system.bus.interrupts.recordCapacity = 0
    guard system.probe() == 0 else { fatalError("probe failed: \(system.messages())") }
    let responses = ResponseCounter()
    system.model.onPRGResponse { _ in
        responses.count &+= 1
        responses.arrived.wakeUp()
    }
    let requestsPerCall = 1024
    return measure(operationsPerCall: requestsPerCall) {
        let outcome = system.run("device") { [model = system.model] in
            for index in 0..<requestsPerCall {
                let before = responses.count
                _ = model.receivePageRequest(PageRequest(streamID: 0x10, substreamID: 1, prgIndex: UInt16(index % 512), last: true, read: true, write: false, address: UInt64(index) << 12))
                await responses.arrived.waitEvent { responses.count != before }
            }
        }
        guard outcome == .completed else { fatalError("PRI round trips did not complete: \(outcome)") }
    }
}

/// A page request through the IOPF queue and the mm fault handler: device -> PRIQ -> PRIQ
/// thread -> iommu_report_device_fault -> IOPF workqueue -> handle_mm_fault ->
/// iommu_page_response -> CMD_PRI_RESP -> device, over 2,048 pages of a process (present
/// after the first round, so the mm fault handler finds them mapped).
func iopfEndToEnd() throws -> Double {
    let system = try DriverSystem()
    system.bus.interrupts.recordCapacity = 0
    guard system.probe() == 0, let smmu = system.driver, let queue = smmu.priq.iopf else { fatalError("probe failed: \(system.messages())") }
    let dev = device(name: "0000:00:02.0", log: system.log, smmu_pdev: system.pdev, ids: [0x10])
    guard let domain = arm_smmu_domain_alloc(system.faults, .IOMMU_DOMAIN_UNMANAGED),
          let mm = MMStruct(asid: 7, memory: system.bus.memory, pages: CoherentMemory(memory: system.bus.memory, range: 0x9000_0000...0x93FF_FFFF)) else { fatalError("set-up") }
    mm.map(VMArea(start: 0x4000_0000, end: 0x8000_0000))
    _ = smmu.pasids.idr_alloc(io_mm(pasid: 1, mm: mm), 1, 2)
    let setUp = system.run {
        _ = await arm_smmu_add_device(dev)
        _ = await iommu_attach_device(domain, dev)
        _ = await iopf_queue_add_device(queue, dev)
        _ = await iommu_register_device_fault_handler(dev, iommu_queue_iopf, dev)
    }
    guard setUp == .completed else { fatalError("set-up: \(setUp)") }
    let responses = ResponseCounter()
    system.model.onPRGResponse { response in
        if response.code == .success { responses.count &+= 1 }
        responses.arrived.wakeUp()
    }
    let requestsPerCall = 1024
    var page: UInt64 = 0
    return measure(operationsPerCall: requestsPerCall) {
        let outcome = system.run("device") { [model = system.model] in
            for index in 0..<requestsPerCall {
                let before = responses.count
                _ = model.receivePageRequest(PageRequest(streamID: 0x10, substreamID: 1, prgIndex: UInt16(index % 512), last: true, read: true, write: true, address: 0x4000_0000 + (page % 2048) << 12))
                page &+= 1
                await responses.arrived.waitEvent { responses.count != before }
            }
        }
        guard outcome == .completed else { fatalError("IOPF round trips did not complete: \(outcome)") }
    }
}

/// Bind a process to a device and unbind it (CLEAN), through the core and the SMMU driver:
/// the CD written and invalidated, the PASID allocated and freed.
func bindUnbind() throws -> Double {
    let sva = try SVASystem()
    sva.system.bus.interrupts.recordCapacity = 0
    let mm = try sva.process()
    let cyclesPerCall = 256
    return measure(operationsPerCall: cyclesPerCall) {
        let outcome = sva.system.run {
            for _ in 0..<cyclesPerCall {
                let (ret, pasid) = await iommu_sva_bind_device(sva.dev, mm, nil, sva.registry)
                guard ret == 0 else { fatalError("bind: \(ret)") }
                _ = await iommu_sva_unbind_device(sva.dev, pasid, sva.registry, flags: IOMMU_PASID_CLEAN)
            }
        }
        guard outcome == .completed, sva.registry.pasids.count == 0 else { fatalError("bind/unbind: \(outcome)") }
    }
}

/// Interleavings of the unbind-versus-Stop-Marker race explored per second, each a fresh
/// system (probe included) under its own seed.
func unbindStopMarkerInterleavings() throws -> Double {
    var seed: UInt64 = 1
    return measure(operationsPerCall: 16) {
        for _ in 0..<16 {
            guard let sva = try? SVASystem(seed: seed), let mm = try? sva.process() else { fatalError("set-up") }
            seed &+= 1
            var pasid: UInt32 = 0
            sva.system.run { pasid = await iommu_sva_bind_device(sva.dev, mm, nil, sva.registry).1 }
            sva.system.scheduler.spawn("device") { [model = sva.system.model, marker = sva.stopMarker(pasid)] in _ = model.receivePageRequest(marker) }
            sva.system.run("driver") {
                _ = await iommu_sva_unbind_device(sva.dev, pasid, sva.registry, flags: IOMMU_PASID_FLUSHED)
                _ = await iommu_sva_bind_device(sva.dev, mm, nil, sva.registry)
            }
        }
    }
}

if selected("sva_bind_unbind") {
    do {
        reportThousands("sva_bind_unbind", try bindUnbind(), unit: "cycles")
    } catch {
        print("BENCH sva_bind_unbind failed: \(error)")
    }
}

if selected("unbind_stop_marker_interleavings") {
    do {
        reportThousands("unbind_stop_marker_interleavings", try unbindStopMarkerInterleavings(), unit: "interleavings")
    } catch {
        print("BENCH unbind_stop_marker_interleavings failed: \(error)")
    }
}

if selected("iopf_page_request_end_to_end") {
    do {
        report("iopf_page_request_end_to_end", try iopfEndToEnd(), unit: "requests")
    } catch {
        print("BENCH iopf_page_request_end_to_end failed: \(error)")
    }
}

if selected("pri_page_request_end_to_end") {
    do {
        report("pri_page_request_end_to_end", try priEndToEnd(), unit: "requests")
    } catch {
        print("BENCH pri_page_request_end_to_end failed: \(error)")
    }
}

// Peak resident memory of a system with 1 M mapped 4 KB pages, each translated once (so the
// page tables, the TLB and the memory behind the tables are all populated).
if childBenchmark == "peak_rss_1m_pages" {
    let s = system()
    let pt = s.pageTable()
    let base: UInt64 = 0x10_0000_0000
    for page in 0..<1_048_576 { pt.map(base + UInt64(page) << 12, to: 0x1_0000_0000 + UInt64(page) << 12) }
    s.stage1Stream(1, cd: CDConfig(table0: pt, asid: 1))
    for page in 0..<1_048_576 {
        if case .translated(let physical) = s.smmu.translate(.read(streamID: 1, address: base + UInt64(page) << 12)) { sink &+= physical }
    }
    let megabytes = (Double(peakResidentBytes()) / 1_048_576 * 10).rounded() / 10
    print("BENCH peak_rss_1m_pages \(megabytes) MB")
} else if childBenchmark == nil && selected("peak_rss_1m_pages") {
    let child = Process()
    child.executableURL = URL(fileURLWithPath: CommandLine.arguments[0])
    child.arguments = ["--child", "peak_rss_1m_pages"]
    do {
        try child.run()
        child.waitUntilExit()
    } catch {
        print("BENCH peak_rss_1m_pages failed: \(error)")
    }
}

if sink == 42 { print("") }
