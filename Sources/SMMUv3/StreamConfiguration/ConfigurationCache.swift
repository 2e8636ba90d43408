import Platform
import SMMUv3Layout
import VMSA

/// A cached configuration structure (STE or CD): decoded, with its raw words and where they
/// and the level-1 descriptor that located them came from, so that checked mode can compare
/// them with memory.
struct CachedStructure<Decoded: BitwiseCopyable>: BitwiseCopyable {
    var decoded: Decoded
    var raw: InlineArray<8, UInt64>
    /// The physical address the structure was read from.
    var address: UInt64
    /// The physical address of the L1STD or L1CD that located it (2-level tables), or
    /// `UInt64.max`.
    var l1Address: UInt64
    var l1Raw: UInt64
    /// Checked mode already reported a change of it.
    var staleReported = false
}

/// A cached STE, keyed by StreamID.
typealias CachedSTE = CachedStructure<StreamTableEntry>
/// A cached CD, keyed by StreamID and CD index.
typealias CachedCD = CachedStructure<ContextDescriptor>

/// Why a configuration structure could not be used (§7.3.3–§7.3.11).
enum ConfigurationFailure: Error {
    /// C_BAD_STREAMID: out of range, or a bad L1STD.
    case badStreamID
    /// F_STE_FETCH at the address.
    case steFetch(address: UInt64)
    /// F_CFG_CONFLICT: STEs within an STE.CONT span differ.
    case configurationConflict
    /// C_BAD_SUBSTREAMID, reporting this SubstreamID.
    case badSubstreamID(UInt32)
    /// F_CD_FETCH at the address.
    case cdFetch(address: UInt64)
    /// A stage-2 fault translating a CD or L1CD address (CLASS == CD).
    case stage2(WalkFault)
}

extension SMMU {
    /// Key of a CD cache entry.
    @inline(__always)
    func cdKey(streamID: UInt32, index: UInt32) -> UInt64 { UInt64(streamID) << 20 | UInt64(index & 0xF_FFFF) }

    /// Reads one doubleword of a structure (STE, CD, L1 descriptor); nil on external abort.
    /// `inspect` reads (checked mode) read RAM directly: no fault, no trace.
    @inline(__always)
    func readDescriptor(_ address: UInt64, mode: WalkMode) -> UInt64? {
        if case .inspect = mode {
            return bus.memory.isRAM(address, length: 8) ? bus.memory.read64(at: address) : nil
        }
        return bus.dmaRead64(at: address)
    }

    /// Reads an 8-doubleword structure; nil on external abort.
    func readStructure(_ address: UInt64, mode: WalkMode) -> InlineArray<8, UInt64>? {
        var words = InlineArray<8, UInt64>(repeating: 0)
        for index in 0..<8 {
            guard let word = readDescriptor(address &+ UInt64(index) * 8, mode: mode) else { return nil }
            words[index] = word
        }
        return words
    }

    // MARK: Stream table (§3.3.1, §5.1, §5.2)

    /// The STE for `streamID`, from the configuration cache or the stream table.
    @inline(__always)
    func streamTableEntry(for streamID: UInt32, mode: WalkMode) -> Result<StreamTableEntry, ConfigurationFailure> {
        if case .inspect = mode {} else if let cached = steCache.value(for: UInt64(streamID)) {
            if checkedMode && !cached.staleReported { verifySTE(streamID: streamID, cached) }
            return .success(cached.decoded)
        }
        return fetchSTE(streamID: streamID, mode: mode)
    }

    private func fetchSTE(streamID: UInt32, mode: WalkMode) -> Result<StreamTableEntry, ConfigurationFailure> {
        guard let location = locateSTE(streamID: streamID, mode: mode) else { return .failure(.badStreamID) }
        let (address, l1Address, l1Raw, spanEntries) = location
        if let l1Address, l1Raw == nil { return .failure(.steFetch(address: l1Address)) }
        // §3.4.3: an STE address beyond OAS gives F_STE_FETCH in this model.
        guard address >> UInt64(oasBits) == 0, let raw = readStructure(address, mode: mode) else {
            return .failure(.steFetch(address: address))
        }
        let ste = decodeSTE(raw)
        if ste.problem == nil, ste.cont != 0 {
            switch checkContiguousSpan(streamID: streamID, address: address, raw: raw, cont: Int(ste.cont), limit: spanEntries, mode: mode) {
            case .some(let failure): return .failure(failure)
            case .none: break
            }
        }
        if case .transaction = mode {
            steCache.insert(CachedSTE(decoded: ste, raw: raw, address: address, l1Address: l1Address ?? .max, l1Raw: l1Raw ?? 0), for: UInt64(streamID))
            trace.record(.translation, "\(names.xlat): STE sid=\(hex(streamID)) fetched from \(hex(address))\(ste.problem.map { " (ILLEGAL: \($0))" } ?? "")")
        }
        return .success(ste)
    }

    /// Where the STE of `streamID` lives: its address, the L1STD address and value (2-level;
    /// the value is nil when its fetch aborted), and the number of STEs in its array.
    /// Returns nil for C_BAD_STREAMID.
    func locateSTE(streamID: UInt32, mode: WalkMode) -> (UInt64, UInt64?, UInt64?, UInt64)? {
        let literalLog2 = Int(Reg.STRTAB.log2Size.extract(strtabBaseCfg))
        let log2 = min(literalLog2, configuration.streamIDBits)
        guard UInt64(streamID) >> UInt64(log2) == 0 else { return nil }
        let base = Reg.STRTAB.address.extract(strtabBase)
        let twoLevel = configuration.twoLevelStreamTable && Reg.STRTAB.fmt.extract(strtabBaseCfg) == Reg.STRTAB.fmtTwoLevel
        guard twoLevel else {
            let tableBase = base & ~UInt64.lowBits(literalLog2 + 6)
            return (tableBase &+ UInt64(streamID) &* 64, nil, nil, UInt64(1) << UInt64(log2))
        }
        var split = Int(Reg.STRTAB.split.extract(strtabBaseCfg))
        if split != 6 && split != 8 && split != 10 { split = 6 }
        let l1Index = log2 > split ? UInt64(streamID) >> UInt64(split) : 0
        let l1TableBytesLog2 = max(literalLog2 - split, 0) + 3
        let l1Base = base & ~UInt64.lowBits(max(6, l1TableBytesLog2))
        let l1Address = l1Base &+ l1Index &* 8
        guard l1Address >> UInt64(oasBits) == 0, let l1 = readDescriptor(l1Address, mode: mode) else {
            return (0, l1Address, nil, 0)
        }
        let span = Int(L1Field.span.extract(l1))
        guard span != 0 && span <= 11 && span <= split + 1 else { return nil }
        let l2Index = UInt64(streamID) & UInt64.lowBits(split)
        guard l2Index < UInt64(1) << UInt64(span - 1) else { return nil }
        let l2Base = L1Field.l2STDPointer.extract(l1) & ~UInt64.lowBits(span + 5)
        return (l2Base &+ l2Index &* 64, l1Address, l1, UInt64(1) << UInt64(span - 1))
    }

    /// STE.CONT (§5.2): the STEs of the aligned 2^CONT span must all be identical (but for
    /// CONT); when they differ the model raises F_CFG_CONFLICT (a permitted choice, §7.3.18).
    private func checkContiguousSpan(streamID: UInt32, address: UInt64, raw: InlineArray<8, UInt64>, cont: Int, limit: UInt64, mode: WalkMode) -> ConfigurationFailure? {
        let spanEntries = min(UInt64(1) << UInt64(cont), max(limit, 1))
        let offset = UInt64(streamID) & (spanEntries - 1)
        let first = address &- offset &* 64
        let contMask = STEField.cont.bits.mask
        for entry in 0..<spanEntries where entry != offset {
            guard let other = readStructure(first &+ entry &* 64, mode: mode) else { return .steFetch(address: first &+ entry &* 64) }
            for word in 0..<8 {
                let mask: UInt64 = word == STEField.cont.doubleword ? ~contMask : .max
                if other[word] & mask != raw[word] & mask { return .configurationConflict }
            }
        }
        return nil
    }

    // MARK: Context descriptors (§5.3, §5.4)

    /// The CD at `index` of the stream's CD table, from the cache or memory. Addresses are IPAs
    /// translated by stage 2 when the STE is nested.
    func contextDescriptor(streamID: UInt32, ste: StreamTableEntry, index: UInt32, reportedSSID: UInt32, stage2: Stage2Context?, mode: WalkMode) -> Result<ContextDescriptor, ConfigurationFailure> {
        let key = cdKey(streamID: streamID, index: index)
        if case .inspect = mode {} else if let cached = cdCache.value(for: key) {
            if checkedMode && !cached.staleReported { verifyCD(key: key, streamID: streamID, index: index, cached) }
            return .success(cached.decoded)
        }
        let cdPA: UInt64
        let l1Address: UInt64
        let l1Raw: UInt64
        switch locateCD(ste: ste, index: index, reportedSSID: reportedSSID, stage2: stage2, mode: mode) {
        case .success(let location): (cdPA, l1Address, l1Raw) = location
        case .failure(let failure): return .failure(failure)
        }
        guard let raw = readStructure(cdPA, mode: mode) else { return .failure(.cdFetch(address: cdPA)) }
        let cd = decodeCD(raw, ste: ste)
        if case .transaction = mode {
            cdCache.insert(CachedCD(decoded: cd, raw: raw, address: cdPA, l1Address: l1Address, l1Raw: l1Raw), for: key)
            trace.record(.translation, "\(names.xlat): CD sid=\(hex(streamID)) index=\(hex(index)) fetched from \(hex(cdPA))\(cd.problem.map { " (ILLEGAL: \($0))" } ?? "")")
        }
        return .success(cd)
    }

    /// Where the CD at `index` of the stream's CD table lives (§3.4.3, §5.3): its physical
    /// address, and the L1CD's address and value (`.max` and 0 for a linear table). Addresses
    /// are IPAs translated by `stage2` when the STE is nested.
    func locateCD(ste: StreamTableEntry, index: UInt32, reportedSSID: UInt32, stage2: Stage2Context?, mode: WalkMode) -> Result<(UInt64, UInt64, UInt64), ConfigurationFailure> {
        let singleCD = ste.s1CDMax == 0 || substreamIDBits == 0
        var cdAddress = ste.s1ContextPointer
        var l1Address = UInt64.max
        var l1Raw: UInt64 = 0

        func physical(_ address: UInt64) -> Result<UInt64, ConfigurationFailure> {
            guard let stage2 else { return .success(address) }
            switch translateStage2(ipa: address, write: false, context: stage2, faultClass: .contextDescriptor, mode: mode) {
            case .success(let mapping): return .success(mapping.outputAddress)
            case .failure(let fault): return .failure(.stage2(fault))
            }
        }

        if !singleCD {
            let cdMax = Int(ste.s1CDMax)
            switch ste.s1Fmt {
            case 0b01, 0b10:
                let leafBits = ste.s1Fmt == 0b01 ? 6 : 10
                let l1Index = cdMax > leafBits ? UInt64(index) >> UInt64(leafBits) : 0
                let l1Base = ste.s1ContextPointer & ~UInt64.lowBits(max(6, max(cdMax - leafBits, 0) + 3))
                let l1IPA = l1Base &+ l1Index &* 8
                let l1PA: UInt64
                switch physical(l1IPA) {
                case .success(let address): l1PA = address
                case .failure(let failure): return .failure(failure)
                }
                guard let l1 = readDescriptor(l1PA, mode: mode) else { return .failure(.cdFetch(address: l1PA)) }
                guard L1Field.cdValid.isSet(l1) else { return .failure(.badSubstreamID(reportedSSID)) }
                var l2 = L1Field.l2CDPointer.extract(l1)
                if leafBits == 10 { l2 &= ~UInt64(0xFFFF) }
                // §3.4.3: an L2Ptr beyond OAS (or IAS) is C_BAD_SUBSTREAMID in SMMUv3.1+.
                guard l2 >> UInt64(oasBits) == 0 else { return .failure(.badSubstreamID(reportedSSID)) }
                cdAddress = l2 &+ (UInt64(index) & UInt64.lowBits(leafBits)) &* 64
                l1Address = l1PA
                l1Raw = l1
            default:
                let tableBase = ste.s1ContextPointer & ~UInt64.lowBits(cdMax + 6)
                cdAddress = tableBase &+ UInt64(index) &* 64
            }
        }
        switch physical(cdAddress) {
        case .success(let address): return .success((address, l1Address, l1Raw))
        case .failure(let failure): return .failure(failure)
        }
    }

    // MARK: Invalidation (§4.3)

    /// Removes cached STEs (and every CD cached through them) for `streamIDs`.
    func invalidateConfiguration(streamIDs: ClosedRange<UInt32>, includeL1: Bool) -> Int {
        invalidateStreamContexts(streamIDs: streamIDs)
        if streamIDs == 0...UInt32.max {
            return steCache.removeAll() + cdCache.removeAll()
        }
        var removed = 0
        if streamIDs.lowerBound == streamIDs.upperBound {
            if steCache.remove(UInt64(streamIDs.lowerBound)) { removed += 1 }
        } else {
            removed += steCache.removeAll { key, _ in streamIDs.contains(UInt32(truncatingIfNeeded: key)) }
        }
        removed += cdCache.removeAll { key, _ in streamIDs.contains(UInt32(truncatingIfNeeded: key >> 20)) }
        return removed
    }

    /// Removes cached CDs of `streamID`: one CD index, or all when `substreamID` is nil.
    func invalidateContextDescriptors(streamID: UInt32, substreamID: UInt32?, includeL1: Bool) -> Int {
        invalidateStreamContexts(streamID: streamID, substreamID: substreamID)
        if let substreamID {
            return cdCache.remove(cdKey(streamID: streamID, index: substreamID)) ? 1 : 0
        }
        return cdCache.removeAll { key, _ in UInt32(truncatingIfNeeded: key >> 20) == streamID }
    }

    // MARK: Checked mode

    private func wordsDiffer(_ cached: InlineArray<8, UInt64>, at address: UInt64) -> (Int, UInt64, UInt64)? {
        for index in 0..<8 {
            let now = bus.memory.read64(at: address &+ UInt64(index) * 8)
            if now != cached[index] { return (index, cached[index], now) }
        }
        return nil
    }

    /// Compares a cached STE (and its L1STD) with memory and reports a change that was not
    /// followed by an invalidation.
    func verifySTE(streamID: UInt32, _ cached: CachedSTE) {
        guard let message = staleness(of: cached, structure: "STE", l1: "L1STD", name: "SID \(hex(streamID))", invalidation: "CMD_CFGI_STE") else { return }
        _ = steCache.modify(UInt64(streamID)) { $0.staleReported = true }
        diagnose(.staleConfiguration(streamID: streamID), message)
    }

    /// Compares a cached CD (and its L1CD) with memory.
    func verifyCD(key: UInt64, streamID: UInt32, index: UInt32, _ cached: CachedCD) {
        guard let message = staleness(of: cached, structure: "CD", l1: "L1CD", name: "SID \(hex(streamID)) SSID \(hex(index))", invalidation: "CMD_CFGI_CD") else { return }
        _ = cdCache.modify(key) { $0.staleReported = true }
        diagnose(.staleConfiguration(streamID: streamID), message)
    }

    /// What changed in memory under a cached structure, as a diagnostic naming the missing
    /// invalidation, or nil when nothing did.
    private func staleness<Decoded>(of cached: CachedStructure<Decoded>, structure: String, l1: String, name: String, invalidation: String) -> String? {
        if cached.l1Address != .max {
            let now = bus.memory.read64(at: cached.l1Address)
            if now != cached.l1Raw {
                return "\(l1) for \(name) at \(hex(cached.l1Address)) changed since it was cached (was \(hex(cached.l1Raw, digits: 16)), now \(hex(now, digits: 16))) without \(invalidation) with Leaf == 0"
            }
        }
        guard let (word, was, now) = wordsDiffer(cached.raw, at: cached.address) else { return nil }
        return "\(structure) for \(name) at \(hex(cached.address)) changed since it was cached (dw\(word) was \(hex(was, digits: 16)), now \(hex(now, digits: 16))) without \(invalidation)"
    }
}
