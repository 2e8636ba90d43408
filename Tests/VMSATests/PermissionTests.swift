import Testing
import Platform
import VMSA

/// The permission rules of a leaf (Arm ARM D8.4), as functions of the descriptor alone.
@Suite struct VMSAPermissionTests {
    static func leaf(_ descriptor: UInt64) -> WalkLeaf {
        WalkLeaf(descriptor: descriptor | 0b11 | Descriptor.af.mask, level: 3, shift: 12, outputBase: 0, descriptorAddress: 0)
    }

    static func stage1(_ descriptor: UInt64, el2: Bool = false, wxn: Bool = false, dirty: Bool = false) -> (Permissions, LeafFlags) {
        leaf(descriptor).stage1Permissions(singlePrivilegeLevel: el2, hierarchicalDisabled: false, wxn: wxn, dirtyEnabled: dirty)
    }

    @Test func apBitsGiveReadAndWriteAtEachPrivilege() {
        let ap1 = Descriptor.ap1.mask, ap2 = Descriptor.ap2.mask
        let noExecute = Descriptor.pxn.mask | Descriptor.uxn.mask
        #expect(Self.stage1(noExecute).0 == [.privilegedRead, .privilegedWrite])
        #expect(Self.stage1(noExecute | ap1).0 == [.privilegedRead, .privilegedWrite, .unprivilegedRead, .unprivilegedWrite])
        #expect(Self.stage1(noExecute | ap2).0 == [.privilegedRead])
        #expect(Self.stage1(noExecute | ap1 | ap2).0 == [.privilegedRead, .unprivilegedRead])
        #expect(Self.stage1(ap1).1.contains(.unprivilegedAccessible))
        #expect(!Self.stage1(0).1.contains(.unprivilegedAccessible))
    }

    @Test func executeNeverFollowsPXNUXNAndWritableAtEL0AndWXN() {
        let ap1 = Descriptor.ap1.mask, ap2 = Descriptor.ap2.mask
        #expect(Self.stage1(0).0.contains(.privilegedExecute))
        #expect(!Self.stage1(Descriptor.pxn.mask).0.contains(.privilegedExecute))
        #expect(!Self.stage1(Descriptor.uxn.mask | ap1).0.contains(.unprivilegedExecute))
        // A page EL0 can write is never privileged-executable.
        #expect(!Self.stage1(ap1).0.contains(.privilegedExecute))
        #expect(Self.stage1(ap1 | ap2).0.contains(.privilegedExecute))
        // WXN: writable means execute-never.
        #expect(!Self.stage1(0, wxn: true).0.contains(.privilegedExecute))
        #expect(Self.stage1(ap2, wxn: true).0.contains(.privilegedExecute))
    }

    @Test func aSinglePrivilegeLevelIgnoresAP1AndChecksEverythingAsPrivileged() {
        let (permissions, flags) = Self.stage1(Descriptor.ap1.mask, el2: true)
        #expect(permissions == .all, "EL2: AP[1] ignored, one XN (UXN) clear")
        #expect(!flags.contains(.unprivilegedAccessible))
        #expect(!Self.stage1(Descriptor.uxn.mask, el2: true).0.contains(.privilegedExecute))
        #expect(Self.stage1(Descriptor.pxn.mask, el2: true).0.contains(.privilegedExecute), "PXN is not the EL2 XN")
    }

    @Test func dbmWithReadOnlyIsWritableCleanOnlyWithHardwareDirtyUpdates() {
        let descriptor = Descriptor.dbm.mask | Descriptor.ap2.mask
        #expect(Self.stage1(descriptor, dirty: true).1.contains(.stage1DirtyUpdatable))
        #expect(!Self.stage1(descriptor, dirty: false).1.contains(.stage1DirtyUpdatable))
        #expect(!Self.stage1(descriptor, dirty: true).0.contains(.privilegedWrite), "writable-clean is not yet writable")
    }

    @Test func hierarchicalAttributesApplyUnlessDisabled() {
        var leaf = Self.leaf(Descriptor.ap1.mask)
        leaf.readOnly = true
        leaf.noUnprivileged = true
        let applied = leaf.stage1Permissions(singlePrivilegeLevel: false, hierarchicalDisabled: false, wxn: false, dirtyEnabled: false).0
        // APTable[0] takes EL0 reads and writes away, not EL0 execute (execute-only pages).
        #expect(applied == [.privilegedRead, .privilegedExecute, .unprivilegedExecute])
        let ignored = leaf.stage1Permissions(singlePrivilegeLevel: false, hierarchicalDisabled: true, wxn: false, dirtyEnabled: false).0
        #expect(ignored.contains(.unprivilegedWrite))
    }

    static func stage2(_ descriptor: UInt64, fwb: Bool = false, dirty: Bool = false) -> (Permissions, LeafFlags) {
        leaf(descriptor).stage2Permissions(dirtyEnabled: dirty, forcedWriteBack: fwb)
    }

    @Test func stage2S2APAndXNXDecideTheRights() {
        let read = Descriptor.s2Read.mask, write = Descriptor.s2Write.mask
        let normal = UInt64(0b1111) << 2
        #expect(Self.stage2(normal).0 == [.privilegedExecute, .unprivilegedExecute])
        #expect(Self.stage2(normal | read).0 == [.privilegedRead, .unprivilegedRead, .privilegedExecute, .unprivilegedExecute])
        #expect(Self.stage2(normal | read | write | Descriptor.s2XNX.inserting(0b10, into: 0)).0 == [.privilegedRead, .unprivilegedRead, .privilegedWrite, .unprivilegedWrite])
        #expect(Self.stage2(normal | Descriptor.s2XNX.inserting(0b01, into: 0)).0 == [.unprivilegedExecute])
        #expect(Self.stage2(normal | Descriptor.s2XNX.inserting(0b11, into: 0)).0 == [.privilegedExecute])
    }

    @Test func stage2DeviceMemoryIsMemAttr3To2ZeroOrWithFWBMemAttr2Zero() {
        #expect(Self.stage2(0b0011 << 2).1.contains(.stage2Device))
        #expect(!Self.stage2(0b0100 << 2).1.contains(.stage2Device))
        #expect(!Self.stage2(0b0110 << 2, fwb: true).1.contains(.stage2Device))
        #expect(Self.stage2(0b1011 << 2, fwb: true).1.contains(.stage2Device))
        #expect(Self.stage2(Descriptor.dbm.mask | 0b1111 << 2, dirty: true).1.contains(.stage2DirtyUpdatable))
    }
}
