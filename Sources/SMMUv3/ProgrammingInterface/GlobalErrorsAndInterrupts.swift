import Platform
import SMMUv3Layout
import VMSA

/// One interrupt source's MSI configuration (*_IRQ_CFG0/1/2).
struct IRQConfiguration {
    var address: UInt64 = 0
    var data: UInt32 = 0
    var attributes: UInt32 = 0
}

/// Global errors (§7.5) and interrupt delivery, wired or MSI (§3.18).
extension SMMU {
    // MARK: Global errors and interrupts

    func writeGERRORN(_ value: UInt32) {
        let new = value & Reg.GERROR.implemented
        let activeBefore = gerror ^ gerrorn
        let toggledInactive = (new ^ gerrorn) & ~activeBefore
        if toggledInactive != 0 {
            diagnose(.inactiveErrorToggled(toggledInactive), "GERRORN toggled inactive error bits \(hex(toggledInactive)): CONSTRAINED UNPREDICTABLE, they now read as active")
        }
        gerrorn = new
        let acknowledged = activeBefore & ~(gerror ^ gerrorn)
        if acknowledged != 0 {
            trace.record(.error, "\(configuration.name): GERRORN acknowledges \(describeGlobalErrors(acknowledged))")
        }
        if acknowledged & Reg.GERROR.eventqAbtErr.mask32 != 0 {
            flushPendingStallRecords()
        }
        if acknowledged & Reg.GERROR.cmdqErr.mask32 != 0, commandProcessing == .automatic {
            runCommandQueue()
        }
    }

    /// Spec names of a set of GERROR bits.
    public func describeGlobalErrors(_ bits: UInt32) -> String {
        let names: [(BitField, String)] = [
            (Reg.GERROR.cmdqErr, "CMDQ_ERR"), (Reg.GERROR.eventqAbtErr, "EVENTQ_ABT_ERR"), (Reg.GERROR.priqAbtErr, "PRIQ_ABT_ERR"),
            (Reg.GERROR.msiCmdqAbtErr, "MSI_CMDQ_ABT_ERR"), (Reg.GERROR.msiEventqAbtErr, "MSI_EVENTQ_ABT_ERR"),
            (Reg.GERROR.msiPriqAbtErr, "MSI_PRIQ_ABT_ERR"), (Reg.GERROR.msiGerrorAbtErr, "MSI_GERROR_ABT_ERR"), (Reg.GERROR.sfmErr, "SFM_ERR"),
        ]
        let set = names.filter { $0.0.isSet(bits) }.map(\.1)
        return set.isEmpty ? "none" : set.joined(separator: "|")
    }

    /// Activates a global error (§7.5): toggles GERROR[bit] if the error is not already
    /// active, then raises the GERROR interrupt (except for MSI_GERROR_ABT_ERR).
    func raiseGlobalError(_ bit: BitField) {
        let mask = UInt32(truncatingIfNeeded: bit.mask)
        if errorActive(bit) {
            trace.record(.error, "\(configuration.name): \(describeGlobalErrors(mask)) already active, not logged again")
            return
        }
        gerror ^= mask
        trace.record(.error, "\(configuration.name): GERROR activates \(describeGlobalErrors(mask)) (GERROR=\(hex(gerror)) GERRORN=\(hex(gerrorn)))")
        if bit != Reg.GERROR.msiGerrorAbtErr {
            signalInterrupt(.globalError)
        }
    }

    /// The interrupt sources with register-based configuration.
    enum InterruptSource {
        case eventQueue, priQueue, globalError
    }

    /// An interrupt raised and waiting for the operation that raised it to complete. The MSI
    /// address and data are those configured when it was raised.
    struct PostedInterrupt {
        /// The source name, e.g. `smmu.evtq`.
        let source: String
        /// 0 = no MSI.
        let msiAddress: UInt64
        let msiData: UInt32
        /// The wired line, or -1.
        let line: Int
        /// The GERROR bit an aborted MSI activates.
        let abortBit: BitField
    }

    /// Raises an interrupt if its IRQ_CTRLACK enable is set: an MSI when MSIs are implemented
    /// and the configured address is non-zero, and a pulse on the wired line when wired
    /// outputs exist (§3.18.2). The interrupt is posted: delivered when the current operation
    /// completes (see ``deliverPostedInterrupts()``).
    func signalInterrupt(_ interrupt: InterruptSource) {
        let enable: BitField, msi: IRQConfiguration, line: Int?, abortBit: BitField, name: String
        switch interrupt {
        case .eventQueue:
            (enable, msi, line, abortBit, name) = (Reg.IRQCtrl.eventqIrqen, eventqIRQ, configuration.interruptLines?.eventQueue, Reg.GERROR.msiEventqAbtErr, names.evtq)
        case .priQueue:
            (enable, msi, line, abortBit, name) = (Reg.IRQCtrl.priqIrqen, priqIRQ, configuration.interruptLines?.priQueue, Reg.GERROR.msiPriqAbtErr, names.priq)
        case .globalError:
            (enable, msi, line, abortBit, name) = (Reg.IRQCtrl.gerrorIrqen, gerrorIRQ, configuration.interruptLines?.globalError, Reg.GERROR.msiGerrorAbtErr, names.gerror)
        }
        guard enable.isSet(irqCtrlAck) else {
            trace.record(.interrupt, "\(name): interrupt not signalled (IRQ_CTRLACK enable clear)")
            return
        }
        statistics.interruptsSignalled &+= 1
        postedInterrupts.append(PostedInterrupt(
            source: name, msiAddress: configuration.msi ? msi.address : 0, msiData: msi.data, line: line ?? -1, abortBit: abortBit))
        if operationDepth == 0 { deliverPostedInterrupts() }
    }
}
