import Platform

/// The stage a walk belongs to: stage 1 (VA to IPA or PA) or stage 2 (IPA to PA).
public enum TranslationStage: UInt8, Sendable {
    case stage1 = 1
    case stage2 = 2
}

/// The leaf a walk found.
public struct WalkLeaf: Equatable, Sendable {
    /// The block or page descriptor (after any hardware update).
    public var descriptor: UInt64
    /// Its level.
    public var level: Int8
    /// log2 of the bytes it maps.
    public var shift: UInt8
    /// The output address of the mapped block or page (aligned).
    public var outputBase: UInt64
    /// APTable[0] of a table above (stage 1): no unprivileged access below.
    public var noUnprivileged = false
    /// APTable[1] of a table above (stage 1): no write access below.
    public var readOnly = false
    /// UXNTable (XNTable) of a table above (stage 1).
    public var unprivilegedExecuteNever = false
    /// PXNTable of a table above (stage 1).
    public var privilegedExecuteNever = false
    /// The physical address the leaf descriptor was read from.
    public var descriptorAddress: UInt64
    /// The address of the leaf descriptor before any stage-2 translation (its IPA, for nested
    /// stage-1 walks; otherwise equal to `descriptorAddress`).
    public var descriptorIPA: UInt64

    /// A leaf without hierarchical attributes.
    @inlinable
    public init(descriptor: UInt64, level: Int8, shift: UInt8, outputBase: UInt64, descriptorAddress: UInt64) {
        self.descriptor = descriptor
        self.level = level
        self.shift = shift
        self.outputBase = outputBase
        self.descriptorAddress = descriptorAddress
        descriptorIPA = descriptorAddress
    }
}

/// One walk through a table (Arm ARM D8.2, VMSAv8-64): the descriptor address at each level and
/// the rule for each descriptor read. Every walk of the model goes through it.
public struct WalkCursor {
    /// What one descriptor says.
    public enum Step {
        /// A table descriptor: the walk continues at the next level.
        case table
        /// A block or page descriptor mapping `output`.
        case leaf(output: UInt64)
        /// The walk ends with a Translation fault (invalid descriptor, block where none is
        /// allowed, table or reserved encoding at level 3).
        case translationFault
        /// The walk ends with an Address size fault (output address beyond `outputBits`).
        case addressSizeFault
    }

    /// The table walked.
    public let table: WalkTable
    /// The input address.
    public let input: UInt64
    /// The level being read.
    @inlinable public var level: Int { currentLevel }
    /// The address bit below which the level's index starts.
    @inlinable public var shift: Int { currentShift }
    @usableFromInline var currentLevel: Int
    @usableFromInline var currentShift: Int
    @usableFromInline var indexMask: UInt64
    @usableFromInline var tableAddress: UInt64
    /// Table descriptors' bits ORed together (hierarchical attributes, stage 1).
    @usableFromInline var tableAttributes: UInt64 = 0

    /// Starts a walk of `table` for `input` at its starting level.
    @inlinable @inline(__always)
    public init(_ table: WalkTable, input: UInt64) {
        self.table = table
        self.input = input
        currentLevel = Int(table.startLevel)
        currentShift = table.levelShift(currentLevel)
        // The starting level resolves the input bits above `shift`; each later level `stride`.
        indexMask = UInt64.lowBits(Int(table.inputBits) - currentShift)
        tableAddress = table.base
    }

    /// The address of the descriptor for the current level (an IPA for a nested stage-1 walk).
    @inlinable @inline(__always)
    public var descriptorAddress: UInt64 { tableAddress &+ ((input >> UInt64(shift)) & indexMask) &* 8 }

    /// Applies the rules to the descriptor read at the current level: validity, table or
    /// block/page, where blocks are allowed, and the output address size.
    @inlinable @inline(__always)
    public mutating func step(_ descriptor: UInt64) -> Step {
        guard Descriptor.valid.isSet(descriptor) else { return .translationFault }
        let isTable = Descriptor.tableOrPage.isSet(descriptor)
        if level < 3 && isTable {
            let next = table.outputAddress(descriptor, shift: Int(table.granuleShift))
            if next >> UInt64(table.outputBits) != 0 { return .addressSizeFault }
            tableAttributes |= descriptor
            tableAddress = next
            currentLevel += 1
            currentShift -= table.stride
            indexMask = UInt64.lowBits(table.stride)
            return .table
        }
        if level == 3 ? !isTable : !table.blockAllowed(at: level) { return .translationFault }
        let output = table.outputAddress(descriptor, shift: shift)
        if output >> UInt64(table.outputBits) != 0 { return .addressSizeFault }
        return .leaf(output: output)
    }

    /// The leaf found at the current level, with the hierarchical attributes (stage 1 only:
    /// APTable, UXNTable, PXNTable) of the tables above it.
    @inlinable @inline(__always)
    public func leaf(_ descriptor: UInt64, output: UInt64, descriptorAddress: UInt64, stage: TranslationStage) -> WalkLeaf {
        var leaf = WalkLeaf(descriptor: descriptor, level: Int8(level), shift: UInt8(shift), outputBase: output, descriptorAddress: descriptorAddress)
        if stage == .stage1 {
            leaf.privilegedExecuteNever = Descriptor.pxnTable.isSet(tableAttributes)
            leaf.unprivilegedExecuteNever = Descriptor.uxnTable.isSet(tableAttributes)
            leaf.noUnprivileged = Descriptor.apTable0.isSet(tableAttributes)
            leaf.readOnly = Descriptor.apTable1.isSet(tableAttributes)
        }
        return leaf
    }
}

/// Where a walk reads its descriptors: plain memory, a bus with fault rules, or (for a nested
/// stage-1 walk) stage 2 and then memory. Generic, so a walk specialises for its reader.
public protocol DescriptorReader {
    /// Why a read failed (an external abort, or the stage-2 fault of a nested walk).
    associatedtype Failure: Error

    /// Reads the descriptor at `address` (an IPA for a nested stage-1 walk: the reader
    /// translates it) for the walk at `level`; returns the value and the physical address it
    /// was read from.
    mutating func readDescriptor(at address: UInt64, level: Int) -> Result<(value: UInt64, physicalAddress: UInt64), Failure>
}

/// How a walk ended.
public enum WalkOutcome<Failure: Error> {
    /// A block or page descriptor.
    case leaf(WalkLeaf)
    /// A Translation fault at `level`.
    case translationFault(level: Int)
    /// An Address size fault at `level`.
    case addressSizeFault(level: Int)
    /// The reader failed at `level`.
    case readFailed(Failure, level: Int)
}

extension WalkOutcome: Equatable where Failure: Equatable {}

/// Walks `table` for `input` (Arm ARM D8.2): per level, the descriptor read through `reader`,
/// its validity, and its output address size. Access flag, permissions and hardware updates
/// are the caller's, as they depend on the access and on who walks.
@inlinable @inline(__always)
public func walk<Reader: DescriptorReader>(_ table: WalkTable, input: UInt64, stage: TranslationStage, reader: inout Reader) -> WalkOutcome<Reader.Failure> {
    var cursor = WalkCursor(table, input: input)
    while true {
        let descriptorIPA = cursor.descriptorAddress
        let read: (value: UInt64, physicalAddress: UInt64)
        switch reader.readDescriptor(at: descriptorIPA, level: cursor.level) {
        case .success(let value): read = value
        case .failure(let failure): return .readFailed(failure, level: cursor.level)
        }
        switch cursor.step(read.value) {
        case .table:
            continue
        case .translationFault:
            return .translationFault(level: cursor.level)
        case .addressSizeFault:
            return .addressSizeFault(level: cursor.level)
        case .leaf(let output):
            var leaf = cursor.leaf(read.value, output: output, descriptorAddress: read.physicalAddress, stage: stage)
            leaf.descriptorIPA = descriptorIPA
            return .leaf(leaf)
        }
    }
}

/// A read outside RAM.
public struct DescriptorReadAbort: Error, Hashable, Sendable {
    /// The address read.
    public let address: UInt64

    /// An abort reading `address`.
    @inlinable
    public init(address: UInt64) {
        self.address = address
    }
}

/// Reads descriptors straight from physical memory, failing outside RAM: for walking page
/// tables (an io-pgtable's, or a process's CPU tables) without an SMMU.
public struct MemoryDescriptorReader: DescriptorReader {
    public let memory: PhysicalMemory

    /// A reader of `memory`.
    public init(_ memory: PhysicalMemory) {
        self.memory = memory
    }

    @inlinable
    public mutating func readDescriptor(at address: UInt64, level: Int) -> Result<(value: UInt64, physicalAddress: UInt64), DescriptorReadAbort> {
        guard memory.isRAM(address, length: 8) else { return .failure(DescriptorReadAbort(address: address)) }
        return .success((memory.read64(at: address), address))
    }
}
