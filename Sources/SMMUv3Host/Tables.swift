import Platform
import VMSA
import SMMUv3

/// A bump allocator handing out zeroed, aligned regions of physical memory for tables and
/// queues.
public final class DMAArena {
    /// The next free address.
    public private(set) var next: UInt64
    /// The end of the arena (exclusive).
    public let limit: UInt64

    /// An arena covering `[base, base + size)`.
    public init(base: UInt64, size: UInt64) {
        next = base
        limit = base &+ size
    }

    /// Allocates `bytes` aligned to `alignment` (a power of two). Traps when the arena is
    /// exhausted: arena sizes are test set-up, not guest input.
    public func allocate(_ bytes: UInt64, alignment: UInt64 = 4096) -> UInt64 {
        let start = (next + alignment - 1) & ~(alignment - 1)
        precondition(start + bytes <= limit, "DMA arena exhausted")
        next = start + bytes
        return start
    }
}

/// The contents of a Stream Table Entry (§5.2), encoded with ``words``.
public struct STEConfig: Sendable, Hashable {
    /// STE.Config values.
    public enum Config: UInt8, Sendable {
        case abort = 0b000, bypass = 0b100, stage1 = 0b101, stage2 = 0b110, nested = 0b111
    }

    /// Stage-2 fields.
    public struct Stage2: Sendable, Hashable {
        /// S2T0SZ: the stage-2 input (IPA) size is 64 - t0sz bits; STE[165:160].
        public var t0sz: UInt8
        /// S2SL0: the stage-2 starting level encoding; STE[167:166].
        public var sl0: UInt8
        /// S2TG encoding: 0b00 4 KB, 0b01 64 KB, 0b10 16 KB.
        public var tg: UInt8
        /// S2PS encoding.
        public var ps: UInt8 = 0b101
        /// The stage-2 table address; bits [51:4] go to STE.S2TTB[243:196].
        public var ttb: UInt64
        /// S2HA: hardware update of the stage-2 Access flag; STE[184].
        public var hardwareAccessFlag = false
        /// S2HD: hardware update of stage-2 dirty state; STE[183].
        public var hardwareDirty = false
        /// S2AFFD: never raise stage-2 Access flag faults; STE[181].
        public var accessFlagFaultDisable = false
        /// S2PTW: stage-1 walks and CD fetches to stage-2 Device memory fault; STE[182].
        public var checksDeviceWalks = false
        /// S2FWB: stage-2 MemAttr uses the forced-write-back encoding; STE[89].
        public var forcedWriteBack = false
        /// S2S: stall on stage-2 faults; STE[185].
        public var stall = false
        /// S2R: record stage-2 faults; STE[186].
        public var record = true

        /// Stage-2 fields for a table built by `table`.
        public init(_ table: PageTableBuilder) {
            t0sz = UInt8(64 - table.inputBits)
            sl0 = UInt8(table.stage2SL0)
            tg = table.granuleShift == 12 ? 0b00 : (table.granuleShift == 16 ? 0b01 : 0b10)
            ttb = table.root
        }
    }

    /// STE.V[0].
    public var valid = true
    /// STE.Config[3:1].
    public var config: Config
    /// The CD or CD table address; bits [55:6] go to STE.S1ContextPtr (low 6 bits dropped).
    public var s1ContextPointer: UInt64 = 0
    /// STE.S1Fmt[5:4]: CD table format (see ``CDTableBuilder/Format``).
    public var s1Format: UInt8 = 0
    /// STE.S1CDMax[63:59]: log2 of the number of CDs (0: one CD, no substreams).
    public var s1CDMax: UInt8 = 0
    /// STE.S1DSS[65:64]: 0b00 terminate, 0b01 bypass stage 1, 0b10 CD 0 for non-SSID traffic.
    public var s1DSS: UInt8 = 0
    /// STE.S1STALLD[91]: CDs may not select stall.
    public var s1StallDisable = false
    /// STE.EATS[93:92]: 0b00 no ATS, 0b01 full ATS, 0b10 split-stage ATS.
    public var eats: UInt8 = 0
    /// STE.STRW[95:94]: 0b00 NS-EL1, 0b10 NS-EL2 (stage-1-only streams).
    public var strw: UInt8 = 0
    /// STE.CONT[80:77]: contiguous hint (2^CONT identical STEs).
    public var cont: UInt8 = 0
    /// STE.PPAR[82]: PASID on PRI overflow auto-responses.
    public var ppar = false
    /// STE.PRIVCFG[113:112]: 0b00 incoming, 0b10 unprivileged, 0b11 privileged.
    public var privCfg: UInt8 = 0
    /// STE.INSTCFG[115:114]: 0b00 incoming, 0b10 data, 0b11 instruction.
    public var instCfg: UInt8 = 0
    /// STE.SHCFG[109:108]: 0b01 (default) uses the incoming shareability.
    public var shCfg: UInt8 = 0b01
    /// STE.S2VMID[143:128].
    public var s2VMID: UInt16 = 0
    /// The stage-2 fields (S2AA64 is set to 1); nil leaves them all zero.
    public var stage2: Stage2?

    /// An STE with `config`.
    public init(config: Config) {
        self.config = config
    }

    /// The eight doublewords.
    public var words: [UInt64] {
        var words = [UInt64](repeating: 0, count: 8)
        func put(_ field: StructureField, _ value: UInt64) { words = field.inserting(value, into: words) }
        put(STEField.valid, valid ? 1 : 0)
        put(STEField.config, UInt64(config.rawValue))
        put(STEField.s1Fmt, UInt64(s1Format))
        put(STEField.s1ContextPtr, s1ContextPointer >> 6)
        put(STEField.s1CDMax, UInt64(s1CDMax))
        put(STEField.s1DSS, UInt64(s1DSS))
        put(STEField.s1StallD, s1StallDisable ? 1 : 0)
        put(STEField.eats, UInt64(eats))
        put(STEField.strw, UInt64(strw))
        put(STEField.cont, UInt64(cont))
        put(STEField.ppar, ppar ? 1 : 0)
        put(STEField.privCfg, UInt64(privCfg))
        put(STEField.instCfg, UInt64(instCfg))
        put(STEField.shCfg, UInt64(shCfg))
        put(STEField.s2VMID, UInt64(s2VMID))
        if let s2 = stage2 {
            put(STEField.s2T0SZ, UInt64(s2.t0sz))
            put(STEField.s2SL0, UInt64(s2.sl0))
            put(STEField.s2TG, UInt64(s2.tg))
            put(STEField.s2PS, UInt64(s2.ps))
            put(STEField.s2AA64, 1)
            put(STEField.s2HA, s2.hardwareAccessFlag ? 1 : 0)
            put(STEField.s2HD, s2.hardwareDirty ? 1 : 0)
            put(STEField.s2AFFD, s2.accessFlagFaultDisable ? 1 : 0)
            put(STEField.s2PTW, s2.checksDeviceWalks ? 1 : 0)
            put(STEField.s2FWB, s2.forcedWriteBack ? 1 : 0)
            put(STEField.s2S, s2.stall ? 1 : 0)
            put(STEField.s2R, s2.record ? 1 : 0)
            put(STEField.s2TTB, s2.ttb >> 4)
        }
        return words
    }
}

/// The contents of a Context Descriptor (§5.4), encoded with ``words``.
public struct CDConfig: Sendable, Hashable {
    /// CD.V[31].
    public var valid = true
    /// CD.T0SZ[5:0]: TTB0 input size is 64 - t0sz bits (default 16: 48-bit VAs).
    public var t0sz: UInt8 = 16
    /// TG0 encoding: 0b00 4 KB, 0b01 64 KB, 0b10 16 KB.
    public var tg0: UInt8 = 0
    /// The TTB0 table address; bits [51:4] go to CD.TTB0[115:68].
    public var ttb0: UInt64 = 0
    /// CD.EPD0[14]: disable TTB0 walks.
    public var epd0 = false
    /// CD.T1SZ[21:16]: TTB1 input size is 64 - t1sz bits.
    public var t1sz: UInt8 = 16
    /// TG1 encoding: 0b01 16 KB, 0b10 4 KB, 0b11 64 KB.
    public var tg1: UInt8 = 0b10
    /// The TTB1 table address; bits [51:4] go to CD.TTB1[179:132].
    public var ttb1: UInt64 = 0
    /// CD.EPD1[30]: disable TTB1 walks (default: disabled).
    public var epd1 = true
    /// IPS encoding (0b101 = 48 bits).
    public var ips: UInt8 = 0b101
    /// CD.ASID[63:48].
    public var asid: UInt16 = 0
    /// CD.ASET[47]: SMMU-private ASID set.
    public var aset = false
    /// CD.S[44]: stall on stage-1 faults.
    public var stall = false
    /// CD.R[45]: record terminated stage-1 faults.
    public var record = true
    /// CD.A[46]: terminated stage-1 faults abort (rather than RAZ/WI).
    public var abort = true
    /// CD.HA[43]: hardware update of the stage-1 Access flag.
    public var hardwareAccessFlag = false
    /// CD.HD[42]: hardware update of stage-1 dirty state.
    public var hardwareDirty = false
    /// CD.AFFD[35]: never raise stage-1 Access flag faults.
    public var accessFlagFaultDisable = false
    /// CD.WXN[36]: writable implies execute-never.
    public var wxn = false
    /// CD.PAN[40]: Privileged Access Never.
    public var pan = false
    /// CD.TBI0[38]: top byte ignored in the TTB0 region.
    public var tbi0 = false
    /// CD.TBI1[39]: top byte ignored in the TTB1 region.
    public var tbi1 = false
    /// CD.HAD0[65]: disable hierarchical attributes for TTB0.
    public var had0 = false
    /// CD.HAD1[129]: disable hierarchical attributes for TTB1.
    public var had1 = false
    /// CD.AA64[41]: VMSAv8-64 tables.
    public var aa64 = true
    /// CD.ENDI[15]: big-endian tables.
    public var endi = false
    /// MAIR: low half to CD.MAIR0[223:192], high half to CD.MAIR1[255:224] (default Attr0 = 0xFF).
    public var mair: UInt64 = 0xFF

    /// A CD translating through `table` (TTB0), everything else at its default.
    public init(table0 table: PageTableBuilder? = nil, asid: UInt16 = 0) {
        if let table {
            t0sz = UInt8(64 - table.inputBits)
            tg0 = table.granuleShift == 12 ? 0b00 : (table.granuleShift == 16 ? 0b01 : 0b10)
            ttb0 = table.root
        }
        self.asid = asid
    }

    /// The eight doublewords.
    public var words: [UInt64] {
        var words = [UInt64](repeating: 0, count: 8)
        func put(_ field: StructureField, _ value: UInt64) { words = field.inserting(value, into: words) }
        func put(_ field: StructureField, _ flag: Bool) { put(field, flag ? 1 : 0) }
        put(CDField.t0sz, UInt64(t0sz))
        put(CDField.tg0, UInt64(tg0))
        put(CDField.epd0, epd0)
        put(CDField.endi, endi)
        put(CDField.t1sz, UInt64(t1sz))
        put(CDField.tg1, UInt64(tg1))
        put(CDField.epd1, epd1)
        put(CDField.valid, valid)
        put(CDField.ips, UInt64(ips))
        put(CDField.affd, accessFlagFaultDisable)
        put(CDField.wxn, wxn)
        put(CDField.tbi0, tbi0)
        put(CDField.tbi1, tbi1)
        put(CDField.pan, pan)
        put(CDField.aa64, aa64)
        put(CDField.hd, hardwareDirty)
        put(CDField.ha, hardwareAccessFlag)
        put(CDField.s, stall)
        put(CDField.r, record)
        put(CDField.a, abort)
        put(CDField.aset, aset)
        put(CDField.asid, UInt64(asid))
        put(CDField.had0, had0)
        put(CDField.ttb0, ttb0 >> 4)
        put(CDField.had1, had1)
        put(CDField.ttb1, ttb1 >> 4)
        put(CDField.mair0, mair & 0xFFFF_FFFF)
        put(CDField.mair1, mair >> 32)
        return words
    }
}

/// Attributes of a page or block mapping.
public struct MappingAttributes: Sendable, Hashable {
    // Stage 1.
    /// AP[2] == 0.
    public var writable = true
    /// AP[1] == 1 (EL0 accessible).
    public var unprivileged = true
    /// UXN (XN for EL2).
    public var unprivilegedExecuteNever = false
    /// PXN.
    public var privilegedExecuteNever = false
    /// nG.
    public var notGlobal = true
    /// AttrIndx: the MAIR attribute index, descriptor bits [4:2] (stage 1 only).
    public var attrIndex: UInt8 = 0
    // Both stages.
    /// AF.
    public var accessFlag = true
    /// DBM.
    public var dirtyBitModifier = false
    /// The Contiguous hint.
    public var contiguous = false
    // Stage 2.
    /// S2AP[0].
    public var stage2Read = true
    /// S2AP[1].
    public var stage2Write = true
    /// XN[1:0] (FEAT_XNX).
    public var stage2ExecuteNever: UInt8 = 0
    /// MemAttr[3:0] (0xF: Normal write-back; 0x1: Device-nGnRE).
    public var stage2MemoryAttributes: UInt8 = 0xF

    /// Read, write and execute for everyone.
    public static let readWrite = MappingAttributes()
    /// Read-only.
    public static var readOnly: MappingAttributes {
        var attributes = MappingAttributes()
        attributes.writable = false
        attributes.stage2Write = false
        return attributes
    }

    /// Creates the default (read-write) attributes.
    public init() {}
}

/// Builds a VMSAv8-64 translation table in memory (stage 1 or stage 2), as a driver's
/// io-pgtable would: tables are allocated from an arena and written with CPU stores.
public final class PageTableBuilder {
    /// The stage the table is for.
    public enum Stage: Sendable { case stage1, stage2 }

    /// The memory the tables are written to.
    public let memory: PhysicalMemory
    /// The arena tables are allocated from.
    public let arena: DMAArena
    /// Stage 1 or stage 2, which selects the leaf descriptor attribute format.
    public let stage: Stage
    /// 12, 14 or 16.
    public let granuleShift: Int
    /// 64 - TxSZ.
    public let inputBits: Int
    /// The level the walk starts at.
    public let startLevel: Int
    /// The starting table's address.
    public let root: UInt64

    private var stride: Int { granuleShift - 3 }
    private func levelShift(_ level: Int) -> Int { granuleShift + stride * (3 - level) }

    /// Creates an empty table. Stage 1 starts at the level TxSZ implies; stage 2 at
    /// `startLevel` (default: the lowest level that needs at most 16 concatenated tables).
    public init(memory: PhysicalMemory, arena: DMAArena, stage: Stage, granuleShift: Int = 12, inputBits: Int = 48, startLevel: Int? = nil) {
        self.memory = memory
        self.arena = arena
        self.stage = stage
        self.granuleShift = granuleShift
        self.inputBits = inputBits
        let stride = granuleShift - 3
        let natural = WalkTable.stage1StartLevel(inputBits: inputBits, granuleShift: granuleShift)
        var start = startLevel ?? natural
        if stage == .stage2 && startLevel == nil {
            // Use concatenation (up to 16 tables) to start one level lower when possible.
            let bitsAtNextLevel = inputBits - (granuleShift + stride * (3 - (natural + 1)))
            if natural < 3 && bitsAtNextLevel <= stride + 4 { start = natural + 1 }
        }
        self.startLevel = start
        let rootBits = inputBits - (granuleShift + stride * (3 - start))
        let rootBytes = max(UInt64(8) << UInt64(max(rootBits, 0)), 64)
        root = arena.allocate(rootBytes, alignment: max(rootBytes, 64))
    }

    /// The S2SL0 encoding of the starting level (stage 2).
    public var stage2SL0: Int {
        switch granuleShift {
        case 12: [2, 1, 0, 3][startLevel]
        default: 3 - startLevel
        }
    }

    private func index(_ address: UInt64, level: Int) -> UInt64 {
        let shift = levelShift(level)
        let bits = level == startLevel ? inputBits - shift : stride
        return (address >> UInt64(shift)) & ((UInt64(1) << UInt64(bits)) - 1)
    }

    private func nextTable(_ descriptor: UInt64) -> UInt64 {
        Descriptor.outputAddress.extract(descriptor) & ~UInt64.lowBits(granuleShift)
    }

    /// A valid table descriptor (or level-3 page descriptor) has bits [1:0] == 0b11.
    private static let tableBits = Descriptor.valid.mask | Descriptor.tableOrPage.mask

    /// The address of the descriptor for `address` at `level`, creating intermediate tables.
    public func descriptorAddress(for address: UInt64, level: Int, create: Bool = true) -> UInt64? {
        var table = root
        var current = startLevel
        while current < level {
            let slot = table + index(address, level: current) * 8
            let descriptor = memory.read64(at: slot)
            if descriptor & Self.tableBits == Self.tableBits {
                table = nextTable(descriptor)
            } else {
                guard create else { return nil }
                let fresh = arena.allocate(UInt64(1) << UInt64(granuleShift), alignment: UInt64(1) << UInt64(granuleShift))
                memory.write64(fresh | Self.tableBits, at: slot)
                table = fresh
            }
            current += 1
        }
        return table + index(address, level: level) * 8
    }

    /// The level whose entries map `size` bytes.
    public func level(forSize size: UInt64) -> Int {
        for level in (0...3).reversed() where UInt64(1) << UInt64(levelShift(level)) == size { return level }
        preconditionFailure("no level maps \(size) bytes with a \(1 << granuleShift)-byte granule")
    }

    /// The leaf descriptor value for `output` with `attributes` at `level`.
    public func leafDescriptor(output: UInt64, level: Int, _ attributes: MappingAttributes) -> UInt64 {
        // A page (level 3) or block descriptor, inner shareable.
        var descriptor = Descriptor.valid.mask | (level == 3 ? Descriptor.tableOrPage.mask : 0)
        descriptor |= Descriptor.outputAddress.extract(output)
        if granuleShift == 16 { descriptor |= Descriptor.outputAddressHigh64K.place(output >> 48) }
        descriptor |= Descriptor.af.place(attributes.accessFlag) | Descriptor.sh.place(0b11)
        descriptor |= Descriptor.dbm.place(attributes.dirtyBitModifier) | Descriptor.contiguous.place(attributes.contiguous)
        switch stage {
        case .stage1:
            descriptor |= Descriptor.attrIndx.place(UInt64(attributes.attrIndex))
            descriptor |= Descriptor.ap1.place(attributes.unprivileged) | Descriptor.ap2.place(!attributes.writable)
            descriptor |= Descriptor.nG.place(attributes.notGlobal)
            descriptor |= Descriptor.pxn.place(attributes.privilegedExecuteNever) | Descriptor.uxn.place(attributes.unprivilegedExecuteNever)
        case .stage2:
            descriptor |= Descriptor.s2MemAttr.place(UInt64(attributes.stage2MemoryAttributes))
            descriptor |= Descriptor.s2Read.place(attributes.stage2Read) | Descriptor.s2Write.place(attributes.stage2Write)
            descriptor |= Descriptor.s2XNX.place(UInt64(attributes.stage2ExecuteNever))
        }
        return descriptor
    }

    /// Maps `[address, address + size)` to `output` with one page or block descriptor.
    public func map(_ address: UInt64, to output: UInt64, size: UInt64? = nil, _ attributes: MappingAttributes = .readWrite) {
        let level = level(forSize: size ?? UInt64(1) << UInt64(granuleShift))
        let slot = descriptorAddress(for: address, level: level)!
        memory.write64(leafDescriptor(output: output, level: level, attributes), at: slot)
    }

    /// Replaces the leaf descriptor for `address` (at the level of a `size` mapping).
    public func setDescriptor(_ value: UInt64, for address: UInt64, size: UInt64? = nil) {
        let level = level(forSize: size ?? UInt64(1) << UInt64(granuleShift))
        memory.write64(value, at: descriptorAddress(for: address, level: level)!)
    }

    /// The leaf descriptor for `address` at the level of a `size` mapping.
    public func descriptor(for address: UInt64, size: UInt64? = nil) -> UInt64 {
        let level = level(forSize: size ?? UInt64(1) << UInt64(granuleShift))
        return descriptorAddress(for: address, level: level, create: false).map { memory.read64(at: $0) } ?? 0
    }

    /// Clears the leaf descriptor for `address`.
    public func unmap(_ address: UInt64, size: UInt64? = nil) {
        setDescriptor(0, for: address, size: size)
    }

    /// ORs `bits` into the table descriptor at `level` on the path to `address` (for
    /// hierarchical attributes such as APTable or UXNTable).
    public func setTableBits(_ bits: UInt64, for address: UInt64, level: Int) {
        let slot = descriptorAddress(for: address, level: level)!
        memory.write64(memory.read64(at: slot) | bits, at: slot)
    }
}

/// Builds a stream table (linear or 2-level) in memory.
public final class StreamTableBuilder {
    /// The memory the table is written to.
    public let memory: PhysicalMemory
    /// The arena the table and its level-2 arrays are allocated from.
    public let arena: DMAArena
    /// STRTAB_BASE.
    public let base: UInt64
    /// log2 of the number of StreamIDs.
    public let log2Size: Int
    /// SPLIT for 2-level tables, nil for linear.
    public let split: Int?

    /// Takes over the table at `base` that a driver built (linear, or 2-level with `split`):
    /// level-2 tables it lacks come from `arena`.
    public init(adopting base: UInt64, memory: PhysicalMemory, arena: DMAArena, log2Size: Int, split: Int? = nil) {
        self.memory = memory
        self.arena = arena
        self.log2Size = log2Size
        self.split = split
        self.base = base
    }

    /// Allocates an empty table.
    public init(memory: PhysicalMemory, arena: DMAArena, log2Size: Int, split: Int? = nil) {
        self.memory = memory
        self.arena = arena
        self.log2Size = log2Size
        self.split = split
        if let split {
            let bytes = max(UInt64(8) << UInt64(max(log2Size - split, 0)), 64)
            base = arena.allocate(bytes, alignment: bytes)
        } else {
            let bytes = UInt64(64) << UInt64(log2Size)
            base = arena.allocate(bytes, alignment: bytes)
        }
    }

    /// STRTAB_BASE_CFG.
    public var baseConfig: UInt32 {
        guard let split else { return UInt32(log2Size) }
        return Reg.STRTAB.fmt.place32(UInt32(Reg.STRTAB.fmtTwoLevel)) | Reg.STRTAB.split.place32(UInt32(split)) | Reg.STRTAB.log2Size.place32(UInt32(log2Size))
    }

    /// The address of the L1STD covering `streamID` (2-level tables).
    public func l1Address(for streamID: UInt32) -> UInt64? {
        guard let split else { return nil }
        return base + (log2Size > split ? UInt64(streamID) >> UInt64(split) : 0) * 8
    }

    /// The address of the STE for `streamID`, allocating a full level-2 array (Span =
    /// SPLIT + 1) when needed.
    public func steAddress(for streamID: UInt32) -> UInt64 {
        guard let split, let l1 = l1Address(for: streamID) else { return base + UInt64(streamID) * 64 }
        var descriptor = memory.read64(at: l1)
        if descriptor & 0x1F == 0 {
            let bytes = UInt64(64) << UInt64(split)
            let l2 = arena.allocate(bytes, alignment: bytes)
            descriptor = l2 | UInt64(split + 1)
            memory.write64(descriptor, at: l1)
        }
        return (descriptor & 0x00FF_FFFF_FFFF_FFC0) + (UInt64(streamID) & ((1 << UInt64(split)) - 1)) * 64
    }

    /// Writes the STE for `streamID`.
    public func set(_ streamID: UInt32, _ ste: STEConfig) {
        write(ste.words, at: steAddress(for: streamID))
    }

    /// Writes raw STE words for `streamID`.
    public func setWords(_ streamID: UInt32, _ words: [UInt64]) {
        write(words, at: steAddress(for: streamID))
    }

    private func write(_ words: [UInt64], at address: UInt64) {
        for (index, word) in words.enumerated() { memory.write64(word, at: address + UInt64(index) * 8) }
    }
}

/// Builds a CD table (single CD, linear, or 2-level with 4 KB or 64 KB leaves).
public final class CDTableBuilder {
    /// STE.S1Fmt values.
    public enum Format: UInt8, Sendable { case linear = 0, twoLevel4K = 1, twoLevel64K = 2 }

    /// The memory the table is written to.
    public let memory: PhysicalMemory
    /// The arena the table and its leaf tables are allocated from.
    public let arena: DMAArena
    /// S1CDMax (0: a single CD).
    public let cdMax: Int
    /// The table format, for STE.S1Fmt.
    public let format: Format
    /// STE.S1ContextPtr.
    public let pointer: UInt64

    /// Allocates an empty table of 2^cdMax CDs.
    public init(memory: PhysicalMemory, arena: DMAArena, cdMax: Int = 0, format: Format = .linear) {
        self.memory = memory
        self.arena = arena
        self.cdMax = cdMax
        self.format = format
        switch format {
        case .linear:
            let bytes = UInt64(64) << UInt64(cdMax)
            pointer = arena.allocate(bytes, alignment: bytes)
        case .twoLevel4K, .twoLevel64K:
            let leafBits = format == .twoLevel4K ? 6 : 10
            let bytes = max(UInt64(8) << UInt64(max(cdMax - leafBits, 0)), 64)
            pointer = arena.allocate(bytes, alignment: bytes)
        }
    }

    /// The address of the L1CD covering `substreamID` (2-level tables).
    public func l1Address(for substreamID: UInt32) -> UInt64? {
        guard format != .linear else { return nil }
        let leafBits = format == .twoLevel4K ? 6 : 10
        return pointer + (cdMax > leafBits ? UInt64(substreamID) >> UInt64(leafBits) : 0) * 8
    }

    /// The address of the CD for `substreamID`, allocating its leaf table when needed.
    public func cdAddress(for substreamID: UInt32) -> UInt64 {
        guard let l1 = l1Address(for: substreamID) else { return pointer + UInt64(substreamID) * 64 }
        let leafBits = format == .twoLevel4K ? 6 : 10
        var descriptor = memory.read64(at: l1)
        if descriptor & 1 == 0 {
            let bytes = UInt64(64) << UInt64(leafBits)
            descriptor = arena.allocate(bytes, alignment: bytes) | 1
            memory.write64(descriptor, at: l1)
        }
        return (descriptor & 0x00FF_FFFF_FFFF_F000) + (UInt64(substreamID) & ((1 << UInt64(leafBits)) - 1)) * 64
    }

    /// Writes the CD for `substreamID`.
    public func set(_ substreamID: UInt32, _ cd: CDConfig) {
        let address = cdAddress(for: substreamID)
        for (index, word) in cd.words.enumerated() { memory.write64(word, at: address + UInt64(index) * 8) }
    }
}
