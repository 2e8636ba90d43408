import Kernel

/// `struct arm_smmu_cmdq_ent`: a command before encoding, with the fields each opcode uses.
public struct arm_smmu_cmdq_ent: Sendable {
    public var opcode: UInt64
    public var substream_valid = false

    /// `prefetch`.
    public struct Prefetch: Sendable {
        public var sid: UInt32 = 0
        public var size: UInt8 = 0
        public var addr: UInt64 = 0
        public init() {}
    }
    /// `cfgi`.
    public struct CFGI: Sendable {
        public var sid: UInt32 = 0
        public var leaf = false
        public init() {}
    }
    /// `tlbi`.
    public struct TLBI: Sendable {
        public var asid: UInt16 = 0
        public var vmid: UInt16 = 0
        public var leaf = false
        public var addr: UInt64 = 0
        public init() {}
    }
    /// `pri`.
    public struct PRI: Sendable {
        public var sid: UInt32 = 0
        public var ssid: UInt32 = 0
        public var grpid: UInt16 = 0
        public var resp: UInt64 = pri_resp.PRI_RESP_DENY.rawValue
        public init() {}
    }
    /// `sync`.
    public struct Sync: Sendable {
        public var msidata: UInt32 = 0
        public var msiaddr: UInt64 = 0
        public init() {}
    }

    public var prefetch = Prefetch()
    public var cfgi = CFGI()
    public var tlbi = TLBI()
    public var pri = PRI()
    public var sync = Sync()

    public init(opcode: UInt64) {
        self.opcode = opcode
    }
}

/// `-ENOENT`.
public let ENOENT: Int32 = 2

/// `arm_smmu_cmdq_build_cmd`: encodes `ent` into the two doublewords of a command queue entry;
/// -ENOENT for an opcode the driver does not issue, -EINVAL for an unknown PRI response.
public func arm_smmu_cmdq_build_cmd(_ cmd: inout (UInt64, UInt64), _ ent: arm_smmu_cmdq_ent) -> Int32 {
    cmd = (FIELD_PREP(CMDQ_0_OP, ent.opcode), 0)

    switch ent.opcode {
    case CMDQ_OP_TLBI_EL2_ALL, CMDQ_OP_TLBI_NSNH_ALL:
        break
    case CMDQ_OP_PREFETCH_CFG:
        cmd.0 |= FIELD_PREP(CMDQ_PREFETCH_0_SID, UInt64(ent.prefetch.sid))
        cmd.1 |= FIELD_PREP(CMDQ_PREFETCH_1_SIZE, UInt64(ent.prefetch.size))
        cmd.1 |= ent.prefetch.addr & CMDQ_PREFETCH_1_ADDR_MASK
    case CMDQ_OP_CFGI_STE:
        cmd.0 |= FIELD_PREP(CMDQ_CFGI_0_SID, UInt64(ent.cfgi.sid))
        cmd.1 |= FIELD_PREP(CMDQ_CFGI_1_LEAF, ent.cfgi.leaf ? 1 : 0)
    case CMDQ_OP_CFGI_ALL:
        // Cover the entire SID range.
        cmd.1 |= FIELD_PREP(CMDQ_CFGI_1_RANGE, 31)
    case CMDQ_OP_TLBI_NH_VA:
        cmd.0 |= FIELD_PREP(CMDQ_TLBI_0_ASID, UInt64(ent.tlbi.asid))
        cmd.1 |= FIELD_PREP(CMDQ_TLBI_1_LEAF, ent.tlbi.leaf ? 1 : 0)
        cmd.1 |= ent.tlbi.addr & CMDQ_TLBI_1_VA_MASK
    case CMDQ_OP_TLBI_S2_IPA:
        cmd.0 |= FIELD_PREP(CMDQ_TLBI_0_VMID, UInt64(ent.tlbi.vmid))
        cmd.1 |= FIELD_PREP(CMDQ_TLBI_1_LEAF, ent.tlbi.leaf ? 1 : 0)
        cmd.1 |= ent.tlbi.addr & CMDQ_TLBI_1_IPA_MASK
    case CMDQ_OP_TLBI_NH_ASID, CMDQ_OP_TLBI_S12_VMALL:
        if ent.opcode == CMDQ_OP_TLBI_NH_ASID { cmd.0 |= FIELD_PREP(CMDQ_TLBI_0_ASID, UInt64(ent.tlbi.asid)) }
        cmd.0 |= FIELD_PREP(CMDQ_TLBI_0_VMID, UInt64(ent.tlbi.vmid))
    case CMDQ_OP_PRI_RESP:
        cmd.0 |= FIELD_PREP(CMDQ_0_SSV, ent.substream_valid ? 1 : 0)
        cmd.0 |= FIELD_PREP(CMDQ_PRI_0_SSID, UInt64(ent.pri.ssid))
        cmd.0 |= FIELD_PREP(CMDQ_PRI_0_SID, UInt64(ent.pri.sid))
        cmd.1 |= FIELD_PREP(CMDQ_PRI_1_GRPID, UInt64(ent.pri.grpid))
        guard pri_resp(rawValue: ent.pri.resp) != nil else { return -EINVAL }
        cmd.1 |= FIELD_PREP(CMDQ_PRI_1_RESP, ent.pri.resp)
    case CMDQ_OP_CMD_SYNC:
        cmd.0 |= FIELD_PREP(CMDQ_SYNC_0_CS, ent.sync.msiaddr != 0 ? CMDQ_SYNC_0_CS_IRQ : CMDQ_SYNC_0_CS_SEV)
        cmd.0 |= FIELD_PREP(CMDQ_SYNC_0_MSH, ARM_SMMU_SH_ISH)
        cmd.0 |= FIELD_PREP(CMDQ_SYNC_0_MSIATTR, ARM_SMMU_MEMATTR_OIWB)
        // Commands are written little-endian and so is this CPU: MSIData needs no byteswap.
        cmd.0 |= FIELD_PREP(CMDQ_SYNC_0_MSIDATA, UInt64(ent.sync.msidata))
        cmd.1 |= ent.sync.msiaddr & CMDQ_SYNC_1_MSIADDR_MASK
    default:
        return -ENOENT
    }
    return 0
}
