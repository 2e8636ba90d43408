import Platform
import SMMUv3
import Endpoints
import Kernel

/// A compiled fixture (Fixtures/README.md): the platform it describes, the seeds it runs
/// under, and its steps in order. Built by ``FixtureCompiler``; run by ``FixtureRunner``.
public struct Fixture: Sendable {
    /// The file it came from.
    public let file: String
    /// The SMMU's configuration (the `smmu` statement).
    public var configuration = SMMUConfiguration.default
    /// How many SMMUs the platform has (`smmu count=N`), all of `configuration`, each with its
    /// own root complex; devices name theirs with `smmu=I`.
    public var smmuCount = 1
    /// How the SMMU's interrupts reach the kernel.
    public var interrupts = InterruptMode.msi
    /// Whether the model checks for stale TLB/configuration cache entries (checked mode).
    public var checked = true
    /// Where the driver queues page faults (seed 000's policies).
    public var policy = Policy.perFaultQueue
    /// The PCIe functions behind the root complex.
    public var devices: [DeviceSpec] = []
    /// The processes.
    public var processes: [ProcessSpec] = []
    /// The seeds to run under (nil: no seed, oldest runnable context first).
    public var seeds: ClosedRange<UInt64>?
    /// How a seeded scheduler picks.
    public var strategy = KernelScheduler.Strategy.uniform
    /// The steps, in order.
    public var steps: [FixtureStep] = []
    /// Invariants checked after every scheduling step, with the line declaring each.
    public var invariants: [(FixtureInvariant, FixtureLocation)] = []

    /// An empty fixture of `file`.
    public init(file: String) {
        self.file = file
    }

    /// How the SMMU signals the kernel.
    public enum InterruptMode: String, Sendable, CaseIterable {
        /// MSIs (the platform has an MSI domain).
        case msi
        /// One wired line per source.
        case wired
        /// The wired lines ORed into one (Cavium ThunderX2's "combined" interrupt).
        case combined
    }

    /// The IOPF queue policy (seed 000).
    public enum Policy: String, Sendable, CaseIterable {
        /// One queue per PRI queue (= per IOMMU on an SMMUv3).
        case perFaultQueue = "per-fault-queue"
        /// The same as per fault queue on an SMMUv3.
        case perIOMMU = "per-iommu"
        /// One queue per domain.
        case perDomain = "per-domain"
        /// One queue for the whole platform.
        case global
    }

    /// A PCIe function.
    public struct DeviceSpec: Sendable {
        /// Its name in the fixture.
        public let name: String
        /// Its StreamID (= requester ID behind the root complex).
        public let streamID: UInt32
        /// Whether it has the ATS capability.
        public let ats: Bool
        /// Whether it sends page requests (PRI).
        public let pri: Bool
        /// Outstanding page request credits.
        public let credits: Int
        /// How it stops using a PASID (`stop-pasid`).
        public let stopMode: PASIDStopMode
        /// The SMMU it is behind (0-based).
        public let smmu: Int
        /// Where it was declared.
        public let location: FixtureLocation
    }

    /// A process: an address space with areas the fault handler can populate.
    public struct ProcessSpec: Sendable {
        /// Its name in the fixture.
        public let name: String
        /// The ASID of its CPU page tables.
        public let asid: UInt16
        /// Its VMAs.
        public var areas: [(start: UInt64, end: UInt64, write: Bool)]
        /// Where it was declared.
        public let location: FixtureLocation
    }
}

/// One step of a fixture, with the line it came from.
public struct FixtureStep: Sendable {
    /// Where the step is.
    public let location: FixtureLocation
    /// The line as written.
    public let text: String
    /// What it does.
    public let kind: Kind

    /// What a step does.
    public enum Kind: Sendable {
        /// A driver action or a device stimulus, run in its own kernel context until the system
        /// settles.
        case action(FixtureAction)
        /// Actions started together (each in its own context; the seed picks the interleaving),
        /// then the system settles.
        case together([FixtureStep])
        /// A check of the settled system.
        case expect(FixtureExpectation)
        /// A fault armed from now on.
        case inject(FixtureInjection)
    }
}

/// A PASID as a fixture names it: the one bound to a process, or a number.
public enum PASIDReference: Sendable, Hashable, CustomStringConvertible {
    /// The PASID a `bind` of this process returned.
    case process(String)
    /// A literal PASID.
    case number(UInt32)

    public var description: String {
        switch self {
        case .process(let name): name
        case .number(let value): String(value)
        }
    }
}

/// A driver action or device stimulus.
public enum FixtureAction: Sendable {
    /// `arm_smmu_device_probe` through the driver core.
    case probe(ret: Int32)
    /// `arm_smmu_device_remove`.
    case removeSMMU
    /// `arm_smmu_add_device`.
    case addDevice(String, ret: Int32)
    /// `arm_smmu_remove_device`.
    case removeDevice(String)
    /// `arm_smmu_domain_alloc` of an unmanaged (or DMA) domain.
    case domain(String, dma: Bool)
    /// `iommu_attach_device`.
    case attach(device: String, domain: String, ret: Int32)
    /// `iommu_detach_device`.
    case detach(device: String)
    /// `iommu_map`.
    case map(domain: String, iova: UInt64, physical: UInt64, size: UInt64, prot: Int32, ret: Int32)
    /// `iommu_unmap` (`unmapped`: the size it must return).
    case unmap(domain: String, iova: UInt64, size: UInt64, unmapped: UInt64?)
    /// `iommu_sva_device_init` with IOMMU_SVA_FEAT_IOPF.
    case svaInit(String, ret: Int32)
    /// `iommu_sva_device_shutdown`.
    case svaShutdown(String, ret: Int32)
    /// `iommu_register_device_fault_handler`: the IOPF queue's handler, or a relay that
    /// records faults for a guest (seed 004).
    case faultHandler(String, relay: Bool, ret: Int32)
    /// `iommu_unregister_device_fault_handler`.
    case unregisterHandler(String, ret: Int32)
    /// `device_bind_driver`.
    case bindDriver(String, driver: String?)
    /// The relay's guest answers every Last request reported to it so far.
    case relayRespond(String, code: Int32)
    /// `iommu_sva_bind_device`.
    case bind(device: String, process: String, ret: Int32)
    /// `iommu_sva_unbind_device`.
    case unbind(device: String, process: String, flags: UInt32, ret: Int32)
    /// The process exits (its mm is released).
    case exit(String)
    /// A DMA read or write by the device (ATS/PRI as the device supports); `count` of them,
    /// each a page (4 KB) above the one before, issued back to back (a flood).
    case dma(device: String, write: Bool, address: UInt64, length: Int, data: [UInt8], pasid: PASIDReference?, name: String?, count: Int)
    /// Page requests straight onto the link (`count` of them, PRG indexes counting up).
    case pageRequest(device: String, address: UInt64, prgIndex: UInt16, pasid: PASIDReference?, last: Bool, read: Bool, write: Bool, count: Int)
    /// An ATS Translation Request straight from the device (§3.9.1), checked against the
    /// completion status expected (nil: any).
    case atsRequest(device: String, address: UInt64, pasid: PASIDReference?, write: Bool, status: ATSCompletionStatus?)
    /// A Stop Marker for the PASID.
    case stopMarker(device: String, pasid: PASIDReference)
    /// Raw command words put on the command queue under its lock (as a buggy driver path
    /// would), followed by a CMD_SYNC.
    case rawCommand(UInt64, UInt64)
    /// CMD_RESUME (then CMD_SYNC) on the driver's queue for every stalled transaction of the
    /// device reported so far (its STAG from the event record, §4.7.1): retry or abort. The
    /// driver port of the seeds handles no stalls (they use PRI), so the fixture does.
    case resume(device: String, retry: Bool)
    /// The device stops using the PASID as its stop mode says (PCIe Stop PASID; seed 001).
    case stopPASID(device: String, pasid: PASIDReference)
    /// The PRG responses held back from the device (``FixtureInjection/holdResponses``) arrive
    /// now: late.
    case releaseResponses(device: String)
    /// Nothing: lets the system settle (and virtual time pass while contexts sleep).
    case settle
}

/// A check of the settled system.
public enum FixtureExpectation: Sendable {
    /// Event records the SMMU produced since the fixture started (or since `clear events`)
    /// matching the filters: `count` of them (nil: at least one).
    case event(type: String, streamID: UInt32?, substreamID: UInt32?, address: UInt64?, stall: Bool, count: Int?)
    /// No event record at all.
    case noEvents
    /// PRG responses the device received, matching: `count` (nil: at least one).
    case response(device: String, code: PRGResponseCode?, prgIndex: UInt16?, pasid: PASIDReference?, count: Int?)
    /// The state of a named DMA (or the device's last one).
    case dma(String, state: String)
    /// Bytes in physical memory.
    case memory(UInt64, [UInt8])
    /// Bytes in a process's memory, through its page tables.
    case processMemory(String, UInt64, [UInt8])
    /// A kernel log line containing the text (`present` false: none).
    case log(String, present: Bool)
    /// A register's value (under `mask`).
    case register(SMMURegister, value: UInt64, mask: UInt64, smmu: Int)
    /// The PASID of a process is allocated or free.
    case pasid(PASIDReference, allocated: Bool)
    /// The SMMU driver's context for the device's PASID (seed 001): `used`, `stale`,
    /// `invalidated` or `none`.
    case context(device: String, pasid: PASIDReference, state: String)
    /// How many times the device driver's mm_exit ran for the device.
    case mmExits(String, count: Int)
    /// Partial faults (non-Last page requests waiting for their Last) the device has in its
    /// IOPF queue.
    case partialFaults(String, count: Int)
    /// Faults reported to the device's relay.
    case relayed(String, count: Int)
    /// How the last step ended: `completed` or `deadlock`.
    case outcome(deadlock: Bool)
    /// Model diagnostics (checked mode's stale entries among them): exactly `count`.
    case diagnostics(count: Int)
    /// The device's own view of a PASID: `active`, `stopping` or `stopped`.
    case devicePASID(device: String, pasid: PASIDReference, state: String)
    /// Whether a page of a process's address space is present in its CPU page tables.
    case page(process: String, address: UInt64, present: Bool)
    /// A queue's registers and contents (§3.5): PROD and CONS values (wrap and flag bits
    /// included), whether an overflow is unacknowledged, and text within the decoded entry of
    /// a slot.
    case queue(FixtureQueue, prod: UInt64?, cons: UInt64?, overflow: Bool?, slot: Int?, contains: String?, smmu: Int)
}

/// Where an injected external abort hits: an address range, or a structure the driver
/// allocated (resolved when the injection runs, after probe).
public enum AbortTarget: Sendable, Hashable {
    /// Physical addresses `FIRST..LAST`.
    case range(ClosedRange<UInt64>)
    /// The command queue, the event queue, the PRI queue (their entries).
    case cmdq, evtq, priq
    /// The stream table (the linear table, or the level-1 table of a 2-level one).
    case strtab
    /// The device's STE (64 bytes).
    case ste(device: String)
    /// The device's CD for a PASID (0: a domain's CD), 64 bytes.
    case cd(device: String, pasid: PASIDReference)
    /// The top-level translation table of a domain or of a process (the first walk read).
    case pageTable(owner: String)
}

/// A fault injected from a point of the fixture on.
public enum FixtureInjection: Sendable {
    /// Device accesses to the target get an external abort (`count` times; nil: always).
    case abort(AbortTarget, reads: Bool, writes: Bool, count: Int?)
    /// MSIs to the range are lost.
    case dropMSI(ClosedRange<UInt64>, count: Int?)
    /// The n-th allocation from now fails (0: the next one).
    case allocationFailure(after: Int)
    /// The device's next `count` Stop Markers (or Last requests) are lost on the link.
    case lose(device: String, stopMarkers: Bool, count: Int)
    /// The device answers ATS invalidations this way.
    case atcInvalidation(device: String, response: ATCInvalidationResponse)
    /// The SMMU's event observations so far are forgotten (for `expect event` counts).
    case clearEvents
    /// A field of the device's STE (or of its CD for a PASID) set to a value in memory behind
    /// the driver's back, with no invalidation: the SMMU sees it at its next fetch.
    case corrupt(device: String, cd: PASIDReference?, field: String, value: UInt64)
    /// The device's next `count` PRG responses arrive twice.
    case duplicateResponses(device: String, count: Int)
    /// The device's next `count` PRG responses are held on the link until `release-responses`.
    case holdResponses(device: String, count: Int)
}

/// A queue named in a fixture (§3.5).
public enum FixtureQueue: String, Sendable, CaseIterable {
    /// The command queue (SMMU_CMDQ_*).
    case cmdq
    /// The event queue (SMMU_EVENTQ_*).
    case evtq
    /// The PRI queue (SMMU_PRIQ_*).
    case priq
}

/// A property checked after every scheduling step of a run (`invariant NAME`).
public enum FixtureInvariant: String, Sendable, CaseIterable {
    /// Every PRG response a device receives answers a page request group it has outstanding.
    case noSpuriousResponse = "no-spurious-response"
    /// A PASID context (seed 001) is released at most once, and once released it is no longer
    /// in its device's context table (its PASID can then be reused safely).
    case contextReleasedOnce = "context-released-once"
    /// The model never reports a diagnostic (stale cache use in checked mode, CONSTRAINED
    /// UNPREDICTABLE choices, inconsistent queues).
    case noDiagnostics = "no-diagnostics"
}
