import Testing
import Platform
import SMMUv3
import SMMUv3Host
import Scenario

/// A bus with one SMMU on it and a host agent, for tests.
struct Rig {
    static let smmuBase: UInt64 = 0x0900_0000
    let bus: Bus
    let smmu: SMMU
    let host: SMMUHost

    /// Register helpers for an existing system.
    init(system: SMMUSystem) {
        bus = system.bus
        smmu = system.smmu
        host = system.host
    }

    init(_ configure: (inout SMMUConfiguration) -> Void = { _ in }, trace: TraceCategory = []) {
        var configuration = SMMUConfiguration.default
        configure(&configuration)
        bus = Bus(traceCategories: trace)
        do {
            smmu = try SMMU(configuration: configuration, bus: bus, base: Rig.smmuBase)
        } catch {
            fatalError("test rig: \(error)")
        }
        host = SMMUHost(bus: bus, base: Rig.smmuBase)
    }

    func read(_ register: SMMURegister) -> UInt32 { bus.read32(at: Rig.smmuBase + register.offset) }
    func write(_ register: SMMURegister, _ value: UInt32) { bus.write32(value, at: Rig.smmuBase + register.offset) }
    func read64(_ register: SMMURegister) -> UInt64 { bus.read64(at: Rig.smmuBase + register.offset) }
    func write64(_ register: SMMURegister, _ value: UInt64) { bus.write64(value, at: Rig.smmuBase + register.offset) }

    /// Sets CR0 and, when the SMMU acknowledges at once (acknowledge latency 0), checks that
    /// CR0ACK took the value.
    func enable(_ bits: UInt32, sourceLocation: SourceLocation = #_sourceLocation) {
        write(.cr0, bits)
        if smmu.configuration.acknowledgeLatency == 0 {
            #expect(smmu.peek(.cr0Ack) == UInt64(bits), "CR0ACK acknowledges CR0", sourceLocation: sourceLocation)
        }
    }

    /// A command queue at `address` with 2^log2 entries, pointers at zero, CMDQEN on.
    func startCommandQueue(at address: UInt64 = 0x4010_0000, log2: Int = 4, extraEnables: UInt32 = 0) {
        write64(.cmdqBase, address | UInt64(log2))
        write(.cmdqProd, 0)
        write(.cmdqCons, 0)
        enable((1 << 3) | extraEnables)
    }

    /// Writes entries at the producer index of a command queue at `address` and publishes them.
    func push(_ entries: [CommandEntry], queue address: UInt64 = 0x4010_0000, log2: Int = 4) {
        let geometry = QueueIndex(log2Size: log2)
        var prod = read(.cmdqProd) & geometry.pointerMask
        for entry in entries {
            let slot = address + UInt64(geometry.index(prod)) * 16
            bus.memory.write64(entry.dw0, at: slot)
            bus.memory.write64(entry.dw1, at: slot + 8)
            prod = geometry.increment(prod)
        }
        write(.cmdqProd, prod)
    }

    func push(_ commands: [Command], queue address: UInt64 = 0x4010_0000, log2: Int = 4) {
        push(commands.map(\.entry), queue: address, log2: log2)
    }

    /// An event queue at `address` with 2^log2 entries, enabled (with CMDQ left as is).
    func startEventQueue(at address: UInt64 = 0x4020_0000, log2: Int = 2) {
        write64(.eventqBase, address | UInt64(log2))
        write(.eventqProd, 0)
        write(.eventqCons, 0)
        enable(read(.cr0) | (1 << 2))
    }

    /// A PRI queue at `address` with 2^log2 entries, PRIQEN and SMMUEN on.
    func startPRIQueue(at address: UInt64 = 0x4030_0000, log2: Int = 2) {
        write64(.priqBase, address | UInt64(log2))
        write(.priqProd, 0)
        write(.priqCons, 0)
        enable(read(.cr0) | (1 << 1) | 1)
    }

    /// The 32-bit word last written by an MSI to `address`.
    func memory32(_ address: UInt64) -> UInt32 { bus.memory.read32(at: address) }

    var cmdqErrActive: Bool { (read(.gerror) ^ read(.gerrorn)) & 1 != 0 }
}

/// A deterministic xorshift generator for fuzz-style tests.
struct SeededGenerator: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed == 0 ? 0x9E37_79B9_7F4A_7C15 : seed }
    mutating func next() -> UInt64 {
        state ^= state << 13
        state ^= state >> 7
        state ^= state << 17
        return state
    }
}
