import Testing
import Platform
import SMMUv3

@Suite struct GlobalErrorTests {
    @Test func errorIsActiveWhileGERRORAndGERRORNDiffer() {
        let rig = Rig()
        rig.startCommandQueue()
        rig.push([CommandEntry(dw0: 0, dw1: 0)])
        #expect(rig.read(.gerror) == 1)
        #expect(rig.read(.gerrorn) == 0)
        rig.bus.memory.write64(Command.tlbiNSNHAll.entry.dw0, at: 0x4010_0000)
        rig.write(.gerrorn, 1)
        #expect(rig.smmu.activeGlobalErrors == 0)
        // The next error toggles GERROR back to 0: active again.
        rig.push([CommandEntry(dw0: 0, dw1: 0)])
        #expect(rig.read(.gerror) == 0)
        #expect(rig.smmu.activeGlobalErrors == 1)
    }

    @Test func acknowledgingWithoutFixingTheCommandFailsAgain() {
        let rig = Rig()
        rig.startCommandQueue()
        rig.push([CommandEntry(dw0: 0, dw1: 0)])
        rig.write(.gerrorn, 1)
        #expect(rig.read(.gerror) == 0, "the same command is fetched again and fails again")
        #expect(rig.smmu.activeGlobalErrors == 1)
        #expect(rig.smmu.statistics.commandErrors == 2)
    }

    @Test func repeatedErrorWhileActiveIsNotLogged() {
        let rig = Rig()
        rig.write(.irqCtrl, 1)
        rig.bus.faults.injectAbort(0x6000...0x6003, on: .write)
        rig.startCommandQueue()
        let aborting = Command.sync(SyncParameters(completion: .irq, msiAddress: 0x6000, msiData: 1))
        rig.push([aborting, aborting])
        #expect(rig.read(.cmdqCons) == 2)
        #expect(rig.read(.gerror) == 1 << 4, "MSI_CMDQ_ABT_ERR toggled once, not twice")
        #expect(rig.bus.interrupts.pulses(on: 67) == 1, "one GERROR interrupt")
        rig.host.acknowledgeGlobalErrors()
        rig.push([aborting])
        #expect(rig.read(.gerror) == 0, "after the acknowledge the next occurrence is logged again")
        #expect(rig.bus.interrupts.pulses(on: 67) == 2)
    }

    @Test func gerrorInterruptUsesMSIAndWiredLineWhenEnabled() {
        let rig = Rig()
        rig.write64(.gerrorIrqCfg0, 0x4040_0000)
        rig.write(.gerrorIrqCfg1, 0xE7)
        rig.write(.irqCtrl, 1)
        rig.startCommandQueue()
        rig.push([CommandEntry(dw0: 0, dw1: 0)])
        #expect(rig.memory32(0x4040_0000) == 0xE7)
        #expect(rig.bus.interrupts.pulses(on: 67) == 1)
        let quiet = Rig()
        quiet.startCommandQueue()
        quiet.push([CommandEntry(dw0: 0, dw1: 0)])
        #expect(quiet.bus.interrupts.records.isEmpty, "GERROR_IRQEN clear: no interrupt")
    }

    @Test func abortedGERRORMSISetsMSIGerrorAbtErrWithoutAnotherInterrupt() {
        let rig = Rig { $0.interruptLines = nil }
        rig.write64(.gerrorIrqCfg0, 0x6000)
        rig.write(.irqCtrl, 1)
        rig.bus.faults.injectAbort(0x6000...0x6003, on: .write)
        rig.startCommandQueue()
        rig.push([CommandEntry(dw0: 0, dw1: 0)])
        #expect(rig.read(.gerror) == (1 << 7) | 1)
        #expect(rig.bus.interrupts.records.count == 1, "only the first, aborted MSI")
    }

    @Test func togglingAnInactiveErrorMakesItReadActive() {
        let rig = Rig()
        rig.write(.gerrorn, 1 << 2)
        #expect(rig.smmu.activeGlobalErrors == 1 << 2)
        #expect(rig.smmu.diagnostics.last?.kind == .inactiveErrorToggled(1 << 2))
        rig.write(.gerrorn, 0xFFFF_FFFF)
        #expect(rig.read(.gerrorn) == 0x1FD, "only implemented error bits are stored")
    }
}
