import Platform
import SMMUv3

/// A minimal register-level software agent for an SMMUv3, talking to it only through the
/// bus, the way a driver does: MMIO register accesses, queue entries written to memory,
/// PROD/CONS updates and polling of acknowledge registers.
///
/// It takes over an SMMU the driver port brought up (``adoptQueues()``), submits commands,
/// drains the event and PRI queues and acknowledges global errors, synchronously: a test and
/// demo harness for the hardware, not a driver (it keeps no per-device state, and the one
/// bring-up path is the driver's).
public final class SMMUHost {
    /// Where the queues are, as the host found them in the SMMU's registers (see
    /// ``adoptQueues()``).
    public struct Layout: Sendable, Hashable {
        /// Command queue base.
        public var commandQueue: UInt64 = 0
        /// log2 of the command queue size.
        public var commandQueueLog2Size = 0
        /// Event queue base.
        public var eventQueue: UInt64 = 0
        /// log2 of the event queue size.
        public var eventQueueLog2Size = 0
        /// PRI queue base.
        public var priQueue: UInt64 = 0
        /// log2 of the PRI queue size.
        public var priQueueLog2Size = 0

        /// No queues.
        public init() {}
    }

    /// What went wrong talking to the SMMU.
    public enum HostError: Error, Equatable, CustomStringConvertible {
        /// An acknowledge register did not reach the written value within the poll budget.
        case acknowledgeTimeout(SMMURegister, expected: UInt32, last: UInt32)
        /// The command queue has no room and the SMMU is not consuming.
        case commandQueueFull
        /// The SMMU reported a command queue error on the command at `index`.
        case commandError(CommandError?, index: UInt32)
        /// Commands were written but not consumed (stepped processing, or the queue stopped).
        case commandsNotConsumed(pending: Int)

        public var description: String {
            switch self {
            case .acknowledgeTimeout(let register, let expected, let last):
                "\(register.name) did not reach \(hex(expected)) (last read \(hex(last)))"
            case .commandQueueFull: "command queue full and not being consumed"
            case .commandError(let error, let index):
                "command queue error \(error.map(\.description) ?? "?") at CONS \(index)"
            case .commandsNotConsumed(let pending): "\(pending) command(s) written but not consumed"
            }
        }
    }

    /// The bus the SMMU is on.
    public let bus: Bus
    /// SMMU_BASE.
    public let base: UInt64
    /// The queues in use (found by ``adoptQueues()``).
    public private(set) var layout = Layout()
    /// How many register reads a poll loop makes before giving up.
    public var pollBudget = 1000

    private var commandProd: UInt32 = 0
    private var eventCons: UInt32 = 0
    private var priCons: UInt32 = 0

    /// Creates a host for the SMMU mapped at `base`.
    public init(bus: Bus, base: UInt64) {
        self.bus = bus
        self.base = base
    }

    // MARK: Registers

    /// Reads a 32-bit register (or the low half of a 64-bit one).
    public func read32(_ register: SMMURegister) -> UInt32 { bus.read32(at: base + register.offset) }
    /// Writes a 32-bit register.
    public func write32(_ register: SMMURegister, _ value: UInt32) { bus.write32(value, at: base + register.offset) }
    /// Reads a 64-bit register with one 64-bit access.
    public func read64(_ register: SMMURegister) -> UInt64 { bus.read64(at: base + register.offset) }
    /// Writes a 64-bit register with one 64-bit access.
    public func write64(_ register: SMMURegister, _ value: UInt64) { bus.write64(value, at: base + register.offset) }

    /// Writes `value` to `register` and polls `ack` until it reads back the same value
    /// (`arm_smmu_write_reg_sync`).
    public func writeSynchronized(_ register: SMMURegister, _ value: UInt32, ack: SMMURegister) throws(HostError) {
        write32(register, value)
        var last: UInt32 = 0
        for _ in 0..<pollBudget {
            last = read32(ack)
            if last == value { return }
        }
        throw .acknowledgeTimeout(ack, expected: value, last: last)
    }

    /// Requests a GBPA update and polls until Update clears (`arm_smmu_update_gbpa`).
    public func updateGBPA(set: UInt32, clear: UInt32) throws(HostError) {
        var value: UInt32 = 0
        for _ in 0..<pollBudget {
            value = read32(.gbpa)
            if !Reg.GBPA.update.isSet(value) { break }
        }
        value = (value & ~clear) | set | Reg.GBPA.update.mask32
        write32(.gbpa, value)
        for _ in 0..<pollBudget {
            value = read32(.gbpa)
            if !Reg.GBPA.update.isSet(value) { return }
        }
        throw .acknowledgeTimeout(.gbpa, expected: value & ~Reg.GBPA.update.mask32, last: value)
    }

    // MARK: Adopting a running SMMU

    /// Takes over the queues programmed by whoever brought the SMMU up (the driver): their
    /// bases and sizes from *_BASE, the command producer from CMDQ_PROD and the consumers
    /// from EVENTQ_CONS and PRIQ_CONS.
    public func adoptQueues() {
        func split(_ base: UInt64) -> (UInt64, Int) {
            (Reg.Queue.address.extract(base), Int(Reg.Queue.log2Size.extract(base)))
        }
        (layout.commandQueue, layout.commandQueueLog2Size) = split(read64(.cmdqBase))
        (layout.eventQueue, layout.eventQueueLog2Size) = split(read64(.eventqBase))
        (layout.priQueue, layout.priQueueLog2Size) = split(read64(.priqBase))
        commandProd = read32(.cmdqProd)
        eventCons = read32(.eventqCons)
        priCons = read32(.priqCons)
    }

    /// Moves the event queue to `base` with 2^`log2Size` entries (more than a driver would
    /// use, say): EVENTQEN off and acknowledged, the new base and indices, EVENTQEN back on.
    public func replaceEventQueue(at base: UInt64, log2Size: Int) throws(HostError) {
        let cr0 = read32(.cr0)
        try writeSynchronized(.cr0, cr0 & ~Reg.CR0.eventqen.mask32, ack: .cr0Ack)
        write64(.eventqBase, base | Reg.Queue.log2Size.place(UInt64(log2Size)) | Reg.Queue.allocate.mask)
        write32(.eventqProd, 0)
        write32(.eventqCons, 0)
        try writeSynchronized(.cr0, cr0, ack: .cr0Ack)
        adoptQueues()
    }

    // MARK: Commands

    private var commandIndex: QueueIndex { QueueIndex(log2Size: layout.commandQueueLog2Size) }

    /// Writes `commands` into the command queue at PROD, advances PROD once, and checks that
    /// the SMMU consumed them (automatic processing). Stops at the first command error.
    public func submit(_ commands: [Command]) throws(HostError) {
        try write(commands.map(\.entry))
        let geometry = commandIndex
        let cons = read32(.cmdqCons)
        if Reg.GERROR.cmdqErr.isSet(read32(.gerror) ^ read32(.gerrorn)) {
            throw .commandError(CommandError(rawValue: UInt8(Reg.Queue.consErr.extract(cons))), index: cons & geometry.pointerMask)
        }
        let pending = geometry.count(prod: commandProd, cons: cons)
        if pending != 0 { throw .commandsNotConsumed(pending: Int(pending)) }
    }

    /// Writes raw entries into the command queue at PROD and advances PROD, without waiting
    /// for them to be consumed. Throws when the queue has no room.
    public func write(_ entries: [CommandEntry]) throws(HostError) {
        let geometry = commandIndex
        var cons = read32(.cmdqCons)
        for entry in entries {
            if geometry.isFull(prod: commandProd, cons: cons) {
                // Publish what is written so far and let the SMMU make room.
                write32(.cmdqProd, commandProd)
                cons = read32(.cmdqCons)
                if geometry.isFull(prod: commandProd, cons: cons) { throw .commandQueueFull }
            }
            let slot = layout.commandQueue + UInt64(geometry.index(commandProd)) * 16
            bus.write64(entry.dw0, at: slot)
            bus.write64(entry.dw1, at: slot + 8)
            commandProd = geometry.increment(commandProd)
        }
        write32(.cmdqProd, commandProd)
    }

    /// Moves the host's copy of CMDQ_PROD back to CMDQ_CONS (allowed while CMDQ_ERR is
    /// active, §7.1) so that the next write replaces the failed command.
    public func rewindCommandQueueToConsumer() {
        commandProd = read32(.cmdqCons) & commandIndex.pointerMask
        write32(.cmdqProd, commandProd)
    }

    // MARK: Global errors

    /// Acknowledges every active global error by writing GERRORN = GERROR (as Linux's
    /// GERROR handler does) and returns the bits that were active.
    @discardableResult
    public func acknowledgeGlobalErrors() -> UInt32 {
        let gerror = read32(.gerror)
        let active = gerror ^ read32(.gerrorn)
        if active != 0 { write32(.gerrorn, gerror) }
        return active
    }

    // MARK: Output queues

    /// Reads every event record between CONS and PROD, then writes CONS once with the new
    /// read index and OVACKFLG = OVFLG (acknowledging any overflow).
    public func drainEvents() -> (records: [EventRecord], overflowed: Bool) {
        let geometry = QueueIndex(log2Size: layout.eventQueueLog2Size)
        let prod = read32(.eventqProd)
        let overflowed = Reg.Queue.overflowFlag.isSet(prod ^ eventCons)
        var records: [EventRecord] = []
        var cons = eventCons & geometry.pointerMask
        while !geometry.isEmpty(prod: prod, cons: cons) {
            let slot = layout.eventQueue + UInt64(geometry.index(cons)) * 32
            records.append(EventRecord(dw0: bus.read64(at: slot), dw1: bus.read64(at: slot + 8), dw2: bus.read64(at: slot + 16), dw3: bus.read64(at: slot + 24)))
            cons = geometry.increment(cons)
        }
        eventCons = cons | (prod & Reg.Queue.overflowFlag.mask32)
        write32(.eventqCons, eventCons)
        return (records, overflowed)
    }

    /// Reads every PRI queue entry between CONS and PROD, then writes CONS once with the new
    /// read index and OVACKFLG = OVFLG (the §8.1.1 recovery step).
    public func drainPRIQueue() -> (entries: [PRIQEntry], overflowed: Bool) {
        let geometry = QueueIndex(log2Size: layout.priQueueLog2Size)
        let prod = read32(.priqProd)
        let overflowed = Reg.Queue.overflowFlag.isSet(prod ^ priCons)
        var entries: [PRIQEntry] = []
        var cons = priCons & geometry.pointerMask
        while !geometry.isEmpty(prod: prod, cons: cons) {
            let slot = layout.priQueue + UInt64(geometry.index(cons)) * 16
            entries.append(PRIQEntry(dw0: bus.read64(at: slot), dw1: bus.read64(at: slot + 8)))
            cons = geometry.increment(cons)
        }
        priCons = cons | (prod & Reg.Queue.overflowFlag.mask32)
        write32(.priqCons, priCons)
        return (entries, overflowed)
    }
}
