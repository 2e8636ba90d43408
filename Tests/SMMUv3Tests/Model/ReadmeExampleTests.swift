import Testing
import Platform
import SMMUv3
import SMMUv3Host
import Scenario

/// The example in README.md, kept identical so that the README cannot go stale.
@Suite struct ReadmeExampleTests {
    @Test func readmeExampleRunsAsDocumented() throws {
        let bus = Bus(traceCategories: .standard)
        let smmu = try SMMU(configuration: .default, bus: bus, base: 0x0900_0000)

        // Command queue of 16 entries at 0x4010_0000, then CMDQEN and wait for CR0ACK.
        bus.write64(0x4010_0000 | 4, at: 0x0900_0000 + SMMURegister.cmdqBase.offset)
        bus.write32(1 << 3, at: 0x0900_0000 + SMMURegister.cr0.offset)
        precondition(bus.read32(at: 0x0900_0000 + SMMURegister.cr0Ack.offset) == 1 << 3)

        // Write CMD_CFGI_ALL and CMD_SYNC (signalling by MSI) into the queue, then ring PROD.
        for (slot, command) in [Command.cfgiAll, .sync(SyncParameters(completion: .irq, msiAddress: 0x4040_0000, msiData: 1))].enumerated() {
            bus.memory.write64(command.entry.dw0, at: 0x4010_0000 + UInt64(slot) * 16)
            bus.memory.write64(command.entry.dw1, at: 0x4010_0000 + UInt64(slot) * 16 + 8)
        }
        bus.write32(2, at: 0x0900_0000 + SMMURegister.cmdqProd.offset)

        #expect(bus.read32(at: 0x0900_0000 + SMMURegister.cmdqCons.offset) == 2)
        #expect(bus.memory.read32(at: 0x4040_0000) == 1)
        #expect(bus.trace.lines.contains { $0.text.contains("CMD_SYNC SIG_IRQ") })
        #expect(smmu.statistics.commandsConsumed == 2)
    }
}

/// The SMMUSystem example in README.md.
@Suite struct ReadmeSystemExampleTests {
    @Test func systemExampleTranslatesAsDocumented() throws {
        let system = try SMMUSystem()
        let table = system.pageTable()                       // stage 1, 4 KB granule, 48-bit VA
        table.map(0x1000_0000, to: 0x9_0000_0000)
        system.stage1Stream(0x20, cd: CDConfig(table0: table, asid: 5))
        #expect(system.smmu.translate(.read(streamID: 0x20, address: 0x1000_0040)) == .translated(physicalAddress: 0x9_0000_0040))
    }
}
