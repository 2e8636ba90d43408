import Testing
import Platform
import Kernel
import ArmSMMUv3
import Scenario

/// arm_smmu_init_queues: sizes, *_BASE values, halving on allocation failure, and -ENOMEM.
@Suite struct QueueAllocationTests {
    static func device(faults: AllocationFaults = AllocationFaults(), features: UInt32 = ARM_SMMU_FEAT_PRI) -> (arm_smmu_device, KernelLog) {
        let bus = Bus()
        let (pdev, log) = makePlatformDevice(bus: bus, faults: faults)
        let smmu = arm_smmu_device(pdev: pdev)
        smmu.features = features
        smmu.cmdq.q.max_n_shift = 8
        smmu.evtq.q.max_n_shift = 7
        smmu.priq.q.max_n_shift = 8
        return (smmu, log)
    }

    @Test func eachQueueGetsItsSizeAlignedMemoryAndBaseValue() {
        let (smmu, log) = Self.device()
        #expect(arm_smmu_init_queues(smmu) == 0)
        #expect(log.texts() == [
            "arm-smmu-v3 arm-smmu-v3.0.auto: allocated 256 entries for cmdq",
            "arm-smmu-v3 arm-smmu-v3.0.auto: allocated 128 entries for evtq",
            "arm-smmu-v3 arm-smmu-v3.0.auto: allocated 256 entries for priq",
        ])
        for (queue, bytes) in [(smmu.cmdq.q, UInt64(256 * 16)), (smmu.evtq.q, UInt64(128 * 32)), (smmu.priq.q, UInt64(256 * 16))] {
            #expect(queue.base_dma % bytes == 0, "aligned to its size")
            #expect(queue.q_base == Q_BASE_RWA | queue.base_dma | FIELD_PREP(Q_BASE_LOG2SIZE, UInt64(queue.max_n_shift)))
            #expect(queue.prod == 0 && queue.cons == 0)
        }
        #expect(smmu.evtq.q.prod_reg?.base == 0x0900_0000 + ARM_SMMU_EVTQ_PROD)
        smmu.options = ARM_SMMU_OPT_PAGE0_REGS_ONLY
        #expect(arm_smmu_page1_fixup(ARM_SMMU_EVTQ_PROD, smmu).base == 0x0900_0000 + ARM_SMMU_EVTQ_PROD - SZ_64K)
    }

    @Test func aFailedAllocationHalvesTheQueue() {
        let faults = AllocationFaults()
        faults.failAttempt(0)
        let (smmu, log) = Self.device(faults: faults, features: 0)
        #expect(arm_smmu_init_queues(smmu) == 0)
        #expect(smmu.cmdq.q.max_n_shift == 7, "256 -> 128 entries")
        #expect(log.texts().first == "arm-smmu-v3 arm-smmu-v3.0.auto: allocated 128 entries for cmdq")
        #expect(smmu.priq.q.base_dma == 0, "no PRI queue without PRI")
    }

    @Test func noMemoryEvenBelowAPageIsENOMEMWithLinuxsMessage() {
        let faults = AllocationFaults()
        faults.failEverything(true)
        let (smmu, log) = Self.device(faults: faults)
        #expect(arm_smmu_init_queues(smmu) == -ENOMEM)
        // 4 KB, then 2 KB: below a page, the last try.
        #expect(faults.attempts == 2)
        #expect(log.texts(atMost: .error) == ["arm-smmu-v3 arm-smmu-v3.0.auto: failed to allocate queue (0x800 bytes) for cmdq"])
    }
}
