import Platform
import SMMUv3Layout
import VMSA

/// The translation regime of cached translations (§3.3.3): with the VMID and ASID it makes a
/// translation unique.
enum StreamWorld: UInt8 {
    case el1 = 0
    case el2 = 1
    case el2E2H = 2
}

/// What a TLB entry translates.
enum TLBEntryKind: UInt8 {
    /// Stage 1 only: VA to PA.
    case stage1 = 0
    /// Stage 2 only (or the stage-2 part of a nested walk): IPA to PA.
    case stage2 = 1
    /// Nested stage 1 + stage 2 combined: VA to PA.
    case nested = 2
}

/// The tag of a TLB entry: StreamWorld, VMID, ASID (or global, with its ASET), and kind, in
/// bits [37:0].
struct TLBTag: Equatable, BitwiseCopyable {
    var bits: UInt64

    @inline(__always)
    init(kind: TLBEntryKind, world: StreamWorld, vmid: UInt16, asid: UInt16, global: Bool) {
        bits = UInt64(asid) | UInt64(vmid) << 16 | UInt64(world.rawValue) << 32 | (global ? 1 << 34 : 0) | UInt64(kind.rawValue) << 35
    }

    @inline(__always)
    init(bits: UInt64) {
        self.bits = bits
    }

    @inline(__always) var asid: UInt16 { UInt16(truncatingIfNeeded: bits) }
    @inline(__always) var vmid: UInt16 { UInt16(truncatingIfNeeded: bits >> 16) }
    @inline(__always) var world: StreamWorld { StreamWorld(rawValue: UInt8(truncatingIfNeeded: bits >> 32) & 3) ?? .el1 }
    @inline(__always) var isGlobal: Bool { bits & (1 << 34) != 0 }
    @inline(__always) var kind: TLBEntryKind { TLBEntryKind(rawValue: UInt8(truncatingIfNeeded: bits >> 35) & 3) ?? .stage1 }

    /// The same tag for global entries: the ASID is replaced by the global marker and the
    /// ASET of the inserting CD (global entries match only lookups with the same ASET, §3.17.1).
    @inline(__always) func globalVariant(aset: Bool) -> TLBTag {
        var copy = self
        copy.bits = (bits & ~0xFFFF) | (1 << 34) | (aset ? 1 << 37 : 0)
        return copy
    }
}

/// The key of a TLB entry: tag, input page number and page size, in two words.
struct TLBKey: CacheKey {
    /// The tag in bits [37:0], the page size (log2) in bits [63:56].
    var tagAndShift: UInt64
    /// The input address shifted right by `shift`.
    var page: UInt64

    @inline(__always)
    init(tag: TLBTag, page: UInt64, shift: UInt8) {
        tagAndShift = tag.bits | UInt64(shift) << 56
        self.page = page
    }

    /// The tag.
    @inline(__always) var tag: TLBTag { TLBTag(bits: tagAndShift & 0x00FF_FFFF_FFFF_FFFF) }
    /// log2 of the bytes the entry maps.
    @inline(__always) var shift: UInt8 { UInt8(truncatingIfNeeded: tagAndShift >> 56) }

    @inline(__always) var hash64: UInt64 { fibonacciHash((page &* 0xC2B2_AE3D_27D4_EB4F) ^ tagAndShift) }
}

/// One cached translation.
struct TLBEntry: BitwiseCopyable {
    /// The output (physical) address of the start of the mapped block or page.
    var outputBase: UInt64
    /// Nested entries: the IPA of the start of the page (for stage-2 fault reports).
    var ipaBase: UInt64
    /// Stage-1 permissions (all for stage-2-only entries).
    var stage1: Permissions
    /// Stage-2 permissions (all for stage-1-only entries).
    var stage2: Permissions
    /// Flags: bit 0 stage-1 writable-clean (dirty update needed), bit 1 stage-2 writable-clean,
    /// bit 2 the stage-1 page is unprivileged-accessible (PAN).
    var flags: UInt8
    /// TG code (1 = 4 KB, 2 = 16 KB, 3 = 64 KB) of the walk that determines the entry.
    var granule: UInt8
    /// The level of the leaf (TTL matching).
    var level: Int8
    /// The stream that inserted it (checked mode re-walks through its configuration).
    var streamID: UInt32
    /// Its SubstreamID, or `UInt32.max` for none.
    var substreamID: UInt32

    static let stage1DirtyUpdatable = LeafFlags.stage1DirtyUpdatable.rawValue
    static let stage2DirtyUpdatable = LeafFlags.stage2DirtyUpdatable.rawValue
    static let unprivilegedAccessible = LeafFlags.unprivilegedAccessible.rawValue
}

/// A TLB entry found by ``TLB/probe(_:input:includeGlobal:globalASET:)``.
struct TLBProbe {
    /// The entry.
    let entry: TLBEntry
    /// Its key.
    let key: TLBKey
    /// log2 of the bytes it maps.
    var shift: UInt8 { key.shift }
}

/// The model's TLB: leaf translations tagged by StreamWorld, VMID, ASID/global and kind
/// (§3.17), looked up by trying each page size present. Intermediate table descriptors are
/// not cached (walk caches are optional, §3.21.1). Set-associative with FIFO replacement
/// within a set (see ``SetAssociativeCache``).
struct TLB {
    let table: SetAssociativeCache<TLBKey, TLBEntry>
    /// Per kind, a bitmask of the page sizes (log2) entries were inserted with.
    private var shifts: (UInt64, UInt64, UInt64) = (0, 0, 0)
    /// Per kind, whether global entries were inserted.
    private var globals: (Bool, Bool, Bool) = (false, false, false)
    /// Bumped whenever entries are removed (invalidation or flush; not capacity evictions):
    /// copies of entries taken at an older generation must not be used.
    private(set) var generation: UInt64 = 1
    /// Hits and misses (for diagnostics and benchmarks).
    var hits = 0
    var misses = 0

    init(capacity: Int) {
        table = SetAssociativeCache(capacityLimit: capacity, adaptiveInsertion: true)
    }

    var count: Int { table.count }

    @inline(__always)
    func shiftMask(_ kind: TLBEntryKind) -> UInt64 {
        switch kind {
        case .stage1: shifts.0
        case .stage2: shifts.1
        case .nested: shifts.2
        }
    }

    @inline(__always)
    func hasGlobal(_ kind: TLBEntryKind) -> Bool {
        switch kind {
        case .stage1: globals.0
        case .stage2: globals.1
        case .nested: globals.2
        }
    }

    /// Looks up `input` under `tag` (and, for ASID-tagged regimes, the global entries of the
    /// same tag), copying the entry out.
    @inline(__always)
    mutating func lookup(_ tag: TLBTag, input: UInt64, includeGlobal: Bool, globalASET: Bool = false) -> (key: TLBKey, entry: TLBEntry)? {
        probe(tag, input: input, includeGlobal: includeGlobal, globalASET: globalASET).map { ($0.key, $0.entry) }
    }

    /// The key `input` has under `tag` when only one page size is in use for the tag's kind.
    @_transparent
    func onlyKey(_ tag: TLBTag, input: UInt64) -> TLBKey? {
        let bits = shiftMask(tag.kind)
        guard bits != 0 && bits & (bits &- 1) == 0 else { return nil }
        let shift = UInt8(truncatingIfNeeded: bits.trailingZeroBitCount)
        return TLBKey(tag: tag, page: input &>> UInt64(shift), shift: shift)
    }

    /// Looks up `input` under `tag` (and, for ASID-tagged regimes, the global entries of the
    /// same tag) and returns the entry in place. With one page size in use (the common case)
    /// the non-global entries take a single probe.
    @_transparent
    mutating func probe(_ tag: TLBTag, input: UInt64, includeGlobal: Bool, globalASET: Bool) -> TLBProbe? {
        if let key = onlyKey(tag, input: input) {
            if let entry = table.address(of: key) {
                hits &+= 1
                return TLBProbe(entry: entry.pointee, key: key)
            }
        } else if let found = find(tag, input: input) {
            hits &+= 1
            return found
        }
        return probeGlobals(tag, input: input, includeGlobal: includeGlobal, globalASET: globalASET)
    }

    /// The rest of ``probe(_:input:includeGlobal:globalASET:)`` once the non-global entries
    /// missed: the global entries of the same tag, when they apply and exist.
    @inline(never)
    mutating func probeGlobals(_ tag: TLBTag, input: UInt64, includeGlobal: Bool, globalASET: Bool) -> TLBProbe? {
        if includeGlobal && hasGlobal(tag.kind), let found = find(tag.globalVariant(aset: globalASET), input: input) {
            hits &+= 1
            return found
        }
        misses &+= 1
        return nil
    }

    /// The entry for `input` under `tag` at any of the page sizes in use for its kind.
    @inline(never)
    private func find(_ tag: TLBTag, input: UInt64) -> TLBProbe? {
        var bits = shiftMask(tag.kind)
        while bits != 0 {
            let shift = UInt8(truncatingIfNeeded: bits.trailingZeroBitCount)
            bits &= bits &- 1
            let key = TLBKey(tag: tag, page: input >> UInt64(shift), shift: shift)
            if let entry = table.address(of: key) { return TLBProbe(entry: entry.pointee, key: key) }
        }
        return nil
    }

    /// Inserts a translation.
    @_transparent
    mutating func insert(_ entry: TLBEntry, tag: TLBTag, input: UInt64, shift: UInt8) {
        let key = TLBKey(tag: tag, page: input &>> UInt64(shift), shift: shift)
        table.insert(entry, for: key)
        let bit = UInt64(1) << UInt64(shift)
        switch tag.kind {
        case .stage1:
            shifts.0 |= bit
            if tag.isGlobal { globals.0 = true }
        case .stage2:
            shifts.1 |= bit
            if tag.isGlobal { globals.1 = true }
        case .nested:
            shifts.2 |= bit
            if tag.isGlobal { globals.2 = true }
        }
    }

    /// Removes everything.
    @discardableResult
    mutating func flush() -> Int {
        generation &+= 1
        shifts = (0, 0, 0)
        globals = (false, false, false)
        return table.removeAll()
    }

    /// Removes every entry matching `predicate`.
    @discardableResult
    mutating func remove(where predicate: (TLBKey, TLBEntry) -> Bool) -> Int {
        generation &+= 1
        return table.removeAll(where: predicate)
    }

    /// Removes the entries of `tag` that map any address in `[address, address + length)`
    /// and satisfy `filter` (used for VA and IPA invalidations). Probes page by page when
    /// the range is small, scans otherwise.
    @discardableResult
    mutating func removeCovering(address: UInt64, length: UInt64, tag: TLBTag, filter: (TLBEntry) -> Bool) -> Int {
        generation &+= 1
        var bits = shiftMask(tag.kind)
        if bits == 0 || (tag.isGlobal && !hasGlobal(tag.kind)) { return 0 }
        var removed = 0
        let last = length == 0 ? address : address &+ (length &- 1)
        let end = last < address ? UInt64.max : last
        while bits != 0 {
            let shift = UInt64(bits.trailingZeroBitCount)
            bits &= bits &- 1
            let first = address >> shift
            let lastPage = end >> shift
            if lastPage &- first < 64 {
                var page = first
                while true {
                    if table.remove(TLBKey(tag: tag, page: page, shift: UInt8(shift)), if: filter) { removed += 1 }
                    if page == lastPage { break }
                    page &+= 1
                }
            } else {
                let tagAndShift = tag.bits | shift << 56
                removed += table.removeAll { key, entry in
                    key.tagAndShift == tagAndShift && key.page >= first && key.page <= lastPage && filter(entry)
                }
            }
        }
        return removed
    }
}
