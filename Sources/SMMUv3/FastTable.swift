/// A key for ``FastTable``: plain data with a cheap 64-bit hash.
protocol FastTableKey: BitwiseCopyable, Equatable {
    /// A well-mixed 64-bit hash of the key.
    var hash64: UInt64 { get }
}

extension UInt64: FastTableKey {
    @inline(__always) var hash64: UInt64 { (self &* 0x9E37_79B9_7F4A_7C15) ^ (self >> 29) }
}

/// An open-addressing hash table of plain-data keys and values, with linear probing and
/// tombstones, stored in manually managed buffers: lookups and insertions allocate nothing and
/// cost a few nanoseconds. Used for the TLB and the configuration caches, the hottest data
/// structures of the model.
///
/// When the table reaches `capacityLimit` live entries, inserting evicts everything first
/// (a deterministic, documented replacement policy: the cache is flushed when full).
final class FastTable<Key: FastTableKey, Value: BitwiseCopyable> {
    @exclusivity(unchecked) private var keys: UnsafeMutablePointer<Key>
    @exclusivity(unchecked) private var values: UnsafeMutablePointer<Value>
    /// 0 = empty, 1 = occupied, 2 = deleted.
    @exclusivity(unchecked) private var states: UnsafeMutablePointer<UInt8>
    @exclusivity(unchecked) private var slotCount: Int
    @exclusivity(unchecked) private var mask: Int
    @exclusivity(unchecked) private var tombstones = 0
    /// The number of live entries.
    @exclusivity(unchecked) private(set) var count = 0
    /// The most live entries the table holds before it is flushed.
    let capacityLimit: Int
    /// How many times a full table was flushed to make room.
    @exclusivity(unchecked) private(set) var evictions = 0

    init(capacityLimit: Int) {
        self.capacityLimit = max(capacityLimit, 1)
        var slots = 16
        while slots < self.capacityLimit * 2 { slots <<= 1 }
        slotCount = slots
        mask = slots - 1
        keys = .allocate(capacity: slots)
        values = .allocate(capacity: slots)
        states = .allocate(capacity: slots)
        states.initialize(repeating: 0, count: slots)
    }

    deinit {
        keys.deallocate()
        values.deallocate()
        states.deallocate()
    }

    @inline(__always)
    private func home(_ key: Key) -> Int { Int(truncatingIfNeeded: key.hash64 >> 7) & mask }

    /// The slot holding `key`, or nil.
    @inline(__always)
    private func slot(of key: Key) -> Int? {
        var index = home(key)
        while true {
            let state = states[index]
            if state == 0 { return nil }
            if state == 1 && keys[index] == key { return index }
            index = (index &+ 1) & mask
        }
    }

    /// The value stored for `key`.
    @inline(__always)
    func value(for key: Key) -> Value? {
        guard count != 0, let index = slot(of: key) else { return nil }
        return values[index]
    }

    /// Calls `body` with the value stored for `key` so that it can be changed in place;
    /// returns false when the key is absent.
    @inline(__always)
    func modify(_ key: Key, _ body: (inout Value) -> Void) -> Bool {
        guard count != 0, let index = slot(of: key) else { return false }
        body(&values[index])
        return true
    }

    /// Stores `value` for `key`, replacing any previous value.
    func insert(_ value: Value, for key: Key) {
        if let index = slot(of: key) {
            values[index] = value
            return
        }
        if count >= capacityLimit {
            removeAll()
            evictions += 1
        }
        if (count + tombstones + 1) * 4 > slotCount * 3 { rehash() }
        var index = home(key)
        while states[index] == 1 { index = (index &+ 1) & mask }
        if states[index] == 2 { tombstones -= 1 }
        states[index] = 1
        keys[index] = key
        values[index] = value
        count += 1
    }

    /// Removes the entry for `key` if `predicate` accepts its value (one probe); returns
    /// whether it was removed.
    @inline(__always)
    func remove(_ key: Key, if predicate: (Value) -> Bool) -> Bool {
        guard count != 0, let index = slot(of: key), predicate(values[index]) else { return false }
        states[index] = 2
        count -= 1
        tombstones += 1
        return true
    }

    /// Removes the entry for `key`; returns whether there was one.
    @discardableResult
    func remove(_ key: Key) -> Bool {
        guard count != 0, let index = slot(of: key) else { return false }
        states[index] = 2
        count -= 1
        tombstones += 1
        return true
    }

    /// Removes every entry for which `predicate` holds; returns how many.
    @discardableResult
    func removeAll(where predicate: (Key, Value) -> Bool) -> Int {
        guard count != 0 else { return 0 }
        var removed = 0
        for index in 0..<slotCount where states[index] == 1 && predicate(keys[index], values[index]) {
            states[index] = 2
            removed += 1
        }
        count -= removed
        tombstones += removed
        if tombstones * 4 > slotCount { rehash() }
        return removed
    }

    /// Removes every entry; returns how many there were.
    @discardableResult
    func removeAll() -> Int {
        let removed = count
        states.update(repeating: 0, count: slotCount)
        count = 0
        tombstones = 0
        return removed
    }

    /// Calls `body` with every entry (in slot order: deterministic for a given history).
    func forEach(_ body: (Key, Value) -> Void) {
        for index in 0..<slotCount where states[index] == 1 { body(keys[index], values[index]) }
    }

    private func rehash() {
        let oldKeys = keys, oldValues = values, oldStates = states, oldCount = slotCount
        var slots = slotCount
        while (count + 1) * 2 > slots { slots <<= 1 }
        slotCount = slots
        mask = slots - 1
        keys = .allocate(capacity: slots)
        values = .allocate(capacity: slots)
        states = .allocate(capacity: slots)
        states.initialize(repeating: 0, count: slots)
        tombstones = 0
        for index in 0..<oldCount where oldStates[index] == 1 {
            var target = home(oldKeys[index])
            while states[target] == 1 { target = (target &+ 1) & mask }
            states[target] = 1
            keys[target] = oldKeys[index]
            values[target] = oldValues[index]
        }
        oldKeys.deallocate()
        oldValues.deallocate()
        oldStates.deallocate()
    }
}
