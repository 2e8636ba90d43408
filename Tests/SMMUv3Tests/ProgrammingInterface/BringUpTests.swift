import Testing
import Platform
import SMMUv3
import SMMUv3Host

/// A bring-up done the way the Linux driver does it (arm_smmu_device_reset), through the bus.
@Suite struct BringUpTests {
    @Test func linuxOrderBringUpEnablesEverything() throws {
        let rig = Rig(trace: [.mmio, .command])
        try rig.host.bringUp()
        #expect(rig.read(.cr0Ack) == 0x1F, "SMMUEN|PRIQEN|EVENTQEN|CMDQEN|ATSCHK")
        #expect(rig.read(.irqCtrlAck) == 0x7)
        #expect(rig.read(.cr1) == 0xD75)
        #expect(rig.read(.cr2) == 0x2, "PTM is RES0 without BTM")
        #expect(rig.read64(.strtabBase) == 0x4000_0000)
        #expect(rig.read(.strtabBaseCfg) == 8)
        #expect(rig.read64(.cmdqBase) == 0x4000_0000_4010_0008)
        #expect(rig.read(.cmdqCons) == 5)
        #expect(rig.smmu.diagnostics.isEmpty)

        let commands = rig.bus.trace.lines.filter { $0.category == .command }.map { String($0.text.prefix { $0 != "-" }.dropLast()) }
        #expect(commands == [
            "smmu.cmdq: [0] CMD_CFGI_ALL", "smmu.cmdq: [1] CMD_SYNC SIG_NONE", "smmu.cmdq: [2] CMD_TLBI_EL2_ALL",
            "smmu.cmdq: [3] CMD_TLBI_NSNH_ALL", "smmu.cmdq: [4] CMD_SYNC SIG_NONE",
        ])
        let writes = rig.bus.trace.lines.filter { $0.category == .mmio && $0.text.hasPrefix("W") }.map { $0.text.split(separator: " ")[2] }
        #expect(writes == [
            "CR0", "CR1", "CR2", "STRTAB_BASE", "STRTAB_BASE_CFG", "CMDQ_BASE", "CMDQ_PROD", "CMDQ_CONS", "CR0", "CMDQ_PROD",
            "EVENTQ_BASE", "EVENTQ_PROD", "EVENTQ_CONS", "CR0", "PRIQ_BASE", "PRIQ_PROD", "PRIQ_CONS", "CR0", "CR0",
            "IRQ_CTRL", "GERROR_IRQ_CFG0", "GERROR_IRQ_CFG1", "GERROR_IRQ_CFG2", "EVENTQ_IRQ_CFG0", "EVENTQ_IRQ_CFG1",
            "EVENTQ_IRQ_CFG2", "PRIQ_IRQ_CFG0", "PRIQ_IRQ_CFG1", "PRIQ_IRQ_CFG2", "IRQ_CTRL", "CR0",
        ])
    }

    @Test func bringUpPollsThroughAcknowledgeLatency() throws {
        let rig = Rig({ $0.acknowledgeLatency = 5 }, trace: [.mmio])
        try rig.host.bringUp()
        #expect(rig.smmu.peek(.cr0Ack) == 0x1F)
        let ackReads = rig.bus.trace.lines.filter { $0.text.contains(" CR0ACK ->") }.count
        #expect(ackReads == 1 + 6 * 5, "the first CR0 write changes nothing; five updates need six polls each")
    }

    @Test func bringUpReportsAnAcknowledgeThatNeverComes() {
        let rig = Rig { $0.acknowledgeLatency = 5000 }
        #expect(throws: SMMUHost.HostError.acknowledgeTimeout(.cr0Ack, expected: 0x8, last: 0)) {
            try rig.host.bringUp()
        }
    }

    @Test func stageOneOnlySMMUWithoutPRIIsBroughtUpWithoutEL2OrPRIQueue() throws {
        let rig = Rig({ $0.stage2 = false; $0.hypervisor = false; $0.pri = false }, trace: [.command])
        try rig.host.bringUp()
        #expect(rig.read(.cr0Ack) == 0x1D)
        #expect(rig.read(.irqCtrlAck) == 0x5)
        #expect(!rig.bus.trace.texts().contains { $0.contains("TLBI_EL2_ALL") })
        #expect(rig.read(.cmdqCons) == 4)
    }

    @Test func reEnabledSMMUIsDisabledBehindGBPAAbortFirst() throws {
        let rig = Rig()
        try rig.host.bringUp()
        try rig.host.bringUp()
        #expect(rig.read(.gbpa) & (1 << 20) != 0, "GBPA.ABORT was set before disabling (arm_smmu_device_reset)")
        #expect(rig.read(.cr0Ack) == 0x1F)
    }

    @Test func drainingAcknowledgesOverflowsInTheSameCONSWrite() throws {
        let rig = Rig()
        var layout = SMMUHost.Layout()
        layout.eventQueueLog2Size = 1
        try rig.host.bringUp(layout: layout)
        for page in 0..<3 { rig.smmu.recordEvent(.badSTE(streamID: UInt32(page))) }
        let drained = rig.host.drainEvents()
        #expect(drained.records.map(\.streamID) == [0, 1])
        #expect(drained.overflowed)
        #expect(!rig.smmu.eventQueueOverflowActive)
        #expect(rig.read(.eventqCons) == 0x8000_0002)
    }
}
