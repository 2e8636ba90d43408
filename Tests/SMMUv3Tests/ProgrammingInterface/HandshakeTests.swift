import Testing
import Platform
import SMMUv3

@Suite struct HandshakeTests {
    @Test func cr0AckFollowsCR0() {
        let rig = Rig()
        rig.write(.cr0, 0xFFFF_FFFF)
        #expect(rig.read(.cr0) == 0x1F, "SMMUEN|PRIQEN|EVENTQEN|CMDQEN|ATSCHK; the rest is RES0")
        #expect(rig.read(.cr0Ack) == 0x1F)
        rig.write(.cr0, 0)
        #expect(rig.read(.cr0Ack) == 0)
    }

    @Test func cr0UpdateCompletesAfterTheConfiguredNumberOfPolls() {
        let rig = Rig { $0.acknowledgeLatency = 3 }
        rig.write(.cr0, 1 << 3)
        #expect(rig.read(.cr0) == 1 << 3, "CR0 reads back the written value at once")
        #expect(rig.read(.cr0Ack) == 0)
        #expect(rig.read(.cr0Ack) == 0)
        #expect(rig.read(.cr0Ack) == 0)
        #expect(rig.read(.cr0Ack) == 1 << 3)
    }

    @Test func pendingCR0FieldCannotBeChangedAgain() {
        let rig = Rig { $0.acknowledgeLatency = 2 }
        rig.write(.cr0, 1 << 2)
        rig.write(.cr0, 1 << 3)
        #expect(rig.read(.cr0) == (1 << 2) | (1 << 3), "EVENTQEN keeps its pending value; CMDQEN is a new, independent update")
        #expect(rig.smmu.diagnostics.map(\.kind) == [.updateInProgress(.cr0)])
        rig.smmu.settle()
        #expect(rig.read(.cr0Ack) == (1 << 2) | (1 << 3))
    }

    @Test func gbpaUpdateNeedsTheUpdateBitAndClearsIt() {
        let rig = Rig()
        rig.write(.gbpa, 1 << 20)
        #expect(rig.read(.gbpa) == 0x1000, "a write without Update is ignored")
        #expect(rig.smmu.diagnostics.last?.kind == .gbpaWriteIgnored)
        rig.write(.gbpa, 0x8010_0000 | 0xFFFF)
        #expect(rig.read(.gbpa) == 0x0010_3F1F, "Update cleared, ABORT and the attribute fields kept")
    }

    @Test func gbpaUpdateInProgressBlocksFurtherWrites() {
        let rig = Rig { $0.acknowledgeLatency = 1 }
        rig.write(.gbpa, 0x8010_0000)
        rig.write(.gbpa, 0x8000_0000)
        #expect(rig.read(.gbpa) == 0x8010_0000)
        #expect(rig.read(.gbpa) == 0x0010_0000)
        #expect(rig.smmu.diagnostics.map(\.kind) == [.gbpaWriteIgnored])
    }

    @Test func irqCtrlAckFollowsIrqCtrl() {
        let rig = Rig { $0.acknowledgeLatency = 1 }
        rig.write(.irqCtrl, 0xFF)
        #expect(rig.read(.irqCtrl) == 0x7)
        #expect(rig.read(.irqCtrlAck) == 0)
        #expect(rig.read(.irqCtrlAck) == 0x7)
        let noPRI = Rig { $0.pri = false }
        noPRI.write(.irqCtrl, 0x7)
        #expect(noPRI.read(.irqCtrlAck) == 0x5, "PRIQ_IRQEN is RES0 without PRI")
    }
}

/// The guard rule (§6.3.9): "RW when CR0.X == 0 and CR0ACK.X == 0, otherwise RO"; v3.2 ignores
/// guarded writes.
@Suite struct GuardedRegisterTests {
    struct Case: CustomStringConvertible, Sendable {
        let register: SMMURegister
        let enableRegister: SMMURegister
        let enable: UInt32
        let value: UInt64
        var description: String { "\(register.name) guarded by \(enableRegister.name) \(hex(enable))" }
    }

    static let cases: [Case] = [
        Case(register: .strtabBase, enableRegister: .cr0, enable: 1 << 0, value: 0x4000_0000),
        Case(register: .strtabBaseCfg, enableRegister: .cr0, enable: 1 << 0, value: 0x8),
        Case(register: .cr2, enableRegister: .cr0, enable: 1 << 0, value: 0x2),
        Case(register: .cmdqBase, enableRegister: .cr0, enable: 1 << 3, value: 0x4010_0004),
        Case(register: .cmdqCons, enableRegister: .cr0, enable: 1 << 3, value: 0x1),
        Case(register: .eventqBase, enableRegister: .cr0, enable: 1 << 2, value: 0x4020_0004),
        Case(register: .eventqProd, enableRegister: .cr0, enable: 1 << 2, value: 0x1),
        Case(register: .priqBase, enableRegister: .cr0, enable: 1 << 1, value: 0x4030_0004),
        Case(register: .priqProd, enableRegister: .cr0, enable: 1 << 1, value: 0x1),
        Case(register: .gerrorIrqCfg0, enableRegister: .irqCtrl, enable: 1 << 0, value: 0x4040_0000),
        Case(register: .gerrorIrqCfg1, enableRegister: .irqCtrl, enable: 1 << 0, value: 0x77),
        Case(register: .gerrorIrqCfg2, enableRegister: .irqCtrl, enable: 1 << 0, value: 0x31),
        Case(register: .eventqIrqCfg0, enableRegister: .irqCtrl, enable: 1 << 2, value: 0x4040_0004),
        Case(register: .eventqIrqCfg1, enableRegister: .irqCtrl, enable: 1 << 2, value: 0x77),
        Case(register: .eventqIrqCfg2, enableRegister: .irqCtrl, enable: 1 << 2, value: 0x31),
        Case(register: .priqIrqCfg0, enableRegister: .irqCtrl, enable: 1 << 1, value: 0x4040_0008),
        Case(register: .priqIrqCfg1, enableRegister: .irqCtrl, enable: 1 << 1, value: 0x77),
        Case(register: .priqIrqCfg2, enableRegister: .irqCtrl, enable: 1 << 1, value: 0x8000_0031),
    ]

    private func setup(_ rig: Rig, _ testCase: Case) {
        // Give the queue registers a size so that pointer values are representable.
        rig.write64(.cmdqBase, 0x4010_0004)
        rig.write64(.eventqBase, 0x4020_0004)
        rig.write64(.priqBase, 0x4030_0004)
    }

    private func write(_ rig: Rig, _ testCase: Case, _ value: UInt64) {
        if testCase.register.is64Bit { rig.write64(testCase.register, value) } else { rig.write(testCase.register, UInt32(value)) }
    }

    private func read(_ rig: Rig, _ testCase: Case) -> UInt64 {
        testCase.register.is64Bit ? rig.read64(testCase.register) : UInt64(rig.read(testCase.register))
    }

    @Test(arguments: cases)
    func writeIsAcceptedWhileTheEnableIsClear(_ testCase: Case) {
        let rig = Rig()
        setup(rig, testCase)
        write(rig, testCase, testCase.value)
        #expect(read(rig, testCase) == testCase.value)
    }

    @Test(arguments: cases)
    func writeIsIgnoredWhileTheEnableIsSet(_ testCase: Case) {
        let rig = Rig()
        setup(rig, testCase)
        rig.write(testCase.enableRegister, testCase.enable)
        let before = read(rig, testCase)
        write(rig, testCase, testCase.value)
        #expect(read(rig, testCase) == before)
        #expect(rig.smmu.diagnostics.contains { $0.kind == .guardedWriteIgnored(testCase.register) })
    }

    @Test(arguments: cases)
    func writeIsIgnoredWhileTheDisableIsNotYetAcknowledged(_ testCase: Case) {
        let rig = Rig { $0.acknowledgeLatency = 2 }
        setup(rig, testCase)
        rig.write(testCase.enableRegister, testCase.enable)
        rig.smmu.settle()
        rig.write(testCase.enableRegister, 0)
        let before = read(rig, testCase)
        write(rig, testCase, testCase.value)
        #expect(read(rig, testCase) == before, "CR0.X == 0 but CR0ACK.X == 1 still guards")
        rig.smmu.settle()
        write(rig, testCase, testCase.value)
        #expect(read(rig, testCase) == testCase.value)
    }

    @Test func cr1FieldGroupsHaveSeparateGuards() {
        let rig = Rig()
        rig.write(.cr0, 1 << 0)
        rig.write(.cr1, 0xFFF)
        #expect(rig.read(.cr1) == 0x03F, "TABLE_* guarded by SMMUEN, QUEUE_* writable")
        rig.write(.cr0, 1 << 3)
        rig.write(.cr1, 0)
        #expect(rig.read(.cr1) == 0x03F, "QUEUE_* now guarded by CMDQEN; TABLE_* already 0")
    }

    @Test func unguardedPointersStayWritableWhileEnabled() {
        let rig = Rig()
        rig.write64(.eventqBase, 0x4020_0004)
        rig.write64(.priqBase, 0x4030_0004)
        rig.write(.cr0, 0xF)
        rig.write(.eventqCons, 0x8000_0003)
        rig.write(.priqCons, 0x8000_0002)
        #expect(rig.read(.eventqCons) == 0x8000_0003)
        #expect(rig.read(.priqCons) == 0x8000_0002)
    }
}
