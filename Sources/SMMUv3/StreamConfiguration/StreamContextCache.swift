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
    /// The key and pool index of the most recent successful lookup (`UInt32.max`: none since
    /// the last change).
    @exclusivity(unchecked) private var recentKey: UInt64 = 0
    @exclusivity(unchecked) private var recentIndex: UInt32 = .max
    /// Bumped by every insertion and removal: a ``Slot`` taken before is stale.
    @exclusivity(unchecked) private var changes: UInt64 = 0

    /// Where a looked-up context lives, to update its recent-translation memo without a second
    /// lookup (``remember(_:generation:shift:page:output:grant:)``). A slot taken before the
    /// cache changed is ignored.
    struct Slot {
        /// The context's index in the pool.
        let index: UInt32
        fileprivate let changes: UInt64
    }

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

    /// The slot of the cached context for `key`.
    @inline(__always)
    func slot(for key: UInt64) -> Slot? {
        if key == recentKey && recentIndex != .max { return Slot(index: recentIndex, changes: changes) }
        guard let found = table.value(for: key) else { return nil }
        recentKey = key
        recentIndex = found
        return Slot(index: found, changes: changes)
    }

    /// The context at `slot`, which must have been taken since the cache last changed.
    @inline(__always)
    func context(at slot: Slot) -> StreamContext { pool.context(slot.index).pointee }

    /// Calls `body` with the context at `slot` to read in place, through a pointer valid only
    /// during the call (no copy: the TLB-hit path reads a few fields of the context's first
    /// cache line and must not load the rest). The slot must have been taken since the cache
    /// last changed.
    @inline(__always)
    func withContext<Result>(at slot: Slot, _ body: (UnsafePointer<StreamContext>) -> Result) -> Result {
        body(pool.context(slot.index))
    }

    /// The cached context for `key`, and its slot.
    @inline(__always)
    func lookUp(_ key: UInt64) -> (slot: Slot, context: StreamContext)? {
        guard let slot = slot(for: key) else { return nil }
        return (slot, context(at: slot))
    }

    /// The cached context for `key`.
    @inline(__always)
    func context(for key: UInt64) -> StreamContext? { lookUp(key)?.context }

    /// Records a translation as the most recent one of the context at `slot` (unless the cache
    /// changed since the slot was taken).
    @inline(__always)
    func remember(_ slot: Slot, generation: UInt64, shift: UInt8, page: UInt64, output: UInt64, grant: UInt8) {
        guard slot.changes == changes else { return }
        let context = pool.context(slot.index)
        context.pointee.recentGeneration = generation
        context.pointee.recentShift = shift
        context.pointee.recentPage = page
        context.pointee.recentOutput = output
        context.pointee.recentGrant = grant
    }

    /// Forgets the remembered lookup and stales every slot: the cache is changing.
    @inline(__always)
    private func changing() {
        recentIndex = .max
        changes &+= 1
    }

    /// Caches `context` for `key`, replacing any previous one.
    func insert(_ context: StreamContext, for key: UInt64) {
        changing()
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
        changing()
        guard let index = table.value(for: key) else { return }
        table.remove(key)
        pool.free(index)
    }

    /// Removes every context whose key satisfies `predicate`.
    func removeAll(where predicate: (UInt64) -> Bool) {
        changing()
        let pool = self.pool
        table.removeAll { key, index in
            guard predicate(key) else { return false }
            pool.free(index)
            return true
        }
    }

    /// Removes every context.
    func removeAll() {
        changing()
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
    fileprivate func context(_ index: UInt32) -> UnsafeMutablePointer<StreamContext> {
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
