import Testing
import Platform
@testable import SMMUv3
import SMMUv3Host
import Scenario

/// The set-associative store behind the TLB and the configuration caches: every key bit
/// matters, replacement evicts one entry of one set (FIFO) and keeps the rest.
@Suite struct CacheStructureTests {
    @Test func storesFindsReplacesAndRemoves() {
        let cache = SetAssociativeCache<UInt64, Int>(capacityLimit: 1024)
        for key in UInt64(0)..<40 { cache.insert(Int(key) * 10, for: key) }
        #expect(cache.count == 40)
        #expect(cache.value(for: 7) == 70)
        cache.insert(-1, for: 7)
        #expect(cache.value(for: 7) == -1 && cache.count == 40)
        #expect(cache.remove(7))
        #expect(!cache.remove(7))
        #expect(cache.value(for: 7) == nil)
        #expect(cache.removeAll { key, _ in key % 2 == 0 } == 20)
        #expect(cache.count == 19)
        #expect(cache.value(for: 9) == 90)
    }

    @Test func aFullSetEvictsItsOldestEntryAndKeepsTheRest() {
        // Capacity 8: one set of 8 ways.
        let cache = SetAssociativeCache<UInt64, Int>(capacityLimit: 8)
        for key in UInt64(0)..<9 { cache.insert(Int(key), for: key) }
        #expect(cache.count == 8)
        #expect(cache.value(for: 0) == nil, "the oldest entry was replaced")
        #expect((1..<9).allSatisfy { cache.value(for: UInt64($0)) == $0 })
        #expect(cache.evictions == 1)
        cache.insert(9, for: 9)
        #expect(cache.value(for: 1) == nil, "replacement goes round the ways in order")
    }

    @Test func keysThatDifferOnlyInHighBitsSpreadOverTheSets() {
        // CD cache keys are StreamID << 20 | index: all the low bits are equal.
        let cache = SetAssociativeCache<UInt64, UInt32>(capacityLimit: 65536)
        for streamID in UInt32(0)..<4096 { cache.insert(streamID, for: UInt64(streamID) << 20) }
        #expect(cache.count == 4096)
        #expect(cache.evictions == 0)
        #expect((0..<4096).allSatisfy { cache.value(for: UInt64($0) << 20) == UInt32($0) })
    }

    @Test func theTableGrowsWithUseUpToItsCapacity() {
        let cache = SetAssociativeCache<UInt64, UInt64>(capacityLimit: 1 << 20)
        #expect(cache.allocatedSlots <= 128, "a new cache costs little memory")
        for key in UInt64(0)..<10_000 { cache.insert(key, for: key &* 0x1234_5678_9ABC) }
        #expect(cache.count == 10_000)
        #expect(cache.allocatedSlots < 1 << 16)
        #expect((0..<10_000).allSatisfy { cache.value(for: UInt64($0) &* 0x1234_5678_9ABC) == UInt64($0) })
        // Growth stops at the capacity; beyond it entries are replaced.
        let small = SetAssociativeCache<UInt64, UInt64>(capacityLimit: 1024)
        for key in UInt64(0)..<5000 { small.insert(key, for: key &* 0x1234_5678_9ABC) }
        #expect(small.allocatedSlots == 1024)
        #expect(small.count <= 1024 && small.count > 900)
        #expect(small.evictions == 5000 - small.count)
    }

    @Test func aTLBWorkingSetLargerThanTheTLBKeepsMostEntries() {
        let t = TranslationRig { $0.tlbCapacity = 64 }
        let pt = t.table()
        for page in UInt64(0)..<65 { pt.map(0x10_0000 + page << 12, to: 0x20_0000 + page << 12) }
        t.stage1Stream(1, cd: CDConfig(table0: pt, asid: 1))
        for page in UInt64(0)..<65 { #expect(t.translate(1, 0x10_0000 + page << 12) == .translated(physicalAddress: 0x20_0000 + page << 12)) }
        #expect(t.smmu.tlb.count <= 64)
        #expect(t.smmu.tlb.count >= 48, "one entry per full set was replaced, not the whole TLB")
        let hits = t.smmu.tlb.hits
        for page in UInt64(0)..<65 { _ = t.translate(1, 0x10_0000 + page << 12) }
        #expect(t.smmu.tlb.hits - hits >= 24, "a flushed TLB would hit nothing here")
    }

    /// Runs `passes` round-robin passes over `keys` distinct keys, returning the hits of the last.
    static func cyclicHits(_ cache: SetAssociativeCache<UInt64, UInt64>, keys: UInt64, passes: Int, offset: UInt64 = 0) -> Int {
        var hits = 0
        for _ in 0..<passes {
            hits = 0
            for index in 0..<keys {
                let key = (index &+ offset) &* 0x9E37_79B9
                if cache.value(for: key) == key {
                    hits += 1
                } else {
                    cache.insert(key, for: key)
                }
            }
        }
        return hits
    }

    @Test func replacingEveryEntryKeepsNothingOfACyclicWorkingSetLargerThanTheCache() {
        let fifo = SetAssociativeCache<UInt64, UInt64>(capacityLimit: 4096)
        #expect(Self.cyclicHits(fifo, keys: 16_384, passes: 4) == 0, "FIFO replacement thrashes on a cyclic pattern")
        #expect(fifo.declined == 0)
    }

    @Test func adaptiveInsertionKeepsPartOfAWorkingSetLargerThanTheCache() {
        let cache = SetAssociativeCache<UInt64, UInt64>(capacityLimit: 4096, adaptiveInsertion: true)
        let hits = Self.cyclicHits(cache, keys: 8192, passes: 8)
        #expect(hits > 8192 / 8, "the bimodal policy keeps entries across passes (\(hits) hits)")
        #expect(cache.declined > 0)
        #expect(cache.count == 4096, "declining never empties the cache")
    }

    @Test func adaptiveInsertionStillWarmsAWorkingSetThatFitsAfterThrashing() {
        let cache = SetAssociativeCache<UInt64, UInt64>(capacityLimit: 4096, adaptiveInsertion: true)
        _ = Self.cyclicHits(cache, keys: 65_536, passes: 3)
        #expect(cache.declined > 65_536, "the large working set switched the followers to the bimodal policy")
        // A new working set of half the capacity: after 8,000 misses or so the cache replaces
        // again, and the set then hits nearly always.
        let hits = Self.cyclicHits(cache, keys: 2048, passes: 8, offset: 1 << 32)
        #expect(hits >= 2048 * 95 / 100, "\(hits) of 2048")
    }

    @Test func adaptiveInsertionIsDeterministicAndOffForSmallCaches() {
        let first = SetAssociativeCache<UInt64, UInt64>(capacityLimit: 4096, adaptiveInsertion: true)
        let second = SetAssociativeCache<UInt64, UInt64>(capacityLimit: 4096, adaptiveInsertion: true)
        #expect(Self.cyclicHits(first, keys: 20_000, passes: 3) == Self.cyclicHits(second, keys: 20_000, passes: 3))
        #expect(first.declined == second.declined && first.evictions == second.evictions)
        // Fewer than 64 sets: no room for the leader sets, plain FIFO.
        let small = SetAssociativeCache<UInt64, UInt64>(capacityLimit: 256, adaptiveInsertion: true)
        _ = Self.cyclicHits(small, keys: 4096, passes: 3)
        #expect(small.declined == 0)
    }

    @Test func aStreamsRecentTranslationIsNotUsedAfterATLBInvalidation() {
        let t = TranslationRig()
        let pt = t.table()
        pt.map(0x10_0000, to: 0x20_0000)
        t.stage1Stream(1, cd: CDConfig(table0: pt, asid: 1))
        #expect(t.translate(1, 0x10_0008) == .translated(physicalAddress: 0x20_0008))
        #expect(t.translate(1, 0x10_0010) == .translated(physicalAddress: 0x20_0010))
        pt.map(0x10_0000, to: 0x30_0000)
        #expect(t.translate(1, 0x10_0018) == .translated(physicalAddress: 0x20_0018), "stale until invalidated")
        t.invalidate([.tlbiNHVA(vmid: 0, asid: 1, address: 0x10_0000, scope: .single(leaf: true))])
        #expect(t.translate(1, 0x10_0018) == .translated(physicalAddress: 0x30_0018))
    }
}

@Suite struct TinyCacheTests {
    @Test func aOneEntryCacheHoldsOnlyTheLatestKey() {
        let cache = SetAssociativeCache<UInt64, Int>(capacityLimit: 1)
        cache.insert(1, for: 10)
        cache.insert(2, for: 20)
        #expect(cache.value(for: 10) == nil)
        #expect(cache.value(for: 20) == 2)
        #expect(cache.count == 1)
    }
}

/// The stream-context cache: a set-associative table of context indices over a pool, whose
/// contexts go back to the pool when their entries are evicted or removed.
@Suite struct StreamContextCacheTests {
    /// A context that records the key it was made for.
    static func context(for key: UInt64) -> StreamContext {
        var context = StreamContext()
        context.streamID = UInt32(truncatingIfNeeded: key >> 32)
        context.substreamID = UInt32(truncatingIfNeeded: key)
        context.recentPage = key
        return context
    }

    static func key(_ stream: UInt32, _ substream: UInt32? = nil) -> UInt64 {
        StreamContext.key(streamID: stream, substreamID: substream)
    }

    @Test func evictedContextsAreReusedAndNoTwoKeysShareOne() {
        let cache = StreamContextCache(capacityLimit: 16)
        for stream in UInt32(0)..<2000 {
            cache.insert(Self.context(for: Self.key(stream)), for: Self.key(stream))
        }
        #expect(cache.count == 16 && cache.contextsInUse == 16)
        var seen = Set<UInt32>()
        var cached = 0
        for stream in UInt32(0)..<2000 {
            guard let (slot, context) = cache.lookUp(Self.key(stream)) else { continue }
            cached += 1
            #expect(context.recentPage == Self.key(stream))
            #expect(seen.insert(slot.index).inserted)
        }
        #expect(cached == 16)
    }

    @Test func removedContextsGoBackToThePool() {
        let cache = StreamContextCache(capacityLimit: 1024)
        for round in UInt32(0)..<50 {
            for stream in UInt32(0)..<64 {
                cache.insert(Self.context(for: Self.key(stream, round)), for: Self.key(stream, round))
            }
            #expect(cache.count == 64 && cache.contextsInUse == 64)
            if round % 2 == 0 {
                cache.removeAll { key in key >> 32 < 32 }
                #expect(cache.count == 32 && cache.contextsInUse == 32)
                for stream in UInt32(32)..<64 { cache.remove(Self.key(stream, round)) }
            } else {
                cache.removeAll()
            }
            #expect(cache.count == 0 && cache.contextsInUse == 0)
        }
        cache.insert(Self.context(for: Self.key(7, 7)), for: Self.key(7, 7))
        #expect(cache.context(for: Self.key(7, 7))?.recentPage == Self.key(7, 7))
    }

    @Test(arguments: [9, 12, 100, 1000])
    func aCapacityThatIsNotAPowerOfTwoIsRoundedUpAndNeverExceeded(_ capacity: Int) {
        let cache = StreamContextCache(capacityLimit: capacity)
        let table = SetAssociativeCache<UInt64, Int>(capacityLimit: capacity)
        #expect(cache.capacityLimit == table.capacityLimit)
        #expect(table.capacityLimit >= capacity && table.capacityLimit < 2 * capacity)
        #expect(table.capacityLimit.nonzeroBitCount == 1)
        for stream in UInt32(0)..<UInt32(4 * capacity) {
            cache.insert(Self.context(for: Self.key(stream)), for: Self.key(stream))
            table.insert(Int(stream), for: UInt64(stream) << 20)
            #expect(cache.count <= cache.capacityLimit && cache.contextsInUse == cache.count)
            #expect(table.count <= table.capacityLimit)
        }
        #expect(table.evictions > 0)
    }

    @Test func theRememberedLookupForgetsAContextOnceItIsRemovedOrReplaced() {
        let cache = StreamContextCache(capacityLimit: 8)
        cache.insert(Self.context(for: Self.key(1)), for: Self.key(1))
        #expect(cache.context(for: Self.key(1)) != nil)
        cache.remove(Self.key(1))
        #expect(cache.context(for: Self.key(1)) == nil)
        cache.insert(Self.context(for: Self.key(2)), for: Self.key(2))
        #expect(cache.context(for: Self.key(2)) != nil)
        cache.removeAll { _ in true }
        #expect(cache.context(for: Self.key(2)) == nil)
        cache.insert(Self.context(for: Self.key(3)), for: Self.key(3))
        #expect(cache.context(for: Self.key(3)) != nil)
        cache.removeAll()
        #expect(cache.context(for: Self.key(3)) == nil)
        // A one-entry cache: the next stream's insertion evicts the remembered one.
        let tiny = StreamContextCache(capacityLimit: 1)
        tiny.insert(Self.context(for: Self.key(4)), for: Self.key(4))
        #expect(tiny.context(for: Self.key(4))?.recentPage == Self.key(4))
        tiny.insert(Self.context(for: Self.key(5)), for: Self.key(5))
        #expect(tiny.context(for: Self.key(4)) == nil)
        #expect(tiny.context(for: Self.key(5))?.recentPage == Self.key(5))
    }

    @Test func reinsertingAKeyUpdatesItsContextInPlace() {
        let cache = StreamContextCache(capacityLimit: 8)
        cache.insert(Self.context(for: Self.key(1)), for: Self.key(1))
        let first = cache.lookUp(Self.key(1))?.slot.index
        #expect(first != nil)
        var changed = Self.context(for: Self.key(1))
        changed.recentOutput = 0xABC000
        cache.insert(changed, for: Self.key(1))
        #expect(cache.lookUp(Self.key(1))?.slot.index == first)
        #expect(cache.context(for: Self.key(1))?.recentOutput == 0xABC000)
        #expect(cache.count == 1)
    }

    @Test func aSlotTakenBeforeTheCacheChangedUpdatesNothing() {
        let cache = StreamContextCache(capacityLimit: 8)
        cache.insert(Self.context(for: Self.key(1)), for: Self.key(1))
        let stale = cache.lookUp(Self.key(1))!.slot
        cache.remove(Self.key(1))
        cache.insert(Self.context(for: Self.key(2)), for: Self.key(2))
        #expect(cache.lookUp(Self.key(2))?.slot.index == stale.index, "the pool reused the slot")
        cache.remember(stale, generation: 9, shift: 12, page: 0x77, output: 0x5000, grant: 1)
        #expect(cache.context(for: Self.key(2))?.recentOutput == Self.context(for: Self.key(2)).recentOutput, "the other stream's memo is untouched")
        let current = cache.lookUp(Self.key(2))!.slot
        cache.remember(current, generation: 9, shift: 12, page: 0x77, output: 0x5000, grant: 1)
        #expect(cache.context(for: Self.key(2))?.recentOutput == 0x5000)
    }
}
