import Platform

/// Access permissions as a bitmask: privileged/unprivileged read, write and execute.
public struct Permissions: OptionSet, BitwiseCopyable, Hashable, Sendable {
    public let rawValue: UInt8
    @inlinable public init(rawValue: UInt8) { self.rawValue = rawValue }
    @inlinable public static var privilegedRead: Permissions { Permissions(rawValue: 1 << 0) }
    @inlinable public static var privilegedWrite: Permissions { Permissions(rawValue: 1 << 1) }
    @inlinable public static var privilegedExecute: Permissions { Permissions(rawValue: 1 << 2) }
    @inlinable public static var unprivilegedRead: Permissions { Permissions(rawValue: 1 << 3) }
    @inlinable public static var unprivilegedWrite: Permissions { Permissions(rawValue: 1 << 4) }
    @inlinable public static var unprivilegedExecute: Permissions { Permissions(rawValue: 1 << 5) }
    @inlinable public static var all: Permissions { Permissions(rawValue: 0x3F) }

    /// The permission an access needs.
    @inlinable @inline(__always)
    public static func needed(read: Bool, instruction: Bool, privileged: Bool) -> Permissions {
        let base: UInt8 = read ? (instruction ? 1 << 2 : 1 << 0) : 1 << 1
        return Permissions(rawValue: privileged ? base : base << 3)
    }
}

/// What else a leaf says beyond its permissions, as one byte (a TLB entry keeps it).
public struct LeafFlags: OptionSet, BitwiseCopyable, Hashable, Sendable {
    public let rawValue: UInt8
    @inlinable public init(rawValue: UInt8) { self.rawValue = rawValue }
    /// Stage 1 writable-clean: DBM with AP[2] set, a write updates the descriptor (HD).
    @inlinable public static var stage1DirtyUpdatable: LeafFlags { LeafFlags(rawValue: 1 << 0) }
    /// Stage 2 writable-clean: DBM with S2AP[1] clear.
    @inlinable public static var stage2DirtyUpdatable: LeafFlags { LeafFlags(rawValue: 1 << 1) }
    /// The stage-1 page is accessible unprivileged (AP[1]), which PAN cares about.
    @inlinable public static var unprivilegedAccessible: LeafFlags { LeafFlags(rawValue: 1 << 2) }
    /// Stage 2 maps Device memory.
    @inlinable public static var stage2Device: LeafFlags { LeafFlags(rawValue: 1 << 3) }
}

extension WalkLeaf {
    /// Stage-1 permissions (Arm ARM D8.4, direct permission scheme). With a single privilege
    /// level (EL2 without E2H) everything is checked as privileged with one XN; EL0-writable
    /// pages are PXN; WXN makes writable (or writable-clean) pages execute-never.
    @inlinable
    public func stage1Permissions(singlePrivilegeLevel: Bool, hierarchicalDisabled: Bool, wxn: Bool, dirtyEnabled: Bool) -> (Permissions, LeafFlags) {
        let tableReadOnly = hierarchicalDisabled ? false : readOnly
        let tableNoUnprivileged = hierarchicalDisabled ? false : noUnprivileged
        let isReadOnly = Descriptor.ap2.isSet(descriptor) || tableReadOnly
        let writableClean = dirtyEnabled && Descriptor.dbm.isSet(descriptor) && Descriptor.ap2.isSet(descriptor) && !tableReadOnly
        var flags: LeafFlags = writableClean ? .stage1DirtyUpdatable : []
        var permissions: Permissions = [.privilegedRead]
        if singlePrivilegeLevel {
            let xn = Descriptor.uxn.isSet(descriptor) || (!hierarchicalDisabled && unprivilegedExecuteNever)
            if !isReadOnly { permissions.insert(.privilegedWrite) }
            if !xn && !(wxn && (!isReadOnly || writableClean)) { permissions.insert(.privilegedExecute) }
            // Everything is checked as privileged: unprivileged accesses get the same rights.
            permissions.formUnion(Permissions(rawValue: permissions.rawValue << 3))
            return (permissions, flags)
        }
        let unprivileged = Descriptor.ap1.isSet(descriptor) && !tableNoUnprivileged
        if unprivileged { flags.insert(.unprivilegedAccessible) }
        let pxn = Descriptor.pxn.isSet(descriptor) || (!hierarchicalDisabled && privilegedExecuteNever)
        let uxn = Descriptor.uxn.isSet(descriptor) || (!hierarchicalDisabled && unprivilegedExecuteNever)
        if !isReadOnly { permissions.insert(.privilegedWrite) }
        if unprivileged {
            permissions.insert(.unprivilegedRead)
            if !isReadOnly { permissions.insert(.unprivilegedWrite) }
        }
        let privilegedWritable = !isReadOnly || writableClean
        let unprivilegedWritable = unprivileged && privilegedWritable
        if !pxn && !unprivilegedWritable && !(wxn && privilegedWritable) { permissions.insert(.privilegedExecute) }
        if !uxn && !(wxn && unprivilegedWritable) { permissions.insert(.unprivilegedExecute) }
        return (permissions, flags)
    }

    /// Stage-2 permissions (Arm ARM D8.4: S2AP, and XN[54:53] with FEAT_XNX), whether a write
    /// may set the dirty state (DBM), and whether the memory is Device (MemAttr[3:2] == 0b00,
    /// or with FWB MemAttr[2] == 0).
    @inlinable
    public func stage2Permissions(dirtyEnabled: Bool, forcedWriteBack: Bool) -> (Permissions, LeafFlags) {
        var permissions: Permissions = []
        if Descriptor.s2Read.isSet(descriptor) { permissions.formUnion([.privilegedRead, .unprivilegedRead]) }
        if Descriptor.s2Write.isSet(descriptor) { permissions.formUnion([.privilegedWrite, .unprivilegedWrite]) }
        switch Descriptor.s2XNX.extract(descriptor) {
        case 0b00: permissions.formUnion([.privilegedExecute, .unprivilegedExecute])
        case 0b01: permissions.insert(.unprivilegedExecute)
        case 0b11: permissions.insert(.privilegedExecute)
        default: break
        }
        var flags: LeafFlags = []
        if dirtyEnabled && Descriptor.dbm.isSet(descriptor) && !Descriptor.s2Write.isSet(descriptor) { flags.insert(.stage2DirtyUpdatable) }
        let memAttr = Descriptor.s2MemAttr.extract(descriptor)
        if forcedWriteBack ? memAttr & 0b100 == 0 : memAttr >> 2 == 0 { flags.insert(.stage2Device) }
        return (permissions, flags)
    }
}
