/// Where a platform has RAM: a set of page-aligned physical address ranges.
///
/// Device (DMA) accesses outside RAM and outside every device window get an external abort,
/// as on a real interconnect, and cost nothing; so does a wild MSI or a descriptor pointing
/// nowhere. CPU writes outside RAM are dropped and counted, CPU reads return zero.
public struct MemoryMap: Sendable, Hashable, CustomStringConvertible {
    /// The RAM ranges, sorted, merged and page aligned.
    public let ram: [ClosedRange<UInt64>]

    /// Why a memory map cannot be built.
    public enum Invalid: Error, Equatable, CustomStringConvertible {
        /// A range is not aligned to 4 KB at both ends.
        case unaligned(ClosedRange<UInt64>)
        /// A range reaches beyond the 52-bit physical address space.
        case outsidePhysicalSpace(ClosedRange<UInt64>)

        public var description: String {
            switch self {
            case .unaligned(let range): "RAM range \(hex(range.lowerBound))...\(hex(range.upperBound)) is not 4 KB aligned"
            case .outsidePhysicalSpace(let range): "RAM range \(hex(range.lowerBound))...\(hex(range.upperBound)) leaves the 52-bit physical space"
            }
        }
    }

    /// RAM in `ranges` (each must start on a 4 KB boundary and end just before one).
    public init(ram ranges: [ClosedRange<UInt64>]) throws(Invalid) {
        let pageMask = UInt64(PhysicalMemory.pageSize - 1)
        for range in ranges {
            guard range.lowerBound & pageMask == 0, range.upperBound & pageMask == pageMask else { throw .unaligned(range) }
            guard PhysicalMemory.contains(range.upperBound) else { throw .outsidePhysicalSpace(range) }
        }
        var merged: [ClosedRange<UInt64>] = []
        for range in ranges.sorted(by: { $0.lowerBound < $1.lowerBound }) {
            if let previous = merged.last, range.lowerBound <= previous.upperBound &+ 1 {
                merged[merged.count - 1] = previous.lowerBound...max(previous.upperBound, range.upperBound)
            } else {
                merged.append(range)
            }
        }
        ram = merged
    }

    private init(checked ranges: [ClosedRange<UInt64>]) {
        ram = ranges
    }

    /// 64 GiB of RAM at physical address 0: room for every table, queue and buffer the
    /// bundled tests, demos and fixtures use, while a stray address beyond it aborts.
    public static let `default` = MemoryMap(checked: [0...(UInt64(64) << 30) - 1])

    /// The whole 52-bit physical address space is RAM (for tests of the highest addresses).
    public static let wholePhysicalSpace = MemoryMap(checked: [0...(UInt64(1) << UInt64(PhysicalMemory.addressBits)) - 1])

    /// Whether every byte of `[address, address + length)` is RAM.
    @inlinable
    public func contains(_ address: UInt64, length: Int = 1) -> Bool {
        let (last, overflow) = address.addingReportingOverflow(UInt64(max(length, 1)) &- 1)
        guard !overflow else { return false }
        for range in ram where range.lowerBound <= address {
            if last <= range.upperBound { return true }
        }
        return false
    }

    /// The total RAM size in bytes.
    public var size: UInt64 { ram.reduce(0) { $0 &+ ($1.upperBound &- $1.lowerBound &+ 1) } }

    public var description: String {
        ram.map { "\(hex($0.lowerBound))...\(hex($0.upperBound))" }.joined(separator: ", ")
    }
}

/// Sparse little-endian RAM laid out by a ``MemoryMap``.
///
/// Only pages that hold non-zero data cost memory: reads of untouched memory return zero and a
/// write of zero to an untouched page changes nothing, so neither allocates. Pages are 4 KB and
/// found through an open-addressing hash of page numbers (about 16 bytes of bookkeeping per
/// page) behind a 64-entry direct-mapped cache of recent pages, so a table walk's descriptor
/// reads cost one compare each when the tables are warm.
///
/// Reads outside RAM return zero; writes outside RAM are dropped and counted in
/// ``writesOutsideRAM``. The ``Bus`` turns device accesses outside RAM into external aborts.
public final class PhysicalMemory {
    /// The number of physical address bits the platform has.
    public static let addressBits = 52
    /// log2 of the page size.
    public static let pageShift = 12
    /// The page size in bytes.
    public static let pageSize = 1 << pageShift

    @usableFromInline static let recentSlots = 64

    /// Where RAM is.
    public let map: MemoryMap

    /// Page number + 1 per hash slot (0 = empty).
    @exclusivity(unchecked) private var slotKeys: UnsafeMutablePointer<UInt64>
    @exclusivity(unchecked) private var slotPages: UnsafeMutablePointer<UnsafeMutableRawPointer?>
    @exclusivity(unchecked) private var slotShift: UInt64
    @exclusivity(unchecked) private var slotCount: Int
    /// The direct-mapped cache: page number + 1 per slot (0 = empty) and the page.
    @usableFromInline let recentKeys: UnsafeMutablePointer<UInt64>
    @usableFromInline let recentPages: UnsafeMutablePointer<UnsafeMutableRawPointer?>

    /// The number of 4 KB pages allocated (written with non-zero data at least once).
    @exclusivity(unchecked) public private(set) var allocatedPageCount = 0
    /// The number of writes (of non-zero data) dropped because they fell outside RAM.
    @exclusivity(unchecked) public private(set) var writesOutsideRAM = 0

    /// Creates an empty (all-zero) memory with RAM where `map` says.
    public init(map: MemoryMap = .default) {
        self.map = map
        primaryLow = map.ram.first?.lowerBound ?? 1
        primaryHigh = map.ram.first?.upperBound ?? 0
        slotCount = 64
        slotShift = UInt64(64 - 6)
        slotKeys = .allocate(capacity: 64)
        slotKeys.initialize(repeating: 0, count: 64)
        slotPages = .allocate(capacity: 64)
        slotPages.initialize(repeating: nil, count: 64)
        recentKeys = .allocate(capacity: PhysicalMemory.recentSlots)
        recentKeys.initialize(repeating: 0, count: PhysicalMemory.recentSlots)
        recentPages = .allocate(capacity: PhysicalMemory.recentSlots)
        recentPages.initialize(repeating: nil, count: PhysicalMemory.recentSlots)
    }

    deinit {
        for index in 0..<slotCount where slotKeys[index] != 0 { slotPages[index]?.deallocate() }
        slotKeys.deallocate()
        slotPages.deallocate()
        recentKeys.deallocate()
        recentPages.deallocate()
    }

    /// Whether `address` lies inside the 52-bit physical space.
    @inlinable
    public static func contains(_ address: UInt64) -> Bool {
        address >> UInt64(addressBits) == 0
    }

    /// Whether the `length`-byte range at `address` lies inside the physical space.
    @inlinable
    public static func contains(_ address: UInt64, length: Int) -> Bool {
        guard length > 0 else { return contains(address) }
        let (end, overflow) = address.addingReportingOverflow(UInt64(length) - 1)
        return !overflow && contains(end)
    }

    /// The first RAM range, checked inline before the general map (most platforms have one).
    @usableFromInline let primaryLow: UInt64
    @usableFromInline let primaryHigh: UInt64

    /// Whether every byte of `[address, address + length)` is RAM.
    @inlinable @inline(__always)
    public func isRAM(_ address: UInt64, length: Int = 1) -> Bool {
        let last = address &+ UInt64(max(length, 1) &- 1)
        if address >= primaryLow && last <= primaryHigh && last >= address { return true }
        return map.contains(address, length: length)
    }

    // MARK: Page lookup

    @inline(__always)
    private func hashSlot(_ key: UInt64) -> Int {
        Int(truncatingIfNeeded: (key &* 0x9E37_79B9_7F4A_7C15) >> slotShift)
    }

    /// The page holding `pageNumber`, if it was allocated.
    @inline(__always)
    private func existingPage(_ pageNumber: UInt64) -> UnsafeMutableRawPointer? {
        let key = pageNumber &+ 1
        let recent = Int(truncatingIfNeeded: pageNumber) & (PhysicalMemory.recentSlots - 1)
        if recentKeys[recent] == key { return recentPages[recent] }
        return lookUp(key, recent: recent)
    }

    private func lookUp(_ key: UInt64, recent: Int) -> UnsafeMutableRawPointer? {
        var slot = hashSlot(key)
        let mask = slotCount - 1
        while true {
            let stored = slotKeys[slot]
            if stored == key {
                recentKeys[recent] = key
                recentPages[recent] = slotPages[slot]
                return slotPages[slot]
            }
            if stored == 0 { return nil }
            slot = (slot &+ 1) & mask
        }
    }

    /// The page for a write of `nonZero` data: the existing page, a new one when the page is
    /// RAM and the data is not zero, or nil (nothing to do, or outside RAM).
    @inline(__always)
    private func pageForWrite(_ pageNumber: UInt64, nonZero: @autoclosure () -> Bool) -> UnsafeMutableRawPointer? {
        if let page = existingPage(pageNumber) { return page }
        guard nonZero() else { return nil }
        guard isRAM(pageNumber << UInt64(PhysicalMemory.pageShift)) else {
            writesOutsideRAM &+= 1
            return nil
        }
        return allocate(pageNumber)
    }

    private func allocate(_ pageNumber: UInt64) -> UnsafeMutableRawPointer {
        if (allocatedPageCount + 1) * 2 > slotCount { grow() }
        let page = UnsafeMutableRawPointer.allocate(byteCount: PhysicalMemory.pageSize, alignment: 64)
        page.initializeMemory(as: UInt8.self, repeating: 0, count: PhysicalMemory.pageSize)
        insert(pageNumber &+ 1, page)
        allocatedPageCount += 1
        let recent = Int(truncatingIfNeeded: pageNumber) & (PhysicalMemory.recentSlots - 1)
        recentKeys[recent] = pageNumber &+ 1
        recentPages[recent] = page
        return page
    }

    private func insert(_ key: UInt64, _ page: UnsafeMutableRawPointer) {
        var slot = hashSlot(key)
        let mask = slotCount - 1
        while slotKeys[slot] != 0 { slot = (slot &+ 1) & mask }
        slotKeys[slot] = key
        slotPages[slot] = page
    }

    private func grow() {
        let oldKeys = slotKeys, oldPages = slotPages, oldCount = slotCount
        slotCount = oldCount * 2
        slotShift -= 1
        slotKeys = .allocate(capacity: slotCount)
        slotKeys.initialize(repeating: 0, count: slotCount)
        slotPages = .allocate(capacity: slotCount)
        slotPages.initialize(repeating: nil, count: slotCount)
        for index in 0..<oldCount where oldKeys[index] != 0 {
            insert(oldKeys[index], oldPages[index]!)
        }
        oldKeys.deallocate()
        oldPages.deallocate()
    }

    // MARK: Typed accesses

    @inline(__always)
    private func load<T: FixedWidthInteger>(_ address: UInt64, as type: T.Type) -> T {
        let offset = Int(truncatingIfNeeded: address) & (PhysicalMemory.pageSize - 1)
        if offset + MemoryLayout<T>.size <= PhysicalMemory.pageSize {
            guard let page = existingPage(address >> UInt64(PhysicalMemory.pageShift)) else { return 0 }
            return T(littleEndian: page.loadUnaligned(fromByteOffset: offset, as: T.self))
        }
        var value: T = 0
        for byte in 0..<MemoryLayout<T>.size {
            value |= T(read8(at: address &+ UInt64(byte))) << T(8 * byte)
        }
        return value
    }

    @inline(__always)
    private func store<T: FixedWidthInteger>(_ value: T, _ address: UInt64) {
        let offset = Int(truncatingIfNeeded: address) & (PhysicalMemory.pageSize - 1)
        if offset + MemoryLayout<T>.size <= PhysicalMemory.pageSize {
            guard let page = pageForWrite(address >> UInt64(PhysicalMemory.pageShift), nonZero: value != 0) else { return }
            page.storeBytes(of: value.littleEndian, toByteOffset: offset, as: T.self)
            return
        }
        for byte in 0..<MemoryLayout<T>.size {
            write8(UInt8(truncatingIfNeeded: value >> T(8 * byte)), at: address &+ UInt64(byte))
        }
    }

    /// Reads one byte.
    public func read8(at address: UInt64) -> UInt8 {
        guard let page = existingPage(address >> UInt64(PhysicalMemory.pageShift)) else { return 0 }
        return page.load(fromByteOffset: Int(truncatingIfNeeded: address) & (PhysicalMemory.pageSize - 1), as: UInt8.self)
    }

    /// Writes one byte.
    public func write8(_ value: UInt8, at address: UInt64) {
        guard let page = pageForWrite(address >> UInt64(PhysicalMemory.pageShift), nonZero: value != 0) else { return }
        page.storeBytes(of: value, toByteOffset: Int(truncatingIfNeeded: address) & (PhysicalMemory.pageSize - 1), as: UInt8.self)
    }

    /// Reads a little-endian 16-bit value (any alignment).
    public func read16(at address: UInt64) -> UInt16 { load(address, as: UInt16.self) }
    /// Reads a little-endian 32-bit value (any alignment).
    public func read32(at address: UInt64) -> UInt32 { load(address, as: UInt32.self) }
    /// Reads a little-endian 64-bit value (any alignment). A read within a recently used page
    /// is inlined into the caller: a table walk's descriptor reads cost a few instructions.
    @inlinable @inline(__always)
    public func read64(at address: UInt64) -> UInt64 {
        let offset = Int(truncatingIfNeeded: address) & (PhysicalMemory.pageSize - 1)
        let pageNumber = address >> UInt64(PhysicalMemory.pageShift)
        let slot = Int(truncatingIfNeeded: pageNumber) & (PhysicalMemory.recentSlots - 1)
        if offset <= PhysicalMemory.pageSize - 8, recentKeys[slot] == pageNumber &+ 1, let page = recentPages[slot] {
            return UInt64(littleEndian: page.loadUnaligned(fromByteOffset: offset, as: UInt64.self))
        }
        return slowRead64(at: address)
    }

    @usableFromInline
    func slowRead64(at address: UInt64) -> UInt64 { load(address, as: UInt64.self) }

    /// Writes a little-endian 16-bit value (any alignment).
    public func write16(_ value: UInt16, at address: UInt64) { store(value, address) }
    /// Writes a little-endian 32-bit value (any alignment).
    public func write32(_ value: UInt32, at address: UInt64) { store(value, address) }
    /// Writes a little-endian 64-bit value (any alignment).
    public func write64(_ value: UInt64, at address: UInt64) { store(value, address) }

    // MARK: Bulk accesses

    /// Calls `body(address, bufferOffset, chunk)` for each piece of `[address, address + count)`
    /// that lies within one page.
    @inline(__always)
    private func forEachChunk(at address: UInt64, count: Int, _ body: (UInt64, Int, Int) -> Void) {
        var done = 0
        while done < count {
            let current = address &+ UInt64(done)
            let offset = Int(truncatingIfNeeded: current) & (PhysicalMemory.pageSize - 1)
            let chunk = min(PhysicalMemory.pageSize - offset, count - done)
            body(current, done, chunk)
            done += chunk
        }
    }

    /// Copies `buffer.count` bytes starting at `address` into `buffer`.
    public func read(at address: UInt64, into buffer: UnsafeMutableRawBufferPointer) {
        guard let base = buffer.baseAddress else { return }
        forEachChunk(at: address, count: buffer.count) { current, done, chunk in
            let offset = Int(truncatingIfNeeded: current) & (PhysicalMemory.pageSize - 1)
            if let page = existingPage(current >> UInt64(PhysicalMemory.pageShift)) {
                (base + done).copyMemory(from: page + offset, byteCount: chunk)
            } else {
                (base + done).initializeMemory(as: UInt8.self, repeating: 0, count: chunk)
            }
        }
    }

    /// Copies the bytes of `buffer` to memory starting at `address`.
    public func write(at address: UInt64, from buffer: UnsafeRawBufferPointer) {
        guard let base = buffer.baseAddress else { return }
        forEachChunk(at: address, count: buffer.count) { current, done, chunk in
            let offset = Int(truncatingIfNeeded: current) & (PhysicalMemory.pageSize - 1)
            let source = UnsafeRawBufferPointer(start: base + done, count: chunk)
            // Scanned only when the page does not exist yet (a zero chunk allocates nothing).
            if let page = pageForWrite(current >> UInt64(PhysicalMemory.pageShift), nonZero: source.contains { $0 != 0 }) {
                (page + offset).copyMemory(from: base + done, byteCount: chunk)
            }
        }
    }

    /// Reads `count` bytes starting at `address`.
    public func bytes(at address: UInt64, count: Int) -> [UInt8] {
        var result = [UInt8](repeating: 0, count: max(0, count))
        result.withUnsafeMutableBytes { read(at: address, into: $0) }
        return result
    }

    /// Writes `bytes` starting at `address`.
    public func write(_ bytes: [UInt8], at address: UInt64) {
        bytes.withUnsafeBytes { write(at: address, from: $0) }
    }

    /// Sets `count` bytes starting at `address` to `value`.
    public func fill(_ value: UInt8, at address: UInt64, count: Int) {
        forEachChunk(at: address, count: max(count, 0)) { current, _, chunk in
            let offset = Int(truncatingIfNeeded: current) & (PhysicalMemory.pageSize - 1)
            if let page = pageForWrite(current >> UInt64(PhysicalMemory.pageShift), nonZero: value != 0) {
                (page + offset).initializeMemory(as: UInt8.self, repeating: value, count: chunk)
            }
        }
    }
}
