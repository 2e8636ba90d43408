import Platform
import SMMUv3Layout

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
    static let stage2Device: UInt8 = 1 << 3
    static let staleReported: UInt8 = 1 << 7
}

extension SMMU {
    // MARK: Descriptor access

    /// Reads a descriptor for a walk. `inspect` walks read memory directly (no faults, no trace).
    @inline(__always)
    func readDescriptor(_ address: UInt64, mode: WalkMode) -> UInt64? {
        if case .inspect = mode {
            return bus.memory.isRAM(address, length: 8) ? bus.memory.read64(at: address) : nil
        }
        return bus.dmaRead64(at: address)
    }

    // MARK: The walk

    /// Walks `table` for `input` (§3.3, Arm ARM VMSAv8-64): per level, the descriptor fetch
    /// (through stage 2 when `nested` is given), its validity, and its output address size.
    /// Access flag and permissions are the caller's, as they depend on the access.
    func walk(_ table: WalkTable, stage: TranslationStage, input: UInt64, nested: Stage2Context?, mode: WalkMode) -> Result<WalkLeaf, WalkFault> {
        let faultClass: FaultClass = stage == .stage1 ? .translationTable : .input
        var cursor = WalkCursor(table, input: input)
        let plain = bus.devicesReadPlainRAM
        while true {
            let descriptorIPA = cursor.descriptorAddress
            var descriptorAddress = descriptorIPA
            if let nested {
                // A stage-1 table access is an IPA translated by stage 2 (§5.4.1).
                switch translateStage2(ipa: descriptorAddress, write: false, context: nested, faultClass: .translationTable, mode: mode) {
                case .success(let mapping): descriptorAddress = mapping.outputAddress
                case .failure(let fault): return .failure(fault)
                }
            }
            let fetched: UInt64?
            if case .inspect = mode {
                fetched = readDescriptor(descriptorAddress, mode: mode)
            } else if plain {
                fetched = bus.plainRead64(at: descriptorAddress)
            } else {
                fetched = bus.dmaRead64(at: descriptorAddress)
            }
            guard let descriptor = fetched else {
                // §7.3.12: an abort fetching a stage-1 descriptor is S2 == 0, CLASS == TT.
                return .failure(WalkFault(type: .walkExternalAbort, stage: stage, faultClass: faultClass, fetchAddress: descriptorAddress, level: Int8(cursor.level)))
            }
            switch cursor.step(descriptor) {
            case .table:
                continue
            case .fault(let type):
                return .failure(WalkFault(type: type, stage: stage, faultClass: .input, level: Int8(cursor.level)))
            case .leaf(let output):
                var leaf = cursor.leaf(descriptor, output: output, descriptorAddress: descriptorAddress, stage: stage)
                leaf.descriptorIPA = descriptorIPA
                return .success(leaf)
            }
        }
    }

    /// The walk of the common case, for the lean miss path: a stage-1 walk without stage 2,
    /// in RAM that needs no fault rule or trace (``Platform/Bus/devicesReadPlainRAM``). Returns
    /// nil on anything a fault would come of; the full ``walk(_:stage:input:nested:mode:)``
    /// then finds the same outcome and reports it.
    @inline(__always)
    func walkPlainStage1(_ table: WalkTable, input: UInt64) -> WalkLeaf? {
        var cursor = WalkCursor(table, input: input)
        while true {
            let address = cursor.descriptorAddress
            guard let descriptor = bus.plainRead64(at: address) else { return nil }
            switch cursor.step(descriptor) {
            case .table: continue
            case .fault: return nil
            case .leaf(let output): return cursor.leaf(descriptor, output: output, descriptorAddress: address, stage: .stage1)
            }
        }
    }

    /// Checks a Contiguous-hinted leaf against the rest of its group (Arm ARM: a misprogrammed
    /// contiguous group may give a TLB conflict). Returns false when the group is inconsistent.
    func contiguousGroupIsConsistent(_ leaf: WalkLeaf, table: WalkTable) -> Bool {
        let entries: UInt64
        switch (table.granuleShift, leaf.level) {
        case (12, _): entries = 16
        case (14, 3): entries = 128
        case (14, _): entries = 32
        default: entries = 32
        }
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
            return WalkFault(type: .walkExternalAbort, stage: stage, faultClass: stage == .stage1 ? .translationTable : .input, fetchAddress: leaf.descriptorAddress, level: leaf.level)
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
        return .failure(WalkFault(type: .access, stage: stage, faultClass: .input, level: leaf.level))
    }

    // MARK: Permissions

    /// Stage-1 permissions of a leaf (Arm ARM direct permission scheme, §13.4.1): any-EL2
    /// checks everything as privileged with a single XN; EL0-writable pages are PXN; WXN makes
    /// writable (or writable-clean) pages execute-never.
    func stage1Permissions(_ leaf: WalkLeaf, world: StreamWorld, hierarchicalDisabled: Bool, wxn: Bool, dirtyEnabled: Bool) -> (Permissions, flags: UInt8) {
        let descriptor = leaf.descriptor
        let tableReadOnly = hierarchicalDisabled ? false : leaf.readOnly
        let tableNoUnprivileged = hierarchicalDisabled ? false : leaf.noUnprivileged
        let readOnly = Descriptor.ap2.isSet(descriptor) || tableReadOnly
        let writableClean = dirtyEnabled && Descriptor.dbm.isSet(descriptor) && Descriptor.ap2.isSet(descriptor) && !tableReadOnly
        var flags: UInt8 = writableClean ? TLBEntry.stage1DirtyUpdatable : 0
        var permissions: Permissions = [.privilegedRead]
        if world == .el2 {
            let xn = Descriptor.uxn.isSet(descriptor) || (!hierarchicalDisabled && leaf.unprivilegedExecuteNever)
            if !readOnly { permissions.insert(.privilegedWrite) }
            if !xn && !(wxn && (!readOnly || writableClean)) { permissions.insert(.privilegedExecute) }
            // Everything is checked as privileged: unprivileged accesses get the same rights.
            permissions.formUnion(Permissions(rawValue: permissions.rawValue << 3))
            return (permissions, flags)
        }
        let unprivileged = Descriptor.ap1.isSet(descriptor) && !tableNoUnprivileged
        if unprivileged { flags |= TLBEntry.unprivilegedAccessible }
        let pxn = Descriptor.pxn.isSet(descriptor) || (!hierarchicalDisabled && leaf.privilegedExecuteNever)
        let uxn = Descriptor.uxn.isSet(descriptor) || (!hierarchicalDisabled && leaf.unprivilegedExecuteNever)
        if !readOnly { permissions.insert(.privilegedWrite) }
        if unprivileged {
            permissions.insert(.unprivilegedRead)
            if !readOnly { permissions.insert(.unprivilegedWrite) }
        }
        let privilegedWritable = !readOnly || writableClean
        let unprivilegedWritable = unprivileged && privilegedWritable
        if !pxn && !unprivilegedWritable && !(wxn && privilegedWritable) { permissions.insert(.privilegedExecute) }
        if !uxn && !(wxn && unprivilegedWritable) { permissions.insert(.unprivilegedExecute) }
        return (permissions, flags)
    }

    /// Stage-2 permissions of a leaf (S2AP and XN[54:53] with FEAT_XNX, §13.4.3).
    func stage2Permissions(_ leaf: WalkLeaf, dirtyEnabled: Bool, forcedWriteBack: Bool) -> (Permissions, flags: UInt8) {
        let descriptor = leaf.descriptor
        var permissions: Permissions = []
        if Descriptor.s2Read.isSet(descriptor) { permissions.formUnion([.privilegedRead, .unprivilegedRead]) }
        if Descriptor.s2Write.isSet(descriptor) { permissions.formUnion([.privilegedWrite, .unprivilegedWrite]) }
        switch (descriptor >> 53) & 3 {
        case 0b00: permissions.formUnion([.privilegedExecute, .unprivilegedExecute])
        case 0b01: permissions.insert(.unprivilegedExecute)
        case 0b11: permissions.insert(.privilegedExecute)
        default: break
        }
        var flags: UInt8 = 0
        if dirtyEnabled && Descriptor.dbm.isSet(descriptor) && !Descriptor.s2Write.isSet(descriptor) { flags |= TLBEntry.stage2DirtyUpdatable }
        let memAttr = Descriptor.s2MemAttr.extract(descriptor)
        // Device memory: MemAttr[3:2] == 0b00, or with S2FWB MemAttr[2] == 0 (FEAT_S2FWB).
        if forcedWriteBack ? memAttr & 0b100 == 0 : memAttr >> 2 == 0 { flags |= TLBEntry.stage2Device }
        return (permissions, flags)
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
                let offset = ipa & UInt64.lowBits(Int(hit.key.shift))
                return .success(Mapping(outputAddress: entry.outputBase | offset, shift: hit.key.shift, stage1: .all, stage2: entry.stage2, flags: entry.flags, ipa: ipa, granule: entry.granule, level: entry.level, cacheable: true))
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
        var (permissions, flags) = stage2Permissions(leaf, dirtyEnabled: table.hardwareDirty, forcedWriteBack: table.forcedWriteBack)
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
            (permissions, flags) = stage2Permissions(leaf, dirtyEnabled: table.hardwareDirty, forcedWriteBack: table.forcedWriteBack)
        }
        let mapping = Mapping(outputAddress: leaf.outputBase | (ipa & UInt64.lowBits(Int(leaf.shift))), shift: leaf.shift, stage1: .all, stage2: permissions, flags: flags, ipa: ipa, granule: table.tlbiGranule, level: leaf.level, cacheable: cacheable)
        if cacheable, case .transaction = mode {
            tlb.insert(TLBEntry(outputBase: leaf.outputBase, ipaBase: ipa & ~UInt64.lowBits(Int(leaf.shift)), stage1: .all, stage2: permissions, flags: flags, granule: table.tlbiGranule, level: leaf.level, streamID: context.streamID, substreamID: context.substreamID), tag: tag, input: ipa, shift: leaf.shift)
        }
        return .success(mapping)
    }
}
