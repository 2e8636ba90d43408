import Platform
import SMMUv3Layout
import VMSA

extension SMMU {
    /// Whether an entry was inserted with the granule and level a range/TTL scope names
    /// (§4.4.1.1: only those need invalidating; TG == 0 matches everything).
    @inline(__always)
    private static func matches(_ entry: TLBEntry, _ scope: TLBIScope) -> Bool {
        guard scope.granule != 0 else { return true }
        if entry.granule != scope.granule { return false }
        // With IDR5.DS == 0, TTL == 0b01 for a 16 KB granule is treated as 0b00.
        let ttl = scope.granule == 2 && scope.ttl == 1 ? 0 : scope.ttl
        return ttl == 0 || entry.level == Int8(ttl)
    }

    /// Whether the entry at `key` maps any address in `[start, start + length)`.
    @inline(__always)
    private static func covers(_ key: TLBKey, start: UInt64, length: UInt64) -> Bool {
        let shift = UInt64(key.shift)
        let first = start >> shift
        let last = (length == 0 ? start : (start &+ (length &- 1) < start ? UInt64.max : start &+ (length &- 1))) >> shift
        return key.page >= first && key.page <= last
    }

    /// Removes the entries covering a VA range for a tag (non-global with `asid`) and, when
    /// `globals`, the global entries of either ASET: the tags a VA invalidation probes.
    private func removeVA(_ address: UInt64, length: UInt64, kind: TLBEntryKind, world: StreamWorld, vmid: UInt16, asid: UInt16, globals: Bool, scope: TLBIScope) -> Int {
        guard tlb.shiftMask(kind) != 0 else { return 0 }
        let globals = globals && tlb.hasGlobal(kind)
        let tag = TLBTag(kind: kind, world: world, vmid: vmid, asid: asid, global: false)
        var removed = tlb.removeCovering(address: address, length: length, tag: tag) { SMMU.matches($0, scope) }
        if globals {
            removed += tlb.removeCovering(address: address, length: length, tag: tag.globalVariant(aset: false)) { SMMU.matches($0, scope) }
            removed += tlb.removeCovering(address: address, length: length, tag: tag.globalVariant(aset: true)) { SMMU.matches($0, scope) }
        }
        return removed
    }

    // MARK: One function per TLBI command (§4.4). Only leaf entries are cached, so Leaf does
    // not change what is removed.

    /// CMD_TLBI_NH_ALL (§4.4.2.1): every NS-EL1 stage-1 and nested entry of the VMID.
    func executeTLBINHAll(_ command: Command) -> CommandEffect {
        let vmid = command.vmid
        return .invalidated(entries: tlb.remove { key, _ in key.tag.world == .el1 && key.tag.kind != .stage2 && key.tag.vmid == vmid })
    }

    /// CMD_TLBI_NH_ASID (§4.4.2.2): the non-global NS-EL1 entries of the ASID and VMID.
    func executeTLBINHASID(_ command: Command) -> CommandEffect {
        let vmid = command.vmid, asid = command.asid
        return .invalidated(entries: tlb.remove { key, _ in
            key.tag.world == .el1 && key.tag.kind != .stage2 && key.tag.vmid == vmid && !key.tag.isGlobal && key.tag.asid == asid
        })
    }

    /// CMD_TLBI_NH_VA (§4.4.2.4): NS-EL1 entries of the ASID (and global ones) covering the VA
    /// range, stage-1 and nested.
    func executeTLBINHVA(_ command: Command) -> CommandEffect {
        let range = command.scope
        let start = normalizedVA(command.address), length = range.rangeBytes ?? 1
        return .invalidated(entries:
            removeVA(start, length: length, kind: .stage1, world: .el1, vmid: command.vmid, asid: command.asid, globals: true, scope: range)
                + removeVA(start, length: length, kind: .nested, world: .el1, vmid: command.vmid, asid: command.asid, globals: true, scope: range))
    }

    /// CMD_TLBI_NH_VAA (§4.4.2.3): NS-EL1 entries of every ASID of the VMID covering the VA
    /// range.
    func executeTLBINHVAA(_ command: Command) -> CommandEffect {
        let vmid = command.vmid, range = command.scope
        let start = normalizedVA(command.address), length = range.rangeBytes ?? 1
        return .invalidated(entries: tlb.remove { key, entry in
            key.tag.world == .el1 && key.tag.kind != .stage2 && key.tag.vmid == vmid && SMMU.covers(key, start: start, length: length) && SMMU.matches(entry, range)
        })
    }

    /// CMD_TLBI_EL2_ALL (§4.4.2.7): every EL2 and EL2-E2H entry.
    func executeTLBIEL2All(_ command: Command) -> CommandEffect {
        .invalidated(entries: tlb.remove { key, _ in key.tag.world != .el1 })
    }

    /// CMD_TLBI_EL2_ASID (§4.4.2.10): the non-global EL2-E2H entries of the ASID.
    func executeTLBIEL2ASID(_ command: Command) -> CommandEffect {
        let asid = command.asid
        return .invalidated(entries: tlb.remove { key, _ in key.tag.world == .el2E2H && !key.tag.isGlobal && key.tag.asid == asid })
    }

    /// CMD_TLBI_EL2_VA (§4.4.2.8): EL2 entries covering the VA range (of the ASID, and global
    /// ones, when CR2.E2H is set).
    func executeTLBIEL2VA(_ command: Command) -> CommandEffect {
        let range = command.scope
        let start = normalizedVA(command.address), length = range.rangeBytes ?? 1
        return .invalidated(entries: Reg.CR2.e2h.isSet(cr2)
            ? removeVA(start, length: length, kind: .stage1, world: .el2E2H, vmid: 0, asid: command.asid, globals: true, scope: range)
            : removeVA(start, length: length, kind: .stage1, world: .el2, vmid: 0, asid: 0, globals: false, scope: range))
    }

    /// CMD_TLBI_EL2_VAA (§4.4.2.9): EL2 entries of every ASID covering the VA range.
    func executeTLBIEL2VAA(_ command: Command) -> CommandEffect {
        let world: StreamWorld = Reg.CR2.e2h.isSet(cr2) ? .el2E2H : .el2
        let range = command.scope
        let start = normalizedVA(command.address), length = range.rangeBytes ?? 1
        return .invalidated(entries: tlb.remove { key, entry in key.tag.world == world && SMMU.covers(key, start: start, length: length) && SMMU.matches(entry, range) })
    }

    /// CMD_TLBI_S12_VMALL (§4.4.3.2): every NS-EL1 entry of the VMID, all stages.
    func executeTLBIS12VMAll(_ command: Command) -> CommandEffect {
        let vmid = command.vmid
        return .invalidated(entries: tlb.remove { key, _ in key.tag.world == .el1 && key.tag.vmid == vmid })
    }

    /// CMD_TLBI_S2_IPA (§4.4.3.1): stage-2 entries of the VMID covering the IPA range. Nested
    /// combined entries need not be hit (software pairs it with NH_ALL or NH_VAA).
    func executeTLBIS2IPA(_ command: Command) -> CommandEffect {
        let range = command.scope
        let tag = TLBTag(kind: .stage2, world: .el1, vmid: command.vmid, asid: 0, global: false)
        return .invalidated(entries: tlb.removeCovering(address: command.address, length: range.rangeBytes ?? 1, tag: tag) { SMMU.matches($0, range) })
    }

    /// CMD_TLBI_NSNH_ALL (§4.4.4.1): every NS-EL1 entry.
    func executeTLBINSNHAll(_ command: Command) -> CommandEffect {
        .invalidated(entries: tlb.remove { key, _ in key.tag.world == .el1 })
    }

    // MARK: Checked mode

    /// Compares a TLB hit with what the translation tables in memory give now, and reports a
    /// difference: a change to the tables (or to the configuration that located them) that was
    /// not followed by the TLB invalidation that should follow it.
    func verifyTLBHit(_ hit: (key: TLBKey, entry: TLBEntry), input: UInt64) {
        let entry = hit.entry
        let shift = Int(hit.key.shift)
        let offset = input & UInt64.lowBits(shift)
        let cachedAddress = entry.outputBase | offset
        let substreamID: UInt32? = entry.substreamID == .max ? nil : entry.substreamID
        var now: Result<Mapping, TranslationFailure>
        if hit.key.tag.kind == .stage2 {
            switch streamTableEntry(for: entry.streamID, mode: .inspect) {
            case .success(let ste) where ste.problem == nil && ste.stage2Enabled:
                let context = Stage2Context(table: ste.stage2, vmid: ste.vmid, checksDeviceTableWalks: ste.s2PTW, streamID: entry.streamID, substreamID: entry.substreamID)
                now = translateStage2(ipa: input, write: false, context: context, faultClass: .input, mode: .inspect).mapError { .fault($0) }
            case .success:
                now = .failure(.silentAbort)
            case .failure(let failure):
                now = .failure(.configuration(failure))
            }
        } else {
            var context = StreamContext()
            now = resolveAndTranslate(streamID: entry.streamID, substreamID: substreamID, address: input, access: .dataRead, mode: .inspect, checksAccess: false, context: &context)
        }
        let describedNow: String
        switch now {
        case .success(let mapping):
            if mapping.outputAddress == cachedAddress && mapping.stage1 == entry.stage1 && mapping.stage2 == entry.stage2 { return }
            describedNow = "\(hex(mapping.outputAddress)) with \(describe(mapping.stage1.intersection(mapping.stage2)))"
        case .failure(let failure):
            describedNow = "no translation (\(failure))"
        }
        _ = tlb.table.modify(hit.key) { $0.flags |= TLBEntry.staleReported }
        let tag = hit.key.tag
        let missing: String
        switch (tag.kind, tag.world) {
        case (.stage2, _): missing = "CMD_TLBI_S2_IPA (or CMD_TLBI_S12_VMALL)"
        case (_, .el1): missing = "CMD_TLBI_NH_VA (or NH_VAA/NH_ASID/NH_ALL)"
        default: missing = "CMD_TLBI_EL2_VA (or EL2_ASID/EL2_ALL)"
        }
        let ssid = substreamID.map { " SSID \(hex($0))" } ?? ""
        let space = tag.kind == .stage2 ? "IPA" : "VA"
        let ids = tag.kind == .stage2 ? "VMID \(tag.vmid)" : (tag.isGlobal ? "global, VMID \(tag.vmid)" : "ASID \(tag.asid), VMID \(tag.vmid)")
        diagnose(.staleTranslation(streamID: entry.streamID), "TLB entry for SID \(hex(entry.streamID))\(ssid) \(space) \(hex(input)) (\(ids)) maps \(hex(cachedAddress)) with \(describe(entry.stage1.intersection(entry.stage2))), but the tables now give \(describedNow): missing \(missing)")
    }

    private func describe(_ permissions: Permissions) -> String {
        var text = ""
        if permissions.contains(.privilegedRead) { text += "R" }
        if permissions.contains(.privilegedWrite) { text += "W" }
        if permissions.contains(.privilegedExecute) { text += "X" }
        text += "/"
        if permissions.contains(.unprivilegedRead) { text += "r" }
        if permissions.contains(.unprivilegedWrite) { text += "w" }
        if permissions.contains(.unprivilegedExecute) { text += "x" }
        return text
    }
}
