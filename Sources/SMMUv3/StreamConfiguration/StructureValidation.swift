import Platform
import SMMUv3Layout

extension SMMU {
    /// Why this SMMU would reject `words` as a Stream Table Entry with C_BAD_STE (§5.2,
    /// §5.2.2 SteIllegal()), or nil when it would accept it. The check is the one a
    /// translation makes; it reads no memory and changes no state. Doublewords missing from
    /// `words` read as zero and any beyond the eighth are ignored.
    public func steProblem(_ words: [UInt64]) -> STEProblem? {
        decodeSTE(Self.structureWords(words)).problem
    }

    /// Why this SMMU would reject `words` as a Context Descriptor with C_BAD_CD (§5.4,
    /// §5.4.2 CdIllegal()), or nil when it would accept it, for a stream whose STE is
    /// `streamTableEntry` (its S1STALLD and STRW take part in the check). With no STE the CD is
    /// checked as a stage-1 NS-EL1 stream with S1STALLD == 0 would use it. Doublewords missing
    /// from either structure read as zero and any beyond the eighth are ignored.
    public func cdProblem(_ words: [UInt64], streamTableEntry: [UInt64]? = nil) -> CDProblem? {
        let ste = streamTableEntry.map { decodeSTE(Self.structureWords($0)) } ?? StreamTableEntry()
        return decodeCD(Self.structureWords(words), ste: ste).problem
    }

    /// The first eight doublewords of `words`, zero-filled.
    private static func structureWords(_ words: [UInt64]) -> InlineArray<8, UInt64> {
        var structure = InlineArray<8, UInt64>(repeating: 0)
        for index in structure.indices where index < words.count {
            structure[index] = words[index]
        }
        return structure
    }
}

/// The structures the SMMU would fetch for a stream right now (§3.3, §3.4): for steppers
/// and debuggers, read straight from memory with no fault, trace or cache change.
public struct StructureInspection: Sendable, Equatable {
    /// The STE's address, or nil when the StreamID is out of range of the stream table.
    public var steAddress: UInt64?
    /// The STE's eight doublewords (nil: not located, or its memory is not RAM).
    public var ste: [UInt64]?
    /// The CD's physical address (nil: no CD for this stream or SubstreamID).
    public var cdAddress: UInt64?
    /// The CD's eight doublewords.
    public var cd: [UInt64]?
    /// Why the walk stopped short of a CD, when it did (the fault a transaction would take).
    public var stoppedAt: String?
}

extension SMMU {
    /// What a transaction from `streamID` (and `substreamID`) would find, without fetching
    /// through the bus: the STE (linear or two-level stream table, §3.3) and, for a stage-1
    /// stream, the CD at the SubstreamID (or S1DSS's CD 0 without one, §3.4). A nested stream's
    /// CD pointer is an IPA: it is shown untranslated (stage 2 is not walked).
    public func inspectStructures(streamID: UInt32, substreamID: UInt32?) -> StructureInspection {
        var result = StructureInspection()
        guard let (address, l1Address, l1Raw, _) = locateSTE(streamID: streamID, mode: .inspect) else {
            result.stoppedAt = "C_BAD_STREAMID: SID \(hex(streamID)) is beyond the stream table"
            return result
        }
        if let l1Address, l1Raw == nil {
            result.stoppedAt = "F_STE_FETCH: L1STD at \(hex(l1Address)) is not in RAM"
            return result
        }
        result.steAddress = address
        guard let raw = readStructure(address, mode: .inspect) else {
            result.stoppedAt = "F_STE_FETCH: STE at \(hex(address)) is not in RAM"
            return result
        }
        result.ste = Array(0..<8).map { raw[$0] }
        let ste = decodeSTE(raw)
        if let problem = ste.problem {
            result.stoppedAt = "C_BAD_STE: \(problem)"
            return result
        }
        guard ste.stage1Enabled else { return result }
        let index = substreamID ?? 0
        if let substreamID, ste.s1CDMax == 0 || substreamID >> UInt32(min(ste.s1CDMax, 20)) != 0 {
            result.stoppedAt = "C_BAD_SUBSTREAMID: SSID \(hex(substreamID)) is beyond S1CDMax"
            return result
        }
        switch locateCD(ste: ste, index: index, reportedSSID: index, stage2: nil, mode: .inspect) {
        case .success(let (cdAddress, _, _)):
            result.cdAddress = cdAddress
            if let words = readStructure(cdAddress, mode: .inspect) {
                result.cd = Array(0..<8).map { words[$0] }
            } else {
                result.stoppedAt = "F_CD_FETCH: CD at \(hex(cdAddress)) is not in RAM"
            }
        case .failure(let failure):
            result.stoppedAt = "\(failure)"
        }
        return result
    }
}
