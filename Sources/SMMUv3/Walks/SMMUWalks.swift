import Platform
import SMMUv3Layout
import VMSA

/// A translation fault found by a walk, before the SMMU decides whether to record, stall or
/// terminate (§7.3.13–§7.3.16, §7.3.12).
struct WalkFault: Error, Equatable {
    /// F_TRANSLATION, F_ADDR_SIZE, F_ACCESS, F_PERMISSION or F_WALK_EABT.
    var type: EventType
    /// The stage at fault.
    var stage: TranslationStage
    /// CLASS: what the faulting access was doing.
    var faultClass: FaultClass
    /// The IPA (stage 2 faults).
    var ipa: UInt64 = 0
    /// The descriptor address (F_WALK_EABT).
    var fetchAddress: UInt64 = 0
    /// TTRnW for stage 2 permission faults on table walks: a read (true) or an update.
    var translationTableRead = true
}


/// The result of translating one address through one or both stages.
struct Mapping {
    /// The output address of the access.
    var outputAddress: UInt64
    /// log2 of the size of the region the translation is valid for.
    var shift: UInt8
    /// Stage-1 permissions (all when stage 1 is bypassed).
    var stage1: Permissions
    /// Stage-2 permissions (all when stage 2 is bypassed).
    var stage2: Permissions
    /// TLB entry flags (dirty-updatable, unprivileged-accessible, device).
    var flags: UInt8
    /// The IPA (nested and stage-2 translations).
    var ipa: UInt64
    /// TLBI matching attributes.
    var granule: UInt8
    var level: Int8
    /// Whether the result may be cached (false when AF == 0 with AFFD).
    var cacheable: Bool

    /// No translation: `address` passes unchanged with every permission.
    @inline(__always)
    static func identity(_ address: UInt64) -> Mapping {
        Mapping(outputAddress: address, shift: 12, stage1: .all, stage2: .all, flags: 0, ipa: address, granule: 0, level: 0, cacheable: false)
    }
}

extension Mapping {
    /// The translation of `input` by a TLB entry of page size 2^`shift`.
    @inline(__always)
    init(hit entry: TLBEntry, shift: UInt8, input: UInt64) {
        let offset = input & UInt64.lowBits(Int(shift))
        self.init(
            outputAddress: entry.outputBase | offset, shift: shift, stage1: entry.stage1, stage2: entry.stage2, flags: entry.flags,
            ipa: entry.ipaBase | offset, granule: entry.granule, level: entry.level, cacheable: true)
    }

    /// The translation of `input` by one stage's `leaf` in `table`, with the permissions and
    /// flags that stage grants (the other stage grants everything). A stage-1 output is the
    /// IPA; a stage-2 input is.
    @inline(__always)
    init(leaf: WalkLeaf, input: UInt64, table: WalkTable, stage: TranslationStage, permissions: Permissions, flags: UInt8, cacheable: Bool) {
        let output = leaf.outputBase | (input & UInt64.lowBits(Int(leaf.shift)))
        let stage1 = stage == .stage1
        self.init(
            outputAddress: output, shift: leaf.shift, stage1: stage1 ? permissions : .all, stage2: stage1 ? .all : permissions,
            flags: flags, ipa: stage1 ? output : input, granule: table.tlbiGranule, level: leaf.level, cacheable: cacheable)
    }
}

extension TLBEntry {
    /// The TLB entry for `mapping` (its page-aligned output and IPA), inserted for a stream.
    @inline(__always)
    init(_ mapping: Mapping, streamID: UInt32, substreamID: UInt32) {
        let pageMask = ~UInt64.lowBits(Int(mapping.shift))
        self.init(
            outputBase: mapping.outputAddress & pageMask, ipaBase: mapping.ipa & pageMask, stage1: mapping.stage1, stage2: mapping.stage2,
            flags: mapping.flags, granule: mapping.granule, level: mapping.level, streamID: streamID, substreamID: substreamID)
    }
}

/// How a walk may affect the system.
enum WalkMode {
    /// A real transaction: hardware updates are performed and results cached.
    case transaction
    /// An ATS Translation Request: like a transaction, but a write is dirtied only when the
    /// request asks for write access (§13.7).
    case translationRequest
    /// Checked-mode verification: reads memory only, no updates, no caching.
    case inspect
}

/// Context for the stage-2 part of a translation: the stream's stage-2 table and tags.
struct Stage2Context: BitwiseCopyable {
    var table = WalkTable()
    var vmid: UInt16 = 0
    var checksDeviceTableWalks = false
    var streamID: UInt32 = 0
    var substreamID: UInt32 = .max
}

extension TLBEntry {
    static let stage2Device = LeafFlags.stage2Device.rawValue
    static let staleReported: UInt8 = 1 << 7
}

extension SMMU {
    // MARK: The walk

    /// Walks `table` for `input` (§3.3, Arm ARM VMSAv8-64) with the shared VMSA walk, reading
    /// each descriptor through stage 2 when `nested` is given and then the bus. Access flag and
    /// permissions are the caller's, as they depend on the access.
    func walk(_ table: WalkTable, stage: TranslationStage, input: UInt64, nested: Stage2Context?, mode: WalkMode) -> Result<WalkLeaf, WalkFault> {
        var reader = SMMUDescriptorReader(smmu: self, nested: nested, mode: mode, stage: stage, plain: bus.devicesReadPlainRAM)
        switch VMSA.walk(table, input: input, stage: stage, reader: &reader) {
        case .leaf(let leaf): return .success(leaf)
        case .translationFault: return .failure(WalkFault(type: .translation, stage: stage, faultClass: .input))
        case .addressSizeFault: return .failure(WalkFault(type: .addressSize, stage: stage, faultClass: .input))
        case .readFailed(let fault, _): return .failure(fault)
        }
    }

    /// The walk of the common case, for the lean miss path: a stage-1 walk without stage 2,
    /// in RAM that needs no fault rule or trace (``Platform/Bus/devicesReadPlainRAM``). Returns
    /// nil on anything a fault would come of; the full ``walk(_:stage:input:nested:mode:)``
    /// then finds the same outcome and reports it.
    @inline(__always)
    func walkPlainStage1(_ table: WalkTable, input: UInt64) -> WalkLeaf? {
        var reader = PlainRAMReader(bus: bus)
        if case .leaf(let leaf) = VMSA.walk(table, input: input, stage: .stage1, reader: &reader) { return leaf }
        return nil
    }

    /// Checks a Contiguous-hinted leaf against the rest of its group (Arm ARM: a misprogrammed
    /// contiguous group may give a TLB conflict). Returns false when the group is inconsistent.
    func contiguousGroupIsConsistent(_ leaf: WalkLeaf, table: WalkTable) -> Bool {
        let entries = table.contiguousEntries(at: Int(leaf.level))
        let first = leaf.descriptorAddress & ~(entries * 8 - 1)
        let groupBase = leaf.outputBase & ~((entries << UInt64(leaf.shift)) - 1)
        let attributeMask: UInt64 = ~(Descriptor.outputAddress.bits.mask | Descriptor.af.mask | Descriptor.ap2.mask | Descriptor.s2Write.mask | Descriptor.outputAddressHigh64K.mask)
        for slot in 0..<entries {
            let descriptor = bus.memory.read64(at: first &+ slot * 8)
            guard Descriptor.valid.isSet(descriptor), Descriptor.contiguous.isSet(descriptor) else { return false }
            if descriptor & attributeMask != leaf.descriptor & attributeMask { return false }
            if table.outputAddress(descriptor, shift: Int(leaf.shift)) != groupBase &+ (slot << UInt64(leaf.shift)) { return false }
        }
        return true
    }

    // MARK: Hardware updates

    /// Writes back a descriptor changed by a hardware update (§3.13). Nested stage-1
    /// descriptors need stage-2 write permission for their IPA.
    func updateDescriptor(_ leaf: inout WalkLeaf, to value: UInt64, stage: TranslationStage, nested: Stage2Context?, descriptorIPA: UInt64?) -> WalkFault? {
        if let nested, let ipa = descriptorIPA {
            switch translateStage2(ipa: ipa, write: true, context: nested, faultClass: .translationTable, mode: .transaction) {
            case .success: break
            case .failure(var fault):
                fault.translationTableRead = false
                return fault
            }
        }
        guard bus.dmaWrite64(value, at: leaf.descriptorAddress) else {
            return WalkFault(type: .walkExternalAbort, stage: stage, faultClass: stage == .stage1 ? .translationTable : .input, fetchAddress: leaf.descriptorAddress)
        }
        leaf.descriptor = value
        trace.record(.translation, "\(names.xlat): HTTU \(stage == .stage1 ? "S1" : "S2") descriptor at \(hex(leaf.descriptorAddress)) <- \(hex(value))")
        return nil
    }

    /// The access flag step (§3.13.1): AF == 0 is set by hardware with HA, ignored with AFFD,
    /// and otherwise an Access flag fault. Returns whether the translation may be cached.
    func handleAccessFlag(_ leaf: inout WalkLeaf, table: WalkTable, stage: TranslationStage, nested: Stage2Context?, descriptorIPA: UInt64?, mode: WalkMode) -> Result<Bool, WalkFault> {
        if Descriptor.af.isSet(leaf.descriptor) { return .success(true) }
        if case .inspect = mode { return .success(true) }
        if table.hardwareAccessFlag {
            if let fault = updateDescriptor(&leaf, to: leaf.descriptor | Descriptor.af.mask, stage: stage, nested: nested, descriptorIPA: descriptorIPA) {
                return .failure(fault)
            }
            return .success(true)
        }
        if table.accessFlagFaultDisabled { return .success(false) }
        return .failure(WalkFault(type: .access, stage: stage, faultClass: .input))
    }

    // MARK: Permissions

    /// Stage-1 permissions of a leaf in a StreamWorld (EL2 without E2H has one privilege level)
    /// and its TLB entry flags.
    @inline(__always)
    func stage1Permissions(_ leaf: WalkLeaf, world: StreamWorld, hierarchicalDisabled: Bool, wxn: Bool, dirtyEnabled: Bool) -> (Permissions, flags: UInt8) {
        let (permissions, flags) = leaf.stage1Permissions(singlePrivilegeLevel: world == .el2, hierarchicalDisabled: hierarchicalDisabled, wxn: wxn, dirtyEnabled: dirtyEnabled)
        return (permissions, flags.rawValue)
    }

    // MARK: Stage 2

    /// Translates an IPA through the stream's stage 2 (§3.3), using and filling the TLB, for
    /// a transaction's final IPA (`faultClass` .input), a stage-1 table access (.translationTable)
    /// or a CD fetch (.contextDescriptor). Table and CD accesses are data reads (or, for hardware
    /// updates of stage-1 descriptors, writes).
    func translateStage2(ipa: UInt64, write: Bool, context: Stage2Context, faultClass: FaultClass, mode: WalkMode, access: AccessAttributes? = nil) -> Result<Mapping, WalkFault> {
        let table = context.table
        let needed: Permissions = access.map { Permissions.needed(read: $0.read, instruction: $0.instruction, privileged: $0.privileged) } ?? (write ? .privilegedWrite : .privilegedRead)
        func fault(_ type: EventType) -> WalkFault {
            WalkFault(type: type, stage: .stage2, faultClass: faultClass, ipa: ipa, translationTableRead: !write)
        }
        // §3.4: an IPA outside the S2T0SZ range is a stage-2 Translation fault.
        if ipa >> UInt64(table.inputBits) != 0 { return .failure(fault(.translation)) }
        let tag = TLBTag(kind: .stage2, world: .el1, vmid: context.vmid, asid: 0, global: false)
        let tableAccess = faultClass != .input
        if case .inspect = mode {} else if let hit = tlb.lookup(tag, input: ipa, includeGlobal: false) {
            let entry = hit.entry
            if checkedMode { verifyTLBHit(hit, input: ipa) }
            var allowed = entry.stage2.contains(needed)
            if tableAccess && context.checksDeviceTableWalks && entry.flags & TLBEntry.stage2Device != 0 { allowed = false }
            if allowed {
                return .success(Mapping(hit: entry, shift: hit.key.shift, input: ipa))
            }
            if !(write && entry.flags & TLBEntry.stage2DirtyUpdatable != 0 && faultClass != .contextDescriptor) {
                return .failure(fault(.permission))
            }
        }
        var leaf: WalkLeaf
        switch walk(table, stage: .stage2, input: ipa, nested: nil, mode: mode) {
        case .success(let found): leaf = found
        case .failure(var walkFault):
            walkFault.faultClass = faultClass
            walkFault.ipa = ipa
            walkFault.translationTableRead = !write
            return .failure(walkFault)
        }
        // Translation Requests too: one that would see F_TLB_CONFLICT gets CA (§3.9.1.2).
        if Descriptor.contiguous.isSet(leaf.descriptor), mode != .inspect, !contiguousGroupIsConsistent(leaf, table: table) {
            return .failure(fault(.tlbConflict))
        }
        var cacheable: Bool
        switch handleAccessFlag(&leaf, table: table, stage: .stage2, nested: nil, descriptorIPA: nil, mode: mode) {
        case .success(let value): cacheable = value
        case .failure(var walkFault):
            walkFault.faultClass = faultClass
            walkFault.ipa = ipa
            return .failure(walkFault)
        }
        var (permissions, leafFlags) = leaf.stage2Permissions(dirtyEnabled: table.hardwareDirty, forcedWriteBack: table.forcedWriteBack)
        var flags = leafFlags.rawValue
        if tableAccess && context.checksDeviceTableWalks && flags & TLBEntry.stage2Device != 0 {
            // S2PTW: a CD fetch or stage-1 walk to stage-2 Device memory (§5.2 S2PTW).
            return .failure(fault(.permission))
        }
        if !permissions.contains(needed) {
            // Dirty state update (§3.13.3): never for CD fetches; a Translation Request dirties
            // only when it asks for write (`write` is then its write intent, §13.7), as stage 1.
            guard write, mode != .inspect, flags & TLBEntry.stage2DirtyUpdatable != 0, faultClass != .contextDescriptor else {
                return .failure(fault(.permission))
            }
            if let updateFault = updateDescriptor(&leaf, to: leaf.descriptor | Descriptor.s2Write.mask | Descriptor.af.mask, stage: .stage2, nested: nil, descriptorIPA: nil) {
                var withIPA = updateFault
                withIPA.faultClass = faultClass
                withIPA.ipa = ipa
                return .failure(withIPA)
            }
            (permissions, leafFlags) = leaf.stage2Permissions(dirtyEnabled: table.hardwareDirty, forcedWriteBack: table.forcedWriteBack)
            flags = leafFlags.rawValue
        }
        let mapping = Mapping(leaf: leaf, input: ipa, table: table, stage: .stage2, permissions: permissions, flags: flags, cacheable: cacheable)
        if cacheable, case .transaction = mode {
            tlb.insert(TLBEntry(mapping, streamID: context.streamID, substreamID: context.substreamID), tag: tag, input: ipa, shift: leaf.shift)
        }
        return .success(mapping)
    }
}

/// The SMMU's descriptor reads for a walk: through stage 2 for a nested stage-1 walk (§5.4.1),
/// then from memory as `mode` says (inspect walks read RAM directly: no fault, no trace).
/// It holds the SMMU unretained: the SMMU is the walker, alive for the whole walk.
struct SMMUDescriptorReader: DescriptorReader {
    let smmu: Unmanaged<SMMU>
    let nested: Stage2Context?
    let mode: WalkMode
    let stage: TranslationStage
    /// ``Platform/Bus/devicesReadPlainRAM`` when the walk started.
    let plain: Bool

    @inline(__always)
    init(smmu: SMMU, nested: Stage2Context?, mode: WalkMode, stage: TranslationStage, plain: Bool) {
        self.smmu = Unmanaged.passUnretained(smmu)
        self.nested = nested
        self.mode = mode
        self.stage = stage
        self.plain = plain
    }

    @inline(__always)
    mutating func readDescriptor(at address: UInt64, level: Int) -> Result<(value: UInt64, physicalAddress: UInt64), WalkFault> {
        smmu._withUnsafeGuaranteedRef { read(at: address, smmu: $0) }
    }

    @inline(__always)
    private func read(at address: UInt64, smmu: SMMU) -> Result<(value: UInt64, physicalAddress: UInt64), WalkFault> {
        var physical = address
        if let nested {
            // A stage-1 table access is an IPA translated by stage 2 (§5.4.1).
            switch smmu.translateStage2(ipa: address, write: false, context: nested, faultClass: .translationTable, mode: mode) {
            case .success(let mapping): physical = mapping.outputAddress
            case .failure(let fault): return .failure(fault)
            }
        }
        let bus = smmu.bus
        let fetched: UInt64?
        if case .inspect = mode {
            fetched = bus.memory.isRAM(physical, length: 8) ? bus.memory.read64(at: physical) : nil
        } else if plain {
            fetched = bus.plainRead64(at: physical)
        } else {
            fetched = bus.dmaRead64(at: physical)
        }
        guard let value = fetched else {
            // §7.3.12: an abort fetching a stage-1 descriptor is S2 == 0, CLASS == TT.
            return .failure(WalkFault(type: .walkExternalAbort, stage: stage, faultClass: stage == .stage1 ? .translationTable : .input, fetchAddress: physical))
        }
        return .success((value, physical))
    }
}

/// Descriptor reads of the lean miss path: plain RAM only, any abort ends the walk. It holds
/// the bus unretained (the SMMU holding it outlives the walk), so a read costs no reference
/// counting.
struct PlainRAMReader: DescriptorReader {
    struct Abort: Error {}
    let bus: Unmanaged<Bus>

    @inline(__always)
    init(bus: Bus) {
        self.bus = Unmanaged.passUnretained(bus)
    }

    @inline(__always)
    mutating func readDescriptor(at address: UInt64, level: Int) -> Result<(value: UInt64, physicalAddress: UInt64), Abort> {
        guard let value = bus._withUnsafeGuaranteedRef({ $0.plainRead64(at: address) }) else { return .failure(Abort()) }
        return .success((value, address))
    }
}
