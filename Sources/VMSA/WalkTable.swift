import Platform

/// The parameters of one stage of translation, as a walk needs them (Arm ARM D8.2): an SMMU
/// CD's TTB0 or TTB1 half or an STE's stage-2 table, or a CPU's TTBRn, validated and
/// precomputed by whoever reads the controlling structure.
public struct WalkTable: BitwiseCopyable, Equatable, Sendable {
    /// Table base address (aligned to the starting-level table size).
    public var base: UInt64
    /// log2 of the granule: 12, 14 or 16.
    public var granuleShift: UInt8
    /// The level the walk starts at (0...3).
    public var startLevel: Int8
    /// Input address size in bits (64 - TxSZ).
    public var inputBits: UInt8
    /// Effective output address size in bits (IPS or S2PS capped to the implemented size).
    public var outputBits: UInt8
    /// Hardware Access flag updates enabled (HA).
    public var hardwareAccessFlag: Bool
    /// Hardware dirty state updates enabled (HD).
    public var hardwareDirty: Bool
    /// Access flag faults disabled (SMMU AFFD).
    public var accessFlagFaultDisabled: Bool
    /// Stage 2 with FWB: descriptor MemAttr[2] == 0 means Device (otherwise MemAttr[3:2] == 0b00
    /// does).
    public var forcedWriteBack: Bool

    /// A table; the defaults are a 4 KB-granule, 48-bit, level-0 walk without hardware updates.
    @inlinable
    public init(
        base: UInt64 = 0, granuleShift: UInt8 = 12, startLevel: Int8 = 0, inputBits: UInt8 = 48, outputBits: UInt8 = 48,
        hardwareAccessFlag: Bool = false, hardwareDirty: Bool = false, accessFlagFaultDisabled: Bool = false, forcedWriteBack: Bool = false
    ) {
        self.base = base
        self.granuleShift = granuleShift
        self.startLevel = startLevel
        self.inputBits = inputBits
        self.outputBits = outputBits
        self.hardwareAccessFlag = hardwareAccessFlag
        self.hardwareDirty = hardwareDirty
        self.accessFlagFaultDisabled = accessFlagFaultDisabled
        self.forcedWriteBack = forcedWriteBack
    }

    /// Bits resolved per level below the starting level.
    @inlinable @inline(__always) public var stride: Int { Int(granuleShift) - 3 }

    /// The address bit below which a level's index starts: `granule + stride * (3 - level)`.
    @inlinable @inline(__always) public func levelShift(_ level: Int) -> Int { Int(granuleShift) + stride * (3 - level) }

    /// The TG encoding of TLBI commands and TTL hints (1 = 4 KB, 2 = 16 KB, 3 = 64 KB).
    @inlinable public var tlbiGranule: UInt8 {
        switch granuleShift {
        case 12: 1
        case 14: 2
        default: 3
        }
    }

    /// The starting level for a stage-1 table of `inputBits` with granule `granuleShift`
    /// (Arm ARM: 3 - floor((inputsize - 1 - granule) / stride)).
    @inlinable
    public static func stage1StartLevel(inputBits: Int, granuleShift: Int) -> Int {
        let stride = granuleShift - 3
        return 3 - (inputBits - 1 - granuleShift) / stride
    }

    /// Whether a block descriptor is allowed at `level` (no FEAT_LPA2: 4 KB blocks at levels 1
    /// and 2, 16 KB at level 2, 64 KB at level 2 and, with 52-bit output, level 1).
    @inlinable
    public func blockAllowed(at level: Int) -> Bool {
        switch granuleShift {
        case 12: level == 1 || level == 2
        case 14: level == 2
        default: level == 2 || (level == 1 && outputBits == 52)
        }
    }

    /// The output address held by a table, block or page descriptor at a level whose entries
    /// map `2^shift` bytes.
    @inlinable @inline(__always)
    public func outputAddress(_ descriptor: UInt64, shift: Int) -> UInt64 {
        var address = Descriptor.outputAddress.extract(descriptor) & ~UInt64.lowBits(shift)
        if granuleShift == 16 && outputBits == 52 {
            address |= Descriptor.outputAddressHigh64K.extract(descriptor) << 48
        }
        return address
    }

    /// The number of descriptors in a contiguous group at `level` (Arm ARM D8.6.1: 16 for 4 KB;
    /// 128 at level 3 and 32 at level 2 for 16 KB; 32 for 64 KB).
    @inlinable
    public func contiguousEntries(at level: Int) -> UInt64 {
        switch (granuleShift, level) {
        case (12, _): 16
        case (14, 3): 128
        default: 32
        }
    }
}
