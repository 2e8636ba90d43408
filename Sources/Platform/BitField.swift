/// A contiguous bit field inside a 64-bit word.
///
/// Every register, command, event and table layout in the project is declared once as a
/// table of `BitField` constants (named after the spec or the Linux header) and all
/// decoding and encoding goes through them, never through scattered shifts.
///
/// Fields are written the way the specification writes them, high bit first:
/// `BitField(13, 12)` is bits [13:12]; `BitField(bit: 31)` is bit [31].
public struct BitField: Sendable, Hashable, CustomStringConvertible {
    /// The lowest bit position of the field.
    public let low: Int
    /// The number of bits in the field (1...64).
    public let width: Int

    /// Declares the field `[high:low]`. Layout tables are program constants, so a
    /// malformed declaration is a programming error and traps.
    @inlinable
    public init(_ high: Int, _ low: Int) {
        precondition(low >= 0 && high >= low && high < 64, "bad bit field [\(high):\(low)]")
        self.low = low
        self.width = high - low + 1
    }

    /// Declares the single-bit field `[bit]`.
    @inlinable
    public init(bit: Int) {
        self.init(bit, bit)
    }

    /// The highest bit position of the field.
    @inlinable @inline(__always) public var high: Int { low + width - 1 }

    /// The largest value the field can hold.
    @inlinable @inline(__always) public var maxValue: UInt64 { width == 64 ? .max : (UInt64(1) << UInt64(width)) &- 1 }

    /// The field's bits in place within the word.
    @inlinable @inline(__always) public var mask: UInt64 { maxValue << UInt64(low) }

    /// The field's bits in place within a 32-bit register (the bits of ``mask`` that fit one).
    @inlinable @inline(__always) public var mask32: UInt32 { UInt32(truncatingIfNeeded: mask) }

    /// The field's value, right-aligned.
    @inlinable @inline(__always)
    public func extract(_ word: UInt64) -> UInt64 {
        (word >> UInt64(low)) & maxValue
    }

    /// The field's value from a 32-bit word, right-aligned.
    @inlinable @inline(__always)
    public func extract(_ word: UInt32) -> UInt32 {
        UInt32(truncatingIfNeeded: extract(UInt64(word)))
    }

    /// Whether a one-bit field (or any bit of a wider one) is set.
    @inlinable @inline(__always)
    public func isSet(_ word: UInt64) -> Bool { word & mask != 0 }

    /// Whether a one-bit field (or any bit of a wider one) is set in a 32-bit word.
    @inlinable @inline(__always)
    public func isSet(_ word: UInt32) -> Bool { UInt64(word) & mask != 0 }

    /// `word` with the field replaced by `value`; bits of `value` that do not fit are dropped.
    @inlinable @inline(__always)
    public func inserting(_ value: UInt64, into word: UInt64) -> UInt64 {
        (word & ~mask) | ((value << UInt64(low)) & mask)
    }

    /// `word` with the field replaced by `value`; bits of `value` that do not fit are dropped.
    @inlinable @inline(__always)
    public func inserting(_ value: UInt32, into word: UInt32) -> UInt32 {
        UInt32(truncatingIfNeeded: inserting(UInt64(value), into: UInt64(word)))
    }

    /// The value placed at the field's position (other bits zero).
    @inlinable @inline(__always)
    public func place(_ value: UInt64) -> UInt64 { (value << UInt64(low)) & mask }

    /// The one-bit field placed as set or clear.
    @inlinable @inline(__always)
    public func place(_ flag: Bool) -> UInt64 { flag ? mask : 0 }

    /// `value` moved into the field's position of a 32-bit register (excess bits dropped).
    @inlinable @inline(__always)
    public func place32(_ value: UInt32) -> UInt32 { UInt32(truncatingIfNeeded: place(UInt64(value))) }

    /// `[high:low]`.
    public var description: String { width == 1 ? "[\(low)]" : "[\(high):\(low)]" }
}

/// An address field: bits `[high:low]` of a word that hold address bits `[high:low]` in place
/// (for example `ADDR[55:5]` of a queue base register). Extraction keeps the bits in position.
public struct AddressField: Sendable, Hashable {
    /// The field, as bits of the containing word.
    public let bits: BitField

    /// Declares address bits `[high:low]` stored in place.
    @inlinable
    public init(_ high: Int, _ low: Int) { bits = BitField(high, low) }

    /// The address, bits kept in place.
    @inlinable @inline(__always)
    public func extract(_ word: UInt64) -> UInt64 { word & bits.mask }

    /// `word` with the address field replaced by `address[high:low]`.
    @inlinable @inline(__always)
    public func inserting(_ address: UInt64, into word: UInt64) -> UInt64 {
        (word & ~bits.mask) | (address & bits.mask)
    }
}

extension UInt64 {
    /// A mask of the low `count` bits (`count` in 0...64).
    @inlinable @inline(__always)
    public static func lowBits(_ count: Int) -> UInt64 {
        count >= 64 ? .max : (count <= 0 ? 0 : (UInt64(1) << UInt64(count)) &- 1)
    }
}

/// Formats a value as `0x` followed by `digits` hexadecimal digits (zero padded).
@inlinable
public func hex<T: BinaryInteger>(_ value: T, digits: Int = 0) -> String {
    let text = String(value, radix: 16)
    return "0x" + (text.count < digits ? String(repeating: "0", count: digits - text.count) + text : text)
}
