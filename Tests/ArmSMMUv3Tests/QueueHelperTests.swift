import Testing
import Platform
import Kernel
import ArmSMMUv3

/// The driver's low-level queue helpers: index, wrap and overflow bits, full and empty, and
/// entries in memory.
@Suite struct QueueHelperTests {
    static func queue(shift: UInt32 = 2, memory: PhysicalMemory = PhysicalMemory()) -> arm_smmu_queue {
        let q = arm_smmu_queue()
        q.max_n_shift = shift
        q.base_dma = 0x8000_0000
        q.base = LE64Pointer(memory: memory, address: 0x8000_0000)
        q.ent_dwords = 2
        return q
    }

    @Test func wrapAndIndexSplitAtMaxNShiftAndFullMeansSameIndexOtherWrap() {
        let q = Self.queue()
        #expect(queue_empty(q) && !queue_full(q))
        q.prod = 0b100  // index 0, wrap 1: four entries ahead of CONS 0
        #expect(Q_IDX(q, q.prod) == 0 && Q_WRP(q, q.prod) == 0b100)
        #expect(queue_full(q) && !queue_empty(q))
        q.prod = UInt32(Q_OVERFLOW_FLAG) | 3
        #expect(Q_OVF(q, q.prod) != 0 && Q_IDX(q, q.prod) == 3)
        #expect(Q_ENT(q, 3) == 0x8000_0000 + 3 * 16)
    }

    @Test func entriesGoInAtProdAndComeOutAtConsAcrossTheWrap() {
        let memory = PhysicalMemory()
        let scheduler = KernelScheduler()
        let log = Log()
        scheduler.spawn("driver") {
            let q = Self.queue(memory: memory)
            for value in UInt64(0)..<4 { #expect(await queue_insert_raw(q, [value, ~value]) == 0) }
            #expect(await queue_insert_raw(q, [9, 9]) == -ENOSPC, "four entries fill a 4-entry queue")
            for _ in 0..<3 { _ = await queue_remove_raw(q) }
            #expect(await queue_insert_raw(q, [4, ~4]) == 0)
            #expect(Q_WRP(q, q.prod) != 0 && Q_IDX(q, q.prod) == 1, "PROD wrapped")
            while let entry = await queue_remove_raw(q) { log.append("\(entry[0])") }
            #expect(queue_empty(q))
        }
        #expect(scheduler.run() == .completed)
        #expect(log.entries == ["3", "4"])
    }
}
