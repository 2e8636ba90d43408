import Platform

/// VMSAv8-64 translation table descriptor layouts (Arm ARM D8.3; the SMMU uses them as the
/// PE does, SMMUv3 §3.3). Stage 1 and stage 2 share the structure and differ in attributes.
public enum Descriptor {
    /// Bit 0: valid.
    @inlinable public static var valid: BitField { BitField(bit: 0) }
    /// Bit 1: table (levels 0–2) or page (level 3); 0 at levels 1–2 is a block.
    @inlinable public static var tableOrPage: BitField { BitField(bit: 1) }

    // Stage 1 block and page attributes.
    /// AttrIndx: MAIR index.
    @inlinable public static var attrIndx: BitField { BitField(4, 2) }
    /// NS.
    @inlinable public static var ns: BitField { BitField(bit: 5) }
    /// AP[1]: accessible at EL0 (unprivileged).
    @inlinable public static var ap1: BitField { BitField(bit: 6) }
    /// AP[2]: read-only.
    @inlinable public static var ap2: BitField { BitField(bit: 7) }
    /// SH: shareability.
    @inlinable public static var sh: BitField { BitField(9, 8) }
    /// AF: access flag.
    @inlinable public static var af: BitField { BitField(bit: 10) }
    /// nG: not global (ASID-tagged).
    @inlinable public static var nG: BitField { BitField(bit: 11) }
    /// DBM: dirty bit modifier.
    @inlinable public static var dbm: BitField { BitField(bit: 51) }
    /// Contiguous hint.
    @inlinable public static var contiguous: BitField { BitField(bit: 52) }
    /// PXN: privileged execute-never.
    @inlinable public static var pxn: BitField { BitField(bit: 53) }
    /// UXN (stage 1 EL1&0) or XN (stage 1 EL2, stage 2).
    @inlinable public static var uxn: BitField { BitField(bit: 54) }

    // Stage 1 table descriptor hierarchical attributes.
    /// PXNTable.
    @inlinable public static var pxnTable: BitField { BitField(bit: 59) }
    /// UXNTable (XNTable for EL2).
    @inlinable public static var uxnTable: BitField { BitField(bit: 60) }
    /// APTable[0]: no EL0 access at lower levels.
    @inlinable public static var apTable0: BitField { BitField(bit: 61) }
    /// APTable[1]: no write access at lower levels.
    @inlinable public static var apTable1: BitField { BitField(bit: 62) }

    // Stage 2 block and page attributes.
    /// MemAttr[3:0].
    @inlinable public static var s2MemAttr: BitField { BitField(5, 2) }
    /// S2AP[0]: read permitted.
    @inlinable public static var s2Read: BitField { BitField(bit: 6) }
    /// S2AP[1]: write permitted.
    @inlinable public static var s2Write: BitField { BitField(bit: 7) }
    /// XN[1:0] (stage 2 with FEAT_XNX): 0b00 executable, 0b01 unprivileged only, 0b10 never,
    /// 0b11 privileged only.
    @inlinable public static var s2XNX: BitField { BitField(54, 53) }

    /// Output address bits [47:12] of a table, block or page descriptor.
    @inlinable public static var outputAddress: AddressField { AddressField(47, 12) }
    /// OA[51:48] of a 64 KB-granule descriptor with 52-bit output addresses (FEAT_LPA).
    @inlinable public static var outputAddressHigh64K: BitField { BitField(15, 12) }
}

/// One stage of translation: the parameters of a table walk (a CD's TTB0 or TTB1 half, or an
