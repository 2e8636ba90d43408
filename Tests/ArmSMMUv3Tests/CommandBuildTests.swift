import Testing
import SMMUv3Layout
import Kernel
import ArmSMMUv3

/// arm_smmu_cmdq_build_cmd against the model's decoder: every command the driver issues
/// decodes, with reserved-bit checking on, to the command the driver meant.
@Suite struct CommandBuildTests {
    static var strict: CommandFeatures {
        var features = CommandFeatures.permissive
        features.checksReservedFields = true
        return features
    }

    static func decode(_ ent: arm_smmu_cmdq_ent) -> Command? {
        var cmd: (UInt64, UInt64) = (0, 0)
        guard arm_smmu_cmdq_build_cmd(&cmd, ent) == 0 else { return nil }
        return try? Command.decode(CommandEntry(dw0: cmd.0, dw1: cmd.1), features: strict).get()
    }

    @Test func everyOpcodeTheDriverIssuesDecodesToWhatItMeant() {
        var ent = arm_smmu_cmdq_ent(opcode: CMDQ_OP_CFGI_STE)
        ent.cfgi.sid = 0x1234
        ent.cfgi.leaf = true
        #expect(Self.decode(ent) == .cfgiSTE(streamID: 0x1234, leaf: true))

        #expect(Self.decode(arm_smmu_cmdq_ent(opcode: CMDQ_OP_CFGI_ALL)) == .cfgiAll)
        #expect(Self.decode(arm_smmu_cmdq_ent(opcode: CMDQ_OP_TLBI_NSNH_ALL)) == .tlbiNSNHAll)
        #expect(Self.decode(arm_smmu_cmdq_ent(opcode: CMDQ_OP_TLBI_EL2_ALL)) == .tlbiEL2All)

        ent = arm_smmu_cmdq_ent(opcode: CMDQ_OP_PREFETCH_CFG)
        ent.prefetch.sid = 7
        #expect(Self.decode(ent) == .prefetchConfig(streamID: 7, substreamID: nil))

        ent = arm_smmu_cmdq_ent(opcode: CMDQ_OP_TLBI_NH_VA)
        ent.tlbi.asid = 5
        ent.tlbi.leaf = true
        ent.tlbi.addr = 0xFFFF_8000_1234_5000
        #expect(Self.decode(ent) == .tlbiNHVA(vmid: 0, asid: 5, address: 0xFFFF_8000_1234_5000, scope: .single(leaf: true)))

        ent = arm_smmu_cmdq_ent(opcode: CMDQ_OP_TLBI_NH_ASID)
        ent.tlbi.asid = 9
        ent.tlbi.vmid = 3
        #expect(Self.decode(ent) == .tlbiNHASID(vmid: 3, asid: 9))

        ent = arm_smmu_cmdq_ent(opcode: CMDQ_OP_TLBI_S12_VMALL)
        ent.tlbi.vmid = 4
        #expect(Self.decode(ent) == .tlbiS12VMAll(vmid: 4))

        ent = arm_smmu_cmdq_ent(opcode: CMDQ_OP_TLBI_S2_IPA)
        ent.tlbi.vmid = 2
        ent.tlbi.addr = 0x8_0000_3000
        #expect(Self.decode(ent) == .tlbiS2IPA(vmid: 2, address: 0x8_0000_3000, scope: .single(leaf: false)))

        ent = arm_smmu_cmdq_ent(opcode: CMDQ_OP_PRI_RESP)
        ent.substream_valid = true
        ent.pri.sid = 0x10
        ent.pri.ssid = 3
        ent.pri.grpid = 0x1FF
        ent.pri.resp = pri_resp.PRI_RESP_SUCC.rawValue
        #expect(Self.decode(ent) == .priResp(streamID: 0x10, substreamID: 3, prgIndex: 0x1FF, response: .success))

        ent = arm_smmu_cmdq_ent(opcode: CMDQ_OP_CMD_SYNC)
        ent.sync.msidata = 42
        ent.sync.msiaddr = 0x4040_0000
        #expect(Self.decode(ent) == .sync(SyncParameters(completion: .irq, msiAddress: 0x4040_0000, msiData: 42, msiAttributes: 0xF, msiShareability: 3)))
        #expect(Self.decode(arm_smmu_cmdq_ent(opcode: CMDQ_OP_CMD_SYNC))?.sync.completion == .sev, "no MSI address: SIG_SEV")
    }

    @Test func unknownOpcodesAndResponsesAreRefused() {
        var cmd: (UInt64, UInt64) = (0, 0)
        #expect(arm_smmu_cmdq_build_cmd(&cmd, arm_smmu_cmdq_ent(opcode: 0x13)) == -ENOENT)
        var ent = arm_smmu_cmdq_ent(opcode: CMDQ_OP_PRI_RESP)
        ent.pri.resp = 3
        #expect(arm_smmu_cmdq_build_cmd(&cmd, ent) == -EINVAL)
    }
}
