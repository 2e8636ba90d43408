import Platform
import SMMUv3Layout
import VMSA

/// Command queue error codes reported in CMDQ_CONS.ERR (§7.1).
public enum CommandError: UInt8, Error, Sendable, Hashable, CustomStringConvertible {
    /// CERROR_ILL: an ILLEGAL command.
    case illegal = 0x01
    /// CERROR_ABT: an external abort fetching the command.
    case abort = 0x02
    /// CERROR_ATC_INV_SYNC: a CMD_SYNC found an ATC invalidation that did not complete.
    case atcInvalidationSync = 0x03

    public var description: String {
        switch self {
        case .illegal: "CERROR_ILL"
        case .abort: "CERROR_ABT"
        case .atcInvalidationSync: "CERROR_ATC_INV_SYNC"
        }
    }
}

/// Why a consumed command had no effect.
public enum NoEffectReason: Hashable, Sendable, CustomStringConvertible {
    /// Prefetch commands are hints; the model does not prefetch (§4.2 permits doing nothing).
    case prefetchHint
    /// SMMUEN == 0: the command is consumed and IGNORED (§6.3.9.6).
    case smmuDisabled
    /// No endpoint implementing ATS is attached to the StreamID.
    case noATSEndpoint
    /// No stalled transaction matches the StreamID (and STAG).
    case noStalledTransaction
    /// The StreamID or SubstreamID parameter is out of range (§4.1.7: no effect).
    case outOfRange

    public var description: String {
        switch self {
        case .prefetchHint: "prefetch hint, nothing prefetched"
        case .smmuDisabled: "ignored: SMMUEN == 0"
        case .noATSEndpoint: "no ATS endpoint for this StreamID"
        case .noStalledTransaction: "no matching stalled transaction"
        case .outOfRange: "parameter out of range: no effect"
        }
    }
}

/// What a consumed command did.
public enum CommandEffect: Hashable, Sendable, CustomStringConvertible {
    /// Consumed without effect.
    case noEffect(NoEffectReason)
    /// A configuration or TLB invalidation removed `entries` cached entries.
    case invalidated(entries: Int)
    /// ATS invalidation requests were sent to `endpoints` endpoints.
    case atcInvalidationSent(endpoints: Int)
    /// A PRG Response was sent.
    case prgResponseSent(PRGResponse)
    /// Stalled transactions were resumed or terminated.
    case stallsResolved(count: Int)
    /// CMD_SYNC completed and signalled as requested (`msi` is nil when no MSI was sent).
    case syncCompleted(SyncCompletion, msi: MSIOutcome?)

    public var description: String {
        switch self {
        case .noEffect(let reason): reason.description
        case .invalidated(let entries): "invalidated \(entries) cached entr\(entries == 1 ? "y" : "ies")"
        case .atcInvalidationSent(let endpoints): "ATS invalidation sent to \(endpoints) endpoint(s)"
        case .prgResponseSent(let response): "sent \(response)"
        case .stallsResolved(let count): "\(count) stalled transaction(s) resolved"
        case .syncCompleted(let completion, let msi):
            "completed, \(completion)" + (msi.map { ", MSI \($0)" } ?? "")
        }
    }
}

/// Why a command stopped the queue.
public enum CommandFailure: Error, Hashable, Sendable, CustomStringConvertible {
    /// CERROR_ILL.
    case illegal(IllegalCommandReason)
    /// CERROR_ABT: the fetch at `address` got an external abort.
    case fetchAbort(address: UInt64)
    /// CERROR_ATC_INV_SYNC: a CMD_SYNC found ATC invalidations that did not complete.
    case atcInvalidationTimeout

    /// The CMDQ_CONS.ERR code.
    public var error: CommandError {
        switch self {
        case .illegal: .illegal
        case .fetchAbort: .abort
        case .atcInvalidationTimeout: .atcInvalidationSync
        }
    }

    public var description: String {
        switch self {
        case .illegal(let reason): "\(CommandError.illegal): \(reason)"
        case .fetchAbort(let address): "\(CommandError.abort): external abort fetching the command at \(hex(address))"
        case .atcInvalidationTimeout: "\(CommandError.atcInvalidationSync): CMD_SYNC found incomplete ATC invalidations"
        }
    }
}

/// The outcome of processing one command queue entry.
public enum CommandOutcome: Hashable, Sendable, CustomStringConvertible {
    /// The command was consumed (CONS moved past it).
    case consumed(CommandEffect)
    /// The command raised a command queue error: CONS stays on it, CMDQ_CONS.ERR holds the
    /// code and GERROR.CMDQ_ERR is active.
    case error(CommandFailure)

    public var description: String {
        switch self {
        case .consumed(let effect): effect.description
        case .error(let failure): failure.description
        }
    }
}

/// One step of the command processor: which entry it processed and what happened.
public struct CommandStep: Hashable, Sendable, CustomStringConvertible {
    /// CMDQ_CONS (index and wrap) of the entry.
    public let consumerIndex: UInt32
    /// The physical address the entry was fetched from.
    public let address: UInt64
    /// The raw entry, or nil when the fetch aborted.
    public let entry: CommandEntry?
    /// The decoded command, or nil when the entry was ILLEGAL or not fetched.
    public let command: Command?
    /// What happened.
    public let outcome: CommandOutcome

    public var description: String {
        let what = command?.description ?? entry?.description ?? "<fetch aborted>"
        return "[\(consumerIndex)] \(what): \(outcome)"
    }
}

/// Why the command processor cannot make progress, or how many commands are waiting.
public enum CommandQueueStatus: Hashable, Sendable {
    /// CMDQEN (acknowledged) is 0.
    case disabled
    /// GERROR.CMDQ_ERR is active.
    case error(CommandError?)
    /// CONS equals PROD.
    case empty
    /// PROD and CONS are inconsistent (§3.5.1); the model consumes nothing until software
    /// makes them consistent.
    case inconsistent
    /// `count` commands are ready to be consumed.
    case ready(count: Int)
}

extension SMMU {
    /// The state of the command queue as the command processor sees it.
    public var commandQueueStatus: CommandQueueStatus {
        if !Reg.CR0.cmdqen.isSet(cr0Ack) { return .disabled }
        if errorActive(Reg.GERROR.cmdqErr) {
            return .error(CommandError(rawValue: UInt8(Reg.Queue.consErr.extract(UInt64(cmdq.cons)))))
        }
        if cmdq.isEmpty { return .empty }
        if !cmdq.isConsistent { return .inconsistent }
        return .ready(count: Int(cmdq.geometry.count(prod: cmdq.prod, cons: cmdq.cons)))
    }

    /// Consumes commands until the queue is empty, disabled or stopped by an error, and
    /// returns the steps taken. In automatic mode this runs on every write that can unblock
    /// the queue; in stepped mode call it (or ``stepCommand()``) explicitly.
    @discardableResult
    public func runCommandQueue() -> [CommandStep] {
        guard !processingCommands else { return [] }
        beginOperation()
        defer { endOperation() }
        processingCommands = true
        defer { processingCommands = false }
        var steps: [CommandStep] = []
        if commandProcessing == .stepped {
            while let step = processOneCommand() {
                steps.append(step)
                deliverCommand(step)
            }
        } else {
            while let step = processOneCommand() {
                if !clientHandlers.command.isEmpty { deliverCommand(step) }
            }
        }
        return steps
    }

    /// Executes exactly one command and returns what it was and what it did, or nil when
    /// nothing can be consumed (see ``commandQueueStatus``). A breakpoint in the
    /// `execute*` function of a command stops on it.
    @discardableResult
    public func stepCommand() -> CommandStep? {
        guard !processingCommands else { return nil }
        beginOperation()
        defer { endOperation() }
        processingCommands = true
        defer { processingCommands = false }
        guard let step = processOneCommand() else { return nil }
        if !clientHandlers.command.isEmpty { deliverCommand(step) }
        return step
    }

    private func processOneCommand() -> CommandStep? {
        guard Reg.CR0.cmdqen.isSet(cr0Ack), !errorActive(Reg.GERROR.cmdqErr) else { return nil }
        let geometry = cmdq.geometry
        let cons = cmdq.consPointer
        if cmdq.isEmpty { return nil }
        if !cmdq.isConsistent {
            if !reportedInconsistentCommandQueue {
                reportedInconsistentCommandQueue = true
                diagnose(.inconsistentQueue(.command), "command queue PROD \(geometry.describe(cmdq.prodPointer)) and CONS \(geometry.describe(cons)) are inconsistent: not consuming (§3.5.1)")
            }
            return nil
        }
        let wasFull = cmdq.isFull
        let address = cmdq.slotAddress(cons)
        guard let (dw0, dw1) = bus.dmaRead128(at: address) else {
            return fail(.fetchAbort(address: address), at: cons, address: address, entry: nil, command: nil)
        }
        let entry = CommandEntry(dw0: dw0, dw1: dw1)
        let command: Command
        switch Command.decode(entry, features: commandFeatures) {
        case .success(let decoded):
            command = decoded
        case .failure(let illegal):
            return fail(.illegal(illegal.reason), at: cons, address: address, entry: entry, command: nil)
        }

        let effect: CommandEffect
        switch execute(command) {
        case .success(let result):
            effect = result
        case .failure(let failure):
            return fail(failure, at: cons, address: address, entry: entry, command: command)
        }

        cmdq.cons = (cmdq.cons & ~geometry.pointerMask) | geometry.increment(cons)
        statistics.commandsConsumed &+= 1
        trace.record(.queue, "\(names.cmdq): CONS -> \(geometry.describe(cmdq.consPointer))")
        var finalEffect = effect
        if command.opcode == .sync {
            // Completion is signalled only once CONS has passed the CMD_SYNC (§4.7.3).
            finalEffect = signalSyncCompletion(command.sync)
        }
        trace.record(.command, "\(names.cmdq): [\(geometry.describe(cons))] \(command) -> \(finalEffect)")
        if wasFull && configuration.sev {
            // §4.1.2: a WFE wake-up when a previously full command queue becomes non-full.
            interrupts.sendEvent(source: names.cmdq)
        }
        return CommandStep(consumerIndex: cons, address: address, entry: entry, command: command, outcome: .consumed(finalEffect))
    }

    /// Stops the queue on the command at `cons` with `error` (§7.1): CMDQ_CONS.ERR is
    /// written first, then GERROR.CMDQ_ERR activates.
    private func fail(_ failure: CommandFailure, at cons: UInt32, address: UInt64, entry: CommandEntry?, command: Command?) -> CommandStep {
        cmdq.cons = Reg.Queue.consErr.inserting(UInt32(failure.error.rawValue), into: cmdq.cons)
        statistics.commandErrors &+= 1
        let what = command?.description ?? entry?.description ?? "<fetch aborted>"
        trace.record(.command, "\(names.cmdq): [\(cmdq.geometry.describe(cons))] \(what) -> \(failure)")
        raiseGlobalError(Reg.GERROR.cmdqErr)
        return CommandStep(consumerIndex: cons, address: address, entry: entry, command: command, outcome: .error(failure))
    }

    /// Dispatches one decoded command to its `execute…` function: the executor column of
    /// ``CommandFormat/all``, one line per opcode.
    private func execute(_ command: Command) -> Result<CommandEffect, CommandFailure> {
        switch command.opcode {
        case .prefetchConfig: .success(executePrefetchConfig(command))
        case .prefetchAddress: .success(executePrefetchAddress(command))
        case .cfgiSTE: .success(executeCFGISTE(command))
        case .cfgiSTERange: .success(command.isCFGIAll ? executeCFGIAll(command) : executeCFGISTERange(command))
        case .cfgiCD: .success(executeCFGICD(command))
        case .cfgiCDAll: .success(executeCFGICDAll(command))
        case .tlbiNHAll: .success(executeTLBINHAll(command))
        case .tlbiNHASID: .success(executeTLBINHASID(command))
        case .tlbiNHVA: .success(executeTLBINHVA(command))
        case .tlbiNHVAA: .success(executeTLBINHVAA(command))
        case .tlbiEL2All: .success(executeTLBIEL2All(command))
        case .tlbiEL2ASID: .success(executeTLBIEL2ASID(command))
        case .tlbiEL2VA: .success(executeTLBIEL2VA(command))
        case .tlbiEL2VAA: .success(executeTLBIEL2VAA(command))
        case .tlbiS12VMAll: .success(executeTLBIS12VMAll(command))
        case .tlbiS2IPA: .success(executeTLBIS2IPA(command))
        case .tlbiNSNHAll: .success(executeTLBINSNHAll(command))
        case .atcInv: .success(executeATCInv(command))
        case .priResp: .success(executePRIResp(command))
        case .resume: .success(executeResume(command))
        case .stallTerm: .success(executeStallTerm(command))
        case .sync: executeSync(command)
        // The decoder never lets these through (Secure queue only, or not modelled).
        case .tlbiEL3All, .tlbiEL3VA, .tlbiSEL2All, .tlbiSEL2ASID, .tlbiSEL2VA, .tlbiSEL2VAA, .tlbiSS12VMAll, .tlbiSS2IPA, .tlbiSNHAll:
            .failure(.illegal(.notOnThisQueue))
        case .cfgiVMSPIDM, .dptiAll, .dptiPA:
            .failure(.illegal(.reservedOpcode))
        }
    }

    // MARK: One function per command (§4.2–§4.7; the TLBI ones are in Caches/TLBInvalidation.swift)

    /// CMD_PREFETCH_CONFIG (§4.2.1).
    func executePrefetchConfig(_ command: Command) -> CommandEffect {
        .noEffect(isEnabled ? .prefetchHint : .smmuDisabled)
    }

    /// CMD_PREFETCH_ADDR (§4.2.2).
    func executePrefetchAddress(_ command: Command) -> CommandEffect {
        .noEffect(isEnabled ? .prefetchHint : .smmuDisabled)
    }

    /// CMD_CFGI_STE (§4.3.1).
    func executeCFGISTE(_ command: Command) -> CommandEffect {
        .invalidated(entries: invalidateConfiguration(streamIDs: command.streamID...command.streamID, includeL1: !command.leaf))
    }

    /// CMD_CFGI_STE_RANGE (§4.3.2): 2^(Range+1) StreamIDs, aligned.
    func executeCFGISTERange(_ command: Command) -> CommandEffect {
        let span = UInt64(1) << (UInt64(command.range) + 1)
        let first = UInt64(command.streamID) & ~(span - 1)
        let last = min(first + span - 1, UInt64(UInt32.max))
        return .invalidated(entries: invalidateConfiguration(streamIDs: UInt32(first)...UInt32(last), includeL1: true))
    }

    /// CMD_CFGI_ALL (§4.3.6): CMD_CFGI_STE_RANGE with Range == 31.
    func executeCFGIAll(_ command: Command) -> CommandEffect {
        .invalidated(entries: invalidateConfiguration(streamIDs: 0...UInt32.max, includeL1: true))
    }

    /// CMD_CFGI_CD (§4.3.3).
    func executeCFGICD(_ command: Command) -> CommandEffect {
        .invalidated(entries: invalidateContextDescriptors(streamID: command.streamID, substreamID: command.substreamID ?? 0, includeL1: !command.leaf))
    }

    /// CMD_CFGI_CD_ALL (§4.3.4).
    func executeCFGICDAll(_ command: Command) -> CommandEffect {
        .invalidated(entries: invalidateContextDescriptors(streamID: command.streamID, substreamID: nil, includeL1: true))
    }

    /// CMD_ATC_INV (§4.5.1): IGNORED when SMMUEN == 0.
    func executeATCInv(_ command: Command) -> CommandEffect {
        guard isEnabled else { return .noEffect(.smmuDisabled) }
        return sendATCInvalidation(streamID: command.streamID, substreamID: command.substreamID, global: command.global, address: command.address, size: command.size)
    }

    /// CMD_PRI_RESP (§4.5.2): IGNORED when SMMUEN == 0. With SSIDSIZE == 0 the SSV
    /// parameter behaves as 0.
    func executePRIResp(_ command: Command) -> CommandEffect {
        guard isEnabled else { return .noEffect(.smmuDisabled) }
        let pasid = substreamIDBits == 0 ? nil : command.substreamID
        let message = PRGResponse(streamID: command.streamID, substreamID: pasid, prgIndex: command.prgIndex, code: PRGResponseCode(command.response), automatic: false)
        sendPRGResponse(message)
        return .prgResponseSent(message)
    }

    /// CMD_RESUME (§4.7.1).
    func executeResume(_ command: Command) -> CommandEffect {
        resumeStalledTransaction(streamID: command.streamID, stag: command.stag, action: command.action)
    }

    /// CMD_STALL_TERM (§4.7.2).
    func executeStallTerm(_ command: Command) -> CommandEffect {
        terminateStalledTransactions(streamID: command.streamID)
    }

    /// CMD_SYNC (§4.7.3): completes once every earlier command has completed. All earlier
    /// commands complete when consumed in this model except ATC invalidations, whose
    /// completion is checked here.
    func executeSync(_ command: Command) -> Result<CommandEffect, CommandFailure> {
        guard atcInvalidationsComplete() else { return .failure(.atcInvalidationTimeout) }
        return .success(.syncCompleted(.none, msi: nil))
    }

    /// Signals a consumed CMD_SYNC as its CS field asks (§4.7.3): SIG_IRQ sends an MSI when
    /// MSIs are implemented and MSIAddress != 0 (an abort sets MSI_CMDQ_ABT_ERR) and pulses
    /// the wired CMD_SYNC line; SIG_SEV sends a wake-up when IDR0.SEV == 1.
    func signalSyncCompletion(_ parameters: SyncParameters) -> CommandEffect {
        switch parameters.completion {
        case .none:
            return .syncCompleted(.none, msi: nil)
        case .irq:
            var outcome: MSIOutcome?
            let address = parameters.msiAddress & oasMask
            if configuration.msi && address != 0 {
                let result = bus.deliverMSI(address: address, data: parameters.msiData, source: names.cmdq)
                if result == .aborted { raiseGlobalError(Reg.GERROR.msiCmdqAbtErr) }
                outcome = result
            }
            if let lines = configuration.interruptLines {
                interrupts.pulse(line: lines.commandSync, source: names.cmdq)
            }
            return .syncCompleted(.irq, msi: outcome)
        case .sev:
            guard configuration.sev else { return .syncCompleted(.none, msi: nil) }
            interrupts.sendEvent(source: names.cmdq)
            return .syncCompleted(.sev, msi: nil)
        }
    }

    /// Sends a PRG Response to the endpoint behind `response.streamID`.
    func sendPRGResponse(_ response: PRGResponse) {
        trace.record(.pri, "\(names.pri): \(response)")
        deliver(response)
    }
}
