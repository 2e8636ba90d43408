/// A key for ``SetAssociativeCache``: plain data with a 64-bit hash whose top bits depend on
/// every key bit (the top bits choose the set, the bits below them the fingerprint).
protocol CacheKey: BitwiseCopyable, Equatable {
    /// The key's hash: every key bit must affect the top bits.
    var hash64: UInt64 { get }
}

/// Fibonacci hashing: the product's top bits depend on every bit of `value` (bit i affects
/// product bits i and up), so keys that differ only in their high bits, such as
/// `StreamID << 20 | index`, still spread over the sets.
@inline(__always)
func fibonacciHash(_ value: UInt64) -> UInt64 {
    value &* 0x9E37_79B9_7F4A_7C15
}

extension UInt64: CacheKey {
    @inline(__always) var hash64: UInt64 { fibonacciHash(self) }
}

/// The model's caches (TLB, STE, CD and stream-context caches): a set-associative store of
/// plain-data keys and values in manually managed buffers, so that lookups and insertions
/// allocate nothing and cost a few nanoseconds however many entries it holds.
///
/// Each key belongs to one set of up to 8 ways, chosen by its hash; when that set is full it
/// may live in the set's buddy (the set whose index differs in bit 0) instead, so that a set
/// overflows only when both are full. A set keeps one fingerprint byte per way in a single
/// word, so a lookup compares the 8 fingerprints at once and then only the keys they select.
/// The table grows (doubling its sets) while it is more than half full, until it has room for
/// `capacityLimit` entries. Replacement is deterministic: an insertion that finds both sets
/// full evicts the ways of its own set in turn (FIFO). Nothing else is lost: a cache keeps what
/// it holds until it is invalidated or replaced, as the architecture allows (§3.21).
///
/// With `adaptiveInsertion` (the TLB), a cache of 64 sets or more also chooses, by set dueling
/// as CPU caches do, between that policy and a bimodal one that keeps only one new key in 32
/// once a set is full. Sets 0, 64, 128, ... always replace and sets 1, 65, 129, ... always
/// use the bimodal policy; a saturating counter (0...2047, from 1024) moves up by 9 for each
/// miss in a full set of the first group and down by 8 for each in the second, and the other
/// sets use the bimodal policy while it is at 1024 or above. The weights make the comparison
/// one of cost, not of misses alone: a replacing miss also writes an entry, so replacing wins
/// only when it misses at least an eighth less. A working set much larger than the cache then
/// keeps part of itself (or, when no policy can keep it, spends nothing on entries that would
/// be gone before their next use). When a working set that fits follows, the bimodal sets miss
/// far more than the others and the cache goes back to replacing within about 8,000 misses.
/// Not keeping a translation is always allowed: caching is never required (§3.21).
final class SetAssociativeCache<Key: CacheKey, Value: BitwiseCopyable> {
    static var ways: Int { 8 }
    private static var lowBytes: UInt64 { 0x0101_0101_0101_0101 }
    private static var highBits: UInt64 { 0x8080_8080_8080_8080 }

    /// A key and its value side by side, so that a lookup touches one cache line.
    struct Slot {
        var key: Key
        var value: Value
    }

    /// The slots, each `slotStride` bytes from the previous one and aligned to a cache line
    /// when the slot is as large as one, so that a slot's key and the front of its value share
    /// a line.
    @exclusivity(unchecked) private var slotMemory: UnsafeMutableRawPointer
    private static var slotStride: Int {
        let stride = MemoryLayout<Slot>.stride
        return stride >= 64 ? (stride + 63) & ~63 : stride
    }
    /// Per set, 8 fingerprint bytes (0 = empty way; a used way's byte has its top bit set).
    @exclusivity(unchecked) private var fingerprints: UnsafeMutablePointer<UInt64>
    /// Per set, the way to replace next when the set is full (bits [6:0]), and in bit 7 whether
    /// a key of this set was placed in its buddy.
    @exclusivity(unchecked) private var victims: UnsafeMutablePointer<UInt8>
    @exclusivity(unchecked) private var setMask: Int
    /// 64 - log2(setCount): the hash's top bits index the sets.
    @exclusivity(unchecked) private var setShift: UInt64
    @exclusivity(unchecked) private var setCount: Int
    /// The most sets the table grows to.
    private let maximumSets: Int
    /// Where a slot's value lies within it: after the key, aligned for the value (a struct's
    /// stored properties are laid out in declaration order, each at its alignment).
    private static var valueOffset: Int {
        let alignment = MemoryLayout<Value>.alignment
        return (MemoryLayout<Key>.size + alignment - 1) & ~(alignment - 1)
    }
    /// The ways per set (8, or fewer for a tiny capacity).
    let ways: Int
    /// The number of live entries.
    @exclusivity(unchecked) private(set) var count = 0
    /// The most entries the cache holds: the capacity asked for, rounded up to whole sets (8
    /// ways each, a power of two of them; a capacity below 8 is one set of that many ways).
    let capacityLimit: Int
    /// How many entries were evicted to make room.
    @exclusivity(unchecked) private(set) var evictions = 0
    /// Called with the value of every entry evicted to make room (not with removed ones), for
    /// a cache whose values own storage elsewhere.
    var onEviction: ((Value) -> Void)?
    /// Whether full sets may decline new keys (see the type's description).
    let adaptiveInsertion: Bool
    /// The set-dueling counter, 0...2047: from 1024 up the follower sets use the bimodal policy.
    @exclusivity(unchecked) private var duel = 1024
    /// Counts the insertions the bimodal policy considered; it keeps one in 32.
    @exclusivity(unchecked) private var bimodalTick: UInt8 = 0
    /// How many new keys a full set declined (adaptive insertion only).
    @exclusivity(unchecked) private(set) var declined = 0

    /// `capacityLimit` is at most 2^30 (``SMMUConfiguration/validate()`` keeps the model's
    /// caches to that).
    init(capacityLimit: Int, adaptiveInsertion: Bool = false) {
        self.adaptiveInsertion = adaptiveInsertion
        let asked = min(max(capacityLimit, 1), 1 << 30)
        ways = min(Self.ways, asked)
        var sets = 1
        while sets * ways < asked { sets <<= 1 }
        maximumSets = sets
        self.capacityLimit = sets * ways
        let initialSets = min(sets, 16)
        setCount = initialSets
        setMask = initialSets - 1
        setShift = UInt64(64 - initialSets.trailingZeroBitCount)
        assert(MemoryLayout<Slot>.offset(of: \Slot.value) == Self.valueOffset, "slot layout")
        slotMemory = Self.allocateSlots(initialSets * Self.ways, stride: Self.slotStride)
        fingerprints = .allocate(capacity: initialSets)
        fingerprints.initialize(repeating: 0, count: initialSets)
        victims = .allocate(capacity: initialSets)
        victims.initialize(repeating: 0, count: initialSets)
    }

    deinit {
        slotMemory.deallocate()
        fingerprints.deallocate()
        victims.deallocate()
    }

    private static func allocateSlots(_ count: Int, stride: Int) -> UnsafeMutableRawPointer {
        UnsafeMutableRawPointer.allocate(byteCount: count * stride, alignment: max(64, MemoryLayout<Slot>.alignment))
    }

    /// Slot `index`.
    @inline(__always)
    private func slots(_ index: Int) -> UnsafeMutablePointer<Slot> {
        (slotMemory + index &* Self.slotStride).assumingMemoryBound(to: Slot.self)
    }

    @inline(__always)
    private func valueAddress(_ slot: Int) -> UnsafeMutablePointer<Value> {
        (slotMemory + (slot &* Self.slotStride &+ Self.valueOffset)).assumingMemoryBound(to: Value.self)
    }

    /// The number of slots currently allocated (grows up to the capacity).
    var allocatedSlots: Int { setCount * ways }

    /// The set of a hash.
    @inline(__always)
    private func set(of hash: UInt64) -> Int { Int(truncatingIfNeeded: (hash &>> 1) &>> (setShift &- 1)) }

    /// A used way's fingerprint: 7 hash bits below those that choose the set, top bit set.
    @inline(__always)
    private func fingerprint(_ hash: UInt64) -> UInt64 { ((hash &>> (setShift &- 7)) & 0x7F) | 0x80 }

    /// The bytes of `word` equal to `byte`, as the top bit of each such byte (may include
    /// bytes above a true match; callers check the key).
    @inline(__always)
    private static func matches(_ word: UInt64, _ byte: UInt64) -> UInt64 {
        let x = word ^ (byte &* lowBytes)
        return (x &- lowBytes) & ~x & highBits
    }

    /// The slot holding `key`, or -1.
    @inline(__always)
    private func slot(of key: Key, hash: UInt64) -> Int {
        let shift = setShift
        let set = Int(truncatingIfNeeded: (hash &>> 1) &>> (shift &- 1))
        let fingerprint = ((hash &>> (shift &- 7)) & 0x7F) | 0x80
        let found = slot(of: key, fingerprint: fingerprint, in: set)
        if found >= 0 || victims[set] & 0x80 == 0 { return found }
        return slot(of: key, fingerprint: fingerprint, in: buddy(of: set))
    }

    ///
    /// A candidate is always a used way: ``matches(_:_:)`` reports extra bytes only where the
    /// byte is the fingerprint with bit 0 flipped (top bit set, so used), and the ways a tiny
    /// cache lacks keep byte 0, which no fingerprint matches.
    @inline(__always)
    private func slot(of key: Key, fingerprint: UInt64, in set: Int) -> Int {
        var candidates = Self.matches(fingerprints[set], fingerprint)
        while candidates != 0 {
            let slot = set &* Self.ways &+ candidates.trailingZeroBitCount &>> 3
            if slots(slot).pointee.key == key { return slot }
            candidates &= candidates &- 1
        }
        return -1
    }

    /// The set a key of `set` may overflow into.
    @inline(__always)
    private func buddy(of set: Int) -> Int { (set ^ 1) & setMask }

    /// The value stored for `key`.
    @inline(__always)
    func value(for key: Key) -> Value? {
        let found = slot(of: key, hash: key.hash64)
        return found < 0 ? nil : slots(found).pointee.value
    }

    /// The address of the value stored for `key`, to read it in place. Valid only until the
    /// cache is next changed.
    @inline(__always)
    func address(of key: Key) -> UnsafePointer<Value>? {
        let found = slot(of: key, hash: key.hash64)
        return found < 0 ? nil : UnsafePointer(valueAddress(found))
    }

    /// Calls `body` with the value stored for `key` so that it can be changed in place;
    /// returns false when the key is absent.
    @inline(__always)
    func modify(_ key: Key, _ body: (inout Value) -> Void) -> Bool {
        let found = slot(of: key, hash: key.hash64)
        guard found >= 0 else { return false }
        body(&slots(found).pointee.value)
        return true
    }

    /// Stores `value` for `key`, replacing any previous value; evicts within the key's set
    /// when the cache is at capacity and the key's set and buddy are full.
    @inline(__always)
    func insert(_ value: Value, for key: Key) {
        let hash = key.hash64
        let existing = slot(of: key, hash: hash)
        if existing >= 0 {
            slots(existing).pointee.value = value
            return
        }
        // The common case: room in the key's own set and no need to grow.
        let set = set(of: hash)
        let way = freeWay(in: set)
        if way >= 0 && (count + 1) * 2 <= setCount * ways {
            place(key, value, fingerprint: fingerprint(hash), set: set, way: way)
            count += 1
            return
        }
        // A cache full to capacity (the steady state under a large working set): replace.
        if count == setCount * ways && setCount == maximumSets {
            evict(for: key, value, hash: hash)
            return
        }
        insertNew(value, for: key, hash: hash)
    }

    /// ``insert(_:for:)`` for a new key that needs the table to grow, its buddy set, or an
    /// eviction.
    @inline(never)
    private func insertNew(_ value: Value, for key: Key, hash: UInt64) {
        if setCount < maximumSets {
            if (count + 1) * 2 > setCount * ways { grow() }
            if placeFree(key, value, hash: hash) {
                count += 1
                return
            }
            grow()
            if placeFree(key, value, hash: hash) {
                count += 1
            } else {
                evict(for: key, value, hash: hash)
            }
            return
        }
        // Every slot in use: replace; otherwise the key's set or its buddy may have room.
        if count < setCount * ways && placeFree(key, value, hash: hash) {
            count += 1
        } else {
            evict(for: key, value, hash: hash)
        }
    }

    /// Whether a key of the full set `set` is kept (replacing another) or declined, by the
    /// adaptive policy.
    @inline(__always)
    private func keepsNewKey(in set: Int) -> Bool {
        guard adaptiveInsertion && setCount >= 64 else { return true }
        let bimodal: Bool
        switch set & 63 {
        case 0:
            duel = min(duel + 9, 2047)
            return true
        case 1:
            duel = max(duel - 8, 0)
            bimodal = true
        default:
            bimodal = duel >= 1024
        }
        guard bimodal else { return true }
        bimodalTick &+= 1
        if bimodalTick & 31 == 0 { return true }
        declined &+= 1
        return false
    }

    /// Replaces the next way (FIFO) of the key's set, full as is its buddy, unless the
    /// adaptive policy declines the key.
    @inline(__always)
    private func evict(for key: Key, _ value: Value, hash: UInt64) {
        let set = set(of: hash)
        guard keepsNewKey(in: set) else { return }
        var way = Int(victims[set] & 0x7F)
        if way >= ways { way = 0 }
        victims[set] = (victims[set] & 0x80) | UInt8(truncatingIfNeeded: way + 1 == ways ? 0 : way + 1)
        evictions &+= 1
        if let onEviction { onEviction(slots(set &* Self.ways &+ way).pointee.value) }
        place(key, value, fingerprint: fingerprint(hash), set: set, way: way)
    }

    /// Places a new key in a free way of its set or, failing that, of its buddy; returns
    /// false when both are full.
    @inline(__always)
    private func placeFree(_ key: Key, _ value: Value, hash: UInt64) -> Bool {
        let set = set(of: hash)
        var way = freeWay(in: set)
        if way >= 0 {
            place(key, value, fingerprint: fingerprint(hash), set: set, way: way)
            return true
        }
        let other = buddy(of: set)
        way = other == set ? -1 : freeWay(in: other)
        guard way >= 0 else { return false }
        place(key, value, fingerprint: fingerprint(hash), set: other, way: way)
        victims[set] |= 0x80
        return true
    }

    @inline(__always)
    private func freeWay(in set: Int) -> Int {
        let word = fingerprints[set]
        let empty = (word &- Self.lowBytes) & ~word & Self.highBits
        guard empty != 0 else { return -1 }
        let way = empty.trailingZeroBitCount >> 3
        return way < ways ? way : -1
    }

    @inline(__always)
    private func place(_ key: Key, _ value: Value, fingerprint: UInt64, set: Int, way: Int) {
        (slotMemory + (set &* Self.ways &+ way) &* Self.slotStride).initializeMemory(as: Slot.self, repeating: Slot(key: key, value: value), count: 1)
        let shift = UInt64(way * 8)
        fingerprints[set] = (fingerprints[set] & ~(0xFF << shift)) | (fingerprint << shift)
    }

    @inline(__always)
    private func clear(set: Int, way: Int) {
        fingerprints[set] &= ~(UInt64(0xFF) << UInt64(way * 8))
        count -= 1
    }

    /// Removes the entry for `key` if `predicate` accepts its value; returns whether it was
    /// removed.
    @inline(__always)
    func remove(_ key: Key, if predicate: (Value) -> Bool) -> Bool {
        let found = slot(of: key, hash: key.hash64)
        guard found >= 0, predicate(slots(found).pointee.value) else { return false }
        clear(set: found / Self.ways, way: found % Self.ways)
        return true
    }

    /// Removes the entry for `key`; returns whether there was one.
    @discardableResult
    func remove(_ key: Key) -> Bool {
        let found = slot(of: key, hash: key.hash64)
        guard found >= 0 else { return false }
        clear(set: found / Self.ways, way: found % Self.ways)
        return true
    }

    /// Removes every entry for which `predicate` holds; returns how many.
    @discardableResult
    func removeAll(where predicate: (Key, Value) -> Bool) -> Int {
        guard count != 0 else { return 0 }
        var removed = 0
        for set in 0..<setCount where fingerprints[set] != 0 {
            for way in 0..<ways where (fingerprints[set] >> UInt64(way * 8)) & 0xFF != 0 {
                let slot = set * Self.ways + way
                if predicate(slots(slot).pointee.key, slots(slot).pointee.value) {
                    clear(set: set, way: way)
                    removed += 1
                }
            }
        }
        return removed
    }

    /// Removes every entry; returns how many there were.
    @discardableResult
    func removeAll() -> Int {
        let removed = count
        fingerprints.update(repeating: 0, count: setCount)
        victims.update(repeating: 0, count: setCount)
        count = 0
        return removed
    }

    /// Doubles the sets and re-places every entry; an entry that finds its new set and buddy
    /// both full (rare) is evicted.
    private func grow() {
        let oldSlots = slotMemory, oldFingerprints = fingerprints, oldVictims = victims, oldSets = setCount
        setCount = oldSets * 2
        setMask = setCount - 1
        setShift -= 1
        slotMemory = Self.allocateSlots(setCount * Self.ways, stride: Self.slotStride)
        fingerprints = .allocate(capacity: setCount)
        fingerprints.initialize(repeating: 0, count: setCount)
        victims = .allocate(capacity: setCount)
        victims.initialize(repeating: 0, count: setCount)
        count = 0
        for set in 0..<oldSets where oldFingerprints[set] != 0 {
            for way in 0..<ways where (oldFingerprints[set] >> UInt64(way * 8)) & 0xFF != 0 {
                let old = (oldSlots + (set * Self.ways + way) * Self.slotStride).assumingMemoryBound(to: Slot.self).pointee
                if placeFree(old.key, old.value, hash: old.key.hash64) {
                    count += 1
                } else {
                    evictions &+= 1
                    onEviction?(old.value)
                }
            }
        }
        oldSlots.deallocate()
        oldFingerprints.deallocate()
        oldVictims.deallocate()
    }
}
