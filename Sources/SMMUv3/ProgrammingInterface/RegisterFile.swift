import Platform
import SMMUv3Layout
import VMSA

/// The register file (§6.2, §6.3): 32- and 64-bit accesses, reads with their side effects,
/// writes and the fields they may change.
extension SMMU {
    func read32(_ rawOffset: UInt64) -> UInt32 {
        let offset = resolvedOffset(rawOffset)
        if let (register, upper) = SMMURegister.at(offset: offset) {
            let value = registerValue(register, observing: true)
            return UInt32(truncatingIfNeeded: upper ? value >> 32 : value)
        }
        if (SMMURegister.identificationBase...0xFFC).contains(offset) {
            return identification[Int((offset - SMMURegister.identificationBase) / 4)]
        }
        return 0
    }

    func write32(_ rawOffset: UInt64, _ value: UInt32) {
        let offset = resolvedOffset(rawOffset)
        guard let (register, upper) = SMMURegister.at(offset: offset) else { return }
        if register.is64Bit {
            let current = registerValue(register, observing: false)
            let merged = upper ? (current & 0xFFFF_FFFF) | UInt64(value) << 32 : (current & ~0xFFFF_FFFF) | UInt64(value)
            writeRegister64(register, merged)
        } else {
            writeRegister32(register, value)
        }
    }

    /// Reads a register without side effects (no acknowledge-latency countdown, no trace).
    public func peek(_ register: SMMURegister) -> UInt64 {
        registerValue(register, observing: false)
    }

    /// The value of a register. `observing` is true for real CPU reads, which advance the
    /// acknowledge latency of pending updates.
    func registerValue(_ register: SMMURegister, observing: Bool) -> UInt64 {
        switch register {
        case .idr0: return UInt64(idr0)
        case .idr1: return UInt64(idr1)
        case .idr2: return UInt64(configuration.idr2)
        case .idr3: return UInt64(idr3)
        case .idr4: return UInt64(configuration.idr4)
        case .idr5: return UInt64(idr5)
        case .iidr: return UInt64(configuration.iidr)
        case .aidr: return UInt64(configuration.aidr)
        case .cr0: return UInt64(cr0)
        case .cr0Ack:
            if observing && cr0 != cr0Ack {
                cr0ReadsUntilAck -= 1
                if cr0ReadsUntilAck < 0 { completeCR0Update() }
            }
            return UInt64(cr0Ack)
        case .cr1: return UInt64(cr1)
        case .cr2: return UInt64(cr2)
        case .statusr: return 0
        case .gbpa:
            if observing && Reg.GBPA.update.isSet(gbpa) {
                gbpaReadsUntilDone -= 1
                if gbpaReadsUntilDone < 0 { completeGBPAUpdate() }
            }
            return UInt64(gbpa)
        case .agbpa: return 0
        case .irqCtrl: return UInt64(irqCtrl)
        case .irqCtrlAck:
            if observing && irqCtrl != irqCtrlAck {
                irqCtrlReadsUntilAck -= 1
                if irqCtrlReadsUntilAck < 0 { completeIRQCtrlUpdate() }
            }
            return UInt64(irqCtrlAck)
        case .gerror: return UInt64(gerror)
        case .gerrorn: return UInt64(gerrorn)
        case .gerrorIrqCfg0: return gerrorIRQ.address
        case .gerrorIrqCfg1: return UInt64(gerrorIRQ.data)
        case .gerrorIrqCfg2: return UInt64(gerrorIRQ.attributes)
        case .strtabBase: return strtabBase
        case .strtabBaseCfg: return UInt64(strtabBaseCfg)
        case .cmdqBase: return cmdq.base
        case .cmdqProd: return UInt64(cmdq.prod)
        // Index bits above the wrap flag of the SMMU-owned pointers read as zero at the current
        // LOG2SIZE (§6.3.28, §6.3.95, §6.3.97).
        case .cmdqCons: return UInt64(cmdq.cons & (cmdq.geometry.pointerMask | Reg.Queue.consErr.mask32))
        case .eventqBase: return eventq.base
        case .eventqIrqCfg0: return eventqIRQ.address
        case .eventqIrqCfg1: return UInt64(eventqIRQ.data)
        case .eventqIrqCfg2: return UInt64(eventqIRQ.attributes)
        case .priqBase: return priq.base
        case .priqIrqCfg0: return priqIRQ.address
        case .priqIrqCfg1: return UInt64(priqIRQ.data)
        case .priqIrqCfg2: return UInt64(priqIRQ.attributes)
        case .eventqProd: return UInt64(eventq.prod & (eventq.geometry.pointerMask | Reg.Queue.overflowFlag.mask32))
        case .eventqCons: return UInt64(eventq.cons)
        case .priqProd: return UInt64(priq.prod & (priq.geometry.pointerMask | Reg.Queue.overflowFlag.mask32))
        case .priqCons: return UInt64(priq.cons)
        }
    }

    /// Reports a guarded write as ignored (SMMUv3.2: §6.3.24 and friends).
    private func ignoreGuarded(_ register: SMMURegister, _ guardName: String) {
        diagnose(.guardedWriteIgnored(register), "write to \(register.name) ignored: guarded by \(guardName) (set, or not yet acknowledged clear)")
    }

    func writeRegister32(_ register: SMMURegister, _ value: UInt32) {
        switch register {
        case .idr0, .idr1, .idr2, .idr3, .idr4, .idr5, .iidr, .aidr, .cr0Ack, .statusr, .irqCtrlAck, .gerror:
            diagnose(.readOnlyWriteIgnored(register), "write to read-only \(register.name) ignored")
        case .cr0:
            writeCR0(value)
        case .cr1:
            writeCR1(value)
        case .cr2:
            guard !guardedByCR0(Reg.CR0.smmuen) else { return ignoreGuarded(register, "CR0.SMMUEN") }
            var mask = Reg.CR2.recInvSID.mask32
            if Reg.IDR0.hyp.isSet(idr0) { mask |= Reg.CR2.e2h.mask32 }
            cr2 = value & mask
        case .gbpa:
            writeGBPA(value)
        case .agbpa:
            break
        case .irqCtrl:
            writeIRQCtrl(value)
        case .gerrorn:
            writeGERRORN(value)
        case .gerrorIrqCfg1:
            guard configuration.msi else { return }
            guard !guardedByIRQCtrl(Reg.IRQCtrl.gerrorIrqen) else { return ignoreGuarded(register, "IRQ_CTRL.GERROR_IRQEN") }
            gerrorIRQ.data = value
        case .gerrorIrqCfg2:
            guard configuration.msi else { return }
            guard !guardedByIRQCtrl(Reg.IRQCtrl.gerrorIrqen) else { return ignoreGuarded(register, "IRQ_CTRL.GERROR_IRQEN") }
            gerrorIRQ.attributes = value & (Reg.IRQCfg.sh.mask32 | Reg.IRQCfg.memAttr.mask32)
        case .strtabBaseCfg:
            guard !guardedByCR0(Reg.CR0.smmuen) else { return ignoreGuarded(register, "CR0.SMMUEN") }
            var mask = Reg.STRTAB.log2Size.mask32 | Reg.STRTAB.split.mask32
            if configuration.twoLevelStreamTable { mask |= Reg.STRTAB.fmt.mask32 }
            strtabBaseCfg = value & mask
        case .cmdqProd:
            cmdq.prod = value & Reg.Queue.indexField.mask32
            trace.record(.queue, "\(names.cmdq): PROD <- \(cmdq.geometry.describe(cmdq.prodPointer))")
            if commandProcessing == .automatic { runCommandQueue() }
        case .cmdqCons:
            guard !guardedByCR0(Reg.CR0.cmdqen) else { return ignoreGuarded(register, "CR0.CMDQEN") }
            // CMDQ_CONS.ERR is not written by software in this model (§6.3.28 leaves it open).
            cmdq.cons = (cmdq.cons & Reg.Queue.consErr.mask32) | (value & cmdq.geometry.pointerMask)
            reportedInconsistentCommandQueue = false
        case .eventqIrqCfg1:
            guard configuration.msi else { return }
            guard !guardedByIRQCtrl(Reg.IRQCtrl.eventqIrqen) else { return ignoreGuarded(register, "IRQ_CTRL.EVENTQ_IRQEN") }
            eventqIRQ.data = value
        case .eventqIrqCfg2:
            guard configuration.msi else { return }
            guard !guardedByIRQCtrl(Reg.IRQCtrl.eventqIrqen) else { return ignoreGuarded(register, "IRQ_CTRL.EVENTQ_IRQEN") }
            eventqIRQ.attributes = value & (Reg.IRQCfg.sh.mask32 | Reg.IRQCfg.memAttr.mask32)
        case .priqIrqCfg1:
            guard configuration.msi && configuration.pri else { return }
            guard !guardedByIRQCtrl(Reg.IRQCtrl.priqIrqen) else { return ignoreGuarded(register, "IRQ_CTRL.PRIQ_IRQEN") }
            priqIRQ.data = value
        case .priqIrqCfg2:
            guard configuration.pri else { return }
            guard !guardedByIRQCtrl(Reg.IRQCtrl.priqIrqen) else { return ignoreGuarded(register, "IRQ_CTRL.PRIQ_IRQEN") }
            // LO works whether or not MSIs are implemented (§6.3.36).
            var mask = Reg.IRQCfg.lo.mask32
            if configuration.msi { mask |= (Reg.IRQCfg.sh.mask32 | Reg.IRQCfg.memAttr.mask32) }
            priqIRQ.attributes = value & mask
        case .eventqProd:
            guard !guardedByCR0(Reg.CR0.eventqen) else { return ignoreGuarded(register, "CR0.EVENTQEN") }
            eventq.prod = value & (eventq.geometry.pointerMask | Reg.Queue.overflowFlag.mask32)
        case .eventqCons:
            writeEventQueueCons(value)
        case .priqProd:
            guard configuration.pri else { return }
            guard !guardedByCR0(Reg.CR0.priqen) else { return ignoreGuarded(register, "CR0.PRIQEN") }
            priq.prod = value & (priq.geometry.pointerMask | Reg.Queue.overflowFlag.mask32)
        case .priqCons:
            writePRIQueueCons(value)
        case .gerrorIrqCfg0, .strtabBase, .cmdqBase, .eventqBase, .eventqIrqCfg0, .priqBase, .priqIrqCfg0:
            writeRegister64(register, UInt64(value))
        }
    }

    func writeRegister64(_ register: SMMURegister, _ value: UInt64) {
        let queueBaseMask = Reg.Queue.allocate.mask | (Reg.Queue.address.bits.mask & oasMask) | Reg.Queue.log2Size.mask
        let msiAddressMask = Reg.IRQCfg.address.bits.mask & oasMask
        switch register {
        case .gerrorIrqCfg0:
            guard configuration.msi else { return }
            guard !guardedByIRQCtrl(Reg.IRQCtrl.gerrorIrqen) else { return ignoreGuarded(register, "IRQ_CTRL.GERROR_IRQEN") }
            gerrorIRQ.address = value & msiAddressMask
        case .eventqIrqCfg0:
            guard configuration.msi else { return }
            guard !guardedByIRQCtrl(Reg.IRQCtrl.eventqIrqen) else { return ignoreGuarded(register, "IRQ_CTRL.EVENTQ_IRQEN") }
            eventqIRQ.address = value & msiAddressMask
        case .priqIrqCfg0:
            guard configuration.msi && configuration.pri else { return }
            guard !guardedByIRQCtrl(Reg.IRQCtrl.priqIrqen) else { return ignoreGuarded(register, "IRQ_CTRL.PRIQ_IRQEN") }
            priqIRQ.address = value & msiAddressMask
        case .strtabBase:
            guard !guardedByCR0(Reg.CR0.smmuen) else { return ignoreGuarded(register, "CR0.SMMUEN") }
            // The full ADDR[55:6] is kept: a table beyond OAS gives F_STE_FETCH (§3.4.3).
            strtabBase = value & (Reg.STRTAB.ra.mask | Reg.STRTAB.address.bits.mask)
        case .cmdqBase:
            guard !guardedByCR0(Reg.CR0.cmdqen) else { return ignoreGuarded(register, "CR0.CMDQEN") }
            // Queue addresses beyond OAS are truncated (§3.4.3).
            cmdq.base = value & queueBaseMask
            reportedInconsistentCommandQueue = false
        case .eventqBase:
            guard !guardedByCR0(Reg.CR0.eventqen) else { return ignoreGuarded(register, "CR0.EVENTQEN") }
            eventq.base = value & queueBaseMask
        case .priqBase:
            guard configuration.pri else { return }
            guard !guardedByCR0(Reg.CR0.priqen) else { return ignoreGuarded(register, "CR0.PRIQEN") }
            priq.base = value & queueBaseMask
        default:
            writeRegister32(register, UInt32(truncatingIfNeeded: value))
        }
    }
}
