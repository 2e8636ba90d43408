import Scenario

/// `smmuv3 decode`: prints queue entries, records, STEs and CDs readably (see
/// ``Scenario/StructureDecoder``).
enum Decode {
    /// The text `smmuv3 decode --help` prints, listing every kind with its doublewords.
    static var usage: String {
        let synopses = DecodableStructure.allCases.map { structure in
            (synopsis(structure), "\(structure.summary), \(wordCount(structure))")
        }
        let width = synopses.map(\.0.count).max() ?? 0
        let kinds = synopses.map { synopsis, summary in
            "  " + synopsis + String(repeating: " ", count: width - synopsis.count) + "  " + summary
        }
        return """
        usage: smmuv3 decode KIND DW0 [DW1 ...]

        Decodes a structure given as 64-bit doublewords, DW0 first (0x... for hexadecimal,
        otherwise decimal; _ separators allowed).

        kinds:
        \(kinds.joined(separator: "\n"))

        ste and cd print every field by its spec name, then a verdict: "valid", or why the
        model's default SMMU would reject the structure (C_BAD_STE, C_BAD_CD). A cd is checked
        as a stage-1 NS-EL1 STE with S1STALLD == 0 would use it.
        """
    }

    /// Runs `smmuv3 decode` with the arguments after `decode`: prints the usage for `--help` or
    /// `-h`, otherwise the structure's lines; mistakes throw ``UsageError``.
    static func run(_ arguments: [String]) throws -> Int32 {
        if arguments.contains("--help") || arguments.contains("-h") {
            print(usage)
            return 0
        }
        let kinds = DecodableStructure.allCases.map(\.rawValue).joined(separator: ", ")
        guard let kind = arguments.first else {
            throw UsageError("decode needs a kind (\(kinds)) and its doublewords; see 'smmuv3 decode --help'")
        }
        guard let structure = DecodableStructure(rawValue: kind) else {
            throw UsageError("decode: unknown kind '\(kind)' (\(kinds))")
        }
        let words = try arguments.dropFirst().enumerated().map { index, text in
            guard let value = parseNumber(text) else {
                throw UsageError("argument \(index + 2) ('\(text)') is not a number (use 0x... for hexadecimal)")
            }
            return value
        }
        do {
            print(try StructureDecoder.describe(structure, words).joined(separator: "\n"))
        } catch {
            throw UsageError("\(error)")
        }
        return 0
    }

    /// Parses `0x`-prefixed hexadecimal or decimal, allowing `_` separators.
    static func parseNumber(_ text: String) -> UInt64? {
        let cleaned = text.replacingOccurrences(of: "_", with: "")
        if cleaned.hasPrefix("0x") || cleaned.hasPrefix("0X") { return UInt64(cleaned.dropFirst(2), radix: 16) }
        return UInt64(cleaned)
    }

    /// `ste DW0 [... DW7]` or `cmd DW0 DW1`: the kind and the doublewords it takes.
    private static func synopsis(_ structure: DecodableStructure) -> String {
        let last = structure.doublewords - 1
        let words = structure.acceptsFewerDoublewords
            ? "DW0 [... DW\(last)]"
            : (0...last).map { "DW\($0)" }.joined(separator: " ")
        return "\(structure.rawValue) \(words)"
    }

    /// `2 doublewords` or `1 to 8 doublewords (missing ones read as zero)`.
    private static func wordCount(_ structure: DecodableStructure) -> String {
        structure.acceptsFewerDoublewords
            ? "1 to \(structure.doublewords) doublewords (the rest zero)"
            : "\(structure.doublewords) doublewords"
    }
}
