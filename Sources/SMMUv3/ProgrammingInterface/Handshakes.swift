import Platform
import SMMUv3Layout
import VMSA

/// The update handshakes (§6.3.9–§6.3.11, §6.3.14, §6.3.16, §6.3.18): CR0/CR0ACK, CR1,
/// GBPA.Update and IRQ_CTRL/IRQ_CTRLACK.
extension SMMU {
    // MARK: CR0, CR1, GBPA, IRQ_CTRL

    private var cr0Writable: UInt32 {
        var mask = Reg.CR0.smmuen.mask32 | Reg.CR0.eventqen.mask32 | Reg.CR0.cmdqen.mask32
        if configuration.pri { mask |= Reg.CR0.priqen.mask32 }
        if configuration.ats { mask |= Reg.CR0.atschk.mask32 }
        return mask
    }

    func writeCR0(_ value: UInt32) {
        var new = value & cr0Writable
        let inProgress = cr0 ^ cr0Ack
        if inProgress & (new ^ cr0) != 0 {
            // §6.3.9: changing a field again before its update completes is CONSTRAINED
            // UNPREDICTABLE; SMMUv3.2 may ignore the new value, which the model does.
            diagnose(.updateInProgress(.cr0), "CR0 field rewritten before CR0ACK acknowledged it: new value ignored for \(hex(inProgress & (new ^ cr0)))")
            new = (new & ~inProgress) | (cr0 & inProgress)
        }
        let wasPending = inProgress != 0
        cr0 = new
        trace.record(.control, "\(configuration.name): CR0 <- \(describeCR0(new))")
        guard cr0 != cr0Ack else { return }
        if configuration.acknowledgeLatency == 0 {
            completeCR0Update()
        } else if !wasPending {
            cr0ReadsUntilAck = configuration.acknowledgeLatency
        }
    }

    func describeCR0(_ value: UInt32) -> String {
        let names: [(BitField, String)] = [(Reg.CR0.smmuen, "SMMUEN"), (Reg.CR0.priqen, "PRIQEN"), (Reg.CR0.eventqen, "EVENTQEN"), (Reg.CR0.cmdqen, "CMDQEN"), (Reg.CR0.atschk, "ATSCHK")]
        let set = names.filter { $0.0.isSet(value) }.map(\.1)
        return set.isEmpty ? "0" : set.joined(separator: "|")
    }

    /// Completes a CR0 update: CR0ACK takes CR0's value and the side effects of each changed
    /// enable happen (§6.3.9.3–§6.3.9.6).
    func completeCR0Update() {
        let old = cr0Ack
        cr0Ack = cr0
        cr0ReadsUntilAck = 0
        trace.record(.control, "\(configuration.name): CR0ACK = \(describeCR0(cr0Ack))")
        let changed = old ^ cr0Ack
        if Reg.CR0.smmuen.isSet(changed) && !Reg.CR0.smmuen.isSet(cr0Ack) {
            smmuDisabled()
        }
        if Reg.CR0.eventqen.isSet(changed) && Reg.CR0.eventqen.isSet(cr0Ack) {
            flushPendingStallRecords()
        }
        if commandProcessing == .automatic && Reg.CR0.cmdqen.isSet(cr0Ack) {
            runCommandQueue()
        }
    }

    /// SMMUEN 1 -> 0 side effects (§6.3.9.6): stalled transactions are aborted (their STAGs
    /// recycled); the effective PRIQEN becomes 0. No cache is invalidated.
    func smmuDisabled() {
        abortAllStalledTransactions()
    }

    func writeCR1(_ value: UInt32) {
        var new = value & Reg.CR1.defined
        var ignored: [String] = []
        if guardedByCR0(Reg.CR0.smmuen) && (new ^ cr1) & Reg.CR1.tableFields != 0 {
            new = (new & ~Reg.CR1.tableFields) | (cr1 & Reg.CR1.tableFields)
            ignored.append("TABLE_* (guarded by CR0.SMMUEN)")
        }
        let queueGuard = guardedByCR0(Reg.CR0.cmdqen) || guardedByCR0(Reg.CR0.eventqen) || guardedByCR0(Reg.CR0.priqen)
        if queueGuard && (new ^ cr1) & Reg.CR1.queueFields != 0 {
            new = (new & ~Reg.CR1.queueFields) | (cr1 & Reg.CR1.queueFields)
            ignored.append("QUEUE_* (guarded by the queue enables)")
        }
        if !ignored.isEmpty {
            diagnose(.guardedWriteIgnored(.cr1), "write to CR1 ignored for \(ignored.joined(separator: " and "))")
        }
        cr1 = new
    }

    func writeGBPA(_ value: UInt32) {
        if Reg.GBPA.update.isSet(gbpa) {
            diagnose(.gbpaWriteIgnored, "GBPA write ignored: an update is still in progress (Update == 1)")
            return
        }
        guard Reg.GBPA.update.isSet(value) else {
            diagnose(.gbpaWriteIgnored, "GBPA write without Update == 1 ignored (§6.3.14)")
            return
        }
        var fields = value & Reg.GBPA.fields
        if !configuration.attributeOverrides { fields &= Reg.GBPA.abort.mask32 }
        gbpa = fields | Reg.GBPA.update.mask32
        trace.record(.control, "\(configuration.name): GBPA <- \(hex(gbpa, digits: 8)) (update requested)")
        if configuration.acknowledgeLatency == 0 {
            completeGBPAUpdate()
        } else {
            gbpaReadsUntilDone = configuration.acknowledgeLatency
        }
    }

    func completeGBPAUpdate() {
        gbpa &= ~Reg.GBPA.update.mask32
        gbpaEffective = gbpa
        gbpaReadsUntilDone = 0
        trace.record(.control, "\(configuration.name): GBPA update done, \(Reg.GBPA.abort.isSet(gbpa) ? "abort" : "bypass")")
    }

    func writeIRQCtrl(_ value: UInt32) {
        var writable = Reg.IRQCtrl.gerrorIrqen.mask32 | Reg.IRQCtrl.eventqIrqen.mask32
        if configuration.pri { writable |= Reg.IRQCtrl.priqIrqen.mask32 }
        var new = value & writable
        let inProgress = irqCtrl ^ irqCtrlAck
        if inProgress & (new ^ irqCtrl) != 0 {
            diagnose(.updateInProgress(.irqCtrl), "IRQ_CTRL field rewritten before IRQ_CTRLACK acknowledged it: new value ignored")
            new = (new & ~inProgress) | (irqCtrl & inProgress)
        }
        let wasPending = inProgress != 0
        irqCtrl = new
        trace.record(.control, "\(configuration.name): IRQ_CTRL <- \(hex(new))")
        guard irqCtrl != irqCtrlAck else { return }
        if configuration.acknowledgeLatency == 0 {
            completeIRQCtrlUpdate()
        } else if !wasPending {
            irqCtrlReadsUntilAck = configuration.acknowledgeLatency
        }
    }

    func completeIRQCtrlUpdate() {
        irqCtrlAck = irqCtrl
        irqCtrlReadsUntilAck = 0
        trace.record(.control, "\(configuration.name): IRQ_CTRLACK = \(hex(irqCtrlAck))")
    }
}
