import Platform
import Kernel
import SMMUv3
import SMMUv3Host
import ArmSMMUv3

/// A ready-to-use system for hardware tests: a bus, an SMMU brought up by the driver port
/// (`arm_smmu_device_probe`, the project's one bring-up path) and then left to the test, a
/// register-level host agent that has adopted the driver's queues, the driver's stream table
/// behind a table builder, and a DMA arena for the test's own tables.
///
/// The driver sizes everything from the ID registers, as Linux does, so the layout a test asks
/// for becomes the SMMU's configuration: `streamTableLog2Size` is SIDSIZE (Linux's choice of
/// table follows: linear up to 8 bits, else 2-level with its split of 8; `split` asks for
/// 2-level support, whatever its value), the
/// queue sizes are the maximum sizes in IDR1 (which Linux caps: 256 commands, 128 events,
/// 256 page requests). After the probe the command queue is consumed on every PROD write
/// (automatic processing) and interrupts go nowhere: the test drains and acknowledges.
public final class SMMUSystem {
    /// The bus connecting the SMMU, the host agent and memory.
    public let bus: Bus
    /// The SMMU under test, mapped at `smmuBase` on the bus.
    public let smmu: SMMU
    /// The host agent that programs the SMMU through its registers.
    public let host: SMMUHost
    /// Memory for tables built by the test (0x8000_0000 + 16 MB, 1 GB).
    public let arena: DMAArena
    /// The driver's stream table.
    public let streams: StreamTableBuilder
    /// The kernel log of the bring-up.
    public let log: KernelLog
    /// The driver's state.
    public let driver: arm_smmu_device
    /// The SMMU's platform device (which owns the driver's state).
    public let pdev: platform_device
    private let scheduler: KernelScheduler

    /// What went wrong bringing the system up.
    public enum BringUpError: Error, CustomStringConvertible {
        case model(SMMU.CreationError)
        case probe(Int32, log: [String])

        public var description: String {
            switch self {
            case .model(let error): "\(error)"
            case .probe(let result, let log): "arm_smmu_device_probe returned \(result): \(log.joined(separator: "; "))"
            }
        }
    }

    /// Creates the system and brings the SMMU up through the driver; `prepare` sees the bus
    /// before anything happens on it (to set a trace sink, say).
    public init(configuration: SMMUConfiguration = .default, smmuBase: UInt64 = 0x0900_0000, streamTableLog2Size: Int = 8, split: Int? = nil, eventQueueLog2: Int = 6, priQueueLog2: Int = 6, trace: TraceCategory = [], prepare: (Bus) -> Void = { _ in }) throws(BringUpError) {
        var configuration = configuration
        configuration.streamIDBits = streamTableLog2Size
        // SIDSIZE >= 7 requires 2-level support (§6.3.1); Linux still uses a linear table up to
        // SIDSIZE 8.
        configuration.twoLevelStreamTable = split != nil || streamTableLog2Size >= 7
        configuration.eventQueueMaxLog2 = eventQueueLog2
        configuration.priQueueMaxLog2 = priQueueLog2
        bus = Bus(traceCategories: trace)
        prepare(bus)
        do {
            smmu = try SMMU(configuration: configuration, bus: bus, base: smmuBase)
        } catch {
            throw .model(error)
        }

        // The probe, in a kernel of its own on the bus's clock.
        let scheduler = KernelScheduler(clock: bus.clock)
        let (pdev, log) = makePlatformDevice(bus: bus, base: smmuBase, scheduler: scheduler)
        pdev.dmaCoherent = configuration.coherentAccess
        self.log = log
        var result: Int32 = -999
        scheduler.spawn("modprobe") { result = await driver_probe_device(pdev, arm_smmu_device_probe) }
        scheduler.run()
        guard result == 0, let driver = pdev.drvdata as? arm_smmu_device, let strtab = driver.strtab_cfg.strtab else {
            throw .probe(result, log: log.texts())
        }
        self.driver = driver
        self.pdev = pdev
        self.scheduler = scheduler
        Self.leaveToTheTest(bus, pdev, scheduler)

        host = SMMUHost(bus: bus, base: smmuBase)
        host.adoptQueues()
        arena = DMAArena(base: 0x8100_0000, size: 0x4000_0000)
        let twoLevel = driver.features & ARM_SMMU_FEAT_2_LVL_STRTAB != 0
        streams = StreamTableBuilder(adopting: strtab.address, memory: bus.memory, arena: arena, log2Size: streamTableLog2Size, split: twoLevel ? STRTAB_SPLIT : nil)
    }

    /// The kernel stops here: interrupts are the test's business from now on (the IRQ
    /// threads are stopped, so that nothing keeps the system alive once the test drops it).
    private static func leaveToTheTest(_ bus: Bus, _ pdev: platform_device, _ scheduler: KernelScheduler) {
        pdev.irqs.freeAll()
        (pdev.drvdata as? arm_smmu_device)?.destroyOwnIOPFQueues()
        scheduler.run()
        bus.interrupts.onWiredInterrupt = nil
        bus.interrupts.onMSI = nil
        bus.interrupts.onSendEvent = nil
    }

    /// After ``SMMU/reset()``: the driver's `arm_smmu_device_reset` again, on queues restarted
    /// at index 0 (as `arm_smmu_init_one_queue` leaves them), and the host adopts them.
    /// Returns the reset's result.
    @discardableResult
    public func reset() -> Int32 {
        for q in [driver.cmdq.q, driver.evtq.q, driver.priq.q] {
            q.prod = 0
            q.cons = 0
        }
        var result: Int32 = -999
        scheduler.spawn("reset") { [driver] in result = await arm_smmu_device_reset(driver, false) }
        scheduler.run()
        Self.leaveToTheTest(bus, driver.pdev, scheduler)
        host.adoptQueues()
        return result
    }

    /// Drops the driver's state (the driver data's cycle with its device).
    deinit {
        pdev.drvdata = nil
    }

    /// An empty translation table.
    public func pageTable(_ stage: PageTableBuilder.Stage = .stage1, granule: Int = 12, inputBits: Int = 48, startLevel: Int? = nil) -> PageTableBuilder {
        PageTableBuilder(memory: bus.memory, arena: arena, stage: stage, granuleShift: granule, inputBits: inputBits, startLevel: startLevel)
    }

    /// Makes `streamID` a stage-2-only stream translating through `table` with `vmid`
    /// (STE.Config = 0b110, §5.2); `adjust` may change the STE before it is written.
    public func stage2Stream(_ streamID: UInt32, table: PageTableBuilder, vmid: UInt16 = 0, adjust: (inout STEConfig) -> Void = { _ in }) {
        var ste = STEConfig(config: .stage2)
        ste.stage2 = STEConfig.Stage2(table)
        ste.s2VMID = vmid
        adjust(&ste)
        streams.set(streamID, ste)
    }

    /// Makes `streamID` a stage-1 stream whose CDs (at `ssids`) are `cd`; returns the CD table.
    @discardableResult
    public func stage1Stream(_ streamID: UInt32, cd: CDConfig, cdMax: Int = 0, format: CDTableBuilder.Format = .linear, ssids: [UInt32] = [0], adjust: (inout STEConfig) -> Void = { _ in }) -> CDTableBuilder {
        let cds = CDTableBuilder(memory: bus.memory, arena: arena, cdMax: cdMax, format: format)
        for ssid in ssids { cds.set(ssid, cd) }
        var ste = STEConfig(config: .stage1)
        ste.s1ContextPointer = cds.pointer
        ste.s1CDMax = UInt8(cdMax)
        ste.s1Format = format.rawValue
        adjust(&ste)
        streams.set(streamID, ste)
        return cds
    }
}
