import Endpoints
import Platform
import SMMUv3
import SMMUv3Host
import Scenario

/// `smmuv3 demo`: brings an SMMU up with the driver port (through the bus only), runs commands,
/// provokes a command error and recovers, produces events up to an overflow, sends PRI page
/// requests, then lets PCIe endpoints do DMA through stage-1 page tables (a fault, a missing
/// TLB invalidation caught by checked mode, and a page request serviced by software), printing
/// the trace as it goes.
enum Demo {
    static let smmuBase: UInt64 = 0x0900_0000

    static func run(_ arguments: [String]) throws -> Int32 {
        var categories = TraceCategory.standard
        var remaining = arguments[...]
        while let argument = remaining.popFirst() {
            switch argument {
            case "-h", "--help":
                print("""
                usage: smmuv3 demo [--trace CATEGORIES]

                A register-level tour of the model: bring-up by the driver port, commands, a
                command error and its recovery, an event queue overflow, PRI, DMA through
                stage-1 tables, checked mode and a serviced page request, with the trace.
                CATEGORIES: \(TraceCategory.named.map(\.1).joined(separator: ", ")), all or standard.
                """)
                return 0
            case "--trace":
                categories = try traceOption(&remaining)
            default:
                throw UsageError("demo: unknown option '\(argument)'")
            }
        }

        section("bring-up by the driver port (arm_smmu_device_probe)")
        let system = try SMMUSystem(smmuBase: smmuBase, eventQueueLog2: 2, priQueueLog2: 2, trace: categories) { bus in
            bus.trace.lineCapacity = 0
            bus.trace.sink = { print($0) }
        }
        let (bus, smmu, host, arena, streams) = (system.bus, system.smmu, system.host, system.arena, system.streams)
        for line in system.log.texts() { print("  kernel: \(line)") }
        print("  CR0ACK = \(hex(smmu.peek(.cr0Ack))) (SMMUEN|ATSCHK|PRIQEN|EVENTQEN|CMDQEN)")
        for register in [SMMURegister.idr0, .idr1, .idr3, .idr5, .iidr, .aidr] {
            print("  \(register.name) = \(hex(smmu.peek(register), digits: 8))")
        }
        // Page request interrupts on Last requests only (PRIQ_IRQ_CFG2.LO), as this demo wants:
        // the register is guarded by IRQ_CTRL.PRIQ_IRQEN.
        let irqCtrl = host.read32(.irqCtrl)
        try host.writeSynchronized(.irqCtrl, irqCtrl & ~Reg.IRQCtrl.priqIrqen.mask32, ack: .irqCtrlAck)
        host.write32(.priqIrqCfg2, host.read32(.priqIrqCfg2) | Reg.IRQCfg.lo.mask32)
        try host.writeSynchronized(.irqCtrl, irqCtrl, ack: .irqCtrlAck)

        section("commands")
        let doorbell: UInt64 = 0x4050_0000
        try host.submit([
            .cfgiSTE(streamID: 0x10, leaf: true),
            .tlbiNHVA(vmid: 0, asid: 1, address: 0x7F_1234_5000, scope: TLBIScope(leaf: true, num: 3, scale: 0, granule: 1, ttl: 3)),
            .sync(SyncParameters(completion: .irq, msiAddress: doorbell, msiData: 0xC0FFEE)),
        ])
        print("  CMD_SYNC MSI wrote \(hex(bus.memory.read32(at: doorbell), digits: 8)) to \(hex(doorbell))")

        section("an illegal command, and Linux-style recovery")
        try host.write([CommandEntry(dw0: 0x09, dw1: 0)])
        let cons = smmu.peek(.cmdqCons)
        print("  CMDQ_CONS = \(hex(cons, digits: 8)) (ERR = \(Reg.Queue.consErr.extract(cons))), active GERROR: \(smmu.describeGlobalErrors(smmu.activeGlobalErrors))")
        host.rewindCommandQueueToConsumer()
        try host.write([Command.sync(SyncParameters()).entry])
        host.acknowledgeGlobalErrors()
        print("  after replacing it with CMD_SYNC and acknowledging: \(smmu.commandQueueStatus)")

        section("events: a 4-entry queue overflows")
        for page in 0..<6 {
            let fault = TranslationFault(type: .translation, streamID: 0x10, substreamID: 1, access: .dataRead, inputAddress: 0x1000 * UInt64(page))
            smmu.recordEvent(.translationFault(fault))
        }
        let drained = host.drainEvents()
        print("  drained \(drained.records.count) records, overflow \(drained.overflowed ? "reported" : "not reported")")
        for record in drained.records { print("    \(record)") }

        section("PRI: page requests, a stop marker, then an overflow")
        let printer = smmu.onPRGResponse { print("  -> endpoint receives \($0)") }
        defer { smmu.removeHandler(printer) }
        for index in 0..<4 {
            smmu.receivePageRequest(PageRequest(streamID: 0x10, substreamID: 1, prgIndex: UInt16(index), last: true, read: true, write: false, address: 0x2000 * UInt64(index)))
        }
        smmu.receivePageRequest(.stopMarker(streamID: 0x10, substreamID: 1))
        smmu.receivePageRequest(PageRequest(streamID: 0x10, substreamID: 1, prgIndex: 7, last: true, read: true, write: true, address: 0x9000))
        let pri = host.drainPRIQueue()
        print("  drained \(pri.entries.count) PRI entries, overflow \(pri.overflowed ? "reported" : "not reported")")
        for entry in pri.entries { print("    \(entry)") }

        section("translation: an endpoint's DMA through stage-1 page tables")
        let rootComplex = RootComplex(smmu: smmu)
        let nic = rootComplex.attach(requesterID: 0x20)
        let table = PageTableBuilder(memory: bus.memory, arena: arena, stage: .stage1)
        table.map(0x1000_0000, to: 0x9_0000_0000)
        let cds = CDTableBuilder(memory: bus.memory, arena: arena)
        cds.set(0, CDConfig(table0: table, asid: 5))
        var ste = STEConfig(config: .stage1)
        ste.s1ContextPointer = cds.pointer
        streams.set(0x20, ste)
        let write = nic.write(0x1000_0040, bytes: Array("hello, SMMU".utf8))
        print("  write: \(nic.state(of: write)!); memory at 0x9_0000_0040: \(String(decoding: bus.memory.bytes(at: 0x9_0000_0040, count: 11), as: UTF8.self))")

        section("a translation fault and its event record")
        let stray = nic.read(0x2000_0000, length: 8)
        print("  read: \(nic.state(of: stray)!)")
        for record in host.drainEvents().records { print("    event: \(record)") }

        section("checked mode: a page remapped without TLB invalidation")
        smmu.checkedMode = true
        table.map(0x1000_0000, to: 0xA_0000_0000)
        _ = nic.write(0x1000_0040, bytes: [1])
        for diagnostic in smmu.diagnostics.suffix(1) { print("  diagnostic: \(diagnostic)") }
        try host.submit([.tlbiNHASID(vmid: 0, asid: 5), .sync(SyncParameters())])
        let fixed = nic.write(0x1000_0040, bytes: [2])
        print("  after CMD_TLBI_NH_ASID + CMD_SYNC: \(nic.state(of: fixed)!), byte at 0xA_0000_0040 = \(bus.memory.read8(at: 0xA_0000_0040))")
        smmu.checkedMode = false

        section("PRI: a missing page requested by an ATS endpoint and serviced by software")
        let gpu = rootComplex.attach(requesterID: 0x30, ats: true, pri: true, pageRequestCredits: 4)
        let gpuTable = PageTableBuilder(memory: bus.memory, arena: arena, stage: .stage1)
        let gpuCDs = CDTableBuilder(memory: bus.memory, arena: arena, cdMax: 4)
        gpuCDs.set(3, CDConfig(table0: gpuTable, asid: 9))
        var gpuSTE = STEConfig(config: .stage1)
        gpuSTE.s1ContextPointer = gpuCDs.pointer
        gpuSTE.s1CDMax = 4
        gpuSTE.eats = 0b01
        streams.set(0x30, gpuSTE)
        let fetch = gpu.read(0x5000_0000, length: 16, pasid: 3)
        print("  read: \(gpu.state(of: fetch)!)")
        for entry in host.drainPRIQueue().entries {
            let request = entry.request
            print("  software handles \(request): maps the page, answers Success")
            gpuTable.map(request.address, to: 0xB_0000_0000)
            try host.submit([.priResp(streamID: request.streamID, substreamID: request.substreamID, prgIndex: request.prgIndex, response: .success), .sync(SyncParameters())])
        }
        print("  read: \(gpu.state(of: fetch)!)")

        section("summary")
        let stats = smmu.statistics
        print("  commands consumed \(stats.commandsConsumed), command errors \(stats.commandErrors)")
        print("  events written \(stats.eventsWritten), discarded \(stats.eventsDiscarded), overflows \(stats.eventQueueOverflows)")
        print("  PRI entries \(stats.priEntriesWritten), discarded \(stats.priMessagesDiscarded), overflows \(stats.priQueueOverflows)")
        print("  interrupts \(stats.interruptsSignalled), MSIs delivered \(bus.interrupts.deliveredMSICount)")
        print("  diagnostics: \(smmu.diagnostics.count)")
        for diagnostic in smmu.diagnostics { print("    \(diagnostic)") }
        return 0
    }

    static func section(_ title: String) {
        print("\n== \(title) ==")
    }
}
