import Platform
import Kernel
import SMMUv3
import ArmSMMUv3

/// A platform device for the SMMU at `base` on `bus`: the log on `scheduler`'s clock, coherent
/// memory at 2 GB (16 MB), the interrupt subsystem with its MSI doorbell at 0x0800_0040, and
/// a 128 KB register resource (page 0 and page 1).
public func makePlatformDevice(bus: Bus, base: UInt64 = 0x0900_0000, scheduler: KernelScheduler = KernelScheduler(), faults: AllocationFaults = AllocationFaults()) -> (platform_device, KernelLog) {
    let log = KernelLog(clock: scheduler.clock)
    let irqs = KernelIRQs(bus: bus, scheduler: scheduler, msiDoorbell: 0x0800_0040)
    let dma = CoherentMemory(memory: bus.memory, range: 0x8000_0000...0x80FF_FFFF, faults: faults)
    let pdev = platform_device(driver: "arm-smmu-v3", name: "arm-smmu-v3.0.auto", log: log, resource: KernelResource(start: base, size: 2 * SZ_64K), bus: bus, irqs: irqs, dma: dma)
    return (pdev, log)
}

/// The driver on the model: a bus with the SMMU at 0x0900_0000, whose command queue only its
/// hardware agent consumes (one command per step, at points the scheduler picks); the kernel
/// environment on the bus's clock; and a platform device wired as firmware would describe it
/// (MSIs, or the model's wired lines without an MSI domain).
public final class DriverSystem {
    /// The bus: memory, the SMMU's registers, interrupts.
    public let bus: Bus
    /// The hardware model.
    public let model: SMMU
    /// The scheduler every kernel context and the SMMU's command consumption run on.
    public let scheduler: KernelScheduler
    /// The SMMU's platform device.
    public let pdev: platform_device
    /// The kernel log.
    public let log: KernelLog
    /// Allocation fault injection for the whole kernel.
    public let faults: AllocationFaults
    private let agent: HardwareAgent

    /// A system with an SMMU of `configuration`; `seed` picks the interleaving. Without `msi`
    /// the platform has no MSI domain and the wired lines are used, ORed into one "combined"
    /// interrupt when `combinedIRQ` (as on Cavium ThunderX2).
    public init(configuration: SMMUConfiguration = .default, seed: UInt64? = nil, strategy: KernelScheduler.Strategy = .uniform, msi: Bool = true, combinedIRQ: Bool = false, trace: TraceCategory = [], faults: AllocationFaults = AllocationFaults()) throws {
        bus = Bus(traceCategories: trace)
        model = try SMMU(configuration: configuration, bus: bus, base: 0x0900_0000)
        model.commandProcessing = .stepped
        scheduler = KernelScheduler(seed: seed, strategy: strategy, clock: bus.clock)
        self.faults = faults
        (pdev, log) = makePlatformDevice(bus: bus, scheduler: scheduler, faults: faults)
        pdev.hasMSIDomain = msi
        pdev.dmaCoherent = configuration.coherentAccess
        if let lines = configuration.interruptLines, combinedIRQ {
            let irq = pdev.irqs.irq(forWiredLine: lines.eventQueue)
            for line in [lines.priQueue, lines.globalError] { pdev.irqs.route(wiredLine: line, to: irq) }
            pdev.namedIRQs["combined"] = irq
        } else if let lines = configuration.interruptLines {
            pdev.namedIRQs["eventq"] = pdev.irqs.irq(forWiredLine: lines.eventQueue)
            pdev.namedIRQs["priq"] = pdev.irqs.irq(forWiredLine: lines.priQueue)
            pdev.namedIRQs["gerror"] = pdev.irqs.irq(forWiredLine: lines.globalError)
        }
        agent = HardwareAgent("smmu", on: scheduler) { [model] in model.stepCommand() != nil }
    }

    /// Stops the kernel's daemons (IRQ threads, the SMMU's agent) so that nothing the system
    /// made stays parked once it is dropped.
    deinit {
        pdev.irqs.freeAll()
        driver?.destroyOwnIOPFQueues()
        agent.stop()
        scheduler.run()
        pdev.drvdata = nil
    }

    /// Runs `body` in a kernel context named `name` until every context is done or blocked.
    @discardableResult
    public func run(_ name: String = "test", _ body: @escaping () async -> Void) -> KernelScheduler.Outcome {
        scheduler.spawn(name, body)
        return scheduler.run()
    }

    /// Probes the driver through the driver core; its result (-999 if the probe could not
    /// finish).
    public func probe() -> Int32 {
        var result: Int32 = 1
        let outcome = run("modprobe") { [pdev] in result = await driver_probe_device(pdev, arm_smmu_device_probe) }
        return outcome == .completed ? result : -999
    }

    /// The driver's state, once probed.
    public var driver: arm_smmu_device? { pdev.drvdata as? arm_smmu_device }

    /// The kernel log's texts at `level` or more severe, without the SMMU's device prefix.
    public func messages(atMost level: KernelLog.Level = .debug) -> [String] {
        let prefix = "arm-smmu-v3 arm-smmu-v3.0.auto: "
        return log.texts(atMost: level).map { $0.hasPrefix(prefix) ? String($0.dropFirst(prefix.count)) : $0 }
    }
}
