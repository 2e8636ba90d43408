import Testing
import Platform
@testable import SMMUv3
import SMMUv3Host
import Scenario

/// ATS Translation Requests at the edges (§3.9.1.2, §13.7.1): configuration errors and faults
/// that are not Translation-related give Completer Abort; stage 2 limits what is granted; a
/// stage 1 that grants nothing keeps stage 2 out of the picture.
@Suite struct ATSEdgeCaseTests {
    static let noAccess = ATSTranslationCompletion(status: .success, translatedAddress: 0, size: 0x1000, read: false, write: false, execute: false, privileged: false)
    static let completerAbort = ATSTranslationCompletion(status: .completerAbort, translatedAddress: 0, size: 0, read: false, write: false, execute: false, privileged: false)

    /// Maps 16 contiguous-hint pages at 0x20000 whose first page points elsewhere: a
    /// misprogrammed Contiguous-hint group, so 0x20000 is an F_TLB_CONFLICT.
    static func mapMisprogrammedContiguousGroup(_ table: PageTableBuilder) {
        var attributes = MappingAttributes.readWrite
        attributes.contiguous = true
        table.map(0x20000, to: 0x80000, attributes)
        for page in UInt64(1)..<16 { table.map(0x20000 + page * 0x1000, to: 0x90000 + page * 0x1000, attributes) }
    }

    /// A stage-1 stream (SID 1) allowing ATS, with its table filled by `map`.
    func stage1(_ map: (PageTableBuilder) -> Void) -> (TranslationRig, PageTableBuilder) {
        let t = TranslationRig()
        let pt = t.table()
        map(pt)
        t.stage1Stream(1, cd: CDConfig(table0: pt, asid: 1)) { $0.eats = 0b01 }
        return (t, pt)
    }

    /// A stage-2-only stream (SID 3) allowing ATS, with its table filled by `map`.
    func stage2Only(_ map: (PageTableBuilder) -> Void) -> TranslationRig {
        let t = TranslationRig()
        let s2 = t.table(.stage2, inputBits: 40)
        map(s2)
        t.stage2Stream(3, table: s2) { $0.eats = 0b01 }
        return t
    }

    /// A nested stream (SID 1) allowing ATS: `map` fills stage 1 and stage 2; stage 2 also maps
    /// the whole table arena (1 GB block at 0x8000_0000) so that CD fetches and stage-1 walks
    /// succeed. CD 0 serves traffic without a PASID, CD 1 PASID 1.
    func nested(_ map: (_ s1: PageTableBuilder, _ s2: PageTableBuilder) -> Void) -> TranslationRig {
        let t = TranslationRig()
        let s2 = t.table(.stage2, inputBits: 40)
        let s1 = t.table()
        map(s1, s2)
        let cds = CDTableBuilder(memory: t.memory, arena: t.arena, cdMax: 1)
        for ssid in [UInt32(0), 1] { cds.set(ssid, CDConfig(table0: s1, asid: 1)) }
        s2.map(0x8000_0000, to: 0x8000_0000, size: 0x4000_0000)
        var ste = STEConfig(config: .nested)
        ste.s1ContextPointer = cds.pointer
        ste.s1CDMax = 1
        ste.s1DSS = 0b10
        ste.eats = 0b01
        ste.stage2 = STEConfig.Stage2(s2)
        t.streams.set(1, ste)
        return t
    }

    @Test func walkExternalAbortIsCompleterAbortWithoutAnEvent() throws {
        let (t, pt) = stage1 { $0.map(0x1000, to: 0x5000) }
        let leaf = try #require(pt.descriptorAddress(for: 0x1000, level: 3, create: false))
        t.rig.bus.faults.injectAbort(leaf...(leaf + 7), on: .read)
        #expect(t.smmu.translationRequest(ATSTranslationRequest(streamID: 1, address: 0x1000)) == Self.completerAbort)
        #expect(t.events().isEmpty, "F_WALK_EABT is recorded for a TR only with CR2.REC_CFG_ATS")
        #expect(t.translate(1, 0x1000) == .aborted(.walkExternalAbort), "the same access as a transaction")
    }

    @Test func tlbConflictIsCompleterAbortWithoutAnEvent() {
        let (t, _) = stage1(Self.mapMisprogrammedContiguousGroup)
        #expect(t.smmu.translationRequest(ATSTranslationRequest(streamID: 1, address: 0x20000)) == Self.completerAbort)
        #expect(t.events().isEmpty)
        #expect(t.translate(1, 0x20000) == .aborted(.tlbConflict), "an ordinary transaction gets F_TLB_CONFLICT")
    }

    /// §3.9.1.2 F_PERMISSION: the permissions that are available are granted. A write-intent
    /// request to a page that stage 2 maps read-only gets R without W, at the PA.
    @Test func stage2ReadOnlyPageGrantsReadToAWriteRequest() {
        let t = stage2Only { $0.map(0x9000, to: 0x7_0000, .readOnly) }
        let expected = ATSTranslationCompletion(status: .success, translatedAddress: 0x7_0000, size: 0x1000, read: true, write: false, execute: false, privileged: false)
        #expect(t.smmu.translationRequest(ATSTranslationRequest(streamID: 3, address: 0x9123)) == expected)
        #expect(t.smmu.translationRequest(ATSTranslationRequest(streamID: 3, address: 0x9123, noWrite: true)) == expected)
        #expect(t.events().isEmpty)
    }

    @Test func nestedStage2ReadOnlyPageGrantsReadToAWriteRequest() {
        let t = nested { s1, s2 in
            s1.map(0x4000, to: 0x10_0000)
            s2.map(0x10_0000, to: 0x7_0000_0000, .readOnly)
        }
        let completion = t.smmu.translationRequest(ATSTranslationRequest(streamID: 1, address: 0x4000))
        #expect(completion == ATSTranslationCompletion(status: .success, translatedAddress: 0x7_0000_0000, size: 0x1000, read: true, write: false, execute: false, privileged: false))
        #expect(t.events().isEmpty)
        #expect(t.translate(1, 0x4000, .dataWrite) == .aborted(.permission), "a write transaction faults at stage 2")
    }

    /// A stage-2 page without any access: Success with R == W == 0 and no event, whether
    /// stage 1 is bypassed or not.
    @Test func stage2PageWithoutAccessGrantsNothing() {
        var none = MappingAttributes.readWrite
        none.stage2Read = false
        none.stage2Write = false
        let s2only = stage2Only { $0.map(0x9000, to: 0x7_0000, none) }
        let direct = s2only.smmu.translationRequest(ATSTranslationRequest(streamID: 3, address: 0x9000))
        #expect(direct.status == .success && !direct.read && !direct.write && !direct.execute && direct.size == 0x1000)
        #expect(s2only.events().isEmpty)
        let nestedRig = nested { s1, s2 in
            s1.map(0x4000, to: 0x10_0000)
            s2.map(0x10_0000, to: 0x7_0000_0000, none)
        }
        let throughStage1 = nestedRig.smmu.translationRequest(ATSTranslationRequest(streamID: 1, address: 0x4000, noWrite: true))
        #expect(throughStage1.status == .success && !throughStage1.read && !throughStage1.write && !throughStage1.execute && throughStage1.size == 0x1000)
        #expect(nestedRig.events().isEmpty)
    }

    /// §3.9.1.2: when stage 1 gives the request no permission (here: a privileged-only page and
    /// an unprivileged request), the IPA is not translated at stage 2 and no stage-2 fault is
    /// visible. The stage-2 descriptor of that IPA cannot be fetched: a privileged request,
    /// which stage 1 does allow, therefore gets Completer Abort.
    @Test func stage1GrantingNothingSkipsStage2() {
        var leaf: UInt64 = 0
        let t = nested { s1, s2 in
            var privilegedOnly = MappingAttributes.readWrite
            privilegedOnly.unprivileged = false
            privilegedOnly.unprivilegedExecuteNever = true
            s1.map(0x5000, to: 0x40_0000, privilegedOnly)
            s2.map(0x40_1000, to: 0x7_0000_1000)
            leaf = s2.descriptorAddress(for: 0x40_0000, level: 3, create: false)!
        }
        t.rig.bus.faults.injectAbort(leaf...(leaf + 7), on: .read)
        let unprivileged = t.smmu.translationRequest(ATSTranslationRequest(streamID: 1, address: 0x5000))
        #expect(unprivileged.status == .success && !unprivileged.read && !unprivileged.write && unprivileged.size == 0x1000)
        let privileged = t.smmu.translationRequest(ATSTranslationRequest(streamID: 1, substreamID: 1, address: 0x5000, privileged: true))
        #expect(privileged == Self.completerAbort, "stage 2 is walked for a request stage 1 allows")
        #expect(t.events().isEmpty)
    }

    /// §3.13.3, §13.7: with S2HD, a write-intent Translation Request to a stage-2 writable-clean
    /// page (DBM == 1, S2AP[1] == 0) marks it dirty and gets W, as stage 1 does; a No-Write
    /// request leaves it clean and gets R only.
    @Test func writeRequestDirtiesAStage2WritableCleanPage() {
        let t = TranslationRig()
        let s2 = t.table(.stage2, inputBits: 40)
        var clean = MappingAttributes.readWrite
        clean.stage2Write = false
        clean.dirtyBitModifier = true
        s2.map(0x9000, to: 0x7_0000, clean)
        t.stage2Stream(3, table: s2) { ste in
            ste.stage2?.hardwareAccessFlag = true
            ste.stage2?.hardwareDirty = true
            ste.eats = 0b01
        }
        let s2apWrite: UInt64 = 1 << 7
        let noWrite = t.smmu.translationRequest(ATSTranslationRequest(streamID: 3, address: 0x9000, noWrite: true))
        #expect(noWrite.status == .success && noWrite.read && !noWrite.write)
        #expect(s2.descriptor(for: 0x9000) & s2apWrite == 0, "NW: not dirtied")
        let write = t.smmu.translationRequest(ATSTranslationRequest(streamID: 3, address: 0x9000))
        #expect(write == ATSTranslationCompletion(status: .success, translatedAddress: 0x7_0000, size: 0x1000, read: true, write: true, execute: false, privileged: false))
        #expect(s2.descriptor(for: 0x9000) & s2apWrite != 0, "dirtied")
        #expect(t.events().isEmpty)
    }

    /// A Translation Request that would meet a misprogrammed stage-2 contiguous group gets
    /// Completer Abort, as one would at stage 1 (§3.9.1.2: F_TLB_CONFLICT row).
    @Test func stage2TLBConflictIsCompleterAbort() {
        let t = stage2Only(Self.mapMisprogrammedContiguousGroup)
        #expect(t.smmu.translationRequest(ATSTranslationRequest(streamID: 3, address: 0x20000)) == Self.completerAbort)
        #expect(t.events().isEmpty)
        #expect(t.translate(3, 0x20000) == .aborted(.tlbConflict), "an ordinary transaction gets F_TLB_CONFLICT")
    }
}

/// ATS-Translated transactions with an address beyond OAS (§3.9.1.1: this implementation
/// terminates them with an abort and records nothing).
@Suite struct ATSTranslatedEdgeCaseTests {
    @Test func translatedAddressBeyondOASIsAbortedSilently() {
        let t = TranslationRig()
        t.stage1Stream(1, cd: CDConfig(table0: t.table())) { $0.eats = 0b01 }
        func translated(_ sid: UInt32, _ address: UInt64) -> InboundTransaction {
            InboundTransaction(streamID: sid, address: address, access: .dataWrite, kind: .atsTranslated)
        }
        #expect(t.smmu.translate(translated(1, 0xFFFF_FFFF_F000)) == .translated(physicalAddress: 0xFFFF_FFFF_F000), "the last page within 48 bits")
        #expect(t.smmu.translate(translated(1, 1 << 48)) == .aborted(nil))
        #expect(t.smmu.translate(translated(1, 0xFFFF_0000_0000_1000)) == .aborted(nil))
        // ATSCHK == 0: no STE check, but the address size check remains.
        t.rig.write(.cr0, t.rig.read(.cr0) & ~(1 << 4))
        #expect(t.smmu.translate(translated(7, 0x1000)) == .translated(physicalAddress: 0x1000))
        #expect(t.smmu.translate(translated(7, 1 << 48)) == .aborted(nil))
        #expect(t.events().isEmpty)
    }
}
