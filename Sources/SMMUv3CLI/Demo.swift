import Platform
import SMMUv3
import SMMUv3Host

/// `smmuv3 demo`: brings an SMMU up through the bus the way Linux does, runs commands,
/// provokes a command error and recovers, produces events up to an overflow, and sends PRI
/// page requests, printing the trace as it goes.
enum Demo {
    static let smmuBase: UInt64 = 0x0900_0000

    static func run(_ arguments: [String]) throws -> Int32 {
        var categories = TraceCategory.standard
        var remaining = arguments[...]
        while let argument = remaining.popFirst() {
            switch argument {
            case "--trace":
                guard let names = remaining.popFirst() else { throw UsageError("--trace needs a category list") }
                guard let parsed = TraceCategory(names: names) else { throw UsageError("unknown trace category in '\(names)'") }
                categories = parsed
            default:
                throw UsageError("demo: unknown option '\(argument)'")
            }
        }

        let bus = Bus(traceCategories: categories)
        bus.trace.keepsLines = false
        bus.trace.sink = { print($0) }
        let smmu = try SMMU(configuration: .default, bus: bus, base: smmuBase)
        let host = SMMUHost(bus: bus, base: smmuBase)

        section("identification")
        for register in [SMMURegister.idr0, .idr1, .idr3, .idr5, .iidr, .aidr] {
            print("  \(register.name) = \(hex(smmu.peek(register), digits: 8))")
        }

        section("bring-up in the Linux driver's order")
        var layout = SMMUHost.Layout()
        layout.eventQueueLog2Size = 2
        layout.priQueueLog2Size = 2
        layout.priLastOnly = true
        try host.bringUp(layout: layout)
        print("  CR0ACK = \(hex(smmu.peek(.cr0ack))) (SMMUEN|PRIQEN|EVENTQEN|CMDQEN|ATSCHK)")

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
        smmu.onPRGResponse = { print("  -> endpoint receives \($0)") }
        for index in 0..<4 {
            smmu.receivePageRequest(PageRequest(streamID: 0x10, substreamID: 1, prgIndex: UInt16(index), last: true, read: true, write: false, address: 0x2000 * UInt64(index)))
        }
        smmu.receivePageRequest(.stopMarker(streamID: 0x10, substreamID: 1))
        smmu.receivePageRequest(PageRequest(streamID: 0x10, substreamID: 1, prgIndex: 7, last: true, read: true, write: true, address: 0x9000))
        let pri = host.drainPRIQueue()
        print("  drained \(pri.entries.count) PRI entries, overflow \(pri.overflowed ? "reported" : "not reported")")
        for entry in pri.entries { print("    \(entry)") }

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
