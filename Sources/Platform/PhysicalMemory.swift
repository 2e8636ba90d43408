/// Sparse little-endian physical memory covering a 52-bit physical address space.
///
/// Only pages that have been written cost memory: reads of untouched memory return zero
/// without allocating. Pages are 4 KB and live in a four-level radix tree (10 bits of page
/// number per level), so a lookup is four dependent loads, plus a one-entry cache for the
/// common case of repeated accesses to the same page.
///
/// Addresses at or above 2^52 are outside the space: reads return zero and writes are
/// dropped. The ``Bus`` turns such device accesses into external aborts.
public final class PhysicalMemory {
    /// The number of physical address bits the memory covers.
    public static let addressBits = 52
    /// log2 of the page size.
    public static let pageShift = 12
    /// The page size in bytes.
    public static let pageSize = 1 << pageShift

    private static let levelBits = 10
    private static let levelEntries = 1 << levelBits
    private static let levelMask = UInt64(levelEntries - 1)

    private typealias Node = UnsafeMutablePointer<UnsafeMutableRawPointer?>

    private let root: Node
    @exclusivity(unchecked) private var cachedPageNumber: UInt64 = .max
    @exclusivity(unchecked) private var cachedPage: UnsafeMutableRawPointer?

    /// The number of 4 KB pages that have been allocated (written at least once).
    @exclusivity(unchecked) public private(set) var allocatedPageCount = 0

    /// Creates an empty (all-zero) memory.
    public init() {
        root = PhysicalMemory.makeNode()
    }

    deinit {
        PhysicalMemory.free(node: root, level: 0)
    }

    private static func makeNode() -> Node {
        let node = Node.allocate(capacity: levelEntries)
        node.initialize(repeating: nil, count: levelEntries)
        return node
    }

    private static func free(node: Node, level: Int) {
        for index in 0..<levelEntries {
            guard let child = node[index] else { continue }
            if level == 3 {
                child.deallocate()
            } else {
                free(node: child.assumingMemoryBound(to: UnsafeMutableRawPointer?.self), level: level + 1)
            }
        }
        node.deallocate()
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

    /// The page holding `pageNumber`, allocating it if `allocate` is true.
    @inline(__always)
    private func page(number pageNumber: UInt64, allocate: Bool) -> UnsafeMutableRawPointer? {
        if pageNumber == cachedPageNumber { return cachedPage }
        return lookUp(pageNumber: pageNumber, allocate: allocate)
    }

    private func lookUp(pageNumber: UInt64, allocate: Bool) -> UnsafeMutableRawPointer? {
        guard pageNumber >> UInt64(PhysicalMemory.addressBits - PhysicalMemory.pageShift) == 0 else { return nil }
        var node = root
        for level in 0..<3 {
            let shift = UInt64((3 - level) * PhysicalMemory.levelBits)
            let index = Int((pageNumber >> shift) & PhysicalMemory.levelMask)
            if let next = node[index] {
                node = next.assumingMemoryBound(to: UnsafeMutableRawPointer?.self)
            } else {
                guard allocate else { return nil }
                let fresh = PhysicalMemory.makeNode()
                node[index] = UnsafeMutableRawPointer(fresh)
                node = fresh
            }
        }
        let leafIndex = Int(pageNumber & PhysicalMemory.levelMask)
        if let existing = node[leafIndex] {
            cachedPageNumber = pageNumber
            cachedPage = existing
            return existing
        }
        guard allocate else { return nil }
        let fresh = UnsafeMutableRawPointer.allocate(byteCount: PhysicalMemory.pageSize, alignment: 64)
        fresh.initializeMemory(as: UInt8.self, repeating: 0, count: PhysicalMemory.pageSize)
        node[leafIndex] = fresh
        allocatedPageCount += 1
        cachedPageNumber = pageNumber
        cachedPage = fresh
        return fresh
    }

    @inline(__always)
    private func load<T: FixedWidthInteger>(_ address: UInt64, as type: T.Type) -> T {
        let offset = Int(address & UInt64(PhysicalMemory.pageSize - 1))
        if offset + MemoryLayout<T>.size <= PhysicalMemory.pageSize {
            guard let page = page(number: address >> UInt64(PhysicalMemory.pageShift), allocate: false) else { return 0 }
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
        let offset = Int(address & UInt64(PhysicalMemory.pageSize - 1))
        if offset + MemoryLayout<T>.size <= PhysicalMemory.pageSize {
            guard let page = page(number: address >> UInt64(PhysicalMemory.pageShift), allocate: true) else { return }
            page.storeBytes(of: value.littleEndian, toByteOffset: offset, as: T.self)
            return
        }
        for byte in 0..<MemoryLayout<T>.size {
            write8(UInt8(truncatingIfNeeded: value >> T(8 * byte)), at: address &+ UInt64(byte))
        }
    }

    /// Reads one byte.
    public func read8(at address: UInt64) -> UInt8 {
        guard let page = page(number: address >> UInt64(PhysicalMemory.pageShift), allocate: false) else { return 0 }
        return page.load(fromByteOffset: Int(address & UInt64(PhysicalMemory.pageSize - 1)), as: UInt8.self)
    }

    /// Writes one byte.
    public func write8(_ value: UInt8, at address: UInt64) {
        guard let page = page(number: address >> UInt64(PhysicalMemory.pageShift), allocate: true) else { return }
        page.storeBytes(of: value, toByteOffset: Int(address & UInt64(PhysicalMemory.pageSize - 1)), as: UInt8.self)
    }

    /// Reads a little-endian 16-bit value (any alignment).
    public func read16(at address: UInt64) -> UInt16 { load(address, as: UInt16.self) }
    /// Reads a little-endian 32-bit value (any alignment).
    public func read32(at address: UInt64) -> UInt32 { load(address, as: UInt32.self) }
    /// Reads a little-endian 64-bit value (any alignment).
    public func read64(at address: UInt64) -> UInt64 { load(address, as: UInt64.self) }

    /// Writes a little-endian 16-bit value (any alignment).
    public func write16(_ value: UInt16, at address: UInt64) { store(value, address) }
    /// Writes a little-endian 32-bit value (any alignment).
    public func write32(_ value: UInt32, at address: UInt64) { store(value, address) }
    /// Writes a little-endian 64-bit value (any alignment).
    public func write64(_ value: UInt64, at address: UInt64) { store(value, address) }

    /// Copies `buffer.count` bytes starting at `address` into `buffer`.
    public func read(at address: UInt64, into buffer: UnsafeMutableRawBufferPointer) {
        var done = 0
        while done < buffer.count {
            let current = address &+ UInt64(done)
            let offset = Int(current & UInt64(PhysicalMemory.pageSize - 1))
            let chunk = min(PhysicalMemory.pageSize - offset, buffer.count - done)
            let destination = buffer.baseAddress! + done
            if let page = page(number: current >> UInt64(PhysicalMemory.pageShift), allocate: false) {
                destination.copyMemory(from: page + offset, byteCount: chunk)
            } else {
                destination.initializeMemory(as: UInt8.self, repeating: 0, count: chunk)
            }
            done += chunk
        }
    }

    /// Copies the bytes of `buffer` to memory starting at `address`.
    public func write(at address: UInt64, from buffer: UnsafeRawBufferPointer) {
        var done = 0
        while done < buffer.count {
            let current = address &+ UInt64(done)
            let offset = Int(current & UInt64(PhysicalMemory.pageSize - 1))
            let chunk = min(PhysicalMemory.pageSize - offset, buffer.count - done)
            if let page = page(number: current >> UInt64(PhysicalMemory.pageShift), allocate: true) {
                (page + offset).copyMemory(from: buffer.baseAddress! + done, byteCount: chunk)
            }
            done += chunk
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
        var done = 0
        while done < count {
            let current = address &+ UInt64(done)
            let offset = Int(current & UInt64(PhysicalMemory.pageSize - 1))
            let chunk = min(PhysicalMemory.pageSize - offset, count - done)
            if value == 0, page(number: current >> UInt64(PhysicalMemory.pageShift), allocate: false) == nil {
                done += chunk
                continue
            }
            if let page = page(number: current >> UInt64(PhysicalMemory.pageShift), allocate: true) {
                (page + offset).initializeMemory(as: UInt8.self, repeating: value, count: chunk)
            }
            done += chunk
        }
    }
}
