import Platform
import SMMUv3Layout
import VMSA

/// Everything a transaction of one stream (and SubstreamID) needs once its STE and CD are
/// known: how to translate (the walk tables and TLB tags of each stage), the attribute
/// overrides, and how faults are disposed of (§3.3, §5.2, §5.4, §5.5).
///
/// It is resolved from the STE and CD (through their caches) and kept in the stream-context
/// cache: a combined configuration cache, as real SMMUs have. Like every configuration cache it
/// is stale until invalidated: CMD_CFGI_* commands remove the contexts built from the
/// structures they name, and nothing else does (capacity evictions of the STE or CD cache do
/// not, which the architecture allows since a combined entry is itself a cached copy of both).
struct StreamContext: BitwiseCopyable {
    enum Kind: UInt8 {
        /// No translation (Config 0b100, or both stages bypassed): the address passes.
        case identity
        /// Stage 2 only (or stage 1 bypassed by S1DSS): the address is an IPA.
        case stage2
        /// Stage 1 (possibly nested).
        case stage1
    }

    // Read by every cached stage-1 translation that hits the most recent translation, so kept
    // together at the front: 56 bytes, which with the cache key fill one cache line.
    var kind: Kind = .identity
    var table0Enabled = false
    var table1Enabled = false
    /// The most recent translation's page size (log2) and what it grants (stage 1 and stage 2
    /// permissions together, bit 7 set when the page is unprivileged-accessible, for PAN).
    var recentShift: UInt8 = 0
    var recentGrant: UInt8 = 0
    /// Per half, the VA bits [top:inputsize] that must all equal VA[55] (§3.4.1; top is 55
    /// with TBI, else 63).
    var rangeMask0: UInt64 = 0
    var rangeMask1: UInt64 = 0
    /// Per incoming access (byte index: read | instruction << 1 | privileged << 2), the
    /// permission it needs once the STE overrides apply, with bit 7 set when PAN applies to it.
    var accessRules: UInt64 = 0
    /// The most recent translation (a one-entry micro-TLB per stream context, as SMMU TBUs
    /// have): the TLB generation it was copied at (0: none; any TLB invalidation since makes
    /// it unusable), its input page (input >> shift) and output base.
    var recentGeneration: UInt64 = 0
    var recentPage: UInt64 = 0
    var recentOutput: UInt64 = 0

    // Read by a cached translation that goes to the TLB.
    /// The non-global tag of this context's stage-1 (or nested) TLB entries.
    var tag = TLBTag(kind: .stage1, world: .el1, vmid: 0, asid: 0, global: false)
    /// Whether global entries apply (not for EL2, which has no ASIDs).
    var includeGlobal = false
    var aset = false

    var streamID: UInt32 = 0
    /// The SubstreamID, or `UInt32.max` for none.
    var substreamID: UInt32 = .max
    /// STE.PRIVCFG and STE.INSTCFG (0 without ATTR_PERMS_OVR).
    var privCfg: UInt8 = 0
    var instCfg: UInt8 = 0

    // Fault disposition (§5.5).
    /// STE.S2S and STE.S2R (stage-2 faults).
    var stage2Stall = false
    var stage2Record = true
    /// Whether a CD was located, and its S, R and A (stage-1 faults).
    var hasCD = false
    var stage1Stall = false
    var stage1Record = true
    var stage1Abort = true

    // Stage 1.
    var world: StreamWorld = .el1
    var table0 = WalkTable()
    var table1 = WalkTable()
    var tbi0 = false
    var tbi1 = false
    var hierarchicalDisabled0 = false
    var hierarchicalDisabled1 = false
    var wxn = false
    /// CD.PAN, already false for EL2.
    var pan = false

    // Stage 2.
    var hasStage2 = false
    var stage2 = Stage2Context()

    /// The key of a context in the stream-context cache.
    @inline(__always)
    static func key(streamID: UInt32, substreamID: UInt32?) -> UInt64 {
        UInt64(streamID) << 32 | UInt64(substreamID ?? .max)
    }

    /// The STE-derived part: overrides, stage-2 disposition and the stage-2 context.
    init(streamID: UInt32, substreamID: UInt32?, ste: StreamTableEntry) {
        self.streamID = streamID
        self.substreamID = substreamID ?? .max
        privCfg = ste.privCfg
        instCfg = ste.instCfg
        stage2Stall = ste.s2Stall
        stage2Record = ste.s2Record
        world = ste.world
        if ste.stage2Enabled {
            hasStage2 = true
            stage2 = Stage2Context(table: ste.stage2, vmid: ste.vmid, checksDeviceTableWalks: ste.s2PTW, streamID: streamID, substreamID: substreamID ?? .max)
        }
        computeAccessRules()
    }

    /// A context before anything is known (configuration errors).
    init() {}

    /// Adds the CD-derived part: stage 1 with `cd` (§5.4), tagged as `ste` says.
    mutating func useStage1(_ cd: ContextDescriptor, ste: StreamTableEntry) {
        kind = .stage1
        hasCD = true
        stage1Stall = cd.stall
        stage1Record = cd.record
        stage1Abort = cd.abort
        tag = TLBTag(kind: hasStage2 ? .nested : .stage1, world: world, vmid: world == .el1 ? ste.vmid : 0, asid: world == .el2 ? 0 : cd.asid, global: false)
        includeGlobal = world != .el2
        aset = cd.aset
        table0 = cd.table0
        table1 = cd.table1
        table0Enabled = cd.table0Enabled
        table1Enabled = cd.table1Enabled
        tbi0 = cd.tbi0
        tbi1 = cd.tbi1
        hierarchicalDisabled0 = cd.hierarchicalDisabled0
        hierarchicalDisabled1 = cd.hierarchicalDisabled1
        wxn = cd.wxn
        pan = cd.pan && world != .el2
        rangeMask0 = StreamContext.rangeMask(inputBits: table0.inputBits, tbi: tbi0)
        rangeMask1 = StreamContext.rangeMask(inputBits: table1.inputBits, tbi: tbi1)
        computeAccessRules()
    }

    /// VA bits [top:inputBits] (top = 55 with TBI, else 63).
    private static func rangeMask(inputBits: UInt8, tbi: Bool) -> UInt64 {
        let top = tbi ? 55 : 63
        return UInt64.lowBits(top + 1) & ~UInt64.lowBits(Int(inputBits))
    }

    /// The index of an incoming access in ``accessRules``.
    @inline(__always)
    static func accessIndex(_ access: AccessAttributes) -> UInt64 {
        (access.read ? 1 : 0) | (access.instruction ? 2 : 0) | (access.privileged ? 4 : 0)
    }

    private mutating func computeAccessRules() {
        var rules: UInt64 = 0
        for index in UInt64(0)..<8 {
            let incoming = AccessAttributes(read: index & 1 != 0, instruction: index & 2 != 0, privileged: index & 4 != 0)
            rules |= UInt64(AccessRule(effectiveAccess(incoming), pan: pan).rawValue) << (index * 8)
        }
        accessRules = rules
    }

    /// The rule an incoming access must pass in this context (its STE overrides applied).
    @inline(__always)
    func accessRule(for access: AccessAttributes) -> AccessRule {
        AccessRule(rawValue: UInt8(truncatingIfNeeded: accessRules >> (StreamContext.accessIndex(access) &* 8)))
    }

    /// The STE overrides of the incoming attributes (§13.1.2): PRIVCFG for reads and writes,
    /// INSTCFG for reads; writes are always data.
    @inline(__always)
    func effectiveAccess(_ access: AccessAttributes) -> AccessAttributes {
        var result = access
        switch privCfg {
        case 0b10: result.privileged = false
        case 0b11: result.privileged = true
        default: break
        }
        if access.read {
            switch instCfg {
            case 0b10: result.instruction = false
            case 0b11: result.instruction = true
            default: break
            }
        } else {
            result.instruction = false
        }
        return result
    }
}

extension SMMU {
    /// Resolves the configuration of a transaction from `streamID` (with `substreamID`) with
    /// SMMUEN == 1 (§3.3.1, §5.2 S1DSS/S1CDMax, §7.3.7, §7.3.9): the STE, then, for stage 1,
    /// the CD the SubstreamID selects. On failure, `context` holds what was learnt before it
    /// (the STE-derived part, for the disposition of a stage-2 fault on the CD fetch).
    func resolveContext(streamID: UInt32, substreamID: UInt32?, mode: WalkMode, into context: inout StreamContext) -> TranslationFailure? {
        let ste: StreamTableEntry
        switch streamTableEntry(for: streamID, mode: mode) {
        case .success(let found): ste = found
        case .failure(let failure): return .configuration(failure)
        }
        if let problem = ste.problem { return .badSTE(problem) }
        if ste.isAbort { return .silentAbort }
        context = StreamContext(streamID: streamID, substreamID: substreamID, ste: ste)
        if ste.isBypass {
            if let substreamID { return .configuration(.badSubstreamID(substreamID)) }
            return nil
        }

        let substreamsEnabled = ste.stage1Enabled && ste.s1CDMax != 0 && substreamIDBits != 0
        var cdIndex: UInt32?
        if let substreamID {
            guard substreamsEnabled, UInt64(substreamID) >> UInt64(ste.s1CDMax) == 0 else {
                return .configuration(.badSubstreamID(substreamID))
            }
            if substreamID == 0 && ste.s1DSS == 0b10 { return .streamDisabled }
            cdIndex = substreamID
        } else if ste.stage1Enabled {
            if substreamsEnabled {
                switch ste.s1DSS {
                case 0b01: cdIndex = nil
                case 0b10: cdIndex = 0
                default: return .streamDisabled
                }
            } else {
                cdIndex = 0
            }
        }
        guard let index = cdIndex else {
            context.kind = context.hasStage2 ? .stage2 : .identity
            return nil
        }
        let cd: ContextDescriptor
        switch contextDescriptor(streamID: streamID, ste: ste, index: index, reportedSSID: substreamID ?? 0, stage2: context.hasStage2 ? context.stage2 : nil, mode: mode) {
        case .success(let found): cd = found
        case .failure(let failure): return .configuration(failure)
        }
        if let problem = cd.problem { return .badCD(problem) }
        context.useStage1(cd, ste: ste)
        return nil
    }

    /// Removes the stream contexts built from the STEs of `streamIDs` (CMD_CFGI_STE*, ALL).
    func invalidateStreamContexts(streamIDs: ClosedRange<UInt32>) {
        if streamIDs == 0...UInt32.max {
            streamContexts.removeAll()
        } else {
            streamContexts.removeAll { key in streamIDs.contains(UInt32(truncatingIfNeeded: key >> 32)) }
        }
    }

    /// Removes the stream contexts that may have used the CD at `substreamID` of `streamID`
    /// (all of the stream's when nil): its own, and the no-SubstreamID one, which uses CD 0.
    func invalidateStreamContexts(streamID: UInt32, substreamID: UInt32?) {
        guard let substreamID else {
            streamContexts.removeAll { key in UInt32(truncatingIfNeeded: key >> 32) == streamID }
            return
        }
        streamContexts.remove(StreamContext.key(streamID: streamID, substreamID: substreamID))
        streamContexts.remove(StreamContext.key(streamID: streamID, substreamID: nil))
    }
}

/// What an access needs from a translation (§13.4.1), in one byte: the permission it needs in
/// bits [5:0] (``Permissions``), and in bit 7 whether PAN applies (a privileged data access
/// with CD.PAN set). The TLB-hit path keeps one per kind of access in
/// ``StreamContext/accessRules``; every path checks grants with it.
struct AccessRule {
    let rawValue: UInt8

    @inline(__always)
    init(rawValue: UInt8) {
        self.rawValue = rawValue
    }

    /// The rule for an (effective) access in a context with CD.PAN == `pan`.
    @inline(__always)
    init(_ access: AccessAttributes, pan: Bool) {
        let needed = Permissions.needed(read: access.read, instruction: access.instruction, privileged: access.privileged).rawValue
        rawValue = needed | (pan && access.privileged && !access.instruction ? 0x80 : 0)
    }

    /// The permission the access needs.
    @inline(__always) var needed: Permissions { Permissions(rawValue: rawValue & 0x3F) }

    /// What a translation grants, in the same form: its permissions, and in bit 7 whether
    /// its stage-1 page is unprivileged-accessible.
    @inline(__always)
    static func grant(_ permissions: Permissions, flags: UInt8) -> UInt8 {
        permissions.rawValue | (flags & TLBEntry.unprivilegedAccessible != 0 ? 0x80 : 0)
    }

    /// Whether PAN makes the access fault on a page with these TLB entry flags.
    @inline(__always)
    func panFaults(flags: UInt8) -> Bool { rawValue & 0x80 != 0 && flags & TLBEntry.unprivilegedAccessible != 0 }

    /// Whether a translation granting `grant` (see ``grant(_:flags:)``) allows the access: the
    /// permission it needs, and no PAN fault.
    @inline(__always)
    func isGranted(_ grant: UInt8) -> Bool {
        let needed = rawValue & 0x3F
        return grant & needed == needed && !(rawValue & 0x80 != 0 && grant & 0x80 != 0)
    }
}
