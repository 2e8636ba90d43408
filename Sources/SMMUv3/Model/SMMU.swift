import Platform
import SMMUv3Layout
import VMSA

/// A memory-mapped Arm SMMUv3 (IHI 0070), Non-secure programming interface, SMMUv3.2
/// behaviour.
///
/// Create it on a ``Platform/Bus`` at a 64 KB aligned base; it maps its two 64 KB register
/// pages there. Software talks to it only through the bus: register accesses, queue entries
/// in memory, interrupts and MSIs. Tests can additionally inspect state without side effects
/// (``peek(_:)``), step the command queue one command at a time (``stepCommand()``) and
/// read ``diagnostics`` explaining ignored writes and CONSTRAINED UNPREDICTABLE choices.
///
/// The model is single-threaded and deterministic: every effect of a register write happens
/// before the write returns (or after the configured acknowledge latency).
public final class SMMU: MMIODevice {
    /// What this SMMU implements and how the model behaves.
    public let configuration: SMMUConfiguration
    /// The bus it is mapped on and performs DMA through.
    public let bus: Bus
    /// SMMU_BASE.
    public let base: UInt64
    /// The platform trace (the bus's).
    let trace: Trace
    /// The platform interrupt fabric (the bus's).
    let interrupts: InterruptController
    /// The commands this SMMU accepts.
    public let commandFeatures: CommandFeatures

    let idr0: UInt32
    let idr1: UInt32
    let idr3: UInt32
    let idr5: UInt32
    let identification: [UInt32]
    /// Mask of the physical address bits below OAS.
    let oasMask: UInt64
    /// OAS in bits (kept here so hot paths need not touch `configuration`).
    let oasBits: Int
    /// IDR1.SSIDSIZE as reported (0 without stage 1).
    let substreamIDBits: Int
    let names: SourceNames

    // Exclusivity: only the properties the translation, command and event paths touch on
    // every operation skip the dynamic checks (`@exclusivity(unchecked)`: the TLB, CR0ACK,
    // the command and event queue registers, checked mode, the operation depth, posted
    // interrupts and statistics); without it those paths ran 9-50 % more instructions
    // (callgrind). Everything else keeps the checks, which catch a callback or MSI that
    // re-enters the SMMU while one of its properties is being modified.
    var cr0: UInt32 = 0
    @exclusivity(unchecked) var cr0Ack: UInt32 = 0
    var cr1: UInt32 = 0
    var cr2: UInt32 = 0
    var gbpa: UInt32 = 0
    /// The GBPA value in effect for traffic (the last completed update).
    var gbpaEffective: UInt32 = 0
    var irqCtrl: UInt32 = 0
    var irqCtrlAck: UInt32 = 0
    var gerror: UInt32 = 0
    var gerrorn: UInt32 = 0
    var gerrorIRQ = IRQConfiguration()
    var eventqIRQ = IRQConfiguration()
    var priqIRQ = IRQConfiguration()
    var strtabBase: UInt64 = 0
    var strtabBaseCfg: UInt32 = 0
    @exclusivity(unchecked) var cmdq: QueueRegisters
    @exclusivity(unchecked) var eventq: QueueRegisters
    var priq: QueueRegisters

    var cr0ReadsUntilAck = 0
    var irqCtrlReadsUntilAck = 0
    var gbpaReadsUntilDone = 0
    var processingCommands = false
    var reportedInconsistentCommandQueue = false

    /// The TLB (leaf translations, §3.17).
    @exclusivity(unchecked) var tlb: TLB
    /// The STE cache, by StreamID.
    let steCache: SetAssociativeCache<UInt64, CachedSTE>
    /// The CD cache, by StreamID and CD index.
    let cdCache: SetAssociativeCache<UInt64, CachedCD>
    /// The combined configuration cache: resolved stream contexts, by StreamID and SubstreamID
    /// (see ``StreamContext``).
    let streamContexts: StreamContextCache
    /// How commands are consumed (`.automatic` when created): switch to `.stepped`,
    /// after bring-up or before, to walk the queue one command at a time.
    public var commandProcessing = CommandProcessing.automatic
    /// Checked mode: every cache hit is compared with memory, and a difference (a structure or
    /// translation changed without the invalidation that should follow) is reported as a
    /// diagnostic. The cached value is still used, as hardware would. Off after creation.
    @exclusivity(unchecked) public var checkedMode = false
    var stalledTransactions: [StalledTransaction] = []
    var nextSTAG: UInt16 = 0
    /// ATS invalidations sent since the last CMD_SYNC, summarised: what the next CMD_SYNC
    /// must wait for (§3.9.1.4). O(1) however many CMD_ATC_INV are issued.
    var outstandingATCInvalidations = OutstandingATCInvalidations()
    /// The handlers of what the SMMU sends towards its clients (see ``onPRGResponse(_:)``).
    var clientHandlers = ClientHandlers()

    /// Stall event records waiting for the event queue to become writable, oldest first
    /// (§7.2.1: stall records are never discarded while their transaction is stalled). A held
    /// record leaves with its transaction when that is resolved (CMD_RESUME, CMD_STALL_TERM,
    /// SMMUEN 1 -> 0), so there are never more than STALL_MAX of them.
    public internal(set) var pendingStallRecords: [EventRecord] = []
    var flushingStallRecords = false
    var diagnosticLog: BoundedLog<SMMUDiagnostic>
    /// Interrupts raised by the current operation, delivered when it completes.
    @exclusivity(unchecked) var postedInterrupts: [PostedInterrupt] = []
    /// Nesting depth of public operations (MMIO accesses, translations, PRI messages...).
    @exclusivity(unchecked) var operationDepth = 0
    var deliveringInterrupts = false
    /// The stalled transaction whose `translate` has not returned yet (see ``translate(_:)``).
    var unannouncedStall: (streamID: UInt32, stag: UInt16)?
    /// How that transaction was resolved before `translate` could return it as stalled.
    var earlyStallResolution: TransactionOutcome?
    /// Counters.
    @exclusivity(unchecked) public internal(set) var statistics = SMMUStatistics()

    /// Errors creating an SMMU.
    public enum CreationError: Error, CustomStringConvertible {
        /// The configuration breaks an architectural rule.
        case invalidConfiguration(SMMUConfiguration.Invalid)
        /// The register frame cannot be mapped.
        case mapping(Bus.MappingError)
        /// SMMU_BASE is not 64 KB aligned (§6.1).
        case misalignedBase(UInt64)

        public var description: String {
            switch self {
            case .invalidConfiguration(let error): error.description
            case .mapping(let error): error.description
            case .misalignedBase(let base): "SMMU_BASE \(hex(base)) is not 64 KB aligned"
            }
        }
    }

    /// Creates an SMMU in its reset state and maps its register frame (Page 0 and Page 1) on
    /// `bus` at `base`.
    public init(configuration: SMMUConfiguration = .default, bus: Bus, base: UInt64) throws(CreationError) {
        do {
            try configuration.validate()
        } catch {
            throw .invalidConfiguration(error)
        }
        guard base & 0xFFFF == 0 else { throw .misalignedBase(base) }
        self.configuration = configuration
        self.bus = bus
        self.base = base
        self.trace = bus.trace
        self.interrupts = bus.interrupts
        self.commandFeatures = CommandFeatures(configuration)
        idr0 = configuration.idr0
        idr1 = configuration.idr1
        idr3 = configuration.idr3
        idr5 = configuration.idr5
        identification = configuration.identificationRegisters
        oasMask = UInt64.lowBits(configuration.oasBits)
        oasBits = configuration.oasBits
        substreamIDBits = Int(Reg.IDR1.ssidSize.extract(UInt64(configuration.idr1)))
        names = SourceNames(configuration.name)
        cmdq = QueueRegisters(maxLog2: configuration.commandQueueMaxLog2, entryBytes: 16)
        eventq = QueueRegisters(maxLog2: configuration.eventQueueMaxLog2, entryBytes: 32)
        priq = QueueRegisters(maxLog2: configuration.pri ? configuration.priQueueMaxLog2 : 0, entryBytes: 16)
        tlb = TLB(capacity: configuration.tlbCapacity)
        steCache = SetAssociativeCache(capacityLimit: configuration.configurationCacheCapacity)
        cdCache = SetAssociativeCache(capacityLimit: configuration.configurationCacheCapacity)
        streamContexts = StreamContextCache(capacityLimit: configuration.configurationCacheCapacity)
        diagnosticLog = BoundedLog(capacity: configuration.diagnosticsCapacity)
        super.init()
        reset()
        do {
            try bus.map(self, at: base, size: SMMURegister.frameSize)
        } catch {
            throw .mapping(error)
        }
    }

    deinit {
        bus.unmap(self)
    }

    /// Returns the SMMU to its reset state (§6.3: every reset value; UNKNOWN values reset to
    /// zero; GBPA to ``SMMUConfiguration/gbpaResetValue`` with Update clear). Memory, and
    /// therefore queue contents, are untouched; interrupts not yet delivered are lost.
    public func reset() {
        cr0 = 0
        cr0Ack = 0
        cr1 = 0
        cr2 = 0
        gbpa = configuration.gbpaResetValue & Reg.GBPA.fields
        gbpaEffective = gbpa
        irqCtrl = 0
        irqCtrlAck = 0
        gerror = 0
        gerrorn = 0
        gerrorIRQ = IRQConfiguration()
        eventqIRQ = IRQConfiguration()
        priqIRQ = IRQConfiguration()
        strtabBase = 0
        strtabBaseCfg = 0
        cmdq = QueueRegisters(maxLog2: cmdq.maxLog2, entryBytes: 16)
        eventq = QueueRegisters(maxLog2: eventq.maxLog2, entryBytes: 32)
        priq = QueueRegisters(maxLog2: priq.maxLog2, entryBytes: 16)
        cr0ReadsUntilAck = 0
        irqCtrlReadsUntilAck = 0
        gbpaReadsUntilDone = 0
        pendingStallRecords = []
        postedInterrupts = []
        reportedInconsistentCommandQueue = false
        resetTranslationState()
    }

    /// Caches, stalls and pending invalidations return to their reset state (caches reset
    /// empty in the model; §3.11 lets them hold anything, so software must invalidate anyway).
    func resetTranslationState() {
        tlb.flush()
        steCache.removeAll()
        cdCache.removeAll()
        streamContexts.removeAll()
        stalledTransactions.removeAll()
        outstandingATCInvalidations = OutstandingATCInvalidations()
        nextSTAG = 0
    }

    /// Trace and interrupt source names of the sub-units, e.g. `smmu.evtq` (built once).
    struct SourceNames {
        let cmdq: String
        let evtq: String
        let priq: String
        let gerror: String
        let pri: String
        let xlat: String

        init(_ name: String) {
            cmdq = name + ".cmdq"
            evtq = name + ".evtq"
            priq = name + ".priq"
            gerror = name + ".gerror"
            pri = name + ".pri"
            xlat = name + ".xlat"
        }
    }

    func diagnose(_ kind: SMMUDiagnostic.Kind, _ message: @autoclosure () -> String) {
        let text = message()
        diagnosticLog.append(SMMUDiagnostic(time: bus.clock.now, kind: kind, message: text))
        trace.record(.diagnostic, "\(configuration.name): \(text)")
    }

    /// Explanations of ignored writes and CONSTRAINED UNPREDICTABLE choices, oldest first:
    /// the most recent ``SMMUConfiguration/diagnosticsCapacity`` of them.
    public var diagnostics: [SMMUDiagnostic] { diagnosticLog.elements }

    /// Diagnostics dropped from ``diagnostics`` to make room for newer ones.
    public var droppedDiagnostics: Int { diagnosticLog.dropped }

    // MARK: Operations and posted interrupts

    /// Starts a public operation (an MMIO access, a translation, a PRI message...).
    @inline(__always)
    func beginOperation() {
        operationDepth &+= 1
    }

    /// Ends a public operation; the outermost one delivers the interrupts it raised.
    @inline(__always)
    func endOperation() {
        operationDepth &-= 1
        if operationDepth == 0 && !postedInterrupts.isEmpty { deliverPostedInterrupts() }
    }

    /// Delivers posted interrupts, in the order they were raised: the MSI (an ordinary write
    /// that may land anywhere, the SMMU's own registers included) then the wired pulse.
    /// Whatever those writes cause may raise more interrupts; they are delivered in further
    /// rounds, at most ``deliveryRoundLimit`` per operation, so that a configuration in which
    /// interrupts feed themselves (a GERROR MSI aimed at SMMU_GERRORN acknowledging the
    /// command queue error it reports, say) cannot hang the caller: what is left is delivered
    /// when the next operation completes.
    func deliverPostedInterrupts() {
        guard !deliveringInterrupts else { return }
        deliveringInterrupts = true
        defer { deliveringInterrupts = false }
        var rounds = 0
        while !postedInterrupts.isEmpty && rounds < SMMU.deliveryRoundLimit {
            rounds += 1
            let batch = postedInterrupts
            postedInterrupts.removeAll(keepingCapacity: true)
            for interrupt in batch {
                if interrupt.msiAddress != 0 {
                    if bus.deliverMSI(address: interrupt.msiAddress, data: interrupt.msiData, source: interrupt.source) == .aborted {
                        raiseGlobalError(interrupt.abortBit)
                    }
                }
                if interrupt.line >= 0 {
                    interrupts.pulse(line: interrupt.line, source: interrupt.source)
                }
            }
        }
    }

    /// The most rounds of interrupt delivery one operation performs.
    static let deliveryRoundLimit = 64

    /// Interrupts raised and not yet delivered.
    public var undeliveredInterrupts: Int { postedInterrupts.count }

    // MARK: State queries

    /// Whether the error in GERROR `bit` is active (GERROR and GERRORN differ, §7.5).
    @inline(__always)
    func errorActive(_ bit: BitField) -> Bool {
        (gerror ^ gerrorn) & UInt32(truncatingIfNeeded: bit.mask) != 0
    }

    /// The GERROR bits currently active.
    public var activeGlobalErrors: UInt32 { gerror ^ gerrorn }

    /// Whether the SMMU is enabled (CR0ACK.SMMUEN).
    public var isEnabled: Bool { Reg.CR0.smmuen.isSet(cr0Ack) }

    /// The effective PRIQEN: CR0ACK.PRIQEN && CR0ACK.SMMUEN (§6.3.9.5).
    var priQueueEffectivelyEnabled: Bool { Reg.CR0.priqen.isSet(cr0Ack) && Reg.CR0.smmuen.isSet(cr0Ack) }

    /// Whether an enable bit of CR0 is set in CR0 or not yet acknowledged clear in CR0ACK:
    /// the guard rule "RW when CR0.X == 0 and CR0ACK.X == 0" (§6.3.9).
    @inline(__always)
    func guardedByCR0(_ field: BitField) -> Bool { field.isSet(cr0) || field.isSet(cr0Ack) }

    /// The same rule for IRQ_CTRL/IRQ_CTRLACK (§6.3.16).
    @inline(__always)
    func guardedByIRQCtrl(_ field: BitField) -> Bool { field.isSet(irqCtrl) || field.isSet(irqCtrlAck) }

    /// Completes every update still waiting for its acknowledge latency.
    public func settle() {
        beginOperation()
        defer { endOperation() }
        if cr0 != cr0Ack { completeCR0Update() }
        if irqCtrl != irqCtrlAck { completeIRQCtrlUpdate() }
        if Reg.GBPA.update.isSet(gbpa) { completeGBPAUpdate() }
    }

    // MARK: MMIO

    public override var deviceName: String { configuration.name }

    public override func registerName(offset: UInt64) -> String? {
        guard let (register, upper) = SMMURegister.at(offset: resolvedOffset(offset)) else {
            if (SMMURegister.identificationBase...0xFFC).contains(offset) { return "ID_REGS" }
            return nil
        }
        return register.name + (upper ? ".hi" : "")
    }

    /// Applies the Page 0 alias rule for 0xA8/0xAC/0xC8/0xCC (§6.2.1).
    @inline(__always)
    func resolvedOffset(_ offset: UInt64) -> UInt64 {
        switch offset {
        case 0xA8, 0xAC, 0xC8, 0xCC:
            configuration.page0AliasesPage1Registers ? offset + SMMURegister.page1 : .max
        default:
            offset
        }
    }

    public override func mmioRead(offset: UInt64, size: Int) -> UInt64 {
        beginOperation()
        defer { endOperation() }
        switch size {
        case 4 where offset & 3 == 0:
            return UInt64(read32(offset))
        case 8 where offset & 7 == 0:
            if let (register, upper) = SMMURegister.at(offset: resolvedOffset(offset)), register.is64Bit, !upper {
                return registerValue(register, observing: true)
            }
            // A 64-bit access to a pair of 32-bit registers is CONSTRAINED UNPREDICTABLE
            // (§6.2); the model performs two 32-bit accesses, low word first.
            let low = UInt64(read32(offset))
            return low | UInt64(read32(offset + 4)) << 32
        default:
            diagnose(.illegalAccess(offset: offset, size: size), "\(size * 8)-bit read at \(hex(offset)) is not a supported access: RAZ")
            return 0
        }
    }

    public override func mmioWrite(offset: UInt64, value: UInt64, size: Int) {
        beginOperation()
        defer { endOperation() }
        switch size {
        case 4 where offset & 3 == 0:
            write32(offset, UInt32(truncatingIfNeeded: value))
        case 8 where offset & 7 == 0:
            if let (register, upper) = SMMURegister.at(offset: resolvedOffset(offset)), register.is64Bit, !upper {
                writeRegister64(register, value)
                return
            }
            // See mmioRead: split into two 32-bit writes, low word first.
            write32(offset, UInt32(truncatingIfNeeded: value))
            write32(offset + 4, UInt32(truncatingIfNeeded: value >> 32))
        default:
            diagnose(.illegalAccess(offset: offset, size: size), "\(size * 8)-bit write at \(hex(offset)) is not a supported access: ignored")
        }
    }
}

extension SMMU {
    /// How the command processor is driven.
    public enum CommandProcessing: Sendable, Hashable {
        /// A write to CMDQ_PROD (or anything that unblocks the queue) consumes every available
        /// command before the write returns: what hardware looks like to software.
        case automatic
        /// Nothing is consumed until ``SMMU/stepCommand()`` or ``SMMU/runCommandQueue()``
        /// is called: for walking the queue entry by entry.
        case stepped
    }
}
