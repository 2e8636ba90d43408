import Testing
import Platform
import SMMUv3Layout
import ArmSMMUv3

/// The driver's definitions (ported from Linux) and the model's layout tables (written from
/// the spec) are independent; here they check each other. Where Linux's address masks stop at
/// bit 51 and the spec's fields reach bit 55, the driver's mask must lie within the field.
@Suite struct DefinitionCrossCheckTests {
    static func same(_ linux: UInt64, _ field: BitField) -> Bool { linux == field.mask }
    static func same(_ linux: UInt64, doubleword: Int, _ field: StructureField) -> Bool {
        field.doubleword == doubleword && field.bits.mask == linux
    }
    static func within(_ linux: UInt64, _ field: AddressField) -> Bool { linux & ~field.bits.mask == 0 }

    @Test func registerOffsetsAgree() {
        let pairs: [(UInt64, SMMURegister)] = [
            (ARM_SMMU_IDR0, .idr0), (ARM_SMMU_IDR1, .idr1), (ARM_SMMU_IDR5, .idr5), (ARM_SMMU_CR0, .cr0),
            (ARM_SMMU_CR0ACK, .cr0Ack), (ARM_SMMU_CR1, .cr1), (ARM_SMMU_CR2, .cr2), (ARM_SMMU_GBPA, .gbpa),
            (ARM_SMMU_IRQ_CTRL, .irqCtrl), (ARM_SMMU_IRQ_CTRLACK, .irqCtrlAck), (ARM_SMMU_GERROR, .gerror),
            (ARM_SMMU_GERRORN, .gerrorn), (ARM_SMMU_GERROR_IRQ_CFG0, .gerrorIrqCfg0), (ARM_SMMU_GERROR_IRQ_CFG1, .gerrorIrqCfg1),
            (ARM_SMMU_GERROR_IRQ_CFG2, .gerrorIrqCfg2), (ARM_SMMU_STRTAB_BASE, .strtabBase), (ARM_SMMU_STRTAB_BASE_CFG, .strtabBaseCfg),
            (ARM_SMMU_CMDQ_BASE, .cmdqBase), (ARM_SMMU_CMDQ_PROD, .cmdqProd), (ARM_SMMU_CMDQ_CONS, .cmdqCons),
            (ARM_SMMU_EVTQ_BASE, .eventqBase), (ARM_SMMU_EVTQ_PROD, .eventqProd), (ARM_SMMU_EVTQ_CONS, .eventqCons),
            (ARM_SMMU_EVTQ_IRQ_CFG0, .eventqIrqCfg0), (ARM_SMMU_EVTQ_IRQ_CFG1, .eventqIrqCfg1), (ARM_SMMU_EVTQ_IRQ_CFG2, .eventqIrqCfg2),
            (ARM_SMMU_PRIQ_BASE, .priqBase), (ARM_SMMU_PRIQ_PROD, .priqProd), (ARM_SMMU_PRIQ_CONS, .priqCons),
            (ARM_SMMU_PRIQ_IRQ_CFG0, .priqIrqCfg0), (ARM_SMMU_PRIQ_IRQ_CFG1, .priqIrqCfg1), (ARM_SMMU_PRIQ_IRQ_CFG2, .priqIrqCfg2),
        ]
        for (linux, register) in pairs { #expect(linux == UInt64(register.rawValue), "\(register)") }
    }

    @Test func registerFieldsAgree() {
        let checks: [(String, Bool)] = [
            ("IDR0_ST_LVL", Self.same(IDR0_ST_LVL, Reg.IDR0.stLevel)), ("IDR0_STALL_MODEL", Self.same(IDR0_STALL_MODEL, Reg.IDR0.stallModel)),
            ("IDR0_TTENDIAN", Self.same(IDR0_TTENDIAN, Reg.IDR0.ttEndian)), ("IDR0_CD2L", Self.same(IDR0_CD2L, Reg.IDR0.cd2l)),
            ("IDR0_VMID16", Self.same(IDR0_VMID16, Reg.IDR0.vmid16)), ("IDR0_PRI", Self.same(IDR0_PRI, Reg.IDR0.pri)),
            ("IDR0_SEV", Self.same(IDR0_SEV, Reg.IDR0.sev)), ("IDR0_MSI", Self.same(IDR0_MSI, Reg.IDR0.msi)),
            ("IDR0_ASID16", Self.same(IDR0_ASID16, Reg.IDR0.asid16)), ("IDR0_ATS", Self.same(IDR0_ATS, Reg.IDR0.ats)),
            ("IDR0_HYP", Self.same(IDR0_HYP, Reg.IDR0.hyp)), ("IDR0_COHACC", Self.same(IDR0_COHACC, Reg.IDR0.cohacc)),
            ("IDR0_TTF", Self.same(IDR0_TTF, Reg.IDR0.ttf)), ("IDR0_S1P", Self.same(IDR0_S1P, Reg.IDR0.s1p)), ("IDR0_S2P", Self.same(IDR0_S2P, Reg.IDR0.s2p)),
            ("IDR0_TTF_AARCH64", IDR0_TTF_AARCH64 == Reg.IDR0.ttfAArch64), ("IDR0_TTENDIAN_LE", IDR0_TTENDIAN_LE == Reg.IDR0.ttEndianLittle),
            ("IDR1_TABLES_PRESET", Self.same(IDR1_TABLES_PRESET, Reg.IDR1.tablesPreset)), ("IDR1_QUEUES_PRESET", Self.same(IDR1_QUEUES_PRESET, Reg.IDR1.queuesPreset)),
            ("IDR1_REL", Self.same(IDR1_REL, Reg.IDR1.rel)), ("IDR1_CMDQS", Self.same(IDR1_CMDQS, Reg.IDR1.cmdqs)),
            ("IDR1_EVTQS", Self.same(IDR1_EVTQS, Reg.IDR1.eventqs)), ("IDR1_PRIQS", Self.same(IDR1_PRIQS, Reg.IDR1.priqs)),
            ("IDR1_SSIDSIZE", Self.same(IDR1_SSIDSIZE, Reg.IDR1.ssidSize)), ("IDR1_SIDSIZE", Self.same(IDR1_SIDSIZE, Reg.IDR1.sidSize)),
            ("IDR5_STALL_MAX", Self.same(IDR5_STALL_MAX, Reg.IDR5.stallMax)), ("IDR5_GRAN64K", Self.same(IDR5_GRAN64K, Reg.IDR5.gran64K)),
            ("IDR5_GRAN16K", Self.same(IDR5_GRAN16K, Reg.IDR5.gran16K)), ("IDR5_GRAN4K", Self.same(IDR5_GRAN4K, Reg.IDR5.gran4K)),
            ("IDR5_OAS", Self.same(IDR5_OAS, Reg.IDR5.oas)), ("IDR5_VAX", Self.same(IDR5_VAX, Reg.IDR5.vax)),
            ("CR0_CMDQEN", Self.same(CR0_CMDQEN, Reg.CR0.cmdqen)), ("CR0_EVTQEN", Self.same(CR0_EVTQEN, Reg.CR0.eventqen)),
            ("CR0_PRIQEN", Self.same(CR0_PRIQEN, Reg.CR0.priqen)), ("CR0_SMMUEN", Self.same(CR0_SMMUEN, Reg.CR0.smmuen)),
            ("CR1_TABLE_SH", Self.same(CR1_TABLE_SH, Reg.CR1.tableSH)), ("CR1_TABLE_OC", Self.same(CR1_TABLE_OC, Reg.CR1.tableOC)),
            ("CR1_TABLE_IC", Self.same(CR1_TABLE_IC, Reg.CR1.tableIC)), ("CR1_QUEUE_SH", Self.same(CR1_QUEUE_SH, Reg.CR1.queueSH)),
            ("CR1_QUEUE_OC", Self.same(CR1_QUEUE_OC, Reg.CR1.queueOC)), ("CR1_QUEUE_IC", Self.same(CR1_QUEUE_IC, Reg.CR1.queueIC)),
            ("CR2_PTM", Self.same(CR2_PTM, Reg.CR2.ptm)), ("CR2_RECINVSID", Self.same(CR2_RECINVSID, Reg.CR2.recInvSID)), ("CR2_E2H", Self.same(CR2_E2H, Reg.CR2.e2h)),
            ("GBPA_UPDATE", Self.same(GBPA_UPDATE, Reg.GBPA.update)), ("GBPA_ABORT", Self.same(GBPA_ABORT, Reg.GBPA.abort)),
            ("IRQ_CTRL_EVTQ_IRQEN", Self.same(IRQ_CTRL_EVTQ_IRQEN, Reg.IRQCtrl.eventqIrqen)), ("IRQ_CTRL_PRIQ_IRQEN", Self.same(IRQ_CTRL_PRIQ_IRQEN, Reg.IRQCtrl.priqIrqen)),
            ("IRQ_CTRL_GERROR_IRQEN", Self.same(IRQ_CTRL_GERROR_IRQEN, Reg.IRQCtrl.gerrorIrqen)),
            ("GERROR_SFM_ERR", Self.same(GERROR_SFM_ERR, Reg.GERROR.sfmErr)), ("GERROR_MSI_GERROR_ABT_ERR", Self.same(GERROR_MSI_GERROR_ABT_ERR, Reg.GERROR.msiGerrorAbtErr)),
            ("GERROR_MSI_PRIQ_ABT_ERR", Self.same(GERROR_MSI_PRIQ_ABT_ERR, Reg.GERROR.msiPriqAbtErr)), ("GERROR_MSI_EVTQ_ABT_ERR", Self.same(GERROR_MSI_EVTQ_ABT_ERR, Reg.GERROR.msiEventqAbtErr)),
            ("GERROR_MSI_CMDQ_ABT_ERR", Self.same(GERROR_MSI_CMDQ_ABT_ERR, Reg.GERROR.msiCmdqAbtErr)), ("GERROR_PRIQ_ABT_ERR", Self.same(GERROR_PRIQ_ABT_ERR, Reg.GERROR.priqAbtErr)),
            ("GERROR_EVTQ_ABT_ERR", Self.same(GERROR_EVTQ_ABT_ERR, Reg.GERROR.eventqAbtErr)), ("GERROR_CMDQ_ERR", Self.same(GERROR_CMDQ_ERR, Reg.GERROR.cmdqErr)),
            // Linux's GERROR_ERR_MASK (0xfd) leaves out SFM_ERR, which the model implements.
            ("GERROR_ERR_MASK", GERROR_ERR_MASK == UInt64(Reg.GERROR.implemented) & ~GERROR_SFM_ERR),
            ("STRTAB_BASE_RA", Self.same(STRTAB_BASE_RA, Reg.STRTAB.ra)), ("STRTAB_BASE_ADDR_MASK", Self.within(STRTAB_BASE_ADDR_MASK, Reg.STRTAB.address)),
            ("STRTAB_BASE_CFG_FMT", Self.same(STRTAB_BASE_CFG_FMT, Reg.STRTAB.fmt)), ("STRTAB_BASE_CFG_SPLIT", Self.same(STRTAB_BASE_CFG_SPLIT, Reg.STRTAB.split)),
            ("STRTAB_BASE_CFG_LOG2SIZE", Self.same(STRTAB_BASE_CFG_LOG2SIZE, Reg.STRTAB.log2Size)), ("STRTAB_BASE_CFG_FMT_2LVL", STRTAB_BASE_CFG_FMT_2LVL == Reg.STRTAB.fmtTwoLevel),
            ("MSI_CFG0_ADDR_MASK", Self.within(MSI_CFG0_ADDR_MASK, Reg.IRQCfg.address)), ("MSI_CFG2_SH", Self.same(MSI_CFG2_SH, Reg.IRQCfg.sh)),
            ("MSI_CFG2_MEMATTR", Self.same(MSI_CFG2_MEMATTR, Reg.IRQCfg.memAttr)),
            ("Q_OVERFLOW_FLAG", Self.same(Q_OVERFLOW_FLAG, Reg.Queue.overflowFlag)), ("Q_BASE_RWA", Self.same(Q_BASE_RWA, Reg.Queue.allocate)),
            ("Q_BASE_ADDR_MASK", Self.within(Q_BASE_ADDR_MASK, Reg.Queue.address)), ("Q_BASE_LOG2SIZE", Self.same(Q_BASE_LOG2SIZE, Reg.Queue.log2Size)),
            ("CMDQ_CONS_ERR", Self.same(CMDQ_CONS_ERR, Reg.Queue.consErr)),
        ]
        for (name, agrees) in checks { #expect(agrees, "\(name)") }
    }

    @Test func structureFieldsAgree() {
        let checks: [(String, Bool)] = [
            ("STRTAB_STE_0_V", Self.same(STRTAB_STE_0_V, doubleword: 0, STEField.valid)), ("STRTAB_STE_0_CFG", Self.same(STRTAB_STE_0_CFG, doubleword: 0, STEField.config)),
            ("STRTAB_STE_0_S1FMT", Self.same(STRTAB_STE_0_S1FMT, doubleword: 0, STEField.s1Fmt)), ("STRTAB_STE_0_S1CDMAX", Self.same(STRTAB_STE_0_S1CDMAX, doubleword: 0, STEField.s1CDMax)),
            ("STRTAB_STE_0_S1CTXPTR_MASK", STEField.s1ContextPtr.doubleword == 0 && STRTAB_STE_0_S1CTXPTR_MASK & ~STEField.s1ContextPtr.bits.mask == 0),
            ("STRTAB_STE_1_S1CIR", Self.same(STRTAB_STE_1_S1CIR, doubleword: 1, STEField.s1CIR)), ("STRTAB_STE_1_S1COR", Self.same(STRTAB_STE_1_S1COR, doubleword: 1, STEField.s1COR)),
            ("STRTAB_STE_1_S1CSH", Self.same(STRTAB_STE_1_S1CSH, doubleword: 1, STEField.s1CSH)), ("STRTAB_STE_1_S1STALLD", Self.same(STRTAB_STE_1_S1STALLD, doubleword: 1, STEField.s1StallD)),
            ("STRTAB_STE_1_EATS", Self.same(STRTAB_STE_1_EATS, doubleword: 1, STEField.eats)), ("STRTAB_STE_1_STRW", Self.same(STRTAB_STE_1_STRW, doubleword: 1, STEField.strw)),
            ("STRTAB_STE_1_SHCFG", Self.same(STRTAB_STE_1_SHCFG, doubleword: 1, STEField.shCfg)), ("STRTAB_STE_2_S2VMID", Self.same(STRTAB_STE_2_S2VMID, doubleword: 2, STEField.s2VMID)),
            ("STRTAB_STE_2_S2AA64", Self.same(STRTAB_STE_2_S2AA64, doubleword: 2, STEField.s2AA64)), ("STRTAB_STE_2_S2ENDI", Self.same(STRTAB_STE_2_S2ENDI, doubleword: 2, STEField.s2ENDI)),
            ("STRTAB_STE_2_S2PTW", Self.same(STRTAB_STE_2_S2PTW, doubleword: 2, STEField.s2PTW)), ("STRTAB_STE_2_S2R", Self.same(STRTAB_STE_2_S2R, doubleword: 2, STEField.s2R)),
            ("STRTAB_STE_3_S2TTB_MASK", Self.same(STRTAB_STE_3_S2TTB_MASK, doubleword: 3, STEField.s2TTB)),
            ("STRTAB_L1_DESC_SPAN", Self.same(STRTAB_L1_DESC_SPAN, L1Field.span)),
            ("STRTAB_L1_DESC_L2PTR_MASK", Self.within(STRTAB_L1_DESC_L2PTR_MASK, L1Field.l2STDPointer)),
            ("CTXDESC_CD_0_TCR_T0SZ", Self.same(CTXDESC_CD_0_TCR_T0SZ, doubleword: 0, CDField.t0sz)), ("CTXDESC_CD_0_TCR_TG0", Self.same(CTXDESC_CD_0_TCR_TG0, doubleword: 0, CDField.tg0)),
            ("CTXDESC_CD_0_TCR_IRGN0", Self.same(CTXDESC_CD_0_TCR_IRGN0, doubleword: 0, CDField.ir0)), ("CTXDESC_CD_0_TCR_ORGN0", Self.same(CTXDESC_CD_0_TCR_ORGN0, doubleword: 0, CDField.or0)),
            ("CTXDESC_CD_0_TCR_SH0", Self.same(CTXDESC_CD_0_TCR_SH0, doubleword: 0, CDField.sh0)), ("CTXDESC_CD_0_TCR_EPD0", Self.same(CTXDESC_CD_0_TCR_EPD0, doubleword: 0, CDField.epd0)),
            ("CTXDESC_CD_0_TCR_EPD1", Self.same(CTXDESC_CD_0_TCR_EPD1, doubleword: 0, CDField.epd1)), ("CTXDESC_CD_0_ENDI", Self.same(CTXDESC_CD_0_ENDI, doubleword: 0, CDField.endi)),
            ("CTXDESC_CD_0_V", Self.same(CTXDESC_CD_0_V, doubleword: 0, CDField.valid)), ("CTXDESC_CD_0_TCR_IPS", Self.same(CTXDESC_CD_0_TCR_IPS, doubleword: 0, CDField.ips)),
            ("CTXDESC_CD_0_TCR_TBI0", Self.same(CTXDESC_CD_0_TCR_TBI0, doubleword: 0, CDField.tbi0)), ("CTXDESC_CD_0_AA64", Self.same(CTXDESC_CD_0_AA64, doubleword: 0, CDField.aa64)),
            ("CTXDESC_CD_0_S", Self.same(CTXDESC_CD_0_S, doubleword: 0, CDField.s)), ("CTXDESC_CD_0_R", Self.same(CTXDESC_CD_0_R, doubleword: 0, CDField.r)),
            ("CTXDESC_CD_0_A", Self.same(CTXDESC_CD_0_A, doubleword: 0, CDField.a)), ("CTXDESC_CD_0_ASET", Self.same(CTXDESC_CD_0_ASET, doubleword: 0, CDField.aset)),
            ("CTXDESC_CD_0_ASID", Self.same(CTXDESC_CD_0_ASID, doubleword: 0, CDField.asid)),
            ("CTXDESC_CD_1_TTB0_MASK", CDField.ttb0.doubleword == 1 && CTXDESC_CD_1_TTB0_MASK & ~CDField.ttb0.bits.mask == 0),
        ]
        for (name, agrees) in checks { #expect(agrees, "\(name)") }
    }

    @Test func commandAndQueueEntryFieldsAgree() {
        let checks: [(String, Bool)] = [
            ("CMDQ_0_OP", Self.same(CMDQ_0_OP, Cmd.DW0.opcode)), ("CMDQ_0_SSV", Self.same(CMDQ_0_SSV, Cmd.DW0.ssv)),
            ("CMDQ_CFGI_0_SID", Self.same(CMDQ_CFGI_0_SID, Cmd.DW0.streamID)), ("CMDQ_CFGI_1_LEAF", Self.same(CMDQ_CFGI_1_LEAF, Cmd.DW1.leaf)),
            ("CMDQ_CFGI_1_RANGE", Self.same(CMDQ_CFGI_1_RANGE, Cmd.DW1.range)), ("CMDQ_TLBI_0_VMID", Self.same(CMDQ_TLBI_0_VMID, Cmd.DW0.vmid)),
            ("CMDQ_TLBI_0_ASID", Self.same(CMDQ_TLBI_0_ASID, Cmd.DW0.asid)), ("CMDQ_TLBI_1_VA_MASK", CMDQ_TLBI_1_VA_MASK == Cmd.DW1.virtualAddress.bits.mask),
            ("CMDQ_TLBI_1_IPA_MASK", CMDQ_TLBI_1_IPA_MASK == Cmd.DW1.physicalAddress.bits.mask), ("CMDQ_PRI_0_SSID", Self.same(CMDQ_PRI_0_SSID, Cmd.DW0.substreamID)),
            ("CMDQ_PRI_1_GRPID", Self.same(CMDQ_PRI_1_GRPID, Cmd.DW1.prgIndex)), ("CMDQ_PRI_1_RESP", Self.same(CMDQ_PRI_1_RESP, Cmd.DW1.priResp)),
            ("CMDQ_SYNC_0_CS", Self.same(CMDQ_SYNC_0_CS, Cmd.DW0.syncCS)), ("CMDQ_SYNC_0_MSH", Self.same(CMDQ_SYNC_0_MSH, Cmd.DW0.syncMSH)),
            ("CMDQ_SYNC_0_MSIATTR", Self.same(CMDQ_SYNC_0_MSIATTR, Cmd.DW0.syncMSIAttr)), ("CMDQ_SYNC_0_MSIDATA", Self.same(CMDQ_SYNC_0_MSIDATA, Cmd.DW0.syncMSIData)),
            ("CMDQ_SYNC_1_MSIADDR_MASK", Self.within(CMDQ_SYNC_1_MSIADDR_MASK, Cmd.DW1.msiAddress)),
            ("CMDQ_OP_CFGI_ALL", CMDQ_OP_CFGI_ALL == UInt64(CommandOpcode.cfgiSTERange.rawValue)), ("CMDQ_OP_TLBI_NH_VA", CMDQ_OP_TLBI_NH_VA == UInt64(CommandOpcode.tlbiNHVA.rawValue)),
            ("CMDQ_OP_PRI_RESP", CMDQ_OP_PRI_RESP == UInt64(CommandOpcode.priResp.rawValue)), ("CMDQ_OP_CMD_SYNC", CMDQ_OP_CMD_SYNC == UInt64(CommandOpcode.sync.rawValue)),
            ("CMDQ_OP_TLBI_S2_IPA", CMDQ_OP_TLBI_S2_IPA == UInt64(CommandOpcode.tlbiS2IPA.rawValue)), ("CMDQ_OP_TLBI_NSNH_ALL", CMDQ_OP_TLBI_NSNH_ALL == UInt64(CommandOpcode.tlbiNSNHAll.rawValue)),
            ("EVTQ_0_ID", Self.same(EVTQ_0_ID, Evt.DW0.eventID)),
            ("PRIQ_0_SID", Self.same(PRIQ_0_SID, PRIQ.DW0.streamID)), ("PRIQ_0_SSID", Self.same(PRIQ_0_SSID, PRIQ.DW0.substreamID)),
            ("PRIQ_0_PERM_PRIV", Self.same(PRIQ_0_PERM_PRIV, PRIQ.DW0.priv)), ("PRIQ_0_PERM_EXEC", Self.same(PRIQ_0_PERM_EXEC, PRIQ.DW0.exec)),
            ("PRIQ_0_PERM_READ", Self.same(PRIQ_0_PERM_READ, PRIQ.DW0.read)), ("PRIQ_0_PERM_WRITE", Self.same(PRIQ_0_PERM_WRITE, PRIQ.DW0.write)),
            ("PRIQ_0_PRG_LAST", Self.same(PRIQ_0_PRG_LAST, PRIQ.DW0.last)), ("PRIQ_0_SSID_V", Self.same(PRIQ_0_SSID_V, PRIQ.DW0.ssv)),
            ("PRIQ_1_PRG_IDX", Self.same(PRIQ_1_PRG_IDX, PRIQ.DW1.prgIndex)), ("PRIQ_1_ADDR_MASK", PRIQ_1_ADDR_MASK == PRIQ.DW1.address.bits.mask),
            ("PRI_RESP_SUCC", pri_resp.PRI_RESP_SUCC.rawValue == UInt64(PRIResponse.success.rawValue)),
            ("PRI_RESP_DENY", pri_resp.PRI_RESP_DENY.rawValue == UInt64(PRIResponse.responseFailure.rawValue)),
        ]
        for (name, agrees) in checks { #expect(agrees, "\(name)") }
    }

    @Test func fieldHelpersBehaveLikeLinux() {
        #expect(GENMASK(28, 27) == 0x1800_0000 && GENMASK_ULL(63, 0) == .max && BIT(31) == 0x8000_0000)
        #expect(FIELD_PREP(IDR1_CMDQS, 19) == 19 << 21 && FIELD_GET(IDR1_CMDQS, FIELD_PREP(IDR1_CMDQS, 0xFF)) == 0x1F)
        #expect(ARM_SMMU_TCR2CD(ARM64_TCR_TG0 & (2 << 14), CTXDESC_CD_0_TCR_TG0, ARM64_TCR_TG0) == 2 << 6)
    }
}
