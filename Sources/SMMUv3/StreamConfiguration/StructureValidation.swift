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
