import Platform
import Kernel
import SMMUv3
import ArmSMMUv3

/// A platform device for the SMMU at `base` on `bus`: the log on `scheduler`'s clock, coherent
/// memory at 2 GB (16 MB), the interrupt subsystem with its MSI doorbell at 0x0800_0040, and
/// a 128 KB register resource (page 0 and page 1). The `index`-th SMMU of a platform
/// (`arm-smmu-v3.N.auto`) takes the 16 MB of coherent memory after the previous one's and
/// shares the first one's `log` and interrupt subsystem (`irqs`) when given.
public func makePlatformDevice(bus: Bus, base: UInt64 = 0x0900_0000, scheduler: KernelScheduler = KernelScheduler(), faults: AllocationFaults = AllocationFaults(),
                               index: Int = 0, log sharedLog: KernelLog? = nil, irqs sharedIRQs: KernelIRQs? = nil) -> (platform_device, KernelLog) {
    let log = sharedLog ?? KernelLog(clock: scheduler.clock)
    let irqs = sharedIRQs ?? KernelIRQs(bus: bus, scheduler: scheduler, msiDoorbell: 0x0800_0040)
    let dmaBase = 0x8000_0000 + UInt64(index) * 0x0100_0000
    let dma = CoherentMemory(memory: bus.memory, range: dmaBase...(dmaBase + 0x00FF_FFFF), faults: faults)
    let pdev = platform_device(driver: "arm-smmu-v3", name: "arm-smmu-v3.\(index).auto", log: log, resource: KernelResource(start: base, size: 2 * SZ_64K), bus: bus, irqs: irqs, dma: dma)
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
    /// The most SMMUs a system holds.
    public static let maximumSMMUs = 8

    /// ``addSMMU(configuration:)`` past ``maximumSMMUs``.
    public struct TooManySMMUs: Error, Equatable, CustomStringConvertible {
        /// The limit.
        public let limit: Int
        public var description: String { "a driver system holds at most \(limit) SMMUs" }
    }

    /// The SMMUs added after the first (``addSMMU(configuration:)``), with their agents.
    public private(set) var others: [(model: SMMU, pdev: platform_device)] = []
    private var otherAgents: [HardwareAgent] = []

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
        for (_, other) in others { (other.drvdata as? arm_smmu_device)?.destroyOwnIOPFQueues() }
        agent.stop()
        for other in otherAgents { other.stop() }
        scheduler.run()
        // A master and its SMMU hold each other (smmu->streams, master->smmu) until
        // remove_device, which a test need not call: the world ends here, so break it.
        let drivers = ([pdev] + others.map(\.pdev)).compactMap { $0.drvdata as? arm_smmu_device }
        for smmu in drivers { smmu.streams.removeAll() }
        pdev.drvdata = nil
        for (_, other) in others { other.drvdata = nil }
        scheduler.dropGlobals()
    }

    /// Another SMMU on the same platform, for systems with several IOMMUs (a global IOPF
    /// queue across them, seed 000): its register frame in the next 128 KB slot after the
    /// last SMMU's, its own 16 MB of coherent memory, its own hardware agent on the same
    /// scheduler, and the same kernel log and interrupt controller (so it needs MSIs or wired
    /// lines distinct from the other SMMUs'). Probe it with `driver_probe_device` on the
    /// returned platform device; its driver shares the kernel's PASID space with the others.
    @discardableResult
    public func addSMMU(configuration: SMMUConfiguration = .default) throws -> (model: SMMU, pdev: platform_device) {
        let index = others.count + 1
        // Coherent memory for SMMU N is 2 GB + N x 16 MB: eight stay below the processes' pages.
        guard index < Self.maximumSMMUs else { throw TooManySMMUs(limit: Self.maximumSMMUs) }
        let base = 0x0900_0000 + UInt64(index) * 0x2_0000
        let model = try SMMU(configuration: configuration, bus: bus, base: base)
        model.commandProcessing = .stepped
        let (other, _) = makePlatformDevice(bus: bus, base: base, scheduler: scheduler, faults: faults, index: index, log: log, irqs: pdev.irqs)
        other.hasMSIDomain = pdev.hasMSIDomain
        other.dmaCoherent = configuration.coherentAccess
        if let lines = configuration.interruptLines {
            other.namedIRQs["eventq"] = other.irqs.irq(forWiredLine: lines.eventQueue)
            other.namedIRQs["priq"] = other.irqs.irq(forWiredLine: lines.priQueue)
            other.namedIRQs["gerror"] = other.irqs.irq(forWiredLine: lines.globalError)
        }
        otherAgents.append(HardwareAgent("smmu\(index)", on: scheduler) { [model] in model.stepCommand() != nil })
        others.append((model, other))
        return (model, other)
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
