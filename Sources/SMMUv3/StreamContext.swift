import Platform

/// What the TLB-hit path needs to know about a stream (and SubstreamID), memoised from the STE
/// and CD caches. It is only a shortcut through those caches: it is discarded whenever any STE
/// or CD cache entry is removed or evicted, so it never outlives the entries it came from.
struct StreamContext: BitwiseCopyable {
    enum Kind: UInt8 {
        /// Not filled.
        case empty
        /// No translation (Config 0b100, or both stages bypassed): the address passes.
        case identity
        /// Stage 2 only (or stage 1 bypassed by S1DSS): the address is an IPA.
        case stage2
        /// Stage 1 (possibly nested).
        case stage1
    }

    var generation: UInt64 = 0
    var streamID: UInt32 = 0
    var substreamID: UInt32 = .max
    var kind: Kind = .empty
    var tag = TLBTag(kind: .stage1, world: .el1, vmid: 0, asid: 0, global: false)
    var includeGlobal = false
    var aset = false
    var privCfg: UInt8 = 0
    var instCfg: UInt8 = 0
    var table0Enabled = false
    var table1Enabled = false
    var inputBits0: UInt8 = 0
    var inputBits1: UInt8 = 0
    var tbi0 = false
    var tbi1 = false
    var pan = false
    /// Stage-2 input size (stage-2 kinds).
    var stage2InputBits: UInt8 = 0
}

/// A small direct-mapped array of stream contexts.
final class StreamContextCache {
    static let slots = 64
    @exclusivity(unchecked) var entries: UnsafeMutablePointer<StreamContext>
    /// Bumped whenever a configuration cache entry goes away; contexts of older generations
    /// are ignored.
    @exclusivity(unchecked) var generation: UInt64 = 1

    init() {
        entries = .allocate(capacity: StreamContextCache.slots)
        entries.initialize(repeating: StreamContext(), count: StreamContextCache.slots)
    }

    deinit { entries.deallocate() }

    @inline(__always)
    static func slot(_ streamID: UInt32, _ substreamID: UInt32) -> Int {
        Int(truncatingIfNeeded: ((UInt64(streamID) &* 0x9E37_79B9) ^ UInt64(substreamID)) & UInt64(slots - 1))
    }

    /// The context for a stream, if current.
    @inline(__always)
    func context(_ streamID: UInt32, _ substreamID: UInt32) -> UnsafeMutablePointer<StreamContext>? {
        let entry = entries + StreamContextCache.slot(streamID, substreamID)
        guard entry.pointee.generation == generation, entry.pointee.streamID == streamID, entry.pointee.substreamID == substreamID else { return nil }
        return entry
    }

    func store(_ context: StreamContext) {
        var copy = context
        copy.generation = generation
        entries[StreamContextCache.slot(context.streamID, context.substreamID)] = copy
    }

    /// Forgets every context (a configuration cache entry was removed).
    @inline(__always)
    func invalidate() { generation &+= 1 }
}

extension SMMU {
    /// The TLB-hit fast path: the stream's memoised context and one TLB lookup. Returns nil
    /// (take the full path) for anything but a permitted hit, so faults, walks and every
    /// checked-mode comparison go through the complete translation procedure.
    @inline(__always)
    func fastTranslate(_ transaction: InboundTransaction) -> UInt64? {
        let substreamID = transaction.substreamID ?? .max
        guard let context = streamContexts.context(transaction.streamID, substreamID) else { return nil }
        let address = transaction.address
        var access = transaction.access
        switch context.pointee.privCfg {
        case 0b10: access.privileged = false
        case 0b11: access.privileged = true
        default: break
        }
        if !access.read {
            access.instruction = false
        } else if context.pointee.instCfg >= 0b10 {
            access.instruction = context.pointee.instCfg == 0b11
        }
        let needed = Permissions.needed(read: access.read, instruction: access.instruction, privileged: access.privileged)
        switch context.pointee.kind {
        case .empty:
            return nil
        case .identity:
            return address >> UInt64(oasBits) == 0 ? address : nil
        case .stage2:
            guard address >> UInt64(context.pointee.stage2InputBits) == 0, address >> UInt64(oasBits) == 0,
                  let hit = tlb.lookup(context.pointee.tag, input: address, includeGlobal: false),
                  hit.entry.stage2.contains(needed) else { return nil }
            return hit.entry.outputBase | (address & UInt64.lowBits(Int(hit.key.shift)))
        case .stage1:
            let upper = address & (1 << 55) != 0
            let enabled = upper ? context.pointee.table1Enabled : context.pointee.table0Enabled
            guard enabled else { return nil }
            let inputBits = upper ? context.pointee.inputBits1 : context.pointee.inputBits0
            let top = (upper ? context.pointee.tbi1 : context.pointee.tbi0) ? 55 : 63
            let checkedBits = top - Int(inputBits) + 1
            let field = (address >> UInt64(inputBits)) & UInt64.lowBits(checkedBits)
            guard field == 0 || field == UInt64.lowBits(checkedBits) else { return nil }
            let input = normalizedVA(address)
            guard let hit = tlb.lookup(context.pointee.tag, input: input, includeGlobal: context.pointee.includeGlobal, globalASET: context.pointee.aset) else { return nil }
            let entry = hit.entry
            guard entry.stage1.contains(needed), entry.stage2.contains(needed) else { return nil }
            if context.pointee.pan && access.privileged && !access.instruction && entry.flags & TLBEntry.unprivilegedAccessible != 0 { return nil }
            return entry.outputBase | (input & UInt64.lowBits(Int(hit.key.shift)))
        }
    }
}
