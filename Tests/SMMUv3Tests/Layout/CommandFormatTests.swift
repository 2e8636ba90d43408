import Testing
import Platform
import SMMUv3

/// Command encodings checked against field positions written out by hand from the Linux
/// header (CMDQ_*) and the spec (§4.1.6, §4.4.1.1).
@Suite struct CommandFormatTests {
    struct Encoding: CustomStringConvertible, Sendable {
        let command: Command
        let dw0: UInt64
        let dw1: UInt64
        var description: String { command.name }
    }

    static let encodings: [Encoding] = [
        Encoding(command: .prefetchConfig(streamID: 0x10, substreamID: nil), dw0: 0x0000_0010_0000_0001, dw1: 0),
        Encoding(command: .prefetchAddress(streamID: 0x10, substreamID: 2, address: 0x7000, size: 3, stride: 1), dw0: 0x0000_0010_0000_2802, dw1: 0x7103),
        Encoding(command: .cfgiSTE(streamID: 0xABCD, leaf: true), dw0: 0x0000_ABCD_0000_0003, dw1: 1),
        Encoding(command: .cfgiSTERange(streamID: 0x100, range: 7), dw0: 0x0000_0100_0000_0004, dw1: 7),
        Encoding(command: .cfgiAll, dw0: 0x04, dw1: 0x1F),
        Encoding(command: .cfgiCD(streamID: 0x10, substreamID: 3, leaf: true), dw0: 0x0000_0010_0000_3005, dw1: 1),
        Encoding(command: .cfgiCDAll(streamID: 0x10), dw0: 0x0000_0010_0000_0006, dw1: 0),
        Encoding(command: .tlbiNHAll(vmid: 9), dw0: 0x0000_0009_0000_0010, dw1: 0),
        Encoding(command: .tlbiNHASID(vmid: 5, asid: 7), dw0: 0x0007_0005_0000_0011, dw1: 0),
        Encoding(command: .tlbiNHVA(vmid: 5, asid: 7, address: 0x1234_5000, scope: .single(leaf: true)), dw0: 0x0007_0005_0000_0012, dw1: 0x1234_5001),
        Encoding(command: .tlbiNHVAA(vmid: 1, address: 0xFFFF_8000_0000_0000, scope: TLBIScope(leaf: false, num: 31, scale: 31, granule: 3, ttl: 2)), dw0: 0x0000_0001_01F1_F013, dw1: 0xFFFF_8000_0000_0E00),
        // 16 KB TG with TTL == 0b01 and no IDR5.DS: legal as a range (treated as TTL == 0).
        Encoding(command: .tlbiNHVAA(vmid: 0, address: 0x4000, scope: TLBIScope(leaf: false, num: 1, scale: 0, granule: 2, ttl: 1)), dw0: 0x1013, dw1: 0x4900),
        Encoding(command: .tlbiEL2All, dw0: 0x20, dw1: 0),
        Encoding(command: .tlbiEL2ASID(asid: 0xBEEF), dw0: 0xBEEF_0000_0000_0021, dw1: 0),
        Encoding(command: .tlbiEL2VA(asid: 2, address: 0x4000, scope: .single()), dw0: 0x0002_0000_0000_0022, dw1: 0x4000),
        Encoding(command: .tlbiEL2VAA(address: 0x8000, scope: .single(leaf: true)), dw0: 0x23, dw1: 0x8001),
        Encoding(command: .tlbiS12VMAll(vmid: 3), dw0: 0x0000_0003_0000_0028, dw1: 0),
        Encoding(command: .tlbiS2IPA(vmid: 2, address: 0x8000_0000, scope: TLBIScope(leaf: false, num: 1, scale: 2, granule: 1, ttl: 3)), dw0: 0x0000_0002_0020_102A, dw1: 0x8000_0700),
        Encoding(command: .tlbiNSNHAll, dw0: 0x30, dw1: 0),
        Encoding(command: .atcInv(streamID: 0x20, substreamID: 1, global: true, address: 0, size: 52), dw0: 0x0000_0020_0000_1A40, dw1: 0x34),
        Encoding(command: .priResp(streamID: 0x10, substreamID: 5, prgIndex: 0x1FF, response: .success), dw0: 0x0000_0010_0000_5841, dw1: 0x21FF),
        Encoding(command: .resume(streamID: 3, stag: 0x1234, action: .retry), dw0: 0x0000_0003_0000_1044, dw1: 0x1234),
        Encoding(command: .resume(streamID: 3, stag: 0x1234, action: .abort), dw0: 0x0000_0003_0000_2044, dw1: 0x1234),
        Encoding(command: .resume(streamID: 3, stag: 1, action: .terminate), dw0: 0x0000_0003_0000_0044, dw1: 1),
        Encoding(command: .stallTerm(streamID: 9), dw0: 0x0000_0009_0000_0045, dw1: 0),
        Encoding(command: .sync(SyncParameters(completion: .irq, msiAddress: 0x4040_0100, msiData: 0xDEAD_BEEF, msiAttributes: 0xF, msiShareability: 3)), dw0: 0xDEAD_BEEF_0FC0_1046, dw1: 0x4040_0100),
        Encoding(command: .sync(SyncParameters(completion: .sev)), dw0: 0x2046, dw1: 0),
    ]

    @Test(arguments: encodings)
    func encodesAtTheArchitectedBitPositions(_ encoding: Encoding) {
        #expect(encoding.command.entry == CommandEntry(dw0: encoding.dw0, dw1: encoding.dw1))
    }

    @Test(arguments: encodings)
    func decodesBackToTheSameCommand(_ encoding: Encoding) {
        let features = CommandFeatures(.default)
        #expect(Command.decode(CommandEntry(dw0: encoding.dw0, dw1: encoding.dw1), features: features) == .success(encoding.command))
    }

    @Test func descriptionsAreReadable() {
        #expect(CommandEntry(dw0: 0x0000_0010_0000_0003, dw1: 1).description == "CMD_CFGI_STE sid=0x10 leaf")
        #expect(CommandEntry(dw0: 0x09, dw1: 0).description.hasPrefix("CMD_RESERVED_0x09 [reserved opcode]"))
        #expect(Command.tlbiNHVA(vmid: 0, asid: 1, address: 0x1000, scope: TLBIScope(leaf: true, num: 3, scale: 0, granule: 1, ttl: 3)).description
            == "CMD_TLBI_NH_VA vmid=0x0 asid=0x1 va=0x1000 leaf tg=4K num=3 scale=0 ttl=3")
    }

    @Test func rangeScopeComputesItsSpan() {
        #expect(TLBIScope(leaf: false, num: 3, scale: 1, granule: 1, ttl: 0).rangeBytes == 4 * 2 * 4096)
        #expect(TLBIScope(leaf: false, num: 31, scale: 31, granule: 3, ttl: 0).rangeBytes == 32 * (UInt64(1) << 31) * 65536)
        #expect(TLBIScope.single().rangeBytes == nil)
    }
}

/// Every reason for CERROR_ILL the decoder knows (§4.1.3, §4.1.5, §4.1.6, §4.4, §4.5, §4.7).
@Suite struct IllegalCommandTests {
    struct Case: CustomStringConvertible, Sendable {
        let name: String
        let entry: CommandEntry
        let configure: @Sendable (inout SMMUConfiguration) -> Void
        let reason: IllegalCommandReason
        var description: String { name }

        init(_ name: String, _ dw0: UInt64, _ dw1: UInt64 = 0, _ reason: IllegalCommandReason, configure: @escaping @Sendable (inout SMMUConfiguration) -> Void = { _ in }) {
            self.name = name
            self.entry = CommandEntry(dw0: dw0, dw1: dw1)
            self.configure = configure
            self.reason = reason
        }
    }

    static let stage2Only: @Sendable (inout SMMUConfiguration) -> Void = { $0.stage1 = false; $0.hypervisor = false }
    static let stage1Only: @Sendable (inout SMMUConfiguration) -> Void = { $0.stage2 = false; $0.hypervisor = false }
    static let noStalls: @Sendable (inout SMMUConfiguration) -> Void = { $0.stallModel = .terminateOnly }

    static let cases: [Case] = [
        Case("PREFETCH_CONFIG SSec", 0x0000_0010_0000_0401, 0, .secureStreamOnNonSecureQueue),
        Case("PREFETCH_ADDR NS on the NS queue", 0x02, 0x80, .reservedBitsSet(dw0: 0, dw1: 0x80)),
        Case("CFGI_STE SSec", 0x0000_0001_0000_0403, 1, .secureStreamOnNonSecureQueue),
        Case("CFGI_STE RES0 bit", 0x03, 0x2, .reservedBitsSet(dw0: 0, dw1: 0x2)),
        Case("CFGI_STE_RANGE RES0 bit", 0x04, 0x20, .reservedBitsSet(dw0: 0, dw1: 0x20)),
        Case("CFGI_CD without stage 1", 0x05, 0, .unsupported(.stage1), configure: stage2Only),
        Case("CFGI_CD_ALL with a SubstreamID", 0x0000_0001_0000_5006, 0, .reservedBitsSet(dw0: 0x5000, dw1: 0)),
        Case("TLBI_NH_ALL with ASID bits", 0x0001_0000_0000_0010, 0, .reservedBitsSet(dw0: 0x0001_0000_0000_0000, dw1: 0)),
        Case("TLBI_NH_ALL without stage 1", 0x10, 0, .unsupported(.stage1), configure: stage2Only),
        Case("TLBI_NH_ASID without stage 1", 0x11, 0, .unsupported(.stage1), configure: stage2Only),
        Case("TLBI_NH_VA with TG and no range or level", 0x12, 0x400, .invalidParameter(.rangeWithoutExtent)),
        Case("TLBI_NH_VA 16K TTL=1 without DS, single granule", 0x12, 0x900, .invalidParameter(.levelOneHintFor16KWithoutDS)),
        Case("TLBI_NH_VAA TTL128", 0x13, 0x580, .reservedBitsSet(dw0: 0, dw1: 0x80)),
        Case("TLBI_NH_VAA SCALE bit 25 without DS", 0x0200_0013, 0x500, .reservedBitsSet(dw0: 0x0200_0000, dw1: 0)),
        Case("TLBI_EL2_ALL without Hyp", 0x20, 0, .unsupported(.hypervisor), configure: stage1Only),
        Case("TLBI_EL2_ASID with VMID bits", 0x0000_0001_0000_0021, 0, .reservedBitsSet(dw0: 0x0000_0001_0000_0000, dw1: 0)),
        Case("TLBI_EL2_VA without Hyp", 0x22, 0, .unsupported(.hypervisor), configure: stage1Only),
        Case("TLBI_EL2_VAA NUM without TG", 0x1023, 0, .reservedBitsSet(dw0: 0x1000, dw1: 0)),
        Case("TLBI_S12_VMALL without stage 2", 0x28, 0, .unsupported(.stage2), configure: stage1Only),
        Case("TLBI_S2_IPA address bit 52", 0x2A, 1 << 52, .reservedBitsSet(dw0: 0, dw1: 1 << 52)),
        Case("TLBI_S2_IPA without stage 2", 0x2A, 0, .unsupported(.stage2), configure: stage1Only),
        Case("TLBI_NSNH_ALL with operands", 0x30, 1, .reservedBitsSet(dw0: 0, dw1: 1)),
        Case("ATC_INV without ATS", 0x40, 0, .unsupported(.ats), configure: { $0.ats = false; $0.pri = false }),
        Case("ATC_INV Size 53", 0x40, 53, .invalidParameter(.atcInvalidationSize(53))),
        Case("ATC_INV SSec", 0x440, 0, .reservedBitsSet(dw0: 0x400, dw1: 0)),
        Case("PRI_RESP Resp 0b11", 0x41, 0x3000, .invalidParameter(.reservedPRIResponse)),
        Case("PRI_RESP without PRI", 0x41, 0x2000, .unsupported(.pri), configure: { $0.pri = false }),
        Case("RESUME terminate-only", 0x44, 0, .unsupported(.stalls), configure: noStalls),
        Case("RESUME SSec", 0x444, 0, .secureStreamOnNonSecureQueue),
        Case("STALL_TERM terminate-only", 0x45, 0, .unsupported(.stalls), configure: noStalls),
        Case("CMD_SYNC CS 0b11", 0x3046, 0, .invalidParameter(.reservedSyncCompletion)),
        Case("CMD_SYNC MSIAddress bit 52", 0x1046, 1 << 52, .reservedBitsSet(dw0: 0, dw1: 1 << 52)),
        Case("CMD_SYNC RES0 bit 20", 0x10_0046, 0, .reservedBitsSet(dw0: 0x10_0000, dw1: 0)),
        Case("opcode 0x00", 0x00, 0, .reservedOpcode),
        Case("CFGI_VMS_PIDM (no MPAM)", 0x07, 0, .reservedOpcode),
        Case("opcode 0x08", 0x08, 0, .reservedOpcode),
        Case("opcode 0x14", 0x14, 0, .reservedOpcode),
        Case("TLBI_EL3_ALL", 0x18, 0, .notOnThisQueue),
        Case("TLBI_EL3_VA", 0x1A, 0, .notOnThisQueue),
        Case("opcode 0x2B", 0x2B, 0, .reservedOpcode),
        Case("opcode 0x42", 0x42, 0, .reservedOpcode),
        Case("TLBI_S_EL2_ALL", 0x50, 0, .notOnThisQueue),
        Case("TLBI_S_S2_IPA", 0x5A, 0, .notOnThisQueue),
        Case("TLBI_SNH_ALL", 0x60, 0, .notOnThisQueue),
        Case("DPTI_ALL (no DPT)", 0x70, 0, .reservedOpcode),
        Case("IMPDEF 0x80", 0x80, 0, .reservedOpcode),
        Case("opcode 0xFF", 0xFF, 0, .reservedOpcode),
    ]

    @Test(arguments: cases)
    func decoderReportsTheReason(_ testCase: Case) {
        var configuration = SMMUConfiguration.default
        testCase.configure(&configuration)
        let result = Command.decode(testCase.entry, features: CommandFeatures(configuration))
        #expect(result == .failure(IllegalCommand(opcode: testCase.entry.opcode, reason: testCase.reason)))
    }

    /// Through the real queue: the command before is consumed, the ILLEGAL one stops the queue
    /// with CONS on it, CMDQ_CONS.ERR = CERROR_ILL and GERROR.CMDQ_ERR active, and the one after
    /// is not consumed (§7.1).
    @Test(arguments: cases)
    func illegalCommandStopsTheQueue(_ testCase: Case) {
        let rig = Rig(testCase.configure)
        rig.startCommandQueue()
        rig.push([Command.tlbiNSNHAll.entry, testCase.entry, Command.sync(SyncParameters()).entry])
        #expect(rig.read(.cmdqCons) == (1 << 24) | 1)
        #expect(rig.cmdqErrActive)
        #expect(rig.smmu.statistics.commandsConsumed == 1)
        #expect(rig.smmu.commandQueueStatus == .error(.illegal))
    }

    @Test func reservedBitsAreIgnoredWhenCheckingIsOff() {
        let rig = Rig { $0.checksReservedCommandFields = false }
        rig.startCommandQueue()
        rig.push([CommandEntry(dw0: 0x0001_0000_0000_0010, dw1: 0xFF), CommandEntry(dw0: 0x10_0046, dw1: 0)])
        #expect(rig.read(.cmdqCons) == 2)
        #expect(!rig.cmdqErrActive)
    }

    @Test func eightBitIdentifiersAreNotCheckedAsReserved() {
        // §4.4: with 8-bit ASIDs/VMIDs the upper bits are RES0 but only make the command match
        // nothing; they are not an ILLEGAL encoding.
        let rig = Rig { $0.asid16 = false; $0.vmid16 = false }
        rig.startCommandQueue()
        rig.push([Command.tlbiNHASID(vmid: 0x100, asid: 0x100)])
        #expect(rig.read(.cmdqCons) == 1)
    }
}
