import Platform
import SMMUv3Layout
import VMSA

/// The registers of one of the three queues: base, producer and consumer pointers.
struct QueueRegisters {
    /// *_BASE as stored (RA/WA, ADDR truncated to OAS, LOG2SIZE as written).
    var base: UInt64 = 0
    /// PROD as stored (index field and, for output queues, OVFLG).
    var prod: UInt32 = 0
    /// CONS as stored (index field and OVACKFLG, or CMDQ_CONS.ERR).
    var cons: UInt32 = 0
    /// IDR1 maximum log2 size.
    let maxLog2: Int
    /// Entry size in bytes.
    let entryBytes: UInt64

    init(maxLog2: Int, entryBytes: UInt64) {
        self.maxLog2 = maxLog2
        self.entryBytes = entryBytes
    }

    /// The effective LOG2SIZE: the written value capped by IDR1 (§6.3.26).
    @inline(__always) var log2Size: Int { min(Int(Reg.Queue.log2Size.extract(base)), maxLog2) }
    /// Index arithmetic at the effective size.
    @inline(__always) var geometry: QueueIndex { QueueIndex(log2Size: log2Size) }
    /// The effective base: ADDR aligned down to the larger of the queue size and 32 bytes.
    @inline(__always) var baseAddress: UInt64 {
        let bytes = max(entryBytes << UInt64(log2Size), 32)
        return Reg.Queue.address.extract(base) & ~(bytes &- 1)
    }
    /// The address of the slot a pointer designates.
    @inline(__always) func slotAddress(_ pointer: UInt32) -> UInt64 {
        baseAddress &+ UInt64(geometry.index(pointer)) &* entryBytes
    }
    /// PROD's index and wrap bits.
    @inline(__always) var prodPointer: UInt32 { prod & geometry.pointerMask }
    /// CONS's index and wrap bits.
    @inline(__always) var consPointer: UInt32 { cons & geometry.pointerMask }
    /// Whether the queue holds no entries.
    @inline(__always) var isEmpty: Bool { geometry.isEmpty(prod: prod, cons: cons) }
    /// Whether every slot is occupied.
    @inline(__always) var isFull: Bool { geometry.isFull(prod: prod, cons: cons) }
    /// Whether PROD and CONS describe a legal state.
    @inline(__always) var isConsistent: Bool { geometry.isConsistent(prod: prod, cons: cons) }
}

/// One interrupt source's MSI configuration (*_IRQ_CFG0/1/2).
struct IRQConfiguration {
    var address: UInt64 = 0
    var data: UInt32 = 0
    var attributes: UInt32 = 0
}

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

    @exclusivity(unchecked) var cr0: UInt32 = 0
    @exclusivity(unchecked) var cr0ack: UInt32 = 0
    @exclusivity(unchecked) var cr1: UInt32 = 0
    @exclusivity(unchecked) var cr2: UInt32 = 0
    @exclusivity(unchecked) var gbpa: UInt32 = 0
    /// The GBPA value in effect for traffic (the last completed update).
    @exclusivity(unchecked) var gbpaEffective: UInt32 = 0
    @exclusivity(unchecked) var irqCtrl: UInt32 = 0
    @exclusivity(unchecked) var irqCtrlAck: UInt32 = 0
    @exclusivity(unchecked) var gerror: UInt32 = 0
    @exclusivity(unchecked) var gerrorn: UInt32 = 0
    @exclusivity(unchecked) var gerrorIRQ = IRQConfiguration()
    @exclusivity(unchecked) var eventqIRQ = IRQConfiguration()
    @exclusivity(unchecked) var priqIRQ = IRQConfiguration()
    @exclusivity(unchecked) var strtabBase: UInt64 = 0
    @exclusivity(unchecked) var strtabBaseCfg: UInt32 = 0
    @exclusivity(unchecked) var cmdq: QueueRegisters
    @exclusivity(unchecked) var eventq: QueueRegisters
    @exclusivity(unchecked) var priq: QueueRegisters

    @exclusivity(unchecked) var cr0ReadsUntilAck = 0
    @exclusivity(unchecked) var irqCtrlReadsUntilAck = 0
    @exclusivity(unchecked) var gbpaReadsUntilDone = 0
    @exclusivity(unchecked) var processingCommands = false
    @exclusivity(unchecked) var reportedInconsistentCommandQueue = false

    /// The TLB (leaf translations, §3.17).
    @exclusivity(unchecked) var tlb: TLB
    /// The STE cache, by StreamID.
    let steCache: SetAssociativeCache<UInt64, CachedSTE>
    /// The CD cache, by StreamID and CD index.
    let cdCache: SetAssociativeCache<UInt64, CachedCD>
    /// The combined configuration cache: resolved stream contexts, by StreamID and SubstreamID
    /// (see ``StreamContext``).
    let streamContexts: StreamContextCache
    /// How commands are consumed now (initially ``SMMUConfiguration/commandProcessing``): switch
    /// to `.stepped` after bring-up to walk the queue one command at a time.
    @exclusivity(unchecked) public var commandProcessing: SMMUConfiguration.CommandProcessing
    /// Checked mode: every cache hit is compared with memory, and a difference (a structure or
    /// translation changed without the invalidation that should follow) is reported as a
    /// diagnostic. The cached value is still used, as hardware would.
    @exclusivity(unchecked) public var checkedMode: Bool
    @exclusivity(unchecked) var stalledTransactions: [StalledTransaction] = []
    @exclusivity(unchecked) var nextSTAG: UInt16 = 0
    /// ATS invalidations sent since the last CMD_SYNC, summarised: what the next CMD_SYNC
    /// must wait for (§3.9.1.4). O(1) however many CMD_ATC_INV are issued.
    @exclusivity(unchecked) var outstandingATCInvalidations = OutstandingATCInvalidations()
    /// Called when a stalled transaction is resolved by CMD_RESUME (retry, abort or
    /// terminate), CMD_STALL_TERM or SMMUEN being cleared, with the new outcome.
    @exclusivity(unchecked) public var onStallResolved: ((InboundTransaction, TransactionOutcome) -> Void)?
    /// Delivers ATS Invalidate Requests to the endpoint behind a StreamID (§3.9.1.4). Nil when
    /// no ATS endpoint is attached: CMD_ATC_INV then has no effect.
    @exclusivity(unchecked) public var onATCInvalidation: ((ATCInvalidation) -> ATCInvalidationResponse)?

    /// Stall event records waiting for the event queue to become writable, oldest first
    /// (§7.2.1: stall records are never discarded while their transaction is stalled). A held
    /// record leaves with its transaction when that is resolved (CMD_RESUME, CMD_STALL_TERM,
    /// SMMUEN 1 -> 0), so there are never more than STALL_MAX of them.
    @exclusivity(unchecked) public internal(set) var pendingStallRecords: [EventRecord] = []
    @exclusivity(unchecked) var flushingStallRecords = false
    @exclusivity(unchecked) var diagnosticLog: BoundedLog<SMMUDiagnostic>
    /// Interrupts raised by the current operation, delivered when it completes.
    @exclusivity(unchecked) var postedInterrupts: [PostedInterrupt] = []
    /// Nesting depth of public operations (MMIO accesses, translations, PRI messages...).
    @exclusivity(unchecked) var operationDepth = 0
    @exclusivity(unchecked) var deliveringInterrupts = false
    /// The stalled transaction whose `translate` has not returned yet (see ``translate(_:)``).
    @exclusivity(unchecked) var unannouncedStall: (streamID: UInt32, stag: UInt16)?
    /// How that transaction was resolved before `translate` could return it as stalled.
    @exclusivity(unchecked) var earlyStallResolution: TransactionOutcome?
    /// Counters.
    @exclusivity(unchecked) public internal(set) var statistics = SMMUStatistics()
    /// Called with every PRG Response the SMMU sends to an endpoint (from CMD_PRI_RESP or
    /// generated automatically).
    @exclusivity(unchecked) public var onPRGResponse: ((PRGResponse) -> Void)?

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
        checkedMode = configuration.checkedMode
        commandProcessing = configuration.commandProcessing
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
        cr0ack = 0
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
    public var isEnabled: Bool { Reg.CR0.smmuen.isSet(cr0ack) }

    /// The effective PRIQEN: CR0ACK.PRIQEN && CR0ACK.SMMUEN (§6.3.9.5).
    var priQueueEffectivelyEnabled: Bool { Reg.CR0.priqen.isSet(cr0ack) && Reg.CR0.smmuen.isSet(cr0ack) }

    /// Whether an enable bit of CR0 is set in CR0 or not yet acknowledged clear in CR0ACK:
    /// the guard rule "RW when CR0.X == 0 and CR0ACK.X == 0" (§6.3.9).
    @inline(__always)
    func guardedByCR0(_ field: BitField) -> Bool { field.isSet(cr0) || field.isSet(cr0ack) }

    /// The same rule for IRQ_CTRL/IRQ_CTRLACK (§6.3.16).
    @inline(__always)
    func guardedByIRQCtrl(_ field: BitField) -> Bool { field.isSet(irqCtrl) || field.isSet(irqCtrlAck) }

    /// Completes every update still waiting for its acknowledge latency.
    public func settle() {
        beginOperation()
        defer { endOperation() }
        if cr0 != cr0ack { completeCR0Update() }
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

    private func read32(_ rawOffset: UInt64) -> UInt32 {
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

    private func write32(_ rawOffset: UInt64, _ value: UInt32) {
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
        case .cr0ack:
            if observing && cr0 != cr0ack {
                cr0ReadsUntilAck -= 1
                if cr0ReadsUntilAck < 0 { completeCR0Update() }
            }
            return UInt64(cr0ack)
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
        case .cmdqCons: return UInt64(cmdq.cons & (cmdq.geometry.pointerMask | UInt32(truncatingIfNeeded: Reg.Queue.consErr.mask)))
        case .eventqBase: return eventq.base
        case .eventqIrqCfg0: return eventqIRQ.address
        case .eventqIrqCfg1: return UInt64(eventqIRQ.data)
        case .eventqIrqCfg2: return UInt64(eventqIRQ.attributes)
        case .priqBase: return priq.base
        case .priqIrqCfg0: return priqIRQ.address
        case .priqIrqCfg1: return UInt64(priqIRQ.data)
        case .priqIrqCfg2: return UInt64(priqIRQ.attributes)
        case .eventqProd: return UInt64(eventq.prod & (eventq.geometry.pointerMask | UInt32(truncatingIfNeeded: Reg.Queue.overflowFlag.mask)))
        case .eventqCons: return UInt64(eventq.cons)
        case .priqProd: return UInt64(priq.prod & (priq.geometry.pointerMask | UInt32(truncatingIfNeeded: Reg.Queue.overflowFlag.mask)))
        case .priqCons: return UInt64(priq.cons)
        }
    }

    /// Reports a guarded write as ignored (SMMUv3.2: §6.3.24 and friends).
    private func ignoreGuarded(_ register: SMMURegister, _ guardName: String) {
        diagnose(.guardedWriteIgnored(register), "write to \(register.name) ignored: guarded by \(guardName) (set, or not yet acknowledged clear)")
    }

    private func writeRegister32(_ register: SMMURegister, _ value: UInt32) {
        switch register {
        case .idr0, .idr1, .idr2, .idr3, .idr4, .idr5, .iidr, .aidr, .cr0ack, .statusr, .irqCtrlAck, .gerror:
            diagnose(.readOnlyWriteIgnored(register), "write to read-only \(register.name) ignored")
        case .cr0:
            writeCR0(value)
        case .cr1:
            writeCR1(value)
        case .cr2:
            guard !guardedByCR0(Reg.CR0.smmuen) else { return ignoreGuarded(register, "CR0.SMMUEN") }
            var mask = UInt32(truncatingIfNeeded: Reg.CR2.recInvSID.mask)
            if Reg.IDR0.hyp.isSet(idr0) { mask |= UInt32(truncatingIfNeeded: Reg.CR2.e2h.mask) }
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
            gerrorIRQ.attributes = value & UInt32(truncatingIfNeeded: Reg.IRQCfg.sh.mask | Reg.IRQCfg.memAttr.mask)
        case .strtabBaseCfg:
            guard !guardedByCR0(Reg.CR0.smmuen) else { return ignoreGuarded(register, "CR0.SMMUEN") }
            var mask = UInt32(truncatingIfNeeded: Reg.STRTAB.log2Size.mask | Reg.STRTAB.split.mask)
            if configuration.twoLevelStreamTable { mask |= UInt32(truncatingIfNeeded: Reg.STRTAB.fmt.mask) }
            strtabBaseCfg = value & mask
        case .cmdqProd:
            cmdq.prod = value & UInt32(truncatingIfNeeded: Reg.Queue.indexField.mask)
            trace.record(.queue, "\(names.cmdq): PROD <- \(cmdq.geometry.describe(cmdq.prodPointer))")
            if commandProcessing == .automatic { runCommandQueue() }
        case .cmdqCons:
            guard !guardedByCR0(Reg.CR0.cmdqen) else { return ignoreGuarded(register, "CR0.CMDQEN") }
            // CMDQ_CONS.ERR is not written by software in this model (§6.3.28 leaves it open).
            cmdq.cons = (cmdq.cons & UInt32(truncatingIfNeeded: Reg.Queue.consErr.mask)) | (value & cmdq.geometry.pointerMask)
            reportedInconsistentCommandQueue = false
        case .eventqIrqCfg1:
            guard configuration.msi else { return }
            guard !guardedByIRQCtrl(Reg.IRQCtrl.eventqIrqen) else { return ignoreGuarded(register, "IRQ_CTRL.EVENTQ_IRQEN") }
            eventqIRQ.data = value
        case .eventqIrqCfg2:
            guard configuration.msi else { return }
            guard !guardedByIRQCtrl(Reg.IRQCtrl.eventqIrqen) else { return ignoreGuarded(register, "IRQ_CTRL.EVENTQ_IRQEN") }
            eventqIRQ.attributes = value & UInt32(truncatingIfNeeded: Reg.IRQCfg.sh.mask | Reg.IRQCfg.memAttr.mask)
        case .priqIrqCfg1:
            guard configuration.msi && configuration.pri else { return }
            guard !guardedByIRQCtrl(Reg.IRQCtrl.priqIrqen) else { return ignoreGuarded(register, "IRQ_CTRL.PRIQ_IRQEN") }
            priqIRQ.data = value
        case .priqIrqCfg2:
            guard configuration.pri else { return }
            guard !guardedByIRQCtrl(Reg.IRQCtrl.priqIrqen) else { return ignoreGuarded(register, "IRQ_CTRL.PRIQ_IRQEN") }
            // LO works whether or not MSIs are implemented (§6.3.36).
            var mask = UInt32(truncatingIfNeeded: Reg.IRQCfg.lo.mask)
            if configuration.msi { mask |= UInt32(truncatingIfNeeded: Reg.IRQCfg.sh.mask | Reg.IRQCfg.memAttr.mask) }
            priqIRQ.attributes = value & mask
        case .eventqProd:
            guard !guardedByCR0(Reg.CR0.eventqen) else { return ignoreGuarded(register, "CR0.EVENTQEN") }
            eventq.prod = value & (eventq.geometry.pointerMask | UInt32(truncatingIfNeeded: Reg.Queue.overflowFlag.mask))
        case .eventqCons:
            writeEventQueueCons(value)
        case .priqProd:
            guard configuration.pri else { return }
            guard !guardedByCR0(Reg.CR0.priqen) else { return ignoreGuarded(register, "CR0.PRIQEN") }
            priq.prod = value & (priq.geometry.pointerMask | UInt32(truncatingIfNeeded: Reg.Queue.overflowFlag.mask))
        case .priqCons:
            writePRIQueueCons(value)
        case .gerrorIrqCfg0, .strtabBase, .cmdqBase, .eventqBase, .eventqIrqCfg0, .priqBase, .priqIrqCfg0:
            writeRegister64(register, UInt64(value))
        }
    }

    private func writeRegister64(_ register: SMMURegister, _ value: UInt64) {
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

    // MARK: CR0, CR1, GBPA, IRQ_CTRL

    private var cr0Writable: UInt32 {
        var mask = UInt32(truncatingIfNeeded: Reg.CR0.smmuen.mask | Reg.CR0.eventqen.mask | Reg.CR0.cmdqen.mask)
        if configuration.pri { mask |= UInt32(truncatingIfNeeded: Reg.CR0.priqen.mask) }
        if configuration.ats { mask |= UInt32(truncatingIfNeeded: Reg.CR0.atschk.mask) }
        return mask
    }

    private func writeCR0(_ value: UInt32) {
        var new = value & cr0Writable
        let inProgress = cr0 ^ cr0ack
        if inProgress & (new ^ cr0) != 0 {
            // §6.3.9: changing a field again before its update completes is CONSTRAINED
            // UNPREDICTABLE; SMMUv3.2 may ignore the new value, which the model does.
            diagnose(.updateInProgress(.cr0), "CR0 field rewritten before CR0ACK acknowledged it: new value ignored for \(hex(inProgress & (new ^ cr0)))")
            new = (new & ~inProgress) | (cr0 & inProgress)
        }
        let wasPending = inProgress != 0
        cr0 = new
        trace.record(.control, "\(configuration.name): CR0 <- \(describeCR0(new))")
        guard cr0 != cr0ack else { return }
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
        let old = cr0ack
        cr0ack = cr0
        cr0ReadsUntilAck = 0
        trace.record(.control, "\(configuration.name): CR0ACK = \(describeCR0(cr0ack))")
        let changed = old ^ cr0ack
        if Reg.CR0.smmuen.isSet(changed) && !Reg.CR0.smmuen.isSet(cr0ack) {
            smmuDisabled()
        }
        if Reg.CR0.eventqen.isSet(changed) && Reg.CR0.eventqen.isSet(cr0ack) {
            flushPendingStallRecords()
        }
        if commandProcessing == .automatic && Reg.CR0.cmdqen.isSet(cr0ack) {
            runCommandQueue()
        }
    }

    /// SMMUEN 1 -> 0 side effects (§6.3.9.6): stalled transactions are aborted (their STAGs
    /// recycled); the effective PRIQEN becomes 0. No cache is invalidated.
    func smmuDisabled() {
        abortAllStalledTransactions()
    }

    private func writeCR1(_ value: UInt32) {
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

    private func writeGBPA(_ value: UInt32) {
        if Reg.GBPA.update.isSet(gbpa) {
            diagnose(.gbpaWriteIgnored, "GBPA write ignored: an update is still in progress (Update == 1)")
            return
        }
        guard Reg.GBPA.update.isSet(value) else {
            diagnose(.gbpaWriteIgnored, "GBPA write without Update == 1 ignored (§6.3.14)")
            return
        }
        var fields = value & Reg.GBPA.fields
        if !configuration.attributeOverrides { fields &= UInt32(truncatingIfNeeded: Reg.GBPA.abort.mask) }
        gbpa = fields | UInt32(truncatingIfNeeded: Reg.GBPA.update.mask)
        trace.record(.control, "\(configuration.name): GBPA <- \(hex(gbpa, digits: 8)) (update requested)")
        if configuration.acknowledgeLatency == 0 {
            completeGBPAUpdate()
        } else {
            gbpaReadsUntilDone = configuration.acknowledgeLatency
        }
    }

    func completeGBPAUpdate() {
        gbpa &= ~UInt32(truncatingIfNeeded: Reg.GBPA.update.mask)
        gbpaEffective = gbpa
        gbpaReadsUntilDone = 0
        trace.record(.control, "\(configuration.name): GBPA update done, \(Reg.GBPA.abort.isSet(gbpa) ? "abort" : "bypass")")
    }

    private func writeIRQCtrl(_ value: UInt32) {
        var writable = UInt32(truncatingIfNeeded: Reg.IRQCtrl.gerrorIrqen.mask | Reg.IRQCtrl.eventqIrqen.mask)
        if configuration.pri { writable |= UInt32(truncatingIfNeeded: Reg.IRQCtrl.priqIrqen.mask) }
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

    // MARK: Global errors and interrupts

    private func writeGERRORN(_ value: UInt32) {
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
        if acknowledged & UInt32(truncatingIfNeeded: Reg.GERROR.eventqAbtErr.mask) != 0 {
            flushPendingStallRecords()
        }
        if acknowledged & UInt32(truncatingIfNeeded: Reg.GERROR.cmdqErr.mask) != 0, commandProcessing == .automatic {
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
