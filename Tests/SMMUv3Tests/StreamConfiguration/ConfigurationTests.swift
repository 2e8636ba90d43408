import Testing
import Platform
import SMMUv3
import SMMUv3Host
import Scenario

/// Stream table and context descriptor lookup (§3.3, §5): every configuration error with its
/// event record checked word by word.
@Suite struct StreamTableTests {
    func mappedRig(split: Int? = nil, log2Size: Int = 8) -> (TranslationRig, PageTableBuilder) {
        let t = TranslationRig(log2Size: log2Size, split: split)
        let pt = t.table()
        pt.map(0x4000, to: 0x9_0000_0000)
        return (t, pt)
    }

    @Test func twoLevelStreamTableFindsSTEsThroughL1Descriptors() {
        let (t, pt) = mappedRig(split: 6, log2Size: 12)
        t.stage1Stream(0x345, cd: CDConfig(table0: pt))
        t.stage1Stream(0x012, cd: CDConfig(table0: pt))
        #expect(t.translate(0x345, 0x4008) == .translated(physicalAddress: 0x9_0000_0008))
        #expect(t.translate(0x012, 0x4008) == .translated(physicalAddress: 0x9_0000_0008))
    }

    @Test func streamIDBeyondTheTableIsCBadStreamID() {
        let (t, _) = mappedRig(log2Size: 4)
        #expect(t.translate(16, 0x4000) == .aborted(.badStreamID))
        #expect(t.events() == [.badStreamID(streamID: 16)])
    }

    @Test func badStreamIDIsSilentWithoutRECINVSID() {
        let (t, _) = mappedRig(log2Size: 4)
        t.rig.write(.cr0, 0)
        t.rig.write(.cr2, 0)
        t.rig.write(.cr0, 0x1F)
        #expect(t.translate(16, 0x4000) == .aborted(nil))
        #expect(t.events().isEmpty)
    }

    /// §5.1: a zero, reserved or too large Span (beyond SPLIT + 1: Linux's split is 8), or a
    /// StreamID beyond the Span, is C_BAD_STREAMID.
    @Test(arguments: [(UInt64(0), UInt32(0x101)), (12, 0x101), (10, 0x101), (2, 0x102)])
    func badLevel1DescriptorsAreCBadStreamID(_ span: UInt64, _ streamID: UInt32) {
        let (t, _) = mappedRig(split: 6, log2Size: 12)
        let l1 = t.streams.l1Address(for: streamID)!
        t.memory.write64(0x9000_0000 | span, at: l1)
        #expect(t.translate(streamID, 0x4000) == .aborted(.badStreamID))
        #expect(t.events() == [.badStreamID(streamID: streamID)])
    }

    /// A StreamID within a small Span (2 STEs) reaches its STE in the level-2 array.
    @Test func streamIDWithinASmallSpanReachesItsSTE() {
        let (t, _) = mappedRig(split: 6, log2Size: 12)
        let l1 = t.streams.l1Address(for: 0x101)!
        t.memory.write64(0x9000_0000 | 2, at: l1)
        #expect(t.translate(0x101, 0x4000) == .aborted(.badSTE), "STE 1 of the array at 0x9000_0000: V == 0")
        #expect(t.events() == [.badSTE(streamID: 0x101)])
        for (index, word) in STEConfig(config: .bypass).words.enumerated() { t.memory.write64(word, at: 0x9000_0040 + UInt64(index) * 8) }
        t.invalidate([.cfgiSTE(streamID: 0x101, leaf: true)])
        #expect(t.translate(0x101, 0x4000) == .translated(physicalAddress: 0x4000), "the STE at L2Ptr + 1 * 64 is used")
        #expect(t.events().isEmpty)
    }

    @Test func steFetchAbortIsFSTEFetchAndIsNotCached() {
        let (t, pt) = mappedRig()
        t.stage1Stream(3, cd: CDConfig(table0: pt))
        let address = t.streams.steAddress(for: 3)
        let fault = t.rig.bus.faults.injectAbort(address...(address + 63), on: .read)
        #expect(t.translate(3, 0x4000) == .aborted(.steFetch))
        #expect(t.events() == [.steFetch(streamID: 3, fetchAddress: address)])
        t.rig.bus.faults.remove(fault)
        #expect(t.translate(3, 0x4000) == .translated(physicalAddress: 0x9_0000_0000), "a failed fetch is not cached (§3.21.3)")
    }

    @Test func l1DescriptorFetchAbortIsFSTEFetchAtTheL1Address() {
        let (t, pt) = mappedRig(split: 6, log2Size: 12)
        t.stage1Stream(0x345, cd: CDConfig(table0: pt))
        let l1 = t.streams.l1Address(for: 0x345)!
        t.rig.bus.faults.injectAbort(l1...(l1 + 7), on: .read)
        #expect(t.translate(0x345, 0x4000) == .aborted(.steFetch))
        #expect(t.events() == [.steFetch(streamID: 0x345, fetchAddress: l1)])
    }

    @Test func invalidSTEIsCBadSTE() {
        let (t, _) = mappedRig()
        t.invalidSTE(9)
        #expect(t.translate(9, 0x4000, ssid: nil) == .aborted(.badSTE))
        #expect(t.events() == [.badSTE(streamID: 9)])
    }

    /// A selection of ILLEGAL STEs (§5.2.2), each giving C_BAD_STE.
    @Test(arguments: ["EATS 0b10", "STRW reserved", "S1CDMax beyond SSIDSIZE", "S1ContextPtr beyond OAS", "S2T0SZ too small", "S2T0SZ too large", "S2SL0 inconsistent", "S2TG reserved", "S2AA64 0", "S2TTB beyond S2PS", "S2ENDI"])
    func illegalSTEIsCBadSTE(_ problem: String) {
        let t = TranslationRig()
        let s2 = t.table(.stage2, inputBits: 40)
        var ste = STEConfig(config: .stage2)
        ste.stage2 = STEConfig.Stage2(s2)
        var words: [UInt64]
        switch problem {
        case "EATS 0b10": ste.eats = 0b10
        case "STRW reserved": ste.config = .stage1; ste.strw = 0b01
        case "S1CDMax beyond SSIDSIZE": ste.config = .stage1; ste.s1CDMax = 21
        case "S1ContextPtr beyond OAS": ste.config = .stage1; ste.s1ContextPointer = 1 << 50
        case "S2T0SZ too small": ste.stage2?.t0sz = 15
        case "S2T0SZ too large": ste.stage2?.t0sz = 40
        case "S2SL0 inconsistent": ste.stage2?.sl0 = 0
        case "S2TG reserved": ste.stage2?.tg = 0b11
        case "S2TTB beyond S2PS": ste.stage2?.ps = 0b010; ste.stage2?.ttb = 1 << 41
        default: break
        }
        words = ste.words
        if problem == "S2AA64 0" { words = STEField.s2AA64.inserting(0, into: words) }
        if problem == "S2ENDI" { words = STEField.s2ENDI.inserting(1, into: words) }
        t.streams.setWords(4, words)
        #expect(t.translate(4, 0x1000) == .aborted(.badSTE), "\(problem)")
        #expect(t.events() == [.badSTE(streamID: 4)])
    }

    @Test func abortConfigurationTerminatesSilently() {
        let (t, _) = mappedRig()
        t.streams.set(2, STEConfig(config: .abort))
        #expect(t.translate(2, 0x4000) == .aborted(nil))
        #expect(t.translate(2, 0x4000, ssid: 5) == .aborted(nil), "SSV is irrelevant for Config 0b000")
        #expect(t.events().isEmpty)
    }

    @Test func bypassConfigurationPassesAddressesUpToOAS() {
        let (t, _) = mappedRig()
        t.streams.set(2, STEConfig(config: .bypass))
        #expect(t.translate(2, 0xFFFF_FFFF_FFFF) == .translated(physicalAddress: 0xFFFF_FFFF_FFFF))
        #expect(t.translate(2, 0x1_0000_0000_0000) == .aborted(.addressSize))
        #expect(t.translate(2, 0x1000, ssid: 1) == .aborted(.badSubstreamID))
        #expect(t.events() == [
            .translationFault(TranslationFault(type: .addressSize, streamID: 2, access: .dataRead, inputAddress: 0x1_0000_0000_0000)),
            .badSubstreamID(streamID: 2, substreamID: 1),
        ])
    }

    @Test func globalBypassFollowsGBPAWhileDisabled() throws {
        let rig = Rig()
        #expect(rig.smmu.translate(.read(streamID: 1, address: 0x1234)) == .translated(physicalAddress: 0x1234))
        #expect(rig.smmu.translate(.read(streamID: 1, address: 1 << 48)) == .aborted(nil), "beyond OAS: abort, no event")
        try rig.host.updateGBPA(set: 1 << 20, clear: 0)
        #expect(rig.smmu.translate(.read(streamID: 1, address: 0x1234)) == .aborted(nil))
        #expect(rig.smmu.statistics.eventsWritten == 0)
    }

    @Test func stePPARIsUsedForOverflowResponsesWithoutPPS() {
        let t = TranslationRig { $0.priPASIDOnOverflow = false }
        var ste = STEConfig(config: .abort)
        ste.ppar = true
        t.streams.set(0x10, ste)
        t.streams.set(0x11, STEConfig(config: .abort))
        t.invalidSTE(0x12)
        t.rig.write(.priqCons, 0)
        // Fill the PRI queue (64 entries: SMMUSystem's default priQueueLog2 of 6), then overflow.
        let entries = 1 << t.host.layout.priQueueLog2Size
        #expect(entries == 64)
        for index in 0..<entries { t.smmu.receivePageRequest(PageRequest(streamID: 0x10, substreamID: 1, prgIndex: UInt16(index & 0x1FF), last: false, read: true, write: false, address: 0)) }
        let withPPAR = t.smmu.receivePageRequest(PageRequest(streamID: 0x10, substreamID: 1, prgIndex: 3, last: true, read: true, write: false, address: 0))
        let withoutPPAR = t.smmu.receivePageRequest(PageRequest(streamID: 0x11, substreamID: 1, prgIndex: 4, last: true, read: true, write: false, address: 0))
        let invalid = t.smmu.receivePageRequest(PageRequest(streamID: 0x12, substreamID: 1, prgIndex: 5, last: true, read: true, write: false, address: 0))
        #expect(withPPAR == .autoResponded(PRGResponse(streamID: 0x10, substreamID: 1, prgIndex: 3, code: .success, automatic: true)))
        #expect(withoutPPAR == .autoResponded(PRGResponse(streamID: 0x11, substreamID: nil, prgIndex: 4, code: .success, automatic: true)))
        #expect(invalid == .autoResponded(PRGResponse(streamID: 0x12, substreamID: nil, prgIndex: 5, code: .responseFailure, automatic: true)))
    }

    @Test func inconsistentSTEContiguousSpanIsFCfgConflict() {
        let (t, pt) = mappedRig()
        let cds = t.stage1Stream(0x20, cd: CDConfig(table0: pt)) { $0.cont = 2 }
        var ste = STEConfig(config: .stage1)
        ste.s1ContextPointer = cds.pointer
        ste.cont = 2
        for sid in UInt32(0x21)...0x23 { t.streams.set(sid, ste) }
        #expect(t.translate(0x22, 0x4000) == .translated(physicalAddress: 0x9_0000_0000), "an identical span is fine")
        ste.privCfg = 0b11
        t.streams.set(0x23, ste)
        t.invalidate([.cfgiAll])
        #expect(t.translate(0x21, 0x4000) == .aborted(.configurationConflict))
        #expect(t.events() == [.configurationConflict(streamID: 0x21)])
    }
}

@Suite struct SubstreamTests {
    func rig(cdMax: Int = 4, format: CDTableBuilder.Format = .linear, s1DSS: UInt8 = 0, ssids: [UInt32] = [0, 1, 5]) -> (TranslationRig, CDTableBuilder) {
        let t = TranslationRig()
        let pt = t.table()
        pt.map(0x4000, to: 0x9_0000_0000)
        let cds = t.stage1Stream(1, cd: CDConfig(table0: pt), cdMax: cdMax, format: format, ssids: ssids) { $0.s1DSS = s1DSS }
        return (t, cds)
    }

    @Test func substreamSelectsItsCD() {
        let (t, _) = rig()
        #expect(t.translate(1, 0x4000, ssid: 5) == .translated(physicalAddress: 0x9_0000_0000))
    }

    @Test func substreamBeyondS1CDMaxIsCBadSubstreamID() {
        let (t, _) = rig(cdMax: 2)
        #expect(t.translate(1, 0x4000, ssid: 4) == .aborted(.badSubstreamID))
        #expect(t.events() == [.badSubstreamID(streamID: 1, substreamID: 4)])
    }

    @Test func substreamWithoutSubstreamsIsCBadSubstreamID() {
        let (t, _) = rig(cdMax: 0)
        #expect(t.translate(1, 0x4000, ssid: 0) == .aborted(.badSubstreamID))
        let s2only = TranslationRig()
        let s2 = s2only.table(.stage2, inputBits: 40)
        s2only.stage2Stream(3, table: s2)
        #expect(s2only.translate(3, 0x1000, ssid: 1) == .aborted(.badSubstreamID), "stage 1 disabled (§7.3.9)")
    }

    @Test func s1DSSDecidesTrafficWithoutASubstreamID() {
        let (terminate, _) = rig(s1DSS: 0b00)
        #expect(terminate.translate(1, 0x4000) == .aborted(.streamDisabled))
        #expect(terminate.events() == [.streamDisabled(streamID: 1)])
        let (bypass, _) = rig(s1DSS: 0b01)
        #expect(bypass.translate(1, 0x4000) == .translated(physicalAddress: 0x4000), "stage 1 bypassed")
        let (cd0, _) = rig(s1DSS: 0b10)
        #expect(cd0.translate(1, 0x4000) == .translated(physicalAddress: 0x9_0000_0000), "CD 0 for non-substream traffic")
        #expect(cd0.translate(1, 0x4000, ssid: 0) == .aborted(.streamDisabled), "SSID 0 is reserved with S1DSS == 0b10")
        #expect(cd0.events() == [.streamDisabled(streamID: 1, substreamID: 0)])
    }

    @Test(arguments: [CDTableBuilder.Format.twoLevel4K, .twoLevel64K])
    func twoLevelCDTablesReachLeafCDs(_ format: CDTableBuilder.Format) {
        let (t, _) = rig(cdMax: 16, format: format, ssids: [0x1, 0x4321])
        #expect(t.translate(1, 0x4000, ssid: 0x4321) == .translated(physicalAddress: 0x9_0000_0000))
        #expect(t.translate(1, 0x4000, ssid: 0x5000) == .aborted(.badSubstreamID), "L1CD.V == 0")
        #expect(t.events() == [.badSubstreamID(streamID: 1, substreamID: 0x5000)])
    }

    @Test func cdFetchAbortIsFCDFetch() {
        let (t, cds) = rig()
        let address = cds.cdAddress(for: 5)
        t.rig.bus.faults.injectAbort(address...(address + 63), on: .read)
        #expect(t.translate(1, 0x4000, ssid: 5) == .aborted(.cdFetch))
        #expect(t.events() == [.cdFetch(streamID: 1, substreamID: 5, fetchAddress: address)])
    }

    @Test(arguments: ["V 0", "T0SZ 11", "T0SZ 40", "TG0 reserved", "AA64 0", "ENDI", "ASID too wide", "TTB0 beyond IPS", "HD without HA support"])
    func illegalCDIsCBadCD(_ problem: String) {
        let t = TranslationRig { config in
            if problem == "ASID too wide" { config.asid16 = false }
            if problem == "HD without HA support" { config.hardwareUpdate = .accessFlag }
        }
        let pt = t.table()
        var cd = CDConfig(table0: pt, asid: 1)
        switch problem {
        case "V 0": cd.valid = false
        case "T0SZ 11": cd.t0sz = 11
        case "T0SZ 40": cd.t0sz = 40
        case "TG0 reserved": cd.tg0 = 0b11
        case "AA64 0": cd.aa64 = false
        case "ENDI": cd.endi = true
        case "ASID too wide": cd.asid = 0x100
        case "TTB0 beyond IPS": cd.ips = 0b000; cd.ttb0 = 1 << 33
        default: cd.hardwareAccessFlag = true; cd.hardwareDirty = true
        }
        t.stage1Stream(1, cd: cd)
        #expect(t.translate(1, 0x4000) == .aborted(.badCD), "\(problem)")
        #expect(t.events() == [.badCD(streamID: 1)])
    }

    @Test func stallingCDIsIllegalWhenTheStreamDisablesStalls() {
        let t = TranslationRig()
        var cd = CDConfig(table0: t.table())
        cd.stall = true
        t.stage1Stream(1, cd: cd) { $0.s1StallDisable = true }
        #expect(t.translate(1, 0x4000) == .aborted(.badCD))
    }
}
