import Platform
import VMSA

/// `struct vm_area_struct`: a range of a process's address space and what it may do.
public struct VMArea: Sendable, Equatable {
    public let start: UInt64
    public let end: UInt64
    public let read: Bool
    public let write: Bool
    public let execute: Bool

    public init(start: UInt64, end: UInt64, read: Bool = true, write: Bool = true, execute: Bool = false) {
        self.start = start
        self.end = end
        self.read = read
        self.write = write
        self.execute = execute
    }

    func contains(_ address: UInt64) -> Bool { address >= start && address < end }
}

/// What `handle_mm_fault` did (`vm_fault_t`).
public enum VMFault: Equatable, Sendable {
    /// The page is mapped (now or already).
    case handled
    /// No VMA covers the address, or it forbids the access (`VM_FAULT_SIGSEGV`).
    case segv
    /// No memory for the page or a table (`VM_FAULT_OOM`).
    case oom
}

/// `struct mm_struct`: a process address space whose CPU page tables are AArch64 VMSAv8-64
/// tables (4 KB granule, 48-bit VA, stage-1 descriptors with AF set and nG, EL0-accessible)
/// in bus memory, so that an SMMU walking them for SVA sees exactly what a CPU would. Pages
/// are populated on demand by ``handleMMFault(_:write:)``; ``exit()`` runs the
/// `mmu_notifier` release callbacks and then tears the tables down.
public final class MMStruct: @unchecked Sendable {
    /// The process's ASID (as the CPU's TTBR0 carries it).
    public let asid: UInt16
    /// The translation table base (TTBR0) and its walk parameters.
    public let table: WalkTable
    private let memory: PhysicalMemory
    private let pages: CoherentMemory
    private var areas: [VMArea] = []
    private var releaseCallbacks: [(id: Int, release: (MMStruct) async -> Void)] = []
    private var nextCallbackID = 0
    private var tablePages: [UInt64] = []
    private var dataPages: [UInt64] = []
    /// `mmap_sem` (a mutex here: readers of one mm serialise, which only loses parallelism).
    public let mmap_sem = KernelMutex("mm.mmap_sem")
    /// Whether ``exit()`` ran.
    public private(set) var isDead = false

    /// An empty address space; its tables and pages come from `pages` (nil: no memory for the
    /// top-level table).
    public init?(asid: UInt16, memory: PhysicalMemory, pages: CoherentMemory) {
        guard let pgd = pages.allocate(4096) else { return nil }
        self.asid = asid
        self.memory = memory
        self.pages = pages
        tablePages = [pgd]
        table = WalkTable(base: pgd, granuleShift: 12, startLevel: 0, inputBits: 48, outputBits: 48, hardwareAccessFlag: false, hardwareDirty: false)
    }

    /// `mmap`: adds a VMA.
    public func map(_ area: VMArea) {
        areas.append(area)
    }

    /// `mmu_notifier_register`: `release` runs when the process exits (before its tables go);
    /// it may block (an IOMMU driver waits for its device there).
    @discardableResult
    public func registerNotifier(_ release: @escaping (MMStruct) async -> Void) -> Int {
        nextCallbackID += 1
        releaseCallbacks.append((nextCallbackID, release))
        return nextCallbackID
    }

    /// `mmu_notifier_unregister`.
    public func unregisterNotifier(_ id: Int) {
        releaseCallbacks.removeAll { $0.id == id }
    }

    /// The physical address `address` maps to now, by walking the tables as the SMMU would.
    public func translate(_ address: UInt64) -> UInt64? {
        var reader = MemoryDescriptorReader(memory)
        guard case .leaf(let leaf) = walk(table, input: address, stage: .stage1, reader: &reader) else { return nil }
        return leaf.outputBase | (address & 0xFFF)
    }

    /// `find_vma`: the area covering `address` (nil once the process exited).
    public func find_vma(_ address: UInt64) -> VMArea? {
        isDead ? nil : areas.first { $0.contains(address) }
    }

    /// `handle_mm_fault`: maps a zeroed page at `address` if a VMA allows the access.
    public func handleMMFault(_ address: UInt64, write: Bool) -> VMFault {
        guard !isDead, let area = areas.first(where: { $0.contains(address) }), area.read, !write || area.write else { return .segv }
        if translate(address) != nil { return .handled }
        var tableAddress = table.base
        for level in 0..<3 {
            let slot = tableAddress + ((address >> UInt64(table.levelShift(level))) & 0x1FF) * 8
            let descriptor = memory.read64(at: slot)
            if Descriptor.valid.isSet(descriptor) {
                tableAddress = Descriptor.outputAddress.extract(descriptor)
                continue
            }
            guard let next = pages.allocate(4096) else { return .oom }
            tablePages.append(next)
            memory.write64(next | Descriptor.valid.mask | Descriptor.tableOrPage.mask, at: slot)
            tableAddress = next
        }
        guard let page = pages.allocate(4096) else { return .oom }
        dataPages.append(page)
        var leaf = page | Descriptor.valid.mask | Descriptor.tableOrPage.mask | Descriptor.af.mask | Descriptor.nG.mask
        leaf |= Descriptor.sh.place(0b11) | Descriptor.ap1.mask | Descriptor.pxn.mask
        if !area.write { leaf |= Descriptor.ap2.mask }
        if !area.execute { leaf |= Descriptor.uxn.mask }
        memory.write64(leaf, at: tableAddress + ((address >> 12) & 0x1FF) * 8)
        return .handled
    }

    /// `exit_mmap`: runs the release callbacks (in registration order), then frees every page
    /// and table (cleared, so that a late walk finds nothing).
    public func exit() async {
        guard !isDead else { return }
        isDead = true
        let callbacks = releaseCallbacks
        releaseCallbacks.removeAll()
        for callback in callbacks { await callback.release(self) }
        // Freed tables read as empty: a walk that comes too late finds nothing.
        for table in tablePages { memory.fill(0, at: table, count: 4096) }
        for page in dataPages + tablePages { pages.release(page) }
        dataPages.removeAll()
        tablePages.removeAll()
    }
}
