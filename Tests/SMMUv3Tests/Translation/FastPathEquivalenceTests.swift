import Testing
import Platform
@testable import SMMUv3
import SMMUv3Host
import Scenario

/// The lean paths (a cached stream context, its latest translation, the TLB-hit and the plain
/// miss path) must decide exactly what the full translation procedure decides. Checked mode
/// always takes the full path, so two identical systems, one in checked mode, given the same
/// random traffic must give the same outcomes, events and memory.
@Suite struct FastPathEquivalenceTests {
    /// A system with a few stage-1 streams over random mappings.
    static func system(seed: UInt64, checked: Bool) -> TranslationRig {
        var random = SeededGenerator(seed: seed)
        let t = TranslationRig { $0.tlbCapacity = 32 }
        t.smmu.checkedMode = checked
        // Global pages (nG == 0) are the same for every stream, as software must keep them:
        // global entries are shared by every ASID of a VMID (§3.17), so what each context makes
        // of them must agree too (they are execute-never, so WXN cannot differ, and no
        // hierarchical attribute covers them). Inconsistent global entries are a software error
        // whose outcome depends on what each cache level happens to hold.
        var globalPages: [UInt64: MappingAttributes] = [:]
        for page in UInt64(0)..<24 where page % 4 == 0 {
            var attributes = Self.randomAttributes(&random)
            attributes.notGlobal = false
            attributes.unprivilegedExecuteNever = true
            attributes.privilegedExecuteNever = true
            attributes.accessFlag = true
            attributes.dirtyBitModifier = false
            globalPages[page] = attributes
        }
        for stream in UInt32(1)...4 {
            let pt = t.table()
            for page in UInt64(0)..<24 {
                if let global = globalPages[page] {
                    pt.map(0x40_0000 + page << 12, to: 0x200_0000 + page << 12, global)
                } else if random.next() % 6 != 0 {
                    pt.map(0x40_0000 + (page < 12 ? page : 0x200 + page) << 12, to: 0x100_0000 + UInt64(stream) << 20 + page << 12, Self.randomAttributes(&random))
                }
            }
            // APTable[0] above the upper half of the range (no global page there).
            if stream == 3 { pt.setTableBits(1 << 61, for: 0x60_0000, level: 2) }
            var cd = CDConfig(table0: pt, asid: UInt16(stream))
            cd.pan = stream == 2
            cd.wxn = stream == 4
            cd.tbi0 = stream % 2 == 0
            cd.hardwareAccessFlag = stream >= 3
            cd.hardwareDirty = stream == 4
            cd.accessFlagFaultDisable = stream == 2
            t.stage1Stream(stream, cd: cd) { $0.privCfg = stream == 1 ? 0b11 : 0; $0.instCfg = stream == 3 ? 0b10 : 0 }
        }
        return t
    }

    static func randomAttributes(_ random: inout SeededGenerator) -> MappingAttributes {
        var attributes = MappingAttributes.readWrite
        attributes.writable = random.next() % 3 != 0
        attributes.unprivileged = random.next() % 3 != 0
        attributes.unprivilegedExecuteNever = random.next() % 2 == 0
        attributes.privilegedExecuteNever = random.next() % 2 == 0
        attributes.accessFlag = random.next() % 5 != 0
        attributes.dirtyBitModifier = random.next() % 3 == 0
        return attributes
    }

    @Test(arguments: [UInt64(31), 32, 33, 34])
    func leanPathsDecideAsTheFullPathDoes(_ seed: UInt64) {
        let fast = Self.system(seed: seed, checked: false)
        let full = Self.system(seed: seed, checked: true)
        var random = SeededGenerator(seed: seed &* 7)
        for step in 0..<3000 {
            let stream = UInt32(1 + random.next() % 4)
            let page = random.next() % 26
            var address = 0x40_0000 + (page < 12 || page % 4 == 0 ? page : 0x200 + page) << 12 + (random.next() & 0xFF8)
            if random.next() % 8 == 0 { address |= UInt64(random.next() % 256) << 56 }
            let access = AccessAttributes(read: random.next() % 3 != 0, instruction: random.next() % 4 == 0, privileged: random.next() % 2 == 0)
            let a = fast.translate(stream, address, access)
            let b = full.translate(stream, address, access)
            if a != b {
                Issue.record("step \(step): sid \(stream) \(hex(address)) \(access): lean \(a), full \(b)")
                return
            }
            if random.next() % 400 == 0 {
                let command = Command.tlbiNHASID(vmid: 0, asid: UInt16(1 + random.next() % 4))
                fast.invalidate([command])
                full.invalidate([command])
            }
        }
        #expect(fast.events() == full.events())
        #expect(fast.smmu.tlb.hits > 0)
        #expect(full.smmu.diagnostics.filter { if case .staleTranslation = $0.kind { return true } else { return false } }.isEmpty, "no stale entry was involved")
        // The tables, hardware updates (AF, dirty state) included, are the same.
        let tables = 0x8000_0000..<fast.arena.next
        #expect(fast.arena.next == full.arena.next)
        #expect(fast.memory.bytes(at: tables.lowerBound, count: Int(tables.count)) == full.memory.bytes(at: tables.lowerBound, count: Int(tables.count)))
    }
}
