import Platform

/// `__le64 *` into coherent DMA memory: what a driver's CPU sees of a table or queue it shares
/// with a device. Indices are doublewords; reads and writes go straight to bus memory (the CPU
/// here is little-endian and coherent), so the device sees a store as soon as it is made.
public struct LE64Pointer: @unchecked Sendable, Equatable {
    /// The memory behind it.
    public let memory: PhysicalMemory
    /// The physical (DMA) address of element 0.
    public let address: UInt64

    /// A pointer to `address` in `memory`.
    public init(memory: PhysicalMemory, address: UInt64) {
        self.memory = memory
        self.address = address
    }

    /// Doubleword `index`.
    public subscript(index: Int) -> UInt64 {
        get { memory.read64(at: address &+ UInt64(truncatingIfNeeded: index) &* 8) }
        nonmutating set { memory.write64(newValue, at: address &+ UInt64(truncatingIfNeeded: index) &* 8) }
    }

    /// `ptr + dwords`.
    public func advanced(by dwords: Int) -> LE64Pointer {
        LE64Pointer(memory: memory, address: address &+ UInt64(truncatingIfNeeded: dwords) &* 8)
    }

    public static func == (lhs: LE64Pointer, rhs: LE64Pointer) -> Bool {
        lhs.memory === rhs.memory && lhs.address == rhs.address
    }
}

/// `struct resource` (IORESOURCE_MEM).
public struct KernelResource: Sendable, Equatable {
    /// First byte.
    public let start: UInt64
    /// Size in bytes.
    public let size: UInt64

    public init(start: UInt64, size: UInt64) {
        self.start = start
        self.size = size
    }
}

/// `struct msi_desc` as a platform MSI user sees it.
public struct msi_desc: Sendable {
    /// `desc->platform.msi_index`.
    public let msi_index: Int
    /// `desc->irq`.
    public let irq: Int
}

/// `struct msi_msg`.
public struct msi_msg: Sendable {
    public let address_lo: UInt32
    public let address_hi: UInt32
    public let data: UInt32
}

/// `struct platform_device` with its `struct device`: the name, the MMIO resource, the named
/// interrupts, the firmware properties the driver reads, the MSI domain, the coherent DMA pool
/// and the managed-resource (devres) list that `devm_*` fills and that a failed probe or a
/// removal releases in reverse order.
public final class platform_device: @unchecked Sendable {
    /// `&pdev->dev` for messages.
    public let dev: KernelDevice
    /// `platform_get_resource(pdev, IORESOURCE_MEM, 0)`.
    public let resource: KernelResource
    /// The bus the resource is on.
    public let bus: Bus
    /// The interrupt subsystem (request_irq and friends).
    public let irqs: KernelIRQs
    /// Interrupts by name (`platform_get_irq_byname`).
    public var namedIRQs: [String: Int] = [:]
    /// `dev->msi_domain`: whether platform MSIs can be allocated for the device.
    public var hasMSIDomain = true
    /// `of_dma_is_coherent`.
    public var dmaCoherent = true
    /// Boolean firmware properties (`of_property_read_bool`).
    public var properties: Set<String> = []
    /// `#iommu-cells` (nil: missing).
    public var iommuCells: UInt32? = 1
    /// Where `dmam_alloc_coherent` allocates.
    public let dma: CoherentMemory
    /// Fault injection for `devm_kzalloc`, `kzalloc` and DMA allocations.
    public var faults: AllocationFaults { dma.faults }
    /// `platform_get_drvdata`.
    public var drvdata: AnyObject?

    private var devres: [(name: String, release: () async -> Void)] = []
    private var allocatedMSIs = false

    /// A platform device named `name` (as in `arm-smmu-v3.0.auto`) bound to `driver`.
    public init(driver: String, name: String, log: KernelLog, resource: KernelResource, bus: Bus, irqs: KernelIRQs, dma: CoherentMemory) {
        dev = KernelDevice(driver: driver, name: name, log: log)
        self.resource = resource
        self.bus = bus
        self.irqs = irqs
        self.dma = dma
    }

    /// Managed resources held now, oldest first (for tests of unwinding).
    public var managedResources: [String] { devres.map(\.name) }

    /// `devm_add_action`: `release` runs when the device's resources are released.
    public func devm_add_action(_ name: String, _ release: @escaping () async -> Void) {
        devres.append((name, release))
    }

    /// `devres_release_all`: releases every managed resource, newest first (after a failed
    /// probe or on unbind).
    public func devres_release_all() async {
        while let last = devres.popLast() { await last.release() }
    }
}

/// `platform_get_irq_byname`: the IRQ, or -ENXIO.
public func platform_get_irq_byname(_ pdev: platform_device, _ name: String) -> Int {
    pdev.namedIRQs[name] ?? -Int(ENXIO)
}

/// `devm_ioremap_resource`: the mapping of the device's registers.
public func devm_ioremap_resource(_ pdev: platform_device) -> IOMem {
    IOMem(bus: pdev.bus, base: pdev.resource.start)
}

/// `devm_kzalloc`: a zeroed object, or nil when fault injection refuses (the object itself is
/// reference-counted, so releasing it needs no devres entry).
public func devm_kzalloc<Object>(_ pdev: platform_device, _ make: () -> Object) -> Object? {
    kzalloc(pdev.faults, make)
}

/// `dmam_alloc_coherent`: zeroed coherent memory released with the device, as the CPU pointer
/// and the DMA address (the same here), or nil.
public func dmam_alloc_coherent(_ pdev: platform_device, _ size: UInt64, alignment: UInt64 = 4096) -> LE64Pointer? {
    guard let address = pdev.dma.allocate(size, alignment: max(alignment, 1)) else { return nil }
    pdev.devm_add_action("dmam_alloc_coherent(\(size) bytes @ 0x\(String(address, radix: 16)))") { [dma = pdev.dma] in dma.release(address) }
    return LE64Pointer(memory: pdev.bus.memory, address: address)
}

/// `dmam_free_coherent` before the device goes: frees the memory now and forgets its devres
/// entry.
public func dmam_free_coherent(_ pdev: platform_device, _ pointer: LE64Pointer) {
    pdev.dma.release(pointer.address)
    pdev.forgetResource(named: "dmam_alloc_coherent(", at: pointer.address)
}

extension platform_device {
    func forgetResource(named prefix: String, at address: UInt64) {
        let suffix = "@ 0x\(String(address, radix: 16)))"
        if let index = devres.lastIndex(where: { $0.name.hasPrefix(prefix) && $0.name.hasSuffix(suffix) }) {
            devres.remove(at: index)
        }
    }
}

/// `IRQF_ONESHOT`.
public let IRQF_ONESHOT: UInt = 0x2000

/// `devm_request_threaded_irq`: `handler` (nil: wake the thread) runs when the interrupt
/// arrives, `thread` in the IRQ's own context; freed with the device. Returns 0.
@discardableResult
public func devm_request_threaded_irq(_ pdev: platform_device, _ irq: Int, _ handler: (() -> IRQReturn)?, _ thread: @escaping () async -> IRQReturn, _ flags: UInt, _ name: String) -> Int32 {
    pdev.irqs.requestThreadedIRQ(irq, name: name, handler: handler, thread: thread)
    pdev.devm_add_action("irq \(irq) (\(name))") { [irqs = pdev.irqs] in irqs.freeIRQ(irq) }
    return 0
}

/// `devm_request_irq` for a handler that reads device registers. Register accesses are
/// scheduling points here, which a hard-IRQ handler cannot contain, so the handler runs as the
/// IRQ's thread: at a point the scheduler picks after the interrupt instead of preempting the
/// interrupted context. (Races it takes part in are explorable like any other.)
@discardableResult
public func devm_request_irq(_ pdev: platform_device, _ irq: Int, _ handler: @escaping () async -> IRQReturn, _ flags: UInt, _ name: String) -> Int32 {
    devm_request_threaded_irq(pdev, irq, nil, handler, flags, name)
}

/// `platform_msi_domain_alloc_irqs`: allocates `nvec` MSIs and calls `write_msi_msg` for each
/// (index order) to program the device; -ENOSPC when the device has no MSI domain. The
/// vectors are freed with `platform_msi_domain_free_irqs`.
public func platform_msi_domain_alloc_irqs(_ pdev: platform_device, _ nvec: Int, _ write_msi_msg: (msi_desc, msi_msg) async -> Void) async -> (Int32, [msi_desc]) {
    guard pdev.hasMSIDomain, nvec > 0 else { return (-ENOSPC, []) }
    var descs: [msi_desc] = []
    for index in 0..<nvec {
        let vector = pdev.irqs.allocateMSI()
        let desc = msi_desc(msi_index: index, irq: vector.irq)
        descs.append(desc)
        await write_msi_msg(desc, msi_msg(address_lo: UInt32(truncatingIfNeeded: vector.address), address_hi: UInt32(truncatingIfNeeded: vector.address >> 32), data: vector.data))
    }
    return (0, descs)
}

/// `-ENOSPC`.
public let ENOSPC: Int32 = 28
/// `-ENXIO`.
public let ENXIO: Int32 = 6
/// `-ENODEV`.
public let ENODEV: Int32 = 19
/// `-ERANGE`.
public let ERANGE: Int32 = 34
/// `-EPERM`.
public let EPERM: Int32 = 1

/// `DECLARE_BITMAP` with `find_first_zero_bit`, `test_and_set_bit`, `set_bit`, `clear_bit`.
public final class KernelBitmap: @unchecked Sendable {
    private var words: [UInt64]
    /// Bits in the map.
    public let bits: Int

    /// A map of `bits` zero bits.
    public init(bits: Int) {
        self.bits = max(bits, 0)
        words = Array(repeating: 0, count: (self.bits + 63) / 64)
    }

    /// `find_first_zero_bit(map, size)`: the first clear bit below `size`, or `size`.
    public func find_first_zero_bit(_ size: Int) -> Int {
        let limit = min(size, bits)
        var index = 0
        while index < limit {
            let word = words[index / 64]
            if word == .max {
                index = (index / 64 + 1) * 64
                continue
            }
            let bit = (~word >> UInt64(index % 64)).trailingZeroBitCount
            let found = index + bit
            if bit < 64 - index % 64 { return min(found, size) }
            index = (index / 64 + 1) * 64
        }
        return size
    }

    /// `test_and_set_bit`: sets `bit`, returning whether it was set.
    @discardableResult
    public func test_and_set_bit(_ bit: Int) -> Bool {
        guard bit >= 0, bit < bits else { return true }
        let mask = UInt64(1) << UInt64(bit % 64)
        let was = words[bit / 64] & mask != 0
        words[bit / 64] |= mask
        return was
    }

    /// `set_bit`.
    public func set_bit(_ bit: Int) { test_and_set_bit(bit) }

    /// `clear_bit`.
    public func clear_bit(_ bit: Int) {
        guard bit >= 0, bit < bits else { return }
        words[bit / 64] &= ~(UInt64(1) << UInt64(bit % 64))
    }

    /// `test_bit`.
    public func test_bit(_ bit: Int) -> Bool {
        guard bit >= 0, bit < bits else { return false }
        return words[bit / 64] & (UInt64(1) << UInt64(bit % 64)) != 0
    }
}

/// The driver core around a probe (`really_probe`): a failed probe's managed resources are
/// released, newest first, and its driver data cleared.
public func driver_probe_device(_ pdev: platform_device, _ probe: (platform_device) async -> Int32) async -> Int32 {
    let ret = await probe(pdev)
    if ret != 0 {
        await pdev.devres_release_all()
        pdev.drvdata = nil
    }
    return ret
}

/// The driver core around a removal (`device_release_driver`): `remove`, then the managed
/// resources.
public func device_release_driver(_ pdev: platform_device, _ remove: (platform_device) async -> Int32) async {
    _ = await remove(pdev)
    await pdev.devres_release_all()
    pdev.drvdata = nil
}

/// `struct pci_dev`, as much as the IOMMU drivers use: the function's ATS capability and its
/// control register (Enable, Smallest Translation Unit). `onATSControl` is the wire to the
/// endpoint model: it is called with the new Enable bit and STU when the control changes.
public final class pci_dev: @unchecked Sendable {
    /// `pci_name`.
    public let name: String
    /// The function has an ATS capability (`pdev->ats_cap`).
    public let ats_cap: Bool
    /// `pdev->ats_enabled`.
    public private(set) var ats_enabled = false
    /// `pdev->ats_stu`: log2 of the smallest translation unit.
    public private(set) var ats_stu = 0
    /// `pdev->untrusted`.
    public var untrusted = false
    /// Called when the ATS control register is written (enable, STU).
    public var onATSControl: ((Bool, Int) -> Void)?

    public init(name: String, ats_cap: Bool) {
        self.name = name
        self.ats_cap = ats_cap
    }

    /// `pci_enable_ats`: -EINVAL without the capability, when already enabled, or with an STU
    /// below 4 KB.
    public func pci_enable_ats(_ ps: Int) -> Int32 {
        guard ats_cap, !ats_enabled, ps >= 12 else { return -EINVAL }
        ats_stu = ps
        ats_enabled = true
        onATSControl?(true, ps)
        return 0
    }

    /// `pci_disable_ats`.
    public func pci_disable_ats() {
        guard ats_enabled else { return }
        ats_enabled = false
        onATSControl?(false, ats_stu)
    }
}
