import Testing
import Platform
import Kernel
import SMMUv3
import SMMUv3Host
import ArmSMMUv3
import Scenario

/// The driver's register handshakes (CR0/CR0ACK, GBPA.Update) against the model, with its
/// acknowledge latency, and against hardware that never acknowledges.
@Suite struct RegisterHandshakeTests {
    static func run(bus: Bus, base: UInt64 = 0x0900_0000, _ body: @escaping (arm_smmu_device) async -> Void) -> (KernelLog, KernelScheduler) {
        let scheduler = KernelScheduler()
        let (pdev, log) = makePlatformDevice(bus: bus, base: base, scheduler: scheduler)
        let smmu = arm_smmu_device(pdev: pdev)
        scheduler.spawn("driver") { await body(smmu) }
        #expect(scheduler.run() == .completed)
        return (log, scheduler)
    }

    @Test func cr0IsWrittenAndAcknowledgedThroughTheModelsLatency() throws {
        var configuration = SMMUConfiguration.default
        configuration.acknowledgeLatency = 3
        let system = try SMMUSystem(configuration: configuration)
        let results = Log()
        let (log, scheduler) = Self.run(bus: system.bus) { smmu in
            results.append("\(await arm_smmu_device_disable(smmu))")
            results.append("\(await arm_smmu_write_reg_sync(smmu, UInt32(CR0_CMDQEN), ARM_SMMU_CR0, ARM_SMMU_CR0ACK))")
        }
        #expect(results.entries == ["0", "0"])
        #expect(log.lines.isEmpty)
        #expect(system.smmu.peek(.cr0Ack) == UInt64(CR0_CMDQEN))
        #expect(scheduler.clock.now > 0 && scheduler.clock.now < ARM_SMMU_POLL_TIMEOUT_US * NSEC_PER_USEC, "polled a few microseconds")
    }

    @Test func gbpaUpdatesWaitForUpdateToClear() throws {
        var configuration = SMMUConfiguration.default
        configuration.acknowledgeLatency = 2
        let system = try SMMUSystem(configuration: configuration)
        let results = Log()
        _ = Self.run(bus: system.bus) { smmu in
            results.append("\(await arm_smmu_update_gbpa(smmu, UInt32(GBPA_ABORT), 0))")
        }
        #expect(results.entries == ["0"])
        let gbpa = system.smmu.peek(.gbpa)
        #expect(gbpa & GBPA_ABORT != 0 && gbpa & GBPA_UPDATE == 0)
    }

    /// Registers that take writes and never acknowledge them.
    final class Unresponsive: MMIODevice {
        var cr0: UInt32 = 1
        override func mmioRead(offset: UInt64, size: Int) -> UInt64 { offset == 0x44 ? UInt64(GBPA_UPDATE) : 1 }
        override func mmioWrite(offset: UInt64, value: UInt64, size: Int) {
            if offset == 0x20 { cr0 = UInt32(truncatingIfNeeded: value) }
        }
    }

    @Test func aMissingAcknowledgeTimesOutAfterThePollTimeoutWithLinuxsMessage() throws {
        let bus = Bus()
        let device = Unresponsive()
        try bus.map(device, at: 0x0900_0000, size: 0x20000)
        let results = Log()
        let (log, scheduler) = Self.run(bus: bus) { smmu in
            results.append("\(await arm_smmu_device_disable(smmu))")
            results.append("\(await arm_smmu_update_gbpa(smmu, UInt32(GBPA_ABORT), 0))")
        }
        #expect(results.entries == ["\(-ETIMEDOUT)", "\(-ETIMEDOUT)"])
        #expect(device.cr0 == 0, "the write happened")
        #expect(log.texts() == ["arm-smmu-v3 arm-smmu-v3.0.auto: failed to clear cr0"], "GBPA's first wait fails before any write, silently, as in Linux")
        #expect(scheduler.clock.now >= 2 * ARM_SMMU_POLL_TIMEOUT_US * NSEC_PER_USEC)
    }
}
