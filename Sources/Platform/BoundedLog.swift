/// The most recent `capacity` elements of a stream of records, oldest first, with a count of
/// the older ones it let go.
///
/// Every record the platform and the model keep for a user (trace lines, interrupt records,
/// diagnostics, messages an endpoint received) lives in one of these, so that no amount of
/// software-controlled activity makes memory grow without bound. Appending is O(1) and never
/// allocates once the ring is full.
public struct BoundedLog<Element> {
    private var storage: [Element] = []
    /// Index in `storage` of the oldest element once the ring has wrapped.
    private var start = 0
    /// The most elements kept; older ones are dropped (and counted) to make room.
    public private(set) var capacity: Int
    /// How many elements were dropped to make room (oldest first).
    public private(set) var dropped = 0

    /// An empty log keeping at most `capacity` elements (at least 0).
    public init(capacity: Int) {
        self.capacity = max(capacity, 0)
    }

    /// The number of elements kept.
    public var count: Int { storage.count }

    /// Whether nothing is kept.
    public var isEmpty: Bool { storage.isEmpty }

    /// Every element ever appended since the last ``removeAll()``: kept plus dropped.
    public var totalAppended: Int { storage.count &+ dropped }

    /// Appends `element`, dropping the oldest one when the log is full; returns the element
    /// dropped (`element` itself when the capacity is 0), if any.
    @discardableResult
    public mutating func append(_ element: Element) -> Element? {
        guard capacity > 0 else {
            dropped &+= 1
            return element
        }
        if storage.count < capacity {
            storage.append(element)
            return nil
        }
        let oldest = storage[start]
        storage[start] = element
        start = start + 1 == capacity ? 0 : start + 1
        dropped &+= 1
        return oldest
    }

    /// The kept elements, oldest first.
    public var elements: [Element] {
        guard start != 0 else { return storage }
        return Array(storage[start...] + storage[..<start])
    }

    /// The newest element, if any.
    public var last: Element? {
        guard !storage.isEmpty else { return nil }
        return storage[(start == 0 ? storage.count : start) - 1]
    }

    /// Forgets every element and the dropped count.
    public mutating func removeAll() {
        storage.removeAll(keepingCapacity: false)
        start = 0
        dropped = 0
    }

    /// Changes the capacity, keeping the newest elements that fit (the others count as dropped).
    public mutating func resize(to newCapacity: Int) {
        let kept = elements
        let limit = max(newCapacity, 0)
        let excess = max(kept.count - limit, 0)
        storage = Array(kept.dropFirst(excess))
        start = 0
        capacity = limit
        dropped &+= excess
    }
}

extension BoundedLog: Sendable where Element: Sendable {}
