import Kernel
import IOMMU

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
        public var ssid: UInt32 = 0
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
    /// `atc` (CMD_ATC_INV, from Linux v5.2).
    public struct ATC: Sendable {
        public var sid: UInt32 = 0
        public var ssid: UInt32 = 0
        public var addr: UInt64 = 0
        public var size: UInt8 = 0
        public var global = false
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
    public var atc = ATC()
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
    ftrace("arm_smmu_cmdq_build_cmd")
    cmd = (FIELD_PREP(CMDQ_0_OP, ent.opcode), 0)

    switch ent.opcode {
    case CMDQ_OP_TLBI_EL2_ALL, CMDQ_OP_TLBI_NSNH_ALL:
        break
    case CMDQ_OP_PREFETCH_CFG:
        cmd.0 |= FIELD_PREP(CMDQ_PREFETCH_0_SID, UInt64(ent.prefetch.sid))
        cmd.1 |= FIELD_PREP(CMDQ_PREFETCH_1_SIZE, UInt64(ent.prefetch.size))
        cmd.1 |= ent.prefetch.addr & CMDQ_PREFETCH_1_ADDR_MASK
    case CMDQ_OP_CFGI_CD:
        cmd.0 |= FIELD_PREP(CMDQ_CFGI_0_SSID, UInt64(ent.cfgi.ssid))
        cmd.0 |= FIELD_PREP(CMDQ_CFGI_0_SID, UInt64(ent.cfgi.sid))
        cmd.1 |= FIELD_PREP(CMDQ_CFGI_1_LEAF, ent.cfgi.leaf ? 1 : 0)
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
    case CMDQ_OP_ATC_INV:
        cmd.0 |= FIELD_PREP(CMDQ_0_SSV, ent.substream_valid ? 1 : 0)
        cmd.0 |= FIELD_PREP(CMDQ_ATC_0_GLOBAL, ent.atc.global ? 1 : 0)
        cmd.0 |= FIELD_PREP(CMDQ_ATC_0_SSID, UInt64(ent.atc.ssid))
        cmd.0 |= FIELD_PREP(CMDQ_ATC_0_SID, UInt64(ent.atc.sid))
        cmd.1 |= FIELD_PREP(CMDQ_ATC_1_SIZE, UInt64(ent.atc.size))
        cmd.1 |= ent.atc.addr & CMDQ_ATC_1_ADDR_MASK
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

/// `queue_poll_cons`: waits for the SMMU to consume entries — until the queue is empty when
/// `sync`, until a slot is free otherwise — for ARM_SMMU_CMDQ_SYNC_TIMEOUT_US or
/// ARM_SMMU_POLL_TIMEOUT_US of virtual time. With `wfe` it waits for events between reads;
/// otherwise it spins ARM_SMMU_CMDQ_SYNC_SPIN_COUNT times, then backs off exponentially.
public func queue_poll_cons(_ q: arm_smmu_queue, _ sync: Bool, _ wfe_: Bool) async -> Int32 {
    let timeout = ktime_get() &+ (sync ? ARM_SMMU_CMDQ_SYNC_TIMEOUT_US : ARM_SMMU_POLL_TIMEOUT_US) &* NSEC_PER_USEC
    var delay: UInt64 = 1
    var spin_cnt = 0
    while true {
        await queue_sync_cons(q)
        guard sync ? !queue_empty(q) : queue_full(q) else { return 0 }
        if ktime_get() > timeout { return -ETIMEDOUT }
        if wfe_ {
            await wfe()
        } else {
            spin_cnt += 1
            if spin_cnt < ARM_SMMU_CMDQ_SYNC_SPIN_COUNT {
                await cpu_relax()
                continue
            }
            await udelay(delay)
            delay = min(delay &* 2, ARM_SMMU_CMDQ_SYNC_TIMEOUT_US)
            spin_cnt = 0
        }
    }
}

/// The CERROR names `arm_smmu_cmdq_skip_err` prints.
let cerror_str = ["No error", "Illegal command", "Abort on command fetch", "ATC invalidate timeout"]

/// `arm_smmu_cmdq_skip_err`: after GERROR.CMDQ_ERR, reports the error in CMDQ_CONS.ERR and, for
/// an illegal command (or an unknown error), overwrites the command at CONS with a CMD_SYNC so
/// that the queue can resume when the error is acknowledged; a fetch abort is retried as is.
/// It touches no shadow queue state: other producers may hold the queue.
public func arm_smmu_cmdq_skip_err(_ smmu: arm_smmu_device) async {
    ftrace("arm_smmu_cmdq_skip_err")
    let q = smmu.cmdq.q
    guard let consReg = q.cons_reg else { return }
    let cons = await readl_relaxed(consReg)
    let idx = FIELD_GET(CMDQ_CONS_ERR, UInt64(cons))
    let cmd_sync = arm_smmu_cmdq_ent(opcode: CMDQ_OP_CMD_SYNC)

    dev_err(smmu.dev, "CMDQ error (cons 0x\(hex8(cons))): \(idx < UInt64(cerror_str.count) ? cerror_str[Int(idx)] : "Unknown")")

    switch idx {
    case CMDQ_ERR_CERROR_ABT_IDX:
        dev_err(smmu.dev, "retrying command fetch")
        return
    case CMDQ_ERR_CERROR_NONE_IDX:
        return
    case CMDQ_ERR_CERROR_ATC_INV_IDX:
        // ATC invalidation of the PCIe device failed: nothing to retry (a CMD_SYNC follows it
        // and will complete once the error is acknowledged).
        return
    default:
        break
    }

    guard let slot = queue_entry(q, cons) else { return }
    let bad = queue_read(slot, q.ent_dwords)
    dev_err(smmu.dev, "skipping command in error state:")
    for word in bad { dev_err(smmu.dev, "\t0x\(hex16(word))") }

    // Convert the erroneous command into a CMD_SYNC.
    var cmd: (UInt64, UInt64) = (0, 0)
    if arm_smmu_cmdq_build_cmd(&cmd, cmd_sync) != 0 {
        dev_err(smmu.dev, "failed to convert to CMD_SYNC")
        return
    }
    queue_write(slot, [cmd.0, cmd.1], q.ent_dwords)
}

/// `%016llx`.
func hex16(_ value: UInt64) -> String { printkHex(value, width: 16) }

/// `arm_smmu_cmdq_insert_cmd`: inserts `cmd`, waiting (with "CMDQ timeout" now and then) while
/// the queue is full. The caller holds the command queue lock. Public for tools that put raw
/// words on the queue (fixtures injecting an illegal command).
public func arm_smmu_cmdq_insert_cmd(_ smmu: arm_smmu_device, _ cmd: (UInt64, UInt64)) async {
    ftrace("arm_smmu_cmdq_insert_cmd")
    let q = smmu.cmdq.q
    let wfe = smmu.features & ARM_SMMU_FEAT_SEV != 0
    while await queue_insert_raw(q, [cmd.0, cmd.1]) == -ENOSPC {
        if await queue_poll_cons(q, false, wfe) != 0 { dev_err_ratelimited(smmu.dev, "CMDQ timeout") }
    }
}

/// `arm_smmu_cmdq_issue_cmd`: encodes `ent` and inserts it under the command queue lock
/// ("ignoring unknown CMDQ opcode" for one the driver cannot encode).
public func arm_smmu_cmdq_issue_cmd(_ smmu: arm_smmu_device, _ ent: arm_smmu_cmdq_ent) async {
    ftrace("arm_smmu_cmdq_issue_cmd")
    var cmd: (UInt64, UInt64) = (0, 0)
    if arm_smmu_cmdq_build_cmd(&cmd, ent) != 0 {
        dev_warn(smmu.dev, "ignoring unknown CMDQ opcode 0x\(String(ent.opcode, radix: 16))")
        return
    }
    await smmu.cmdq.lock.lock()
    await arm_smmu_cmdq_insert_cmd(smmu, cmd)
    smmu.cmdq.lock.unlock()
}

/// `__arm_smmu_sync_poll_msi`: waits until the CMD_SYNC MSI has written a sequence number at
/// or past `sync_idx` into `sync_count` (wrap-safe: queues are at most 2^20 entries), or the
/// timeout passes.
func __arm_smmu_sync_poll_msi(_ smmu: arm_smmu_device, _ sync_idx: UInt32) async -> Int32 {
    ftrace("__arm_smmu_sync_poll_msi")
    guard let sync_count = smmu.sync_count else { return -ETIMEDOUT }
    let timeout = ktime_get() &+ ARM_SMMU_CMDQ_SYNC_TIMEOUT_US &* NSEC_PER_USEC
    // smp_cond_load_acquire: WFE-based on arm64, woken by the write or the event stream.
    var val = UInt32(truncatingIfNeeded: sync_count[0])
    while Int32(bitPattern: val &- sync_idx) < 0 && ktime_get() < timeout {
        await wfe()
        val = UInt32(truncatingIfNeeded: sync_count[0])
    }
    return Int32(bitPattern: val &- sync_idx) < 0 ? -ETIMEDOUT : 0
}

/// `__arm_smmu_cmdq_issue_sync_msi`: a CMD_SYNC whose completion is an MSI writing the next
/// `sync_nr` to `sync_count`; polled outside the lock.
func __arm_smmu_cmdq_issue_sync_msi(_ smmu: arm_smmu_device) async -> Int32 {
    ftrace("__arm_smmu_cmdq_issue_sync_msi")
    var ent = arm_smmu_cmdq_ent(opcode: CMDQ_OP_CMD_SYNC)
    ent.sync.msidata = UInt32(bitPattern: await smmu.sync_nr.incrementReturn())
    ent.sync.msiaddr = smmu.sync_count?.address ?? 0
    var cmd: (UInt64, UInt64) = (0, 0)
    _ = arm_smmu_cmdq_build_cmd(&cmd, ent)

    await smmu.cmdq.lock.lock()
    await arm_smmu_cmdq_insert_cmd(smmu, cmd)
    smmu.cmdq.lock.unlock()

    return await __arm_smmu_sync_poll_msi(smmu, ent.sync.msidata)
}

/// `__arm_smmu_cmdq_issue_sync`: a CMD_SYNC (completion signalled by SEV) followed by polling
/// CONS until the queue is empty, all under the lock.
func __arm_smmu_cmdq_issue_sync(_ smmu: arm_smmu_device) async -> Int32 {
    ftrace("__arm_smmu_cmdq_issue_sync")
    let wfe = smmu.features & ARM_SMMU_FEAT_SEV != 0
    var cmd: (UInt64, UInt64) = (0, 0)
    _ = arm_smmu_cmdq_build_cmd(&cmd, arm_smmu_cmdq_ent(opcode: CMDQ_OP_CMD_SYNC))

    await smmu.cmdq.lock.lock()
    await arm_smmu_cmdq_insert_cmd(smmu, cmd)
    let ret = await queue_poll_cons(smmu.cmdq.q, true, wfe)
    smmu.cmdq.lock.unlock()
    return ret
}

/// `arm_smmu_cmdq_issue_sync`: by MSI when the SMMU can write MSIs coherently, by polling
/// otherwise; "CMD_SYNC timeout" (and -ETIMEDOUT, as Linux v5.2 returns) when it does not
/// complete.
@discardableResult
public func arm_smmu_cmdq_issue_sync(_ smmu: arm_smmu_device) async -> Int32 {
    ftrace("arm_smmu_cmdq_issue_sync")
    let msi = smmu.features & ARM_SMMU_FEAT_MSI != 0 && smmu.features & ARM_SMMU_FEAT_COHERENCY != 0
    let ret = msi ? await __arm_smmu_cmdq_issue_sync_msi(smmu) : await __arm_smmu_cmdq_issue_sync(smmu)
    if ret != 0 { dev_err_ratelimited(smmu.dev, "CMD_SYNC timeout") }
    return ret
}
