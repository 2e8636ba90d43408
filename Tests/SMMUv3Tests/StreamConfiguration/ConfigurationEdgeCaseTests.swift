import Testing
import Platform
import SMMUv3
import SMMUv3Host
import Scenario

/// Configuration lookup corners (§3.4.3, §7.3): fetch aborts and out-of-range pointers.
@Suite struct ConfigurationEdgeCaseTests {
    /// A stage-1 stream (SID 1) with a 2-level CD table (4 KB leaves, 256 CDs) holding CD 0x45.
    func twoLevelCDRig() -> (TranslationRig, CDTableBuilder, CDConfig) {
        let t = TranslationRig()
        let pt = t.table()
        pt.map(0x4000, to: 0x9_0000_0000)
        let cd = CDConfig(table0: pt, asid: 1)
        let cds = t.stage1Stream(1, cd: cd, cdMax: 8, format: .twoLevel4K, ssids: [0x45])
        return (t, cds, cd)
    }

    @Test func l1CDFetchAbortIsFCDFetchAtTheL1CDAddress() throws {
        let (t, cds, _) = twoLevelCDRig()
        let l1 = try #require(cds.l1Address(for: 0x45))
        #expect(l1 == cds.pointer + 8, "L1CD 1 covers SSIDs 0x40-0x7F")
        let fault = t.rig.bus.faults.injectAbort(l1...(l1 + 7), on: .read)
        #expect(t.translate(1, 0x4000, ssid: 0x45) == .aborted(.cdFetch))
        #expect(t.events() == [.cdFetch(streamID: 1, substreamID: 0x45, fetchAddress: l1)])
        t.rig.bus.faults.remove(fault)
        #expect(t.translate(1, 0x4000, ssid: 0x45) == .translated(physicalAddress: 0x9_0000_0000), "the failed fetch was not cached")
    }

    /// §3.4.3 note 3: an L1CD.L2Ptr beyond OAS is C_BAD_SUBSTREAMID (SMMUv3.1 and later), even
    /// though memory at that address would hold a valid CD.
    @Test func l1CDPointerBeyondOASIsCBadSubstreamID() throws {
        let (t, cds, cd) = twoLevelCDRig()
        let l1 = try #require(cds.l1Address(for: 0x85))
        let l2: UInt64 = 1 << 50
        t.memory.write64(l2 | 1, at: l1)
        for (index, word) in cd.words.enumerated() { t.memory.write64(word, at: l2 + 5 * 64 + UInt64(index) * 8) }
        #expect(t.translate(1, 0x4000, ssid: 0x85) == .aborted(.badSubstreamID))
        #expect(t.events() == [.badSubstreamID(streamID: 1, substreamID: 0x85)])
        #expect(t.translate(1, 0x4000, ssid: 0x45) == .translated(physicalAddress: 0x9_0000_0000), "other L1CDs are unaffected")
    }

    /// §3.4.3 note 5: an STE address beyond OAS (from L1STD.L2Ptr) is F_STE_FETCH in this model,
    /// with the full fetch address, even though memory there holds a valid STE.
    @Test func steAddressBeyondOASIsFSTEFetch() throws {
        let t = TranslationRig(log2Size: 12, split: 6)
        let l1 = try #require(t.streams.l1Address(for: 0x345))
        let l2: UInt64 = 1 << 50
        t.memory.write64(l2 | 9, at: l1)  // Span 9: 256 STEs (Linux's split of 8)
        let steAddress = l2 + 0x45 * 64
        for (index, word) in STEConfig(config: .bypass).words.enumerated() { t.memory.write64(word, at: steAddress + UInt64(index) * 8) }
        #expect(t.translate(0x345, 0x4000) == .aborted(.steFetch))
        #expect(t.events() == [.steFetch(streamID: 0x345, fetchAddress: steAddress)])
    }
}
