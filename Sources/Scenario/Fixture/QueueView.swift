import Platform
import SMMUv3Layout
import SMMUv3

/// One of the SMMU's queues as its registers and memory hold it (§3.5): the stepper shows it
/// as a ring and `expect queue` checks it. Reading it has no side effect.
struct QueueView {
    let queue: FixtureQueue
    /// The BASE register's value.
    let base: UInt64
    /// log2 of the number of slots (LOG2SIZE, capped at 19).
    let log2: Int
    /// The ring's physical address.
    let address: UInt64
    /// PROD and CONS as the registers read (wrap, OVFLG/OVACKFLG and ERR bits included).
    let prod: UInt32
    let cons: UInt32
    /// Bytes per entry.
    let entryBytes: UInt64
    private let model: SMMU
    private let memory: PhysicalMemory

    init(model: SMMU, memory: PhysicalMemory, queue: FixtureQueue) {
        self.model = model
        self.memory = memory
        self.queue = queue
        base = model.peek(queue.registers.base)
        log2 = min(Int(Reg.Queue.log2Size.extract(base)), 19)
        address = Reg.Queue.address.extract(base)
        prod = UInt32(truncatingIfNeeded: model.peek(queue.registers.prod))
        cons = UInt32(truncatingIfNeeded: model.peek(queue.registers.cons))
        entryBytes = queue == .evtq ? 32 : 16
    }

    /// Slots in the ring.
    var size: UInt32 { UInt32(1) << UInt32(log2) }
    var indexMask: UInt32 { size - 1 }
    var wrapBit: UInt32 { size }
    /// PROD and CONS as index and wrap only.
    var prodPointer: UInt32 { prod & (indexMask | wrapBit) }
    var consPointer: UInt32 { cons & (indexMask | wrapBit) }
    /// Entries between CONS and PROD (more than `size`: the pointers are inconsistent).
    var waiting: UInt32 { (prodPointer &- consPointer) & (2 * size - 1) }
    /// EVTQ/PRIQ: PROD.OVFLG differs from CONS.OVACKFLG (§7.4, §8.2.1).
    var overflowed: Bool {
        queue != .cmdq && Reg.Queue.overflowFlag.isSet(UInt64(prod)) != Reg.Queue.overflowFlag.isSet(UInt64(cons))
    }
    /// CMDQ_CONS.ERR (§7.1).
    var commandError: UInt64 { queue == .cmdq ? Reg.Queue.consErr.extract(UInt64(cons)) : 0 }

    /// `index N, wrap W` of a pointer.
    func describe(_ pointer: UInt32) -> String { "index \(pointer & indexMask), wrap \(pointer & wrapBit != 0 ? 1 : 0)" }

    /// The doublewords of a slot.
    func words(_ slot: Int) -> [UInt64] {
        let at = address &+ UInt64(UInt32(truncatingIfNeeded: slot) & indexMask) &* entryBytes
        return (0..<Int(entryBytes / 8)).map { memory.read64(at: at &+ UInt64($0) * 8) }
    }

    /// A slot's entry decoded on one line (a command as the SMMU would decode it, an event
    /// record, a PRI queue entry).
    func entry(_ slot: Int) -> String {
        let words = words(slot)
        let text: String
        switch queue {
        case .cmdq:
            let raw = CommandEntry(dw0: words[0], dw1: words[1])
            switch Command.decode(raw, features: model.commandFeatures) {
            case .success(let command): text = command.description
            case .failure(let illegal): text = "\(raw) ILLEGAL: \(illegal)"
            }
        case .evtq: text = "\(EventRecord(dw0: words[0], dw1: words[1], dw2: words[2], dw3: words[3]))"
        case .priq: text = "\(PRIQEntry(dw0: words[0], dw1: words[1]))"
        }
        return text.split(separator: "\n").joined(separator: "; ")
    }
}

extension FixtureQueue {
    /// Its BASE, PROD and CONS registers.
    var registers: (base: SMMURegister, prod: SMMURegister, cons: SMMURegister) {
        switch self {
        case .cmdq: (.cmdqBase, .cmdqProd, .cmdqCons)
        case .evtq: (.eventqBase, .eventqProd, .eventqCons)
        case .priq: (.priqBase, .priqProd, .priqCons)
        }
    }
}
