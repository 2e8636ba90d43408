/// The stream-context cache: resolved ``StreamContext``s by StreamID and SubstreamID (the
/// model's combined configuration cache, §16.2).
///
/// The set-associative table maps a key to the index of a context in a pool, which hands out
/// contexts in the order they were first needed (reusing freed ones first). The table's slots
/// stay small (a key and an index) so that thousands of streams share a few cache lines of
/// lookup state, and streams brought up together, as a bus enumerates them, keep their contexts
/// side by side: a system with 65,536 active streams touches one context line per
/// translation, not a scattered slot the size of a whole context.
///
/// Replacement is the table's (deterministic, per set, FIFO); an evicted or removed entry's
/// context goes back to the pool, which never holds more than the table's capacity plus one.
/// The context found last is remembered, so that a run of transactions from one stream skips
/// the table; any change to the cache forgets it.
final class StreamContextCache {
    private let table: SetAssociativeCache<UInt64, UInt32>
    private let pool: StreamContextPool
    /// The key and context of the most recent successful lookup (nil: none since the last
    /// change).
    @exclusivity(unchecked) private var recentKey: UInt64 = 0
    @exclusivity(unchecked) private var recentContext: UnsafeMutablePointer<StreamContext>?

    init(capacityLimit: Int) {
        table = SetAssociativeCache(capacityLimit: capacityLimit)
        let pool = StreamContextPool(limit: table.capacityLimit + 1)
        self.pool = pool
        table.onEviction = { pool.free($0) }
    }

    /// The number of cached contexts.
    var count: Int { table.count }

    /// The most contexts held at once (the capacity asked for, rounded up to whole sets).
    var capacityLimit: Int { table.capacityLimit }

    /// The pool's contexts in use (equal to ``count``: an evicted or removed entry's context
    /// goes back).
    var contextsInUse: Int { pool.inUse }

    /// The cached context for `key`, to read or update in place (the most recent translation
    /// it keeps). Valid until the cache is next changed by an insertion or removal.
    @inline(__always)
    func address(of key: UInt64) -> UnsafeMutablePointer<StreamContext>? {
        if key == recentKey, let recentContext { return recentContext }
        guard let index = table.value(for: key) else { return nil }
        let context = pool.context(index)
        recentKey = key
        recentContext = context
        return context
    }

    /// Caches `context` for `key`, replacing any previous one.
    func insert(_ context: StreamContext, for key: UInt64) {
        recentContext = nil
        if let index = table.value(for: key) {
            pool.context(index).pointee = context
            return
        }
        let index = pool.allocate()
        pool.context(index).initialize(to: context)
        table.insert(index, for: key)
    }

    /// Removes the context for `key`, if cached.
    func remove(_ key: UInt64) {
        recentContext = nil
        guard let index = table.value(for: key) else { return }
        table.remove(key)
        pool.free(index)
    }

    /// Removes every context whose key satisfies `predicate`.
    func removeAll(where predicate: (UInt64) -> Bool) {
        recentContext = nil
        let pool = self.pool
        table.removeAll { key, index in
            guard predicate(key) else { return false }
            pool.free(index)
            return true
        }
    }

    /// Removes every context.
    func removeAll() {
        recentContext = nil
        table.removeAll()
        pool.reset()
    }
}

/// Storage for the contexts of a ``StreamContextCache``: contiguous, each context at a
/// cache-line boundary, handed out in order and reused most recently freed first, growing by
/// doubling up to `limit` contexts.
final class StreamContextPool {
    private let stride = (MemoryLayout<StreamContext>.stride + 63) & ~63
    private let limit: Int
    private var memory: UnsafeMutableRawPointer
    private var allocated: Int
    /// Contexts never handed out start here.
    private var nextUnused = 0
    /// Freed contexts, reused last-freed first (at most `limit`).
    private var freed: [UInt32] = []

    init(limit: Int) {
        self.limit = max(limit, 1)
        allocated = min(self.limit, 16)
        memory = .allocate(byteCount: allocated * stride, alignment: 64)
    }

    deinit {
        memory.deallocate()
    }

    @inline(__always)
    func context(_ index: UInt32) -> UnsafeMutablePointer<StreamContext> {
        (memory + Int(index) &* stride).assumingMemoryBound(to: StreamContext.self)
    }

    /// A context's index, uninitialised. The caller holds fewer than `limit` of them.
    func allocate() -> UInt32 {
        if let index = freed.popLast() { return index }
        precondition(nextUnused < limit, "stream-context pool exhausted: more contexts held than the cache's capacity")
        if nextUnused == allocated {
            let grown = min(allocated * 2, limit)
            let larger = UnsafeMutableRawPointer.allocate(byteCount: grown * stride, alignment: 64)
            larger.copyMemory(from: memory, byteCount: allocated * stride)
            memory.deallocate()
            memory = larger
            allocated = grown
        }
        defer { nextUnused += 1 }
        return UInt32(truncatingIfNeeded: nextUnused)
    }

    /// The contexts handed out and not freed.
    var inUse: Int { nextUnused - freed.count }

    /// Returns a context to the pool.
    func free(_ index: UInt32) {
        freed.append(index)
    }

    /// Frees every context (the memory is kept for reuse).
    func reset() {
        nextUnused = 0
        freed.removeAll(keepingCapacity: true)
    }
}
