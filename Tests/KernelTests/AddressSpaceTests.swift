import Testing
import Platform
import VMSA
import Kernel

/// Process address spaces whose CPU page tables live in bus memory, as an SMMU walks them for
/// SVA.
@Suite struct AddressSpaceTests {
    static func process(pages: Int = 64) -> (MMStruct, CoherentMemory, PhysicalMemory) {
        let memory = PhysicalMemory()
        let coherent = CoherentMemory(memory: memory, range: 0x8000_0000...(0x8000_0000 + UInt64(pages) * 4096 - 1))
        let mm = MMStruct(asid: 7, memory: memory, pages: coherent)!
        mm.map(VMArea(start: 0x40_0000, end: 0x50_0000))
        mm.map(VMArea(start: 0x7F00_0000, end: 0x7F01_0000, write: false))
        return (mm, coherent, memory)
    }

    @Test func aFaultMapsAZeroedPageThatTheVMSAWalkFinds() {
        let (mm, coherent, memory) = Self.process()
        #expect(mm.translate(0x40_1234) == nil)
        #expect(mm.handleMMFault(0x40_1234, write: true) == .handled)
        let physical = mm.translate(0x40_1234)
        #expect(physical != nil && physical! & 0xFFF == 0x234)
        #expect(memory.read64(at: physical! & ~0xFFF) == 0)
        // The leaf is what an SMMU needs for SVA: valid page, AF, nG (ASID-tagged), EL0 access.
        var reader = MemoryDescriptorReader(memory)
        guard case .leaf(let leaf) = walk(mm.table, input: 0x40_1234, stage: .stage1, reader: &reader) else {
            Issue.record("no leaf")
            return
        }
        #expect(leaf.level == 3)
        #expect(Descriptor.af.isSet(leaf.descriptor) && Descriptor.nG.isSet(leaf.descriptor) && Descriptor.ap1.isSet(leaf.descriptor))
        let (permissions, _) = leaf.stage1Permissions(singlePrivilegeLevel: false, hierarchicalDisabled: false, wxn: false, dirtyEnabled: false)
        #expect(permissions.contains(.unprivilegedWrite) && !permissions.contains(.unprivilegedExecute))
        let used = coherent.bytesInUse
        #expect(mm.handleMMFault(0x40_1000, write: false) == .handled)
        #expect(coherent.bytesInUse == used, "a second fault on a mapped page allocates nothing")
    }

    @Test func faultsOutsideAVMAOrAgainstItsRightsAreSegv() {
        let (mm, _, _) = Self.process()
        #expect(mm.handleMMFault(0x1000, write: false) == .segv)
        #expect(mm.handleMMFault(0x7F00_0000, write: true) == .segv)
        #expect(mm.handleMMFault(0x7F00_0000, write: false) == .handled)
    }

    @Test func runningOutOfPagesIsOOM() {
        let (mm, _, _) = Self.process(pages: 3)
        // The PGD took one page; the next fault needs three tables and a page.
        #expect(mm.handleMMFault(0x40_0000, write: false) == .oom)
    }

    @Test func exitRunsTheReleaseCallbacksBeforeTheTablesGo() async {
        let (mm, coherent, _) = Self.process()
        _ = mm.handleMMFault(0x40_0000, write: true)
        final class Seen: @unchecked Sendable { var lines: [String] = [] }
        let seen = Seen()
        mm.registerNotifier { process in seen.lines.append("first sees \(process.translate(0x40_0000) != nil)") }
        let removed = mm.registerNotifier { _ in seen.lines.append("removed") }
        mm.registerNotifier { _ in seen.lines.append("second") }
        mm.unregisterNotifier(removed)
        await mm.exit()
        #expect(seen.lines == ["first sees true", "second"])
        #expect(mm.translate(0x40_0000) == nil, "a walk after exit finds nothing")
        #expect(coherent.bytesInUse == 0)
        #expect(mm.handleMMFault(0x40_0000, write: false) == .segv)
    }
}
