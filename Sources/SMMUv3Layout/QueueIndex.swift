/// Circular-queue index arithmetic (§3.5.1).
///
/// A PROD or CONS value holds, for a queue of 2^QS entries, the index in bits [QS-1:0] and
/// the wrap flag in bit [QS] (a one-entry queue, QS = 0, has no index bits and the wrap flag
/// in bit 0). Empty is "index and wrap equal"; full is "index equal, wrap different". Every
/// slot is usable. Any other relation where PROD is more than 2^QS entries ahead of CONS is an
/// inconsistent state (§3.5.1: CONSTRAINED UNPREDICTABLE).
public struct QueueIndex: Sendable, Hashable {
    /// log2 of the number of entries (0...19).
    public let log2Size: Int

    /// Index arithmetic for a queue of `2^log2Size` entries.
    @inlinable
    public init(log2Size: Int) {
        self.log2Size = log2Size
    }

    /// The number of entries.
    @inlinable @inline(__always) public var capacity: UInt32 { 1 << UInt32(log2Size) }
    /// Mask of the index bits.
    @inlinable @inline(__always) public var indexMask: UInt32 { capacity &- 1 }
    /// The wrap flag bit.
    @inlinable @inline(__always) public var wrapBit: UInt32 { capacity }
    /// Mask of index and wrap flag together.
    @inlinable @inline(__always) public var pointerMask: UInt32 { (capacity << 1) &- 1 }

    /// The slot index of a pointer value.
    @inlinable @inline(__always) public func index(_ pointer: UInt32) -> UInt32 { pointer & indexMask }
    /// The wrap flag of a pointer value.
    @inlinable @inline(__always) public func wrap(_ pointer: UInt32) -> Bool { pointer & wrapBit != 0 }

    /// The number of entries between `cons` and `prod` (may exceed ``capacity`` when the
    /// pointers are inconsistent).
    @inlinable @inline(__always)
    public func count(prod: UInt32, cons: UInt32) -> UInt32 {
        (prod &- cons) & pointerMask
    }

    /// Whether the queue is empty.
    @inlinable @inline(__always)
    public func isEmpty(prod: UInt32, cons: UInt32) -> Bool {
        (prod ^ cons) & pointerMask == 0
    }

    /// Whether the queue is full.
    @inlinable @inline(__always)
    public func isFull(prod: UInt32, cons: UInt32) -> Bool {
        (prod ^ cons) & pointerMask == wrapBit
    }

    /// Whether the pointers describe a legal state (empty, full, or partially filled with
    /// the wrap flags agreeing with the index order).
    @inlinable @inline(__always)
    public func isConsistent(prod: UInt32, cons: UInt32) -> Bool {
        count(prod: prod, cons: cons) <= capacity
    }

    /// The pointer one entry further on (the wrap flag toggles when the index wraps).
    @inlinable @inline(__always)
    public func increment(_ pointer: UInt32) -> UInt32 {
        (pointer &+ 1) & pointerMask
    }

    /// Renders a pointer as `idx` with a `w` suffix when the wrap flag is set.
    public func describe(_ pointer: UInt32) -> String {
        "\(index(pointer))\(wrap(pointer) ? "w" : "")"
    }
}
