import Platform
import SMMUv3Layout
import VMSA

/// The registers of one of the three queues: base, producer and consumer pointers.
struct QueueRegisters {
    /// *_BASE as stored (RA/WA, ADDR truncated to OAS, LOG2SIZE as written).
    var base: UInt64 = 0
    /// PROD as stored (index field and, for output queues, OVFLG).
    var prod: UInt32 = 0
    /// CONS as stored (index field and OVACKFLG, or CMDQ_CONS.ERR).
    var cons: UInt32 = 0
    /// IDR1 maximum log2 size.
    let maxLog2: Int
    /// Entry size in bytes.
    let entryBytes: UInt64

    init(maxLog2: Int, entryBytes: UInt64) {
        self.maxLog2 = maxLog2
        self.entryBytes = entryBytes
    }

    /// The effective LOG2SIZE: the written value capped by IDR1 (§6.3.26).
    @inline(__always) var log2Size: Int { min(Int(Reg.Queue.log2Size.extract(base)), maxLog2) }
    /// Index arithmetic at the effective size.
    @inline(__always) var geometry: QueueIndex { QueueIndex(log2Size: log2Size) }
    /// The effective base: ADDR aligned down to the larger of the queue size and 32 bytes.
    @inline(__always) var baseAddress: UInt64 {
        let bytes = max(entryBytes << UInt64(log2Size), 32)
        return Reg.Queue.address.extract(base) & ~(bytes &- 1)
    }
    /// The address of the slot a pointer designates.
    @inline(__always) func slotAddress(_ pointer: UInt32) -> UInt64 {
        baseAddress &+ UInt64(geometry.index(pointer)) &* entryBytes
    }
    /// PROD's index and wrap bits.
    @inline(__always) var prodPointer: UInt32 { prod & geometry.pointerMask }
    /// CONS's index and wrap bits.
    @inline(__always) var consPointer: UInt32 { cons & geometry.pointerMask }
    /// Whether the queue holds no entries.
    @inline(__always) var isEmpty: Bool { geometry.isEmpty(prod: prod, cons: cons) }
    /// Whether every slot is occupied.
    @inline(__always) var isFull: Bool { geometry.isFull(prod: prod, cons: cons) }
    /// Whether PROD and CONS describe a legal state.
    @inline(__always) var isConsistent: Bool { geometry.isConsistent(prod: prod, cons: cons) }
}
