import Testing
import Platform
@testable import SMMUv3
import SMMUv3Host
import Scenario

@Suite struct TranslationSmokeTests {
    @Test func stage1ReadIsTranslated() {
        let t = TranslationRig()
        let pt = t.table()
        pt.map(0x1234_5000, to: 0x2_0000_0000)
        t.stage1Stream(7, cd: CDConfig(table0: pt, asid: 3))
        #expect(t.translate(7, 0x1234_5678) == .translated(physicalAddress: 0x2_0000_0678))
        #expect(t.translate(7, 0x1234_5010) == .translated(physicalAddress: 0x2_0000_0010))
        #expect(t.smmu.tlb.hits == 1)
        #expect(t.events().isEmpty)
    }
}
