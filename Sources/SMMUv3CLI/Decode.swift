import Platform
import SMMUv3

/// `smmuv3 decode`: prints queue entries and records readably.
enum Decode {
    static func run(_ arguments: [String]) throws -> Int32 {
        guard let kind = arguments.first else { throw UsageError("decode needs cmd, evt or pri and the doublewords") }
        let words = try arguments.dropFirst().enumerated().map { index, text in
            guard let value = parseNumber(text) else {
                throw UsageError("argument \(index + 2) ('\(text)') is not a number (use 0x... for hexadecimal)")
            }
            return value
        }
        switch kind {
        case "cmd":
            guard words.count == 2 else { throw UsageError("decode cmd needs 2 doublewords, got \(words.count)") }
            print(CommandEntry(dw0: words[0], dw1: words[1]))
        case "evt":
            guard words.count == 4 else { throw UsageError("decode evt needs 4 doublewords, got \(words.count)") }
            print(EventRecord(dw0: words[0], dw1: words[1], dw2: words[2], dw3: words[3]))
        case "pri":
            guard words.count == 2 else { throw UsageError("decode pri needs 2 doublewords, got \(words.count)") }
            print(PRIQEntry(dw0: words[0], dw1: words[1]))
        default:
            throw UsageError("decode: unknown kind '\(kind)' (cmd, evt or pri)")
        }
        return 0
    }

    /// Parses `0x`-prefixed hexadecimal or decimal, allowing `_` separators.
    static func parseNumber(_ text: String) -> UInt64? {
        let cleaned = text.replacingOccurrences(of: "_", with: "")
        if cleaned.hasPrefix("0x") || cleaned.hasPrefix("0X") { return UInt64(cleaned.dropFirst(2), radix: 16) }
        return UInt64(cleaned)
    }
}
