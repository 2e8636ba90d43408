import Platform
import SMMUv3Layout

/// VMSAv8-64 translation table descriptor layouts (Arm ARM D8.3; the SMMU uses them as the
/// PE does, §3.3). Stage 1 and stage 2 share the structure and differ in attributes.
public enum Descriptor {
    /// Bit 0: valid.
    public static let valid = BitField(bit: 0)
    /// Bit 1: table (levels 0–2) or page (level 3); 0 at levels 1–2 is a block.
    public static let tableOrPage = BitField(bit: 1)

    // Stage 1 block and page attributes.
    /// AttrIndx: MAIR index.
    public static let attrIndx = BitField(4, 2)
    /// NS.
    public static let ns = BitField(bit: 5)
    /// AP[1]: accessible at EL0 (unprivileged).
    public static let ap1 = BitField(bit: 6)
    /// AP[2]: read-only.
    public static let ap2 = BitField(bit: 7)
    /// SH: shareability.
    public static let sh = BitField(9, 8)
    /// AF: access flag.
    public static let af = BitField(bit: 10)
    /// nG: not global (ASID-tagged).
    public static let nG = BitField(bit: 11)
    /// DBM: dirty bit modifier.
    public static let dbm = BitField(bit: 51)
    /// Contiguous hint.
    public static let contiguous = BitField(bit: 52)
    /// PXN: privileged execute-never.
    public static let pxn = BitField(bit: 53)
    /// UXN (stage 1 EL1&0) or XN (stage 1 EL2, stage 2).
    public static let uxn = BitField(bit: 54)

    // Stage 1 table descriptor hierarchical attributes.
    /// PXNTable.
    public static let pxnTable = BitField(bit: 59)
    /// UXNTable (XNTable for EL2).
    public static let uxnTable = BitField(bit: 60)
    /// APTable[0]: no EL0 access at lower levels.
    public static let apTable0 = BitField(bit: 61)
    /// APTable[1]: no write access at lower levels.
    public static let apTable1 = BitField(bit: 62)

    // Stage 2 block and page attributes.
    /// MemAttr[3:0].
    public static let s2MemAttr = BitField(5, 2)
    /// S2AP[0]: read permitted.
    public static let s2Read = BitField(bit: 6)
    /// S2AP[1]: write permitted.
    public static let s2Write = BitField(bit: 7)
    /// XN[1] (stage 2 execute-never).
    public static let s2XN = BitField(bit: 54)

    /// Output address bits [47:12] of a table, block or page descriptor.
    public static let outputAddress = AddressField(47, 12)
    /// OA[51:48] of a 64 KB-granule descriptor with 52-bit output addresses (FEAT_LPA).
    public static let outputAddressHigh64K = BitField(15, 12)
}

/// One stage of translation: the parameters of a table walk (a CD's TTB0 or TTB1 half, or an
/// STE's stage-2 table), validated and precomputed when the structure is fetched.
struct WalkTable: BitwiseCopyable, Equatable {
    /// Table base address (aligned to the starting-level table size).
    var base: UInt64 = 0
    /// log2 of the granule: 12, 14 or 16.
    var granuleShift: UInt8 = 12
    /// The level the walk starts at (0...3).
    var startLevel: Int8 = 0
    /// Input address size in bits (64 - TxSZ).
    var inputBits: UInt8 = 48
    /// Effective output address size in bits (IPS or S2PS capped to OAS).
    var outputBits: UInt8 = 48
    /// Hardware Access flag updates enabled.
    var hardwareAccessFlag = false
    /// Hardware dirty state updates enabled.
    var hardwareDirty = false
    /// Access flag faults disabled (AFFD).
    var accessFlagFaultDisabled = false
    /// Stage 2 with STE.S2FWB: descriptor MemAttr[2] == 0 means Device (otherwise MemAttr[3:2]
    /// == 0b00 does).
    var forcedWriteBack = false

    /// Bits resolved per level below the starting level.
    @inline(__always) var stride: Int { Int(granuleShift) - 3 }

    /// The address bit below which a level's index starts: `granule + stride * (3 - level)`.
    @inline(__always) func levelShift(_ level: Int) -> Int { Int(granuleShift) + stride * (3 - level) }

    /// The TG encoding used by TLBI commands (1 = 4 KB, 2 = 16 KB, 3 = 64 KB).
    var tlbiGranule: UInt8 {
        switch granuleShift {
        case 12: 1
        case 14: 2
        default: 3
        }
    }

    /// The starting level for a stage-1 table of `inputBits` with granule `granuleShift`
    /// (Arm ARM: 3 - floor((inputsize - 1 - granule) / stride)).
    static func stage1StartLevel(inputBits: Int, granuleShift: Int) -> Int {
        let stride = granuleShift - 3
        return 3 - (inputBits - 1 - granuleShift) / stride
    }

    /// Whether a block descriptor is allowed at `level` (no FEAT_LPA2: 4 KB blocks at levels 1
    /// and 2, 16 KB at level 2, 64 KB at level 2 and, with 52-bit output, level 1).
    func blockAllowed(at level: Int) -> Bool {
        switch granuleShift {
        case 12: level == 1 || level == 2
        case 14: level == 2
        default: level == 2 || (level == 1 && outputBits == 52)
        }
    }

    /// The output address held by a table, block or page descriptor at a level whose entries
    /// map `2^shift` bytes.
    @inline(__always) func outputAddress(_ descriptor: UInt64, shift: Int) -> UInt64 {
        var address = Descriptor.outputAddress.extract(descriptor) & ~UInt64.lowBits(shift)
        if granuleShift == 16 && outputBits == 52 {
            address |= Descriptor.outputAddressHigh64K.extract(descriptor) << 48
        }
        return address
    }
}

/// The stage a walk or fault belongs to.
enum TranslationStage: UInt8 {
    case stage1 = 1
    case stage2 = 2
}

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
    /// The walk level (diagnostics).
    var level: Int8 = 0
}

/// The leaf a walk found.
struct WalkLeaf {
    /// The block or page descriptor (after any hardware update).
    var descriptor: UInt64
    /// Its level.
    var level: Int8
    /// log2 of the bytes it maps.
    var shift: UInt8
    /// The output address of the mapped block or page (aligned).
    var outputBase: UInt64
    /// Accumulated table attributes: APTable[0], APTable[1], UXNTable, PXNTable.
    var noUnprivileged = false
    var readOnly = false
    var unprivilegedExecuteNever = false
    var privilegedExecuteNever = false
    /// The physical address the leaf descriptor was read from.
    var descriptorAddress: UInt64
    /// The address of the leaf descriptor before stage-2 translation (its IPA, for nested
    /// stage-1 walks; otherwise equal to `descriptorAddress`).
    var descriptorIPA: UInt64 = 0
}

/// One walk through a table (Arm ARM VMSAv8-64; §3.3): the descriptor address at each level and
/// the rule for each descriptor read, shared by every walk the model does.
struct WalkCursor {
    /// What one descriptor says.
    enum Step {
        /// A table descriptor: the walk continues at the next level.
        case table
        /// A block or page descriptor mapping `output`.
        case leaf(output: UInt64)
        /// The walk ends with this fault (F_TRANSLATION or F_ADDR_SIZE).
        case fault(EventType)
    }

    let table: WalkTable
    let input: UInt64
    /// The level being read.
    private(set) var level: Int
    /// The address bit below which the level's index starts.
    private(set) var shift: Int
    private var indexMask: UInt64
    private var tableAddress: UInt64
    /// Table descriptors' bits ORed together (hierarchical attributes, stage 1).
    private var tableAttributes: UInt64 = 0

    @inline(__always)
    init(_ table: WalkTable, input: UInt64) {
        self.table = table
        self.input = input
        level = Int(table.startLevel)
        shift = table.levelShift(level)
        // The starting level resolves the input bits above `shift`; each later level `stride`.
        indexMask = UInt64.lowBits(Int(table.inputBits) - shift)
        tableAddress = table.base
    }

    /// The address of the descriptor for the current level (an IPA for a nested stage-1 walk).
    @inline(__always)
    var descriptorAddress: UInt64 { tableAddress &+ ((input >> UInt64(shift)) & indexMask) &* 8 }

    /// Applies the rules to the descriptor read at the current level: validity, table or
    /// block/page, where blocks are allowed, and the output address size.
    @_transparent
    mutating func step(_ descriptor: UInt64) -> Step {
        guard Descriptor.valid.isSet(descriptor) else { return .fault(.translation) }
        let isTable = Descriptor.tableOrPage.isSet(descriptor)
        if level < 3 && isTable {
            let next = table.outputAddress(descriptor, shift: Int(table.granuleShift))
            if next >> UInt64(table.outputBits) != 0 { return .fault(.addressSize) }
            tableAttributes |= descriptor
            tableAddress = next
            level += 1
            shift -= table.stride
            indexMask = UInt64.lowBits(table.stride)
            return .table
        }
        if level == 3 ? !isTable : !table.blockAllowed(at: level) { return .fault(.translation) }
        let output = table.outputAddress(descriptor, shift: shift)
        if output >> UInt64(table.outputBits) != 0 { return .fault(.addressSize) }
        return .leaf(output: output)
    }

    /// The leaf found at the current level, with the hierarchical attributes (stage 1 only:
    /// APTable, UXNTable, PXNTable) of the tables above it.
    @inline(__always)
    func leaf(_ descriptor: UInt64, output: UInt64, descriptorAddress: UInt64, stage: TranslationStage) -> WalkLeaf {
        var leaf = WalkLeaf(descriptor: descriptor, level: Int8(level), shift: UInt8(shift), outputBase: output, descriptorAddress: descriptorAddress)
        if stage == .stage1 {
            leaf.privilegedExecuteNever = Descriptor.pxnTable.isSet(tableAttributes)
            leaf.unprivilegedExecuteNever = Descriptor.uxnTable.isSet(tableAttributes)
            leaf.noUnprivileged = Descriptor.apTable0.isSet(tableAttributes)
            leaf.readOnly = Descriptor.apTable1.isSet(tableAttributes)
        }
        leaf.descriptorIPA = descriptorAddress
        return leaf
    }
}
