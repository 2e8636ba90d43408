import Platform
import SMMUv3Layout
import VMSA

/// A transaction arriving at the SMMU from a client device (§3.1, §13.1).
public struct InboundTransaction: Hashable, Sendable, CustomStringConvertible {
    /// How the transaction's address is to be treated.
    public enum Kind: Hashable, Sendable {
        /// An ordinary (untranslated) transaction.
        case untranslated
        /// A PCIe ATS-Translated transaction: the address is already a PA (§3.9.1.3).
        case atsTranslated
        /// A transaction the client marks in a way the SMMU does not support; it is
        /// terminated with F_UUT carrying `reason` (§7.3.2).
        case unsupported(reason: UInt16)
    }

    /// The StreamID.
    public var streamID: UInt32
    /// The SubstreamID (PASID), or nil when the transaction has none (SSV == 0).
    public var substreamID: UInt32?
    /// The 64-bit input address.
    public var address: UInt64
    /// Read/write, instruction/data, privileged/unprivileged as presented (before STE overrides).
    public var access: AccessAttributes
    /// Untranslated, ATS-Translated or unsupported.
    public var kind: Kind
    /// An opaque token for the issuer (returned with stall resolutions).
    public var token: UInt64

    /// Creates a transaction.
    public init(streamID: UInt32, substreamID: UInt32? = nil, address: UInt64, access: AccessAttributes, kind: Kind = .untranslated, token: UInt64 = 0) {
        self.streamID = streamID
        self.substreamID = substreamID
        self.address = address
        self.access = access
        self.kind = kind
        self.token = token
    }

    /// An unprivileged data read.
    public static func read(streamID: UInt32, substreamID: UInt32? = nil, address: UInt64) -> InboundTransaction {
        InboundTransaction(streamID: streamID, substreamID: substreamID, address: address, access: .dataRead)
    }

    /// An unprivileged data write.
    public static func write(streamID: UInt32, substreamID: UInt32? = nil, address: UInt64) -> InboundTransaction {
        InboundTransaction(streamID: streamID, substreamID: substreamID, address: address, access: .dataWrite)
    }

    public var description: String {
        let ssid = substreamID.map { " ssid=\(hex($0))" } ?? ""
        return "sid=\(hex(streamID))\(ssid) \(access) \(hex(address))"
    }
}

/// What happened to a transaction.
public enum TransactionOutcome: Hashable, Sendable, CustomStringConvertible {
    /// The transaction proceeds to `physicalAddress`.
    case translated(physicalAddress: UInt64)
    /// Terminated with an abort to the client; `event` is the event recorded, if any.
    case aborted(EventType?)
    /// Terminated as RAZ/WI (reads return zero, writes are ignored); `event` as above.
    case terminatedRAZ(EventType?)
    /// Stalled: held until CMD_RESUME or CMD_STALL_TERM with this STAG (§3.12).
    case stalled(stag: UInt16)

    public var description: String {
        switch self {
        case .translated(let address): "-> \(hex(address))"
        case .aborted(let event): "abort" + (event.map { " (\($0))" } ?? " (silent)")
        case .terminatedRAZ(let event): "RAZ/WI" + (event.map { " (\($0))" } ?? " (silent)")
        case .stalled(let stag): "stalled stag=\(hex(stag))"
        }
    }
}

/// Why a transaction could not be translated, before the SMMU decides what to record.
enum TranslationFailure: Error {
    case silentAbort
    case configuration(ConfigurationFailure)
    case badSTE(STEProblem)
    case streamDisabled
    case badCD(CDProblem)
    /// Stage 1 bypassed (or Config 0b100) and the input exceeds IAS/OAS: stage-1 F_ADDR_SIZE,
    /// always recorded and aborted (§3.4, §3.12).
    case bypassAddressSize
    case fault(WalkFault)

    /// A stage-1 fault on the input address.
    @inline(__always)
    static func stage1(_ type: EventType) -> TranslationFailure {
        .fault(WalkFault(type: type, stage: .stage1, faultClass: .input))
    }
}

/// A stalled transaction awaiting CMD_RESUME or CMD_STALL_TERM.
struct StalledTransaction {
    var transaction: InboundTransaction
    var stag: UInt16
}

extension SMMU {
    // MARK: Public entry points

    /// Translates one transaction as the SMMU would (§3.3, §13): GBPA when SMMUEN == 0, the
    /// stream and CD tables, the TLB and the table walks, recording events, stalling or
    /// terminating on faults exactly as configured.
    ///
    /// A `.stalled` result is final for the caller: ``onStallResolved(_:)`` later reports how the
    /// stall ended. If it ends before this call returns (the event queue interrupt this
    /// translation raised lands on SMMU_CR0 and clears SMMUEN, say), the call returns that
    /// ending instead and ``onStallResolved(_:)`` is not called for it.
    public func translate(_ transaction: InboundTransaction) -> TransactionOutcome {
        if case .untranslated = transaction.kind, isEnabled, !checkedMode, !trace.isEnabled(.translation) {
            switch lookUpCachedStage1(transaction) {
            case .hit(let physicalAddress): return .translated(physicalAddress: physicalAddress)
            case .miss(let slot, let input):
                if let physicalAddress = translateMissPlainly(transaction, slot: slot, input: input) {
                    return .translated(physicalAddress: physicalAddress)
                }
                return translateOperation(transaction, miss: (slot, input))
            case .other: break
            }
        }
        return translateOperation(transaction, miss: nil)
    }

    /// Everything but a cached hit: one operation (interrupts are delivered when it ends), and
    /// a stall that ends before the operation does is returned as its ending.
    @inline(never)
    private func translateOperation(_ transaction: InboundTransaction, miss: (slot: StreamContextCache.Slot, input: UInt64)?) -> TransactionOutcome {
        beginOperation()
        let outcome = miss.map { translateMiss(transaction, slot: $0.slot, input: $0.input) } ?? translateTransaction(transaction)
        guard case .stalled(let stag) = outcome, operationDepth == 1 else {
            endOperation()
            return outcome
        }
        let outer = (unannouncedStall, earlyStallResolution)
        unannouncedStall = (transaction.streamID, stag)
        earlyStallResolution = nil
        endOperation()
        let resolution = earlyStallResolution
        (unannouncedStall, earlyStallResolution) = outer
        return resolution ?? outcome
    }

    /// Reports how a stalled transaction ended: to ``onStallResolved(_:)``, or, when its
    /// `translate` has not returned yet, as that call's result.
    func announceStallResolution(_ stalled: StalledTransaction, _ outcome: TransactionOutcome) {
        discardHeldStallRecord(streamID: stalled.transaction.streamID, stag: stalled.stag)
        if let pending = unannouncedStall, pending.streamID == stalled.transaction.streamID, pending.stag == stalled.stag {
            earlyStallResolution = outcome
            return
        }
        deliverStallResolution(stalled.transaction, outcome)
    }

    private func translateTransaction(_ transaction: InboundTransaction) -> TransactionOutcome {
        let outcome: TransactionOutcome
        switch transaction.kind {
        case .unsupported(let reason):
            // §7.3.2: F_UUT uses the incoming attributes; it may be recorded with SMMUEN == 0.
            let record = EventRecord.unsupportedUpstreamTransaction(streamID: transaction.streamID, substreamID: transaction.substreamID, reason: reason, access: transaction.access, inputAddress: transaction.address)
            recordEvent(record)
            outcome = .aborted(.unsupportedUpstreamTransaction)
        case .atsTranslated:
            outcome = translateATSTranslated(transaction)
        case .untranslated:
            outcome = isEnabled ? translateEnabled(transaction) : globalBypass(transaction)
        }
        trace.record(.translation, "\(names.xlat): \(transaction) \(outcome)")
        return outcome
    }

    /// SMMUEN == 0: GBPA decides (§3.11, §6.3.14). Bypass keeps the address; an address beyond
    /// OAS is aborted without an event.
    private func globalBypass(_ transaction: InboundTransaction) -> TransactionOutcome {
        if Reg.GBPA.abort.isSet(gbpaEffective) { return .aborted(nil) }
        if transaction.address >> UInt64(oasBits) != 0 { return .aborted(nil) }
        return .translated(physicalAddress: transaction.address)
    }

    /// ATS-Translated transactions (§3.9.1.3).
    private func translateATSTranslated(_ transaction: InboundTransaction) -> TransactionOutcome {
        func forbidden() -> TransactionOutcome {
            recordEvent(.translationForbidden(streamID: transaction.streamID, substreamID: transaction.substreamID, inputAddress: transaction.address, read: transaction.access.read))
            return .aborted(.translationForbidden)
        }
        guard isEnabled else { return forbidden() }
        if Reg.CR0.atschk.isSet(cr0Ack) {
            guard case .success(let ste) = streamTableEntry(for: transaction.streamID, mode: .transaction), ste.problem == nil, !ste.isAbort else {
                return .aborted(nil)
            }
            if ste.isBypass || ste.eats != 0b01 { return forbidden() }
        }
        // The model aborts (silently) a Translated address beyond OAS (§3.9.1.1).
        if transaction.address >> UInt64(oasBits) != 0 { return .aborted(nil) }
        return .translated(physicalAddress: transaction.address)
    }

    /// SMMUEN == 1: the stream context (from the stream-context cache, or resolved and cached),
    /// then the address.
    private func translateEnabled(_ transaction: InboundTransaction) -> TransactionOutcome {
        let key = StreamContext.key(streamID: transaction.streamID, substreamID: transaction.substreamID)
        // A cached context is read in place: nothing a translation does changes the
        // stream-context cache (it fills the TLB; the interrupts it raises are posted).
        if !checkedMode, let cached = streamContexts.context(for: key) {
            return translate(transaction, context: cached)
        }
        var context = StreamContext()
        if let failure = resolveContext(streamID: transaction.streamID, substreamID: transaction.substreamID, mode: .transaction, into: &context) {
            return dispose(failure, transaction: transaction, context: context, access: context.effectiveAccess(transaction.access))
        }
        streamContexts.insert(context, for: key)
        return translate(transaction, context: context)
    }

    /// What the lean lookup of an untranslated transaction found.
    enum CachedLookup {
        /// A TLB hit that grants the access.
        case hit(UInt64)
        /// A stage-1 stream with a cached context, a valid VA (its TBI view is `input`) and no
        /// TLB entry: a walk is next.
        case miss(StreamContextCache.Slot, input: UInt64)
        /// Anything else: the full path decides.
        case other
    }

    /// The common case, kept lean (SMMUEN == 1, not in checked mode): a stage-1 stream whose
    /// context is cached and a TLB hit that grants the access, with the same rules as the full
    /// path (``stage1Input(_:context:)``, the access rules of the context). It changes nothing
    /// but the TLB's hit count, and the stream context it returns for a miss stays valid until
    /// the configuration caches change (translation itself never changes them).
    @inline(__always)
    func lookUpCachedStage1(_ transaction: InboundTransaction) -> CachedLookup {
        guard let slot = streamContexts.slot(for: StreamContext.key(streamID: transaction.streamID, substreamID: transaction.substreamID)) else { return .other }
        return streamContexts.withContext(at: slot) { context in
            guard context.pointee.kind == .stage1,
                  let input = stage1Input(transaction.address, context: context.pointee) else { return .other }
            let rule = context.pointee.accessRule(for: transaction.access)
            // The stream's most recent translation, if no TLB invalidation happened since.
            let generation = tlb.generation
            if context.pointee.recentGeneration == generation, input &>> UInt64(context.pointee.recentShift) == context.pointee.recentPage {
                if rule.isGranted(context.pointee.recentGrant) {
                    return .hit(context.pointee.recentOutput | (input & Self.offsetMask(context.pointee.recentShift)))
                }
                return .other
            }
            guard let hit = tlb.probe(context.pointee.tag, input: input, includeGlobal: context.pointee.includeGlobal, globalASET: context.pointee.aset) else {
                return .miss(slot, input: input)
            }
            let entry = hit.entry
            let grant = AccessRule.grant(entry.stage1.intersection(entry.stage2), flags: entry.flags)
            guard rule.isGranted(grant) else { return .other }
            if context.pointee.recentGeneration != generation {
                streamContexts.remember(slot, generation: generation, shift: hit.shift, page: input &>> UInt64(hit.shift), output: entry.outputBase, grant: grant)
            }
            return .hit(entry.outputBase | (input & Self.offsetMask(hit.shift)))
        }
    }

    /// Keeps a copy of a TLB entry as the stream's most recent translation, when the stream has
    /// none (or an invalidated one): a stream that keeps to a few pages keeps hitting it, and
    /// one that roams costs no extra stores.
    @inline(__always)
    func rememberRecent(_ slot: StreamContextCache.Slot, _ context: StreamContext, input: UInt64, shift: UInt8, output: UInt64, grant: UInt8) {
        guard context.recentGeneration != tlb.generation else { return }
        streamContexts.remember(slot, generation: tlb.generation, shift: shift, page: input &>> UInt64(shift), output: output, grant: grant)
    }

    /// The offset bits of a page or block of 2^`shift` bytes (shift < 64: every translation
    /// granule and block size is).
    @_transparent
    static func offsetMask(_ shift: UInt8) -> UInt64 {
        ~(UInt64.max &<< UInt64(shift))
    }

    /// A TLB miss found by ``lookUpCachedStage1(_:)``: the walk, without looking the TLB up
    /// again.
    @inline(never)
    private func translateMiss(_ transaction: InboundTransaction, slot: StreamContextCache.Slot, input: UInt64) -> TransactionOutcome {
        let context = streamContexts.context(at: slot)
        let access = context.effectiveAccess(transaction.access)
        switch walkStage1(input, upper: transaction.address & (1 << 55) != 0, access: access, context: context, mode: .transaction, checksAccess: true) {
        case .success(let mapping):
            if mapping.cacheable {
                // What the walk put in the TLB.
                let grant = AccessRule.grant(mapping.stage1.intersection(mapping.stage2), flags: mapping.flags)
                rememberRecent(slot, context, input: input, shift: mapping.shift, output: mapping.outputAddress & ~UInt64.lowBits(Int(mapping.shift)), grant: grant)
            }
            return .translated(physicalAddress: mapping.outputAddress)
        case .failure(let failure):
            return dispose(failure, transaction: transaction, context: context, access: access)
        }
    }

    /// The stage-1 input address of `va` (its TBI view), or nil when the VA selects a disabled
    /// half or lies outside the half's range: a Translation fault without a walk (§3.4.1,
    /// §5.4 EPDx).
    @inline(__always)
    func stage1Input(_ va: UInt64, context: borrowing StreamContext) -> UInt64? {
        let upper = va & (1 << 55) != 0
        guard upper ? context.table1Enabled : context.table0Enabled else { return nil }
        // VA[top:inputsize] must all equal VA[55], which selected the half.
        let mask = upper ? context.rangeMask1 : context.rangeMask0
        let field = va & mask
        guard field == 0 || field == mask else { return nil }
        return normalizedVA(va)
    }

    @inline(__always)
    private func translate(_ transaction: InboundTransaction, context: StreamContext) -> TransactionOutcome {
        let access = context.effectiveAccess(transaction.access)
        switch translateAddress(transaction.address, access: access, context: context, mode: .transaction, checksAccess: true) {
        case .success(let mapping):
            return .translated(physicalAddress: mapping.outputAddress)
        case .failure(let failure):
            return dispose(failure, transaction: transaction, context: context, access: access)
        }
    }

    // MARK: Translation through a stream context

    /// Stage 2 for a transaction's final IPA (§3.3). A Translation Request (`checksAccess`
    /// false) is granted what stage 2 allows: a page not writable at stage 2 still grants read
    /// to a write-intent request (§3.9.1.2, §13.7.1), so its permission fault is retried as a
    /// read.
    func translateFinalIPA(_ ipa: UInt64, access: AccessAttributes, context: Stage2Context, mode: WalkMode, checksAccess: Bool) -> Result<Mapping, WalkFault> {
        let result = translateStage2(ipa: ipa, write: !access.read, context: context, faultClass: .input, mode: mode, access: checksAccess ? access : nil)
        if !checksAccess, !access.read, case .failure(let fault) = result, fault.type == .permission {
            return translateStage2(ipa: ipa, write: false, context: context, faultClass: .input, mode: mode)
        }
        return result
    }

    /// Translates `address` for a stream whose configuration is `context` (SMMUEN == 1). With
    /// `checksAccess` false (ATS Translation Requests, checked-mode comparisons), permissions
    /// are computed but not enforced.
    func translateAddress(_ address: UInt64, access: AccessAttributes, context: StreamContext, mode: WalkMode, checksAccess: Bool) -> Result<Mapping, TranslationFailure> {
        switch context.kind {
        case .stage1:
            return translateStage1(address, access: access, context: context, mode: mode, checksAccess: checksAccess)
        case .identity:
            if address >> UInt64(oasBits) != 0 { return .failure(.bypassAddressSize) }
            return .success(.identity(address))
        case .stage2:
            // Stage 1 bypassed: the input is the IPA; beyond IAS (== OAS) it is a stage-1
            // Address Size fault (§3.4).
            if address >> UInt64(oasBits) != 0 { return .failure(.bypassAddressSize) }
            let stage2 = context.stage2
            switch translateFinalIPA(address, access: access, context: stage2, mode: mode, checksAccess: checksAccess) {
            case .success(let mapping): return .success(mapping)
            case .failure(let fault):
                if !checksAccess && fault.type == .permission {
                    var none = Mapping.identity(address)
                    none.stage2 = []
                    return .success(none)
                }
                return .failure(.fault(fault))
            }
        }
    }

    /// Resolves the configuration of `streamID` and translates `address` with it, without the
    /// stream-context cache (ATS Translation Requests and checked-mode comparisons).
    func resolveAndTranslate(streamID: UInt32, substreamID: UInt32?, address: UInt64, access: AccessAttributes, mode: WalkMode, checksAccess: Bool, context: inout StreamContext) -> Result<Mapping, TranslationFailure> {
        if let failure = resolveContext(streamID: streamID, substreamID: substreamID, mode: mode, into: &context) {
            return .failure(failure)
        }
        return translateAddress(address, access: context.effectiveAccess(access), context: context, mode: mode, checksAccess: checksAccess)
    }

    /// Sign-extends a VA from bit 55 (the TBI view; equal to the VA for every in-range VA).
    @inline(__always)
    func normalizedVA(_ address: UInt64) -> UInt64 {
        address & (1 << 55) != 0 ? address | 0xFF00_0000_0000_0000 : address & 0x00FF_FFFF_FFFF_FFFF
    }

    /// Stage 1 (and, when nested, stage 2) translation of a VA (§3.4, §3.17): the checks on
    /// the VA, then the TLB; a miss (or a hit that needs a hardware update) walks.
    @inline(__always)
    func translateStage1(_ va: UInt64, access: AccessAttributes, context: StreamContext, mode: WalkMode, checksAccess: Bool) -> Result<Mapping, TranslationFailure> {
        let upper = va & (1 << 55) != 0
        guard let input = stage1Input(va, context: context) else { return .failure(.stage1(.translation)) }
        if case .inspect = mode {} else if let hit = tlb.lookup(context.tag, input: input, includeGlobal: context.includeGlobal, globalASET: context.aset) {
            let entry = hit.entry
            if checkedMode && entry.flags & TLBEntry.staleReported == 0 { verifyTLBHit(hit, input: input) }
            let mapping = Mapping(hit: entry, shift: hit.key.shift, input: input)
            let rule = AccessRule(access, pan: context.pan)
            if !checksAccess || rule.isGranted(AccessRule.grant(entry.stage1.intersection(entry.stage2), flags: entry.flags)) { return .success(mapping) }
            let panFault = rule.panFaults(flags: entry.flags)
            if !panFault && entry.stage1.contains(rule.needed) {
                if !(entry.flags & TLBEntry.stage2DirtyUpdatable != 0 && !access.read) {
                    return .failure(.fault(WalkFault(type: .permission, stage: .stage2, faultClass: .input, ipa: mapping.ipa)))
                }
            } else if panFault || !(entry.flags & TLBEntry.stage1DirtyUpdatable != 0 && !access.read) {
                return .failure(.stage1(.permission))
            }
            // A write to a writable-clean page: walk again to update the dirty state.
        }
        return walkStage1(input, upper: upper, access: access, context: context, mode: mode, checksAccess: checksAccess)
    }

    /// The TLB-miss part of ``translateStage1(_:access:context:mode:checksAccess:)``: the
    /// walk, hardware updates, permissions, stage 2 when nested, and the TLB fill.
    @inline(never)
    private func walkStage1(_ input: UInt64, upper: Bool, access: AccessAttributes, context: StreamContext, mode: WalkMode, checksAccess: Bool) -> Result<Mapping, TranslationFailure> {
        func stage1Fault(_ type: EventType) -> Result<Mapping, TranslationFailure> { .failure(.stage1(type)) }
        let table = upper ? context.table1 : context.table0
        let hierarchicalDisabled = upper ? context.hierarchicalDisabled1 : context.hierarchicalDisabled0
        let stage2: Stage2Context? = context.hasStage2 ? context.stage2 : nil
        let world = context.world
        let rule = AccessRule(access, pan: context.pan)
        let needed = rule.needed

        var leaf: WalkLeaf
        switch walk(table, stage: .stage1, input: input, nested: stage2, mode: mode) {
        case .success(let found): leaf = found
        case .failure(let fault): return .failure(.fault(fault))
        }
        // Translation Requests too: one that would see F_TLB_CONFLICT gets CA (§3.9.1.2).
        if Descriptor.contiguous.isSet(leaf.descriptor), mode != .inspect, !contiguousGroupIsConsistent(leaf, table: table) {
            return stage1Fault(.tlbConflict)
        }
        // The IPA of the leaf descriptor, for hardware updates through stage 2.
        let descriptorIPA: UInt64? = stage2 == nil ? nil : leaf.descriptorIPA
        var cacheable: Bool
        switch handleAccessFlag(&leaf, table: table, stage: .stage1, nested: stage2, descriptorIPA: descriptorIPA, mode: mode) {
        case .success(let value): cacheable = value
        case .failure(let fault): return .failure(.fault(fault))
        }
        var (permissions, flags) = stage1Permissions(leaf, world: world, hierarchicalDisabled: hierarchicalDisabled, wxn: context.wxn, dirtyEnabled: table.hardwareDirty)
        if checksAccess && rule.panFaults(flags: flags) { return stage1Fault(.permission) }
        let wantsWrite = !access.read
        if wantsWrite && !permissions.contains(needed) && flags & TLBEntry.stage1DirtyUpdatable != 0 {
            var allowed = false
            if case .transaction = mode { allowed = true }
            if case .translationRequest = mode { allowed = true }
            if allowed {
                let dirty = (leaf.descriptor & ~Descriptor.ap2.mask) | Descriptor.af.mask
                if let fault = updateDescriptor(&leaf, to: dirty, stage: .stage1, nested: stage2, descriptorIPA: descriptorIPA) {
                    return .failure(.fault(fault))
                }
                (permissions, flags) = stage1Permissions(leaf, world: world, hierarchicalDisabled: hierarchicalDisabled, wxn: context.wxn, dirtyEnabled: table.hardwareDirty)
            }
        }
        if checksAccess && !permissions.contains(needed) { return stage1Fault(.permission) }

        var mapping = Mapping(leaf: leaf, input: input, table: table, stage: .stage1, permissions: permissions, flags: flags, cacheable: cacheable)
        let ipa = mapping.ipa
        if let stage2 {
            // §3.9.1.2: for a Translation Request stage 2 is not applied when stage 1 grants the
            // request nothing: no R (X with INSTCFG == Instruction) and no W at its effective
            // privilege (§13.7.1).
            if !checksAccess {
                let privileged = access.privileged
                let read = context.instCfg == 0b11 ? permissions.contains(privileged ? .privilegedExecute : .unprivilegedExecute) : permissions.contains(privileged ? .privilegedRead : .unprivilegedRead)
                if !read && !permissions.contains(privileged ? .privilegedWrite : .unprivilegedWrite) { return .success(mapping) }
            }
            switch translateFinalIPA(ipa, access: access, context: stage2, mode: mode, checksAccess: checksAccess) {
            case .success(let second):
                mapping.outputAddress = second.outputAddress
                mapping.shift = min(leaf.shift, second.shift)
                mapping.stage2 = second.stage2
                mapping.flags |= second.flags & (TLBEntry.stage2DirtyUpdatable | TLBEntry.stage2Device)
                mapping.cacheable = cacheable && second.cacheable
            case .failure(let fault):
                if !checksAccess && fault.type == .permission {
                    mapping.stage2 = []
                    return .success(mapping)
                }
                return .failure(.fault(fault))
            }
        }
        if mapping.cacheable, case .transaction = mode {
            cacheStage1(mapping, input: input, leafDescriptor: leaf.descriptor, context: context)
        }
        return .success(mapping)
    }

    /// Puts a stage-1 (or nested) translation in the TLB, tagged as its context says: global
    /// (nG == 0, outside EL2) entries under the global tag of the context's ASET (§3.17).
    @inline(__always)
    func cacheStage1(_ mapping: Mapping, input: UInt64, leafDescriptor: UInt64, context: StreamContext) {
        let global = context.world != .el2 && !Descriptor.nG.isSet(leafDescriptor)
        let tag = global ? context.tag.globalVariant(aset: context.aset) : context.tag
        tlb.insert(TLBEntry(mapping, streamID: context.streamID, substreamID: context.substreamID), tag: tag, input: input, shift: mapping.shift)
    }

    /// The lean miss path for the common case: a stage-1 stream without stage 2 whose walk
    /// succeeds in plain RAM on a leaf with AF set, outside a contiguous group, that grants the
    /// access as it is. It caches the translation as ``walkStage1(_:upper:access:context:mode:checksAccess:)``
    /// would and returns the output address; anything else returns nil and the full path
    /// takes over (it walks again and finds the same descriptors).
    @inline(never)
    private func translateMissPlainly(_ transaction: InboundTransaction, slot: StreamContextCache.Slot, input: UInt64) -> UInt64? {
        let context = streamContexts.context(at: slot)
        guard !context.hasStage2, bus.devicesReadPlainRAM else { return nil }
        let upper = transaction.address & (1 << 55) != 0
        let table = upper ? context.table1 : context.table0
        guard let leaf = walkPlainStage1(table, input: input),
              Descriptor.af.isSet(leaf.descriptor), !Descriptor.contiguous.isSet(leaf.descriptor) else { return nil }
        let hierarchicalDisabled = upper ? context.hierarchicalDisabled1 : context.hierarchicalDisabled0
        let (permissions, flags) = stage1Permissions(leaf, world: context.world, hierarchicalDisabled: hierarchicalDisabled, wxn: context.wxn, dirtyEnabled: table.hardwareDirty)
        let grant = AccessRule.grant(permissions, flags: flags)
        guard context.accessRule(for: transaction.access).isGranted(grant) else { return nil }
        let mapping = Mapping(leaf: leaf, input: input, table: table, stage: .stage1, permissions: permissions, flags: flags, cacheable: true)
        let output = mapping.outputAddress
        cacheStage1(mapping, input: input, leafDescriptor: leaf.descriptor, context: context)
        rememberRecent(slot, context, input: input, shift: leaf.shift, output: leaf.outputBase, grant: grant)
        return output
    }
}

extension SMMU {
    /// A speculative page-request hint from a client device (§7.3.19): the SMMU records
    /// E_PAGE_REQUEST so that software may start paging in `span` × 4 KB at `address`. Hints
    /// are dropped (nil) while SMMUEN == 0, since no translation events exist then.
    @discardableResult
    public func pageRequestHint(streamID: UInt32, substreamID: UInt32? = nil, address: UInt64, span: UInt8, permissions: EventRecord.PageRequestPermissions) -> EventQueueOutcome? {
        guard isEnabled else { return nil }
        return recordEvent(.pageRequest(streamID: streamID, substreamID: substreamID, address: address, span: span, permissions: permissions))
    }
}
