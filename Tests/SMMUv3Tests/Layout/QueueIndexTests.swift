import Testing
import SMMUv3

/// §3.5.1 index, wrap, full and empty rules at every size from 1 entry to 2^19.
@Suite struct QueueIndexTests {
    @Test(arguments: Array(0...19))
    func walkingAroundTheQueueTogglesWrapAndFillsEverySlot(_ log2: Int) {
        let q = QueueIndex(log2Size: log2)
        let size = UInt32(1) << UInt32(log2)
        #expect(q.wrapBit == size)
        var prod: UInt32 = 0
        let cons: UInt32 = 0
        #expect(q.isEmpty(prod: prod, cons: cons))
        // Fill: after `size` increments the queue is full (same index, other wrap).
        let steps = min(size, 4096)
        if size <= 4096 {
            for _ in 0..<steps { prod = q.increment(prod) }
            #expect(q.isFull(prod: prod, cons: cons))
            #expect(!q.isEmpty(prod: prod, cons: cons))
            #expect(q.index(prod) == 0 && q.wrap(prod))
            #expect(q.count(prod: prod, cons: cons) == size)
        }
        // The last slot before the wrap.
        let last = size - 1
        let next = q.increment(last)
        #expect(q.index(next) == 0)
        #expect(q.wrap(next))
        #expect(q.increment(q.pointerMask) == 0, "wrap toggles back to 0 after two laps")
        #expect(q.isConsistent(prod: size, cons: 0), "full is consistent")
        if size > 1 {
            // PROD behind CONS with equal wrap flags is inconsistent.
            #expect(!q.isConsistent(prod: 0, cons: 1))
            #expect(q.isConsistent(prod: size, cons: 1), "wrapped PROD behind CONS")
        }
    }

    @Test func oneEntryQueueUsesBitZeroAsTheWrapFlag() {
        let q = QueueIndex(log2Size: 0)
        #expect(q.indexMask == 0)
        #expect(q.increment(0) == 1)
        #expect(q.isFull(prod: 1, cons: 0))
        #expect(q.isEmpty(prod: 1, cons: 1))
        #expect(q.increment(1) == 0)
    }

    @Test func bitsAboveTheWrapFlagAreIgnored() {
        let q = QueueIndex(log2Size: 3)
        #expect(q.isEmpty(prod: 0xF_FFF5, cons: 0x5))
        #expect(q.isFull(prod: 0x8000_000D, cons: 0x5))
    }
}
