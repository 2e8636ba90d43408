import Testing
import Platform
import VMSA

/// Builds VMSAv8-64 tables in plain memory, without any SMMU: table pages are handed out from
/// `nextTable` upwards.
final class Tables {
    let memory = PhysicalMemory()
    var nextTable: UInt64 = 0x10_0000
    let granuleShift: Int

    init(granuleShift: Int = 12) {
        self.granuleShift = granuleShift
    }

    func newTable() -> UInt64 {
        defer { nextTable += 1 << UInt64(granuleShift) }
        return nextTable
    }

    /// A walk table rooted at a fresh table.
    func root(inputBits: Int = 48, outputBits: Int = 48) -> WalkTable {
        WalkTable(
            base: newTable(), granuleShift: UInt8(granuleShift),
            startLevel: Int8(WalkTable.stage1StartLevel(inputBits: inputBits, granuleShift: granuleShift)),
            inputBits: UInt8(inputBits), outputBits: UInt8(outputBits))
    }

    /// Writes `leaf` for `input` at `level`, creating tables above it with `tableBits` ORed into
    /// each table descriptor.
    func map(_ table: WalkTable, input: UInt64, level: Int, leaf: UInt64, tableBits: UInt64 = 0) {
        var address = table.base
        var current = Int(table.startLevel)
        while true {
            let shift = table.levelShift(current)
            let bits = current == Int(table.startLevel) ? Int(table.inputBits) - shift : table.stride
            let slot = address + ((input >> UInt64(shift)) & UInt64.lowBits(bits)) * 8
            if current == level {
                memory.write64(leaf, at: slot)
                return
            }
            var descriptor = memory.read64(at: slot)
            if descriptor & 3 != 3 {
                descriptor = newTable() | 3 | tableBits
                memory.write64(descriptor, at: slot)
            }
            address = table.outputAddress(descriptor, shift: granuleShift)
            current += 1
        }
    }

    func walk(_ table: WalkTable, _ input: UInt64, stage: TranslationStage = .stage1) -> WalkOutcome<DescriptorReadAbort> {
        var reader = MemoryDescriptorReader(memory)
        return VMSA.walk(table, input: input, stage: stage, reader: &reader)
    }
}

/// Page and block descriptors: valid, page/table bit as the level needs, AF set.
let pageBits: UInt64 = 0b11 | 1 << 10
let blockBits: UInt64 = 0b01 | 1 << 10

extension WalkOutcome {
    var leaf: WalkLeaf? {
        if case .leaf(let leaf) = self { return leaf }
        return nil
    }
}

/// The VMSAv8-64 walk on its own (Arm ARM D8.2), read from plain memory: what the SMMU,
/// page-table builders and CPU page-table checks share.
@Suite struct VMSAWalkTests {
    @Test func aFourLevelWalkFindsTheLevel3Page() {
        let tables = Tables()
        let table = tables.root()
        #expect(table.startLevel == 0)
        tables.map(table, input: 0x7F12_3456_7000, level: 3, leaf: 0x8765_4000 | pageBits)
        let leaf = tables.walk(table, 0x7F12_3456_7ABC).leaf
        #expect(leaf?.level == 3)
        #expect(leaf?.shift == 12)
        #expect(leaf?.outputBase == 0x8765_4000)
        // The leaf descriptor sits in the fourth table page, at index (input >> 12) & 511.
        #expect(leaf?.descriptorAddress == 0x10_3000 + ((0x7F12_3456_7000 >> 12) & 511) * 8)
        #expect(leaf?.descriptorIPA == leaf?.descriptorAddress)
    }

    @Test func blocksAreAllowedAtLevels1And2OfA4KBGranuleOnly() {
        let tables = Tables()
        let table = tables.root()
        tables.map(table, input: 0x4000_0000, level: 1, leaf: 0x1_4000_0000 | blockBits)
        tables.map(table, input: 0x8020_0000, level: 2, leaf: 0x60_0000 | blockBits)
        tables.map(table, input: 0x80_0000_0000, level: 0, leaf: blockBits)
        let gigabyte = tables.walk(table, 0x4123_4567).leaf
        #expect(gigabyte?.shift == 30 && gigabyte?.outputBase == 0x1_4000_0000)
        let twoMegabytes = tables.walk(table, 0x8021_0000).leaf
        #expect(twoMegabytes?.shift == 21 && twoMegabytes?.outputBase == 0x60_0000)
        #expect(tables.walk(table, 0x80_0000_0000) == .translationFault(level: 0), "no block at level 0")
        // At level 3 the block encoding (bit 1 clear) is reserved.
        tables.map(table, input: 0x9000_0000, level: 3, leaf: 0x9000_0000 | blockBits)
        #expect(tables.walk(table, 0x9000_0000) == .translationFault(level: 3))
    }

    @Test func anInvalidDescriptorEndsTheWalkWithATranslationFaultAtItsLevel() {
        let tables = Tables()
        let table = tables.root()
        #expect(tables.walk(table, 0x1000) == .translationFault(level: 0))
        tables.map(table, input: 0x1000, level: 3, leaf: 0x5000 | pageBits)
        #expect(tables.walk(table, 0x2000) == .translationFault(level: 3))
    }

    @Test func anOutputAddressBeyondTheOutputSizeIsAnAddressSizeFault() {
        let tables = Tables()
        let table = tables.root(outputBits: 40)
        tables.map(table, input: 0x1000, level: 3, leaf: 0x100_0000_0000 | pageBits)
        #expect(tables.walk(table, 0x1000) == .addressSizeFault(level: 3))
        tables.map(table, input: 0x2000, level: 3, leaf: 0xFF_FFFF_F000 | pageBits)
        #expect(tables.walk(table, 0x2000).leaf?.outputBase == 0xFF_FFFF_F000)
    }

    @Test func aTableOutsideRAMIsAReadFailureAtTheAddressRead() {
        let tables = Tables()
        var table = tables.root()
        table.base = 0xFFFF_0000_0000
        #expect(tables.walk(table, 0) == .readFailed(DescriptorReadAbort(address: 0xFFFF_0000_0000), level: 0))
    }

    @Test func aSixtyFourKBGranuleWith52BitOutputTakesOA51To48FromBits15To12() {
        let tables = Tables(granuleShift: 16)
        let table = tables.root(inputBits: 48, outputBits: 52)
        #expect(table.startLevel == 1)
        tables.map(table, input: 0x12_0000, level: 3, leaf: 0x0000_8765_0000 | 0xA << 12 | pageBits)
        let leaf = tables.walk(table, 0x12_3456).leaf
        #expect(leaf?.shift == 16)
        #expect(leaf?.outputBase == 0x000A_0000_8765_0000)
        // Level-1 blocks exist only with 52-bit output.
        #expect(table.blockAllowed(at: 1))
        #expect(!WalkTable(granuleShift: 16, outputBits: 48).blockAllowed(at: 1))
    }

    @Test func stage1CollectsTheTablesHierarchicalAttributesAndStage2DoesNot() {
        let tables = Tables()
        let table = tables.root()
        let apTable = Descriptor.apTable0.mask | Descriptor.apTable1.mask | Descriptor.uxnTable.mask | Descriptor.pxnTable.mask
        tables.map(table, input: 0x1000, level: 3, leaf: 0x5000 | pageBits, tableBits: apTable)
        let stage1 = tables.walk(table, 0x1000).leaf
        #expect(stage1?.noUnprivileged == true && stage1?.readOnly == true)
        #expect(stage1?.unprivilegedExecuteNever == true && stage1?.privilegedExecuteNever == true)
        let stage2 = tables.walk(table, 0x1000, stage: .stage2).leaf
        #expect(stage2?.noUnprivileged == false && stage2?.readOnly == false)
    }

    /// A reader that translates each descriptor address (as stage 2 does for a nested walk).
    struct OffsetReader: DescriptorReader {
        let memory: PhysicalMemory
        let offset: UInt64
        var reads: [UInt64] = []

        mutating func readDescriptor(at address: UInt64, level: Int) -> Result<(value: UInt64, physicalAddress: UInt64), DescriptorReadAbort> {
            reads.append(address)
            let physical = address &+ offset
            guard memory.isRAM(physical, length: 8) else { return .failure(DescriptorReadAbort(address: physical)) }
            return .success((memory.read64(at: physical), physical))
        }
    }

    @Test func aTranslatingReaderSeesTableAddressesAsIPAsAndTheLeafKeepsBoth() {
        let tables = Tables()
        let table = tables.root(inputBits: 39)
        #expect(table.startLevel == 1)
        tables.map(table, input: 0x40_2000, level: 3, leaf: 0x7000 | pageBits)
        // Move the three tables up by 1 GB; their descriptors keep pointing at the old
        // addresses, which the walk treats as IPAs and the reader translates.
        let offset: UInt64 = 0x4000_0000
        for index in UInt64(0)..<(3 * 512) {
            let address = 0x10_0000 + index * 8
            tables.memory.write64(tables.memory.read64(at: address), at: offset + address)
            tables.memory.write64(0, at: address)
        }
        var reader = OffsetReader(memory: tables.memory, offset: offset)
        let leaf = VMSA.walk(table, input: 0x40_2000, stage: .stage1, reader: &reader).leaf
        #expect(reader.reads.count == 3)
        #expect(reader.reads.allSatisfy { $0 < offset }, "the walk hands the reader IPAs")
        #expect(leaf?.outputBase == 0x7000)
        #expect(leaf.map { $0.descriptorAddress &- $0.descriptorIPA } == offset)
    }

    @Test func startLevelsAndContiguousGroupSizesFollowTheGranule() {
        #expect(WalkTable.stage1StartLevel(inputBits: 48, granuleShift: 12) == 0)
        #expect(WalkTable.stage1StartLevel(inputBits: 39, granuleShift: 12) == 1)
        #expect(WalkTable.stage1StartLevel(inputBits: 47, granuleShift: 14) == 1)
        #expect(WalkTable.stage1StartLevel(inputBits: 42, granuleShift: 16) == 2)
        #expect(WalkTable(granuleShift: 12).contiguousEntries(at: 3) == 16)
        #expect(WalkTable(granuleShift: 14).contiguousEntries(at: 3) == 128)
        #expect(WalkTable(granuleShift: 14).contiguousEntries(at: 2) == 32)
        #expect(WalkTable(granuleShift: 16).contiguousEntries(at: 3) == 32)
        #expect(WalkTable(granuleShift: 16).tlbiGranule == 3)
    }
}
