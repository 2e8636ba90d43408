import Testing
import Platform
import Kernel
import SMMUv3
import SMMUv3Host
import ArmSMMUv3
import Scenario

/// arm_smmu_device_hw_probe against the model's ID registers (through the bus only), and its
/// refusals against hand-made ones.
@Suite struct HardwareProbeTests {
    /// Probes the device at `base` on `bus` in a kernel context; returns the result, the
    /// driver's view and the log.
    static func probe(bus: Bus, base: UInt64, features: UInt32 = 0) -> (Int32, arm_smmu_device, KernelLog) {
        let scheduler = KernelScheduler()
        let (pdev, log) = makePlatformDevice(bus: bus, base: base, scheduler: scheduler)
        let smmu = arm_smmu_device(pdev: pdev)
        smmu.features = features
        let result = Log()
        scheduler.spawn("probe") { result.append("\(await arm_smmu_device_hw_probe(smmu))") }
        #expect(scheduler.run() == .completed)
        return (Int32(result.entries.first ?? "") ?? 1, smmu, log)
    }

    @Test func theModelsIDRegistersGiveTheFeaturesItsConfigurationDescribes() throws {
        var configuration = SMMUConfiguration.default
        configuration.coherentAccess = true
        let bus = Bus()
        let model = try SMMU(configuration: configuration, bus: bus, base: 0x0900_0000)
        defer { withExtendedLifetime(model) {} }
        let (result, smmu, log) = Self.probe(bus: bus, base: 0x0900_0000, features: ARM_SMMU_FEAT_COHERENCY)
        #expect(result == 0)
        func has(_ feature: UInt32) -> Bool { smmu.features & feature != 0 }
        #expect(has(ARM_SMMU_FEAT_TRANS_S1) == configuration.stage1 && has(ARM_SMMU_FEAT_TRANS_S2) == configuration.stage2)
        #expect(has(ARM_SMMU_FEAT_2_LVL_STRTAB) == (configuration.twoLevelStreamTable && configuration.streamIDBits > 8))
        #expect(has(ARM_SMMU_FEAT_2_LVL_CDTAB) == configuration.twoLevelContextDescriptorTable)
        #expect(has(ARM_SMMU_FEAT_ATS) == configuration.ats && has(ARM_SMMU_FEAT_PRI) == (configuration.pri && configuration.ats))
        #expect(has(ARM_SMMU_FEAT_MSI) == configuration.msi && has(ARM_SMMU_FEAT_HYP) == configuration.hypervisor)
        #expect(has(ARM_SMMU_FEAT_TT_LE) && !has(ARM_SMMU_FEAT_TT_BE))
        #expect(has(ARM_SMMU_FEAT_STALLS) == (configuration.stallModel != .terminateOnly))
        #expect(smmu.sid_bits == UInt32(configuration.streamIDBits) && smmu.ssid_bits == UInt32(configuration.substreamIDBits))
        #expect(smmu.cmdq.q.max_n_shift == UInt32(min(8, configuration.commandQueueMaxLog2)))
        #expect(smmu.evtq.q.max_n_shift == UInt32(min(7, configuration.eventQueueMaxLog2)))
        #expect(smmu.evtq.max_stalls == UInt32(configuration.stallMax))
        #expect(smmu.asid_bits == (configuration.asid16 ? 16 : 8) && smmu.vmid_bits == (configuration.vmid16 ? 16 : 8))
        #expect(smmu.oas == UInt64(configuration.outputAddressSize.bits) && smmu.ias == smmu.oas)
        #expect(smmu.pgsize_bitmap & (SZ_4K | SZ_2M | SZ_1G) == (configuration.granule4K ? SZ_4K | SZ_2M | SZ_1G : 0))
        let expected = "arm-smmu-v3 arm-smmu-v3.0.auto: ias \(smmu.ias)-bit, oas \(smmu.oas)-bit (features 0x\(Self.hex8(smmu.features)))"
        #expect(log.texts() == [expected])
    }

    static func hex8(_ value: UInt32) -> String {
        let digits = String(value, radix: 16)
        return String(repeating: "0", count: 8 - digits.count) + digits
    }

    @Test func aCoherencyMismatchWithFirmwareIsReported() throws {
        var configuration = SMMUConfiguration.default
        configuration.coherentAccess = true
        let system = try SMMUSystem(configuration: configuration)
        let (result, _, log) = Self.probe(bus: system.bus, base: 0x0900_0000)
        #expect(result == 0)
        #expect(log.texts(atMost: .warning) == ["arm-smmu-v3 arm-smmu-v3.0.auto: IDR0.COHACC overridden by FW configuration (false)"])
    }

    /// An SMMU whose ID registers say what a test wants.
    final class IDRegisters: MMIODevice {
        var idr0: UInt32 = 0, idr1: UInt32 = 0, idr5: UInt32 = 0
        override func mmioRead(offset: UInt64, size: Int) -> UInt64 {
            switch offset {
            case 0x0: UInt64(idr0)
            case 0x4: UInt64(idr1)
            case 0x14: UInt64(idr5)
            default: 0
            }
        }
    }

    static let usableIDR0 = UInt32(FIELD_PREP(IDR0_TTENDIAN, IDR0_TTENDIAN_LE) | FIELD_PREP(IDR0_TTF, IDR0_TTF_AARCH64) | IDR0_S1P)
    static let usableIDR1 = UInt32(FIELD_PREP(IDR1_CMDQS, 8) | FIELD_PREP(IDR1_SIDSIZE, 8))

    @Test(arguments: [
        ("no translation support!", UInt32(0x1), usableIDR1),
        ("unknown/unsupported TT endianness!", usableIDR0 | UInt32(FIELD_PREP(IDR0_TTENDIAN, IDR0_TTENDIAN_BE)), usableIDR1),
        ("AArch64 table format not supported!", usableIDR0 & ~UInt32(IDR0_TTF), usableIDR1),
        ("embedded implementation not supported", usableIDR0, usableIDR1 | UInt32(IDR1_REL)),
        ("unit-length command queue not supported", usableIDR0, usableIDR1 & ~UInt32(IDR1_CMDQS)),
    ])
    func refusedHardwareGivesLinuxsErrorAndENXIO(_ message: String, _ idr0: UInt32, _ idr1: UInt32) throws {
        let bus = Bus()
        let device = IDRegisters()
        device.idr0 = idr0 == 0x1 ? Self.usableIDR0 & ~UInt32(IDR0_S1P | IDR0_S2P) : idr0
        device.idr1 = idr1
        try bus.map(device, at: 0x0900_0000, size: 0x20000)
        let (result, _, log) = Self.probe(bus: bus, base: 0x0900_0000)
        #expect(result == -ENXIO)
        #expect(log.texts(atMost: .error) == ["arm-smmu-v3 arm-smmu-v3.0.auto: \(message)"])
    }

    @Test func anUnknownOutputSizeIsTruncatedTo48Bits() throws {
        let bus = Bus()
        let device = IDRegisters()
        device.idr0 = Self.usableIDR0
        device.idr1 = Self.usableIDR1
        device.idr5 = UInt32(FIELD_PREP(IDR5_OAS, 7) | IDR5_GRAN4K)
        try bus.map(device, at: 0x0900_0000, size: 0x20000)
        let (result, smmu, log) = Self.probe(bus: bus, base: 0x0900_0000)
        #expect(result == 0 && smmu.oas == 48)
        #expect(log.texts().first == "arm-smmu-v3 arm-smmu-v3.0.auto: unknown output address size. Truncating to 48-bit")
    }
}

/// A log the contexts of one run append to.
final class Log: @unchecked Sendable {
    var entries: [String] = []
    func append(_ entry: String) { entries.append(entry) }
}
