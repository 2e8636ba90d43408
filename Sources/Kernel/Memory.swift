import Platform

/// `-ENOMEM`.
public let ENOMEM: Int32 = 12
/// `-EBUSY`.
public let EBUSY: Int32 = 16
/// `-EINVAL`.
public let EINVAL: Int32 = 22
/// `-ETIMEDOUT`.
public let ETIMEDOUT: Int32 = 110
/// `-ERESTARTSYS`.
public let ERESTARTSYS: Int32 = 512

/// Which allocations fail (`should_fail` / fault injection): the kernel environment's
/// allocators ask it before every allocation.
public final class AllocationFaults: @unchecked Sendable {
    /// Allocations attempted so far.
    public private(set) var attempts = 0
    /// Allocations refused so far.
    public private(set) var failures = 0
    private var failing: Set<Int> = []
    private var failAll = false

    public init() {}

    /// Makes the allocation attempt with this index fail (attempts are counted from 0 over
    /// the life of this object, successful or not).
    public func failAttempt(_ index: Int) {
        failing.insert(index)
    }

    /// Makes every allocation fail (true) or none beyond those named (false).
    public func failEverything(_ on: Bool) {
        failAll = on
    }

    /// Whether the next allocation fails (and counts it).
    func nextFails() -> Bool {
        defer { attempts += 1 }
        let fails = failAll || failing.contains(attempts)
        if fails { failures += 1 }
        return fails
    }
}

/// `kzalloc`: makes a zero-initialised object, or nil when fault injection refuses.
public func kzalloc<Object>(_ faults: AllocationFaults, _ make: () -> Object) -> Object? {
    faults.nextFails() ? nil : make()
}

/// Coherent DMA memory (`dma_alloc_coherent`) carved out of a range of bus RAM: first fit,
/// zeroed on allocation, freed back, refusable by ``AllocationFaults``.
public final class CoherentMemory: @unchecked Sendable {
    private let memory: PhysicalMemory
    private var free: [(start: UInt64, end: UInt64)]
    private var allocated: [UInt64: UInt64] = [:]
    /// The faults consulted before each allocation.
    public let faults: AllocationFaults

    /// Coherent memory over `[range.lowerBound, range.upperBound]` of `memory`.
    public init(memory: PhysicalMemory, range: ClosedRange<UInt64>, faults: AllocationFaults = AllocationFaults()) {
        self.memory = memory
        free = [(range.lowerBound, range.upperBound &+ 1)]
        self.faults = faults
    }

    /// `dma_alloc_coherent`: `size` zeroed bytes aligned to `alignment` (a power of two, at
    /// least the size rounded to a page as Linux does), or nil.
    public func allocate(_ size: UInt64, alignment: UInt64 = 4096) -> UInt64? {
        guard size > 0, !faults.nextFails() else { return nil }
        let align = max(alignment, 1)
        for (index, block) in free.enumerated() {
            let start = (block.start &+ align &- 1) & ~(align &- 1)
            guard start >= block.start, start <= block.end, block.end - start >= size else { continue }
            free.remove(at: index)
            if start > block.start { free.append((block.start, start)) }
            if start + size < block.end { free.append((start + size, block.end)) }
            free.sort { $0.start < $1.start }
            allocated[start] = size
            memory.fill(0, at: start, count: Int(size))
            return start
        }
        return nil
    }

    /// `dma_free_coherent`; false for an address not allocated here.
    @discardableResult
    public func release(_ address: UInt64) -> Bool {
        guard let size = allocated.removeValue(forKey: address) else { return false }
        free.append((address, address + size))
        free.sort { $0.start < $1.start }
        var merged: [(start: UInt64, end: UInt64)] = []
        for block in free {
            if let last = merged.last, last.end == block.start {
                merged[merged.count - 1].end = block.end
            } else {
                merged.append(block)
            }
        }
        free = merged
        return true
    }

    /// Bytes allocated now.
    public var bytesInUse: UInt64 { allocated.values.reduce(0, +) }
}

/// `struct kref` / `refcount_t`: a count whose last `put` runs the release function.
public final class Kref: @unchecked Sendable {
    /// The count.
    public private(set) var count: Int

    /// `kref_init`: a count of 1.
    public init() {
        count = 1
    }

    /// `kref_get` (a scheduling point, like the atomic it is).
    public func get() async {
        await KernelScheduler.schedule()
        count += 1
    }

    /// `kref_put`: runs `release` and returns true when the count drops to 0.
    @discardableResult
    public func put(_ release: () -> Void) async -> Bool {
        await KernelScheduler.schedule()
        count -= 1
        guard count == 0 else { return false }
        release()
        return true
    }
}

/// `spinlock_t`: on this one-CPU-at-a-time machine a contended spinlock is modelled as a wait
/// (so that a lock-order inversion is a reported deadlock, not a livelock).
public final class SpinLock: @unchecked Sendable {
    private let mutex: KernelMutex

    /// `spin_lock_init`.
    public init(_ name: String) {
        mutex = KernelMutex("spin_lock(\(name))", named: true)
    }

    /// `spin_lock` / `spin_lock_irqsave`.
    public func lock() async { await mutex.lock() }
    /// `spin_unlock` / `spin_unlock_irqrestore`.
    public func unlock() { mutex.unlock() }
}

/// `mb()`, `rmb()`, `wmb()`, `dma_wmb()`, `dma_rmb()`, `smp_mb()`: barriers order accesses; here
/// they are scheduling points.
public func mb() async { await KernelScheduler.schedule() }
/// `rmb()`.
public func rmb() async { await KernelScheduler.schedule() }
/// `wmb()`.
public func wmb() async { await KernelScheduler.schedule() }
/// `dma_wmb()`.
public func dma_wmb() async { await KernelScheduler.schedule() }
/// `dma_rmb()`.
public func dma_rmb() async { await KernelScheduler.schedule() }
/// `smp_mb()`.
public func smp_mb() async { await KernelScheduler.schedule() }
