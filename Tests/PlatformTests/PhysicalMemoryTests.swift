import Testing
import Platform

@Suite struct PhysicalMemoryTests {
    @Test func untouchedMemoryReadsZeroWithoutAllocating() {
        let memory = PhysicalMemory()
        #expect(memory.read64(at: 0x1234_5678_9000) == 0)
        #expect(memory.read32(at: 0xF_FFFF_FFFF_FFF0) == 0)
        #expect(memory.bytes(at: 0x4000_0000, count: 64) == [UInt8](repeating: 0, count: 64))
        #expect(memory.allocatedPageCount == 0)
    }

    @Test func typedAccessorsAreLittleEndian() {
        let memory = PhysicalMemory()
        memory.write64(0x1122_3344_5566_7788, at: 0x1000)
        #expect(memory.read8(at: 0x1000) == 0x88)
        #expect(memory.read16(at: 0x1000) == 0x7788)
        #expect(memory.read32(at: 0x1004) == 0x1122_3344)
        memory.write16(0xABCD, at: 0x2002)
        #expect(memory.bytes(at: 0x2000, count: 4) == [0, 0, 0xCD, 0xAB])
        #expect(memory.allocatedPageCount == 2)
    }

    @Test func accessesCrossingAPageBoundaryTouchBothPages() {
        let memory = PhysicalMemory()
        memory.write64(0x0102_0304_0506_0708, at: 0x1FFC)
        #expect(memory.read32(at: 0x1FFC) == 0x0506_0708)
        #expect(memory.read32(at: 0x2000) == 0x0102_0304)
        #expect(memory.read64(at: 0x1FFC) == 0x0102_0304_0506_0708)
        #expect(memory.allocatedPageCount == 2)
    }

    @Test func bulkCopiesSpanPagesAndFillZeroDoesNotAllocate() {
        let memory = PhysicalMemory()
        let bytes = (0..<10_000).map { UInt8(truncatingIfNeeded: $0 * 7) }
        memory.write(bytes, at: 0x3_0F00)
        #expect(memory.bytes(at: 0x3_0F00, count: bytes.count) == bytes)
        let pages = memory.allocatedPageCount
        memory.fill(0, at: 0x9000_0000, count: 0x10000)
        #expect(memory.allocatedPageCount == pages)
        memory.fill(0xAA, at: 0x3_0F00, count: 3)
        #expect(memory.bytes(at: 0x3_0EFF, count: 5) == [0, 0xAA, 0xAA, 0xAA, bytes[3]])
    }

    @Test func addressesBeyondFiftyTwoBitsAreOutsideTheSpace() {
        let memory = PhysicalMemory(map: .wholePhysicalSpace)
        #expect(PhysicalMemory.contains((1 << 52) - 1))
        #expect(!PhysicalMemory.contains(1 << 52))
        #expect(!PhysicalMemory.contains((1 << 52) - 4, length: 8))
        #expect(!PhysicalMemory.contains(.max, length: 2))
        memory.write64(0xFFFF, at: 1 << 52)
        #expect(memory.read64(at: 1 << 52) == 0)
        #expect(memory.allocatedPageCount == 0)
    }

    @Test func highestPageOfTheSpaceIsUsable() {
        let memory = PhysicalMemory(map: .wholePhysicalSpace)
        let top: UInt64 = (1 << 52) - 8
        memory.write64(0xDEAD_BEEF, at: top)
        #expect(memory.read64(at: top) == 0xDEAD_BEEF)
        #expect(memory.read64(at: 0) == 0)
    }
}

@Suite struct MemoryMapTests {
    @Test func writesOutsideRAMAreDroppedAndCounted() throws {
        let memory = PhysicalMemory(map: try MemoryMap(ram: [0x1000...0x1FFF]))
        memory.write64(5, at: 0x2000)
        #expect(memory.read64(at: 0x2000) == 0)
        #expect(memory.writesOutsideRAM == 1)
        memory.write32(5, at: 0x1FFE)
        #expect(memory.read16(at: 0x1FFE) == 5, "the part of the access inside RAM lands")
        #expect(memory.writesOutsideRAM == 1, "zero bytes outside RAM change nothing, so nothing was dropped")
        #expect(memory.allocatedPageCount == 1)
    }

    @Test func writingZeroToUntouchedMemoryAllocatesNothing() {
        let memory = PhysicalMemory()
        for page in UInt64(0)..<1000 { memory.write64(0, at: page << 20) }
        memory.write([0, 0, 0], at: 0x5000)
        #expect(memory.allocatedPageCount == 0)
        memory.write64(1, at: 0x5000)
        memory.write64(0, at: 0x5000)
        #expect(memory.allocatedPageCount == 1)
        #expect(memory.read64(at: 0x5000) == 0)
    }

    @Test func rangesAreCheckedAndMerged() throws {
        #expect(throws: MemoryMap.Invalid.unaligned(0x1000...0x1FFE)) { try MemoryMap(ram: [0x1000...0x1FFE]) }
        #expect(throws: MemoryMap.Invalid.outsidePhysicalSpace(0...(1 << 53) - 1)) { try MemoryMap(ram: [0...(1 << 53) - 1]) }
        let map = try MemoryMap(ram: [0x3000...0x3FFF, 0x1000...0x2FFF, 0x8000...0x8FFF])
        #expect(map.ram == [0x1000...0x3FFF, 0x8000...0x8FFF])
        #expect(map.contains(0x2FFC, length: 8))
        #expect(!map.contains(0x3FFC, length: 8))
        #expect(!map.contains(.max, length: 2))
        #expect(map.size == 0x4000)
    }

    @Test func manyScatteredPagesStayReadable() {
        let memory = PhysicalMemory()
        var address: UInt64 = 0x1234_5000
        var written: [UInt64] = []
        for index in 0..<5000 {
            address = (address &* 2862933555777941757 &+ 3037000493) & 0xF_FFFF_F000
            memory.write64(UInt64(index) + 1, at: address)
            written.append(address)
        }
        for (index, address) in written.enumerated() where written.lastIndex(of: address) == index {
            #expect(memory.read64(at: address) == UInt64(index) + 1)
        }
    }
}

@Suite struct BitFieldTests {
    @Test func extractsAndInsertsInPlace() {
        let field = BitField(13, 12)
        #expect(field.mask == 0x3000)
        #expect(field.extract(UInt64(0xFFFF)) == 3)
        #expect(field.inserting(2, into: UInt64(0xFFFF)) == 0xEFFF)
        #expect(field.place(7) == 0x3000)
        #expect(BitField(63, 0).maxValue == .max)
        #expect(BitField(bit: 31).isSet(UInt32(0x8000_0000)))
        #expect(AddressField(55, 12).extract(.max) == 0x00FF_FFFF_FFFF_F000)
    }
}
