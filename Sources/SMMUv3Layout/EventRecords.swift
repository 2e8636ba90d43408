import Platform

/// Event record types (§7.3). Numbers not listed are Reserved (0xE0–0xEF are
/// IMPLEMENTATION DEFINED).
public enum EventType: UInt8, CaseIterable, Sendable, CustomStringConvertible {
    /// F_UUT (0x01): unsupported upstream transaction, IMPLEMENTATION DEFINED reason (§7.3.2).
    case unsupportedUpstreamTransaction = 0x01
    /// C_BAD_STREAMID (0x02): StreamID out of range or under an invalid L1STD (§7.3.3).
    case badStreamID = 0x02
    /// F_STE_FETCH (0x03): external abort fetching an STE or L1STD (§7.3.4).
    case steFetch = 0x03
    /// C_BAD_STE (0x04): STE with V == 0 or ILLEGAL (§7.3.5).
    case badSTE = 0x04
    /// F_BAD_ATS_TREQ (0x05): ATS Translation Request not allowed (§7.3.6).
    case badATSTranslationRequest = 0x05
    /// F_STREAM_DISABLED (0x06): non-SSID traffic, or SSID 0, rejected by S1DSS (§7.3.7).
    case streamDisabled = 0x06
    /// F_TRANSL_FORBIDDEN (0x07): ATS-Translated transaction not allowed to bypass (§7.3.8).
    case translationForbidden = 0x07
    /// C_BAD_SUBSTREAMID (0x08): SubstreamID not allowed, out of range or under an invalid L1CD (§7.3.9).
    case badSubstreamID = 0x08
    /// F_CD_FETCH (0x09): external abort fetching a CD or L1CD (§7.3.10).
    case cdFetch = 0x09
    /// C_BAD_CD (0x0A): CD with V == 0 or ILLEGAL (§7.3.11).
    case badCD = 0x0A
    /// F_WALK_EABT (0x0B): external abort fetching or updating a translation table descriptor (§7.3.12).
    case walkExternalAbort = 0x0B
    /// F_TRANSLATION (0x10): Translation fault (§7.3.13).
    case translation = 0x10
    /// F_ADDR_SIZE (0x11): Address Size fault (§7.3.14).
    case addressSize = 0x11
    /// F_ACCESS (0x12): Access flag fault (§7.3.15).
    case access = 0x12
    /// F_PERMISSION (0x13): Permission fault (§7.3.16).
    case permission = 0x13
    /// F_TLB_CONFLICT (0x20): TLB conflict (multiple hit), IMPLEMENTATION DEFINED reason (§7.3.17).
    case tlbConflict = 0x20
    /// F_CFG_CONFLICT (0x21): configuration cache conflict (multiple match) (§7.3.18).
    case configurationConflict = 0x21
    /// E_PAGE_REQUEST (0x24): speculative page-request hint from a device (§7.3.19).
    case pageRequest = 0x24
    /// F_VMS_FETCH (0x25): external abort fetching a VMS (§7.3.20).
    case vmsFetch = 0x25

    /// The spec name, e.g. `F_TRANSLATION`.
    public var specName: String {
        switch self {
        case .unsupportedUpstreamTransaction: "F_UUT"
        case .badStreamID: "C_BAD_STREAMID"
        case .steFetch: "F_STE_FETCH"
        case .badSTE: "C_BAD_STE"
        case .badATSTranslationRequest: "F_BAD_ATS_TREQ"
        case .streamDisabled: "F_STREAM_DISABLED"
        case .translationForbidden: "F_TRANSL_FORBIDDEN"
        case .badSubstreamID: "C_BAD_SUBSTREAMID"
        case .cdFetch: "F_CD_FETCH"
        case .badCD: "C_BAD_CD"
        case .walkExternalAbort: "F_WALK_EABT"
        case .translation: "F_TRANSLATION"
        case .addressSize: "F_ADDR_SIZE"
        case .access: "F_ACCESS"
        case .permission: "F_PERMISSION"
        case .tlbConflict: "F_TLB_CONFLICT"
        case .configurationConflict: "F_CFG_CONFLICT"
        case .pageRequest: "E_PAGE_REQUEST"
        case .vmsFetch: "F_VMS_FETCH"
        }
    }

    public var description: String { specName }

    /// Whether records of this type carry Stall/STAG (the four translation-related faults).
    public var canStall: Bool { (0x10...0x13).contains(rawValue) }

    /// The spec name of any event number.
    public static func name(of number: UInt8) -> String {
        if let known = EventType(rawValue: number) { return known.specName }
        return (0xE0...0xEF).contains(number) ? "IMPDEF_EVENT_\(hex(number, digits: 2))" : "RESERVED_EVENT_\(hex(number, digits: 2))"
    }
}

/// Bit layouts of event records (§7.3). Record bit n is bit n % 64 of doubleword n / 64.
/// Positions come from the spec where its diagrams are text, and the Linux header otherwise;
/// F_BAD_ATS_TREQ's permission and Span positions are provisional.
public enum Evt {
    /// Doubleword 0.
    public enum DW0 {
        /// Event number: record [7:0].
        @inlinable public static var eventID: BitField { BitField(7, 0) }
        /// SSV: the SubstreamID field is valid: record [11].
        @inlinable public static var ssv: BitField { BitField(bit: 11) }
        /// SubstreamID: record [31:12].
        @inlinable public static var substreamID: BitField { BitField(31, 12) }
        /// StreamID: record [63:32].
        @inlinable public static var streamID: BitField { BitField(63, 32) }
    }

    /// Doubleword 1.
    public enum DW1 {
        /// STAG: the stall tag to give CMD_RESUME, valid when Stall == 1: record [79:64].
        @inlinable public static var stag: BitField { BitField(15, 0) }
        /// IMPLEMENTATION DEFINED Reason (F_UUT, fetch aborts, F_TLB_CONFLICT): record [79:64].
        @inlinable public static var reason: BitField { BitField(15, 0) }
        /// F_CFG_CONFLICT Reason: record [95:64].
        @inlinable public static var configurationReason: BitField { BitField(31, 0) }
        /// Granule protection check fault flag: record [80].
        @inlinable public static var gpcf: BitField { BitField(bit: 16) }
        /// Stall: the transaction is stalled awaiting CMD_RESUME or CMD_STALL_TERM: record [95].
        @inlinable public static var stall: BitField { BitField(bit: 31) }
        /// PnU: privileged (1) or unprivileged (0) access: record [97].
        @inlinable public static var pnu: BitField { BitField(bit: 33) }
        /// InD: instruction (1) or data (0) access: record [98].
        @inlinable public static var ind: BitField { BitField(bit: 34) }
        /// RnW: read (1) or write (0): record [99].
        @inlinable public static var rnw: BitField { BitField(bit: 35) }
        /// NSIPA: the faulting IPA is Non-secure (Secure event queue with S2 == 1 only): record [102].
        @inlinable public static var nsipa: BitField { BitField(bit: 38) }
        /// S2: the fault occurred at stage 2: record [103].
        @inlinable public static var s2: BitField { BitField(bit: 39) }
        /// CLASS: 0b00 CD fetch, 0b01 stage-1 table fetch, 0b10 input address: record [105:104].
        @inlinable public static var faultClass: BitField { BitField(41, 40) }
        /// TTRnW: F_PERMISSION with CLASS == TT: a descriptor read (1) or write (0) faulted: record [108].
        @inlinable public static var ttrnw: BitField { BitField(bit: 44) }
        /// E_PAGE_REQUEST / F_BAD_ATS_TREQ permission flags (record [97], [98], [99]).
        @inlinable public static var uX: BitField { BitField(bit: 33) }
        /// uW: unprivileged write (E_PAGE_REQUEST; the Write flag of F_BAD_ATS_TREQ): record [98].
        @inlinable public static var uW: BitField { BitField(bit: 34) }
        /// uR: unprivileged read (E_PAGE_REQUEST; the Read flag of F_BAD_ATS_TREQ): record [99].
        @inlinable public static var uR: BitField { BitField(bit: 35) }
        /// F_BAD_ATS_TREQ Priv (provisional position, record [100]).
        @inlinable public static var priv: BitField { BitField(bit: 36) }
        /// E_PAGE_REQUEST privileged permission flags (record [101], [102], [103]).
        @inlinable public static var pX: BitField { BitField(bit: 37) }
        /// pW: privileged write anticipated (E_PAGE_REQUEST): record [102].
        @inlinable public static var pW: BitField { BitField(bit: 38) }
        /// pR: privileged read anticipated (E_PAGE_REQUEST): record [103].
        @inlinable public static var pR: BitField { BitField(bit: 39) }
        /// E_PAGE_REQUEST / F_BAD_ATS_TREQ Span: record [115:108].
        @inlinable public static var span: BitField { BitField(51, 44) }
    }

    /// Doubleword 2.
    public enum DW2 {
        /// InputAddr[63:0]: the address as presented to the SMMU: record [191:128].
        @inlinable public static var inputAddress: BitField { BitField(63, 0) }
        /// InputAddr[63:12] of E_PAGE_REQUEST and F_BAD_ATS_TREQ (record [191:140]).
        @inlinable public static var pageAddress: AddressField { AddressField(63, 12) }
    }

    /// Doubleword 3.
    public enum DW3 {
        /// IPA[55:12] (record [247:204]).
        @inlinable public static var ipa: AddressField { AddressField(55, 12) }
        /// FetchAddr[55:3] (record [247:195]).
        @inlinable public static var fetchAddress: AddressField { AddressField(55, 3) }
    }
}

/// The CLASS field of translation fault records (§7.3).
public enum FaultClass: UInt8, Sendable, Hashable, CustomStringConvertible {
    /// CD fetch.
    case contextDescriptor = 0
    /// Stage 1 translation table fetch.
    case translationTable = 1
    /// The input address of the transaction.
    case input = 2

    public var description: String {
        switch self {
        case .contextDescriptor: "CD"
        case .translationTable: "TT"
        case .input: "IN"
        }
    }
}

/// The access attributes of a transaction as recorded in events (RnW, InD, PnU).
public struct AccessAttributes: Sendable, Hashable, CustomStringConvertible {
    /// RnW: a read (true) or a write.
    public var read: Bool
    /// InD: an instruction fetch (recorded as 0 for writes).
    public var instruction: Bool
    /// PnU: privileged.
    public var privileged: Bool

    /// Creates attributes.
    public init(read: Bool, instruction: Bool = false, privileged: Bool = false) {
        self.read = read
        self.instruction = instruction
        self.privileged = privileged
    }

    /// An unprivileged data read.
    @inlinable public static var dataRead: AccessAttributes { AccessAttributes(read: true) }
    /// An unprivileged data write.
    @inlinable public static var dataWrite: AccessAttributes { AccessAttributes(read: false) }

    public var description: String {
        (read ? "R" : "W") + (instruction && read ? "X" : "") + (privileged ? " priv" : "")
    }
}

/// The fields of a translation-related fault record (F_TRANSLATION, F_ADDR_SIZE, F_ACCESS,
/// F_PERMISSION, §7.3.13–§7.3.16).
public struct TranslationFault: Sendable, Hashable {
    /// One of the four stall-capable event types.
    public var type: EventType
    /// StreamID of the faulting transaction.
    public var streamID: UInt32
    /// The SubstreamID, or nil when the transaction had none (SSV == 0).
    public var substreamID: UInt32?
    /// Access attributes of the input transaction (post-STE override).
    public var access: AccessAttributes
    /// S2: the fault occurred at stage 2.
    public var stage2: Bool
    /// CLASS.
    public var faultClass: FaultClass
    /// InputAddr: the address as presented to the SMMU.
    public var inputAddress: UInt64
    /// IPA (valid when `stage2`).
    public var ipa: UInt64
    /// Stall: the transaction is stalled awaiting CMD_RESUME / CMD_STALL_TERM.
    public var stall: Bool
    /// STAG (valid when `stall`).
    public var stag: UInt16
    /// TTRnW (F_PERMISSION with CLASS == TT): a descriptor read (true) or write caused it.
    public var translationTableRead: Bool

    /// Creates a translation fault description.
    public init(type: EventType, streamID: UInt32, substreamID: UInt32? = nil, access: AccessAttributes, stage2: Bool = false, faultClass: FaultClass = .input, inputAddress: UInt64, ipa: UInt64 = 0, stall: Bool = false, stag: UInt16 = 0, translationTableRead: Bool = false) {
        self.type = type
        self.streamID = streamID
        self.substreamID = substreamID
        self.access = access
        self.stage2 = stage2
        self.faultClass = faultClass
        self.inputAddress = inputAddress
        self.ipa = ipa
        self.stall = stall
        self.stag = stag
        self.translationTableRead = translationTableRead
    }
}

/// One 32-byte event queue record (§7.3), as four little-endian doublewords.
public struct EventRecord: Hashable, Sendable, CustomStringConvertible {
    /// Bits [63:0].
    public var dw0: UInt64
    /// Bits [127:64].
    public var dw1: UInt64
    /// Bits [191:128].
    public var dw2: UInt64
    /// Bits [255:192].
    public var dw3: UInt64

    /// Creates a record from its doublewords.
    public init(dw0: UInt64, dw1: UInt64 = 0, dw2: UInt64 = 0, dw3: UInt64 = 0) {
        self.dw0 = dw0
        self.dw1 = dw1
        self.dw2 = dw2
        self.dw3 = dw3
    }

    /// The doublewords in order.
    public var doublewords: [UInt64] { [dw0, dw1, dw2, dw3] }

    /// The event number.
    public var number: UInt8 { UInt8(Evt.DW0.eventID.extract(dw0)) }
    /// The event type, if architected.
    public var type: EventType? { EventType(rawValue: number) }
    /// StreamID.
    public var streamID: UInt32 { UInt32(Evt.DW0.streamID.extract(dw0)) }
    /// SubstreamID when SSV == 1 (always for C_BAD_SUBSTREAMID, which has no SSV).
    public var substreamID: UInt32? {
        if type == .badSubstreamID || Evt.DW0.ssv.isSet(dw0) { return UInt32(Evt.DW0.substreamID.extract(dw0)) }
        return nil
    }
    /// Stall (stall-capable faults only).
    public var isStall: Bool { (type?.canStall ?? false) && Evt.DW1.stall.isSet(dw1) }
    /// STAG.
    public var stag: UInt16 { UInt16(Evt.DW1.stag.extract(dw1)) }
    /// InputAddr.
    public var inputAddress: UInt64 { dw2 }
    /// IPA (stage 2 faults).
    public var ipa: UInt64 { Evt.DW3.ipa.extract(dw3) }
    /// FetchAddr (fetch aborts).
    public var fetchAddress: UInt64 { Evt.DW3.fetchAddress.extract(dw3) }
    /// The access attributes (RnW/InD/PnU).
    public var access: AccessAttributes {
        AccessAttributes(read: Evt.DW1.rnw.isSet(dw1), instruction: Evt.DW1.ind.isSet(dw1), privileged: Evt.DW1.pnu.isSet(dw1))
    }
    /// S2.
    public var isStage2: Bool { Evt.DW1.s2.isSet(dw1) }
    /// CLASS.
    public var faultClass: FaultClass? { FaultClass(rawValue: UInt8(Evt.DW1.faultClass.extract(dw1))) }

    // MARK: Builders

    private static func header(_ type: EventType, _ streamID: UInt32, _ substreamID: UInt32?) -> UInt64 {
        var dw0 = UInt64(type.rawValue) | Evt.DW0.streamID.place(UInt64(streamID))
        if let substreamID {
            dw0 |= Evt.DW0.ssv.mask | Evt.DW0.substreamID.place(UInt64(substreamID))
        }
        return dw0
    }

    private static func accessBits(_ access: AccessAttributes) -> UInt64 {
        Evt.DW1.rnw.place(access.read) | Evt.DW1.ind.place(access.instruction && access.read) | Evt.DW1.pnu.place(access.privileged)
    }

    /// F_UUT (§7.3.2). `access` is the incoming (pre-override) attributes.
    public static func unsupportedUpstreamTransaction(streamID: UInt32, substreamID: UInt32? = nil, reason: UInt16 = 0, access: AccessAttributes, inputAddress: UInt64) -> EventRecord {
        EventRecord(dw0: header(.unsupportedUpstreamTransaction, streamID, substreamID), dw1: Evt.DW1.reason.place(UInt64(reason)) | accessBits(access), dw2: inputAddress)
    }

    /// C_BAD_STREAMID (§7.3.3).
    public static func badStreamID(streamID: UInt32, substreamID: UInt32? = nil) -> EventRecord {
        EventRecord(dw0: header(.badStreamID, streamID, substreamID))
    }

    /// F_STE_FETCH (§7.3.4).
    public static func steFetch(streamID: UInt32, substreamID: UInt32? = nil, fetchAddress: UInt64, reason: UInt16 = 0) -> EventRecord {
        EventRecord(dw0: header(.steFetch, streamID, substreamID), dw1: Evt.DW1.reason.place(UInt64(reason)), dw3: Evt.DW3.fetchAddress.extract(fetchAddress))
    }

    /// C_BAD_STE (§7.3.5).
    public static func badSTE(streamID: UInt32, substreamID: UInt32? = nil) -> EventRecord {
        EventRecord(dw0: header(.badSTE, streamID, substreamID))
    }

    /// F_BAD_ATS_TREQ (§7.3.6): the requested permissions (before overrides) and span in STUs.
    public static func badATSTranslationRequest(streamID: UInt32, substreamID: UInt32? = nil, address: UInt64, span: UInt8, read: Bool, write: Bool, execute: Bool, privileged: Bool) -> EventRecord {
        var dw1 = Evt.DW1.uR.place(read) | Evt.DW1.uW.place(write) | Evt.DW1.uX.place(execute) | Evt.DW1.priv.place(privileged)
        dw1 |= Evt.DW1.span.place(UInt64(span))
        return EventRecord(dw0: header(.badATSTranslationRequest, streamID, substreamID), dw1: dw1, dw2: Evt.DW2.pageAddress.extract(address))
    }

    /// F_STREAM_DISABLED (§7.3.7).
    public static func streamDisabled(streamID: UInt32, substreamID: UInt32? = nil) -> EventRecord {
        EventRecord(dw0: header(.streamDisabled, streamID, substreamID))
    }

    /// F_TRANSL_FORBIDDEN (§7.3.8).
    public static func translationForbidden(streamID: UInt32, substreamID: UInt32? = nil, inputAddress: UInt64, read: Bool) -> EventRecord {
        EventRecord(dw0: header(.translationForbidden, streamID, substreamID), dw1: Evt.DW1.rnw.place(read), dw2: inputAddress)
    }

    /// C_BAD_SUBSTREAMID (§7.3.9): the SubstreamID is always recorded (no SSV).
    public static func badSubstreamID(streamID: UInt32, substreamID: UInt32) -> EventRecord {
        EventRecord(dw0: UInt64(EventType.badSubstreamID.rawValue) | Evt.DW0.streamID.place(UInt64(streamID)) | Evt.DW0.substreamID.place(UInt64(substreamID)))
    }

    /// F_CD_FETCH (§7.3.10).
    public static func cdFetch(streamID: UInt32, substreamID: UInt32? = nil, fetchAddress: UInt64, reason: UInt16 = 0) -> EventRecord {
        EventRecord(dw0: header(.cdFetch, streamID, substreamID), dw1: Evt.DW1.reason.place(UInt64(reason)), dw3: Evt.DW3.fetchAddress.extract(fetchAddress))
    }

    /// C_BAD_CD (§7.3.11).
    public static func badCD(streamID: UInt32, substreamID: UInt32? = nil) -> EventRecord {
        EventRecord(dw0: header(.badCD, streamID, substreamID))
    }

    /// F_WALK_EABT (§7.3.12).
    public static func walkExternalAbort(streamID: UInt32, substreamID: UInt32? = nil, access: AccessAttributes, stage2: Bool, faultClass: FaultClass, inputAddress: UInt64, fetchAddress: UInt64, reason: UInt16 = 0) -> EventRecord {
        var dw1 = Evt.DW1.reason.place(UInt64(reason)) | accessBits(access) | Evt.DW1.s2.place(stage2)
        dw1 |= Evt.DW1.faultClass.place(UInt64(faultClass.rawValue))
        return EventRecord(dw0: header(.walkExternalAbort, streamID, substreamID), dw1: dw1, dw2: inputAddress, dw3: Evt.DW3.fetchAddress.extract(fetchAddress))
    }

    /// F_TRANSLATION, F_ADDR_SIZE, F_ACCESS or F_PERMISSION (§7.3.13–§7.3.16).
    public static func translationFault(_ fault: TranslationFault) -> EventRecord {
        var dw1 = accessBits(fault.access) | Evt.DW1.s2.place(fault.stage2)
        dw1 |= Evt.DW1.faultClass.place(UInt64(fault.faultClass.rawValue))
        if fault.stall { dw1 |= Evt.DW1.stall.mask | Evt.DW1.stag.place(UInt64(fault.stag)) }
        if fault.type == .permission && fault.faultClass == .translationTable { dw1 |= Evt.DW1.ttrnw.place(fault.translationTableRead) }
        let dw3 = fault.stage2 ? Evt.DW3.ipa.extract(fault.ipa) : 0
        return EventRecord(dw0: header(fault.type, fault.streamID, fault.substreamID), dw1: dw1, dw2: fault.inputAddress, dw3: dw3)
    }

    /// F_TLB_CONFLICT (§7.3.17).
    public static func tlbConflict(streamID: UInt32, substreamID: UInt32? = nil, access: AccessAttributes, stage2: Bool, inputAddress: UInt64, ipa: UInt64 = 0, reason: UInt16 = 0) -> EventRecord {
        let dw1 = Evt.DW1.reason.place(UInt64(reason)) | accessBits(access) | Evt.DW1.s2.place(stage2)
        return EventRecord(dw0: header(.tlbConflict, streamID, substreamID), dw1: dw1, dw2: inputAddress, dw3: stage2 ? Evt.DW3.ipa.extract(ipa) : 0)
    }

    /// F_CFG_CONFLICT (§7.3.18).
    public static func configurationConflict(streamID: UInt32, substreamID: UInt32? = nil, reason: UInt32 = 0) -> EventRecord {
        EventRecord(dw0: header(.configurationConflict, streamID, substreamID), dw1: Evt.DW1.configurationReason.place(UInt64(reason)))
    }

    /// The anticipated accesses of an E_PAGE_REQUEST hint.
    public struct PageRequestPermissions: OptionSet, Sendable, Hashable {
        public let rawValue: UInt8
        public init(rawValue: UInt8) { self.rawValue = rawValue }
        /// uR: unprivileged read anticipated.
        @inlinable public static var userRead: PageRequestPermissions { PageRequestPermissions(rawValue: 1 << 0) }
        /// uW: unprivileged write anticipated.
        @inlinable public static var userWrite: PageRequestPermissions { PageRequestPermissions(rawValue: 1 << 1) }
        /// uX: unprivileged execute anticipated.
        @inlinable public static var userExecute: PageRequestPermissions { PageRequestPermissions(rawValue: 1 << 2) }
        /// pR: privileged read anticipated.
        @inlinable public static var privilegedRead: PageRequestPermissions { PageRequestPermissions(rawValue: 1 << 3) }
        /// pW: privileged write anticipated.
        @inlinable public static var privilegedWrite: PageRequestPermissions { PageRequestPermissions(rawValue: 1 << 4) }
        /// pX: privileged execute anticipated.
        @inlinable public static var privilegedExecute: PageRequestPermissions { PageRequestPermissions(rawValue: 1 << 5) }
    }

    /// E_PAGE_REQUEST (§7.3.19): a speculative page-request hint for `span` × 4 KB at `address`.
    public static func pageRequest(streamID: UInt32, substreamID: UInt32? = nil, address: UInt64, span: UInt8, permissions: PageRequestPermissions) -> EventRecord {
        var dw1 = Evt.DW1.span.place(UInt64(span))
        dw1 |= Evt.DW1.uR.place(permissions.contains(.userRead)) | Evt.DW1.uW.place(permissions.contains(.userWrite))
        dw1 |= Evt.DW1.uX.place(permissions.contains(.userExecute)) | Evt.DW1.pR.place(permissions.contains(.privilegedRead))
        dw1 |= Evt.DW1.pW.place(permissions.contains(.privilegedWrite)) | Evt.DW1.pX.place(permissions.contains(.privilegedExecute))
        return EventRecord(dw0: header(.pageRequest, streamID, substreamID), dw1: dw1, dw2: Evt.DW2.pageAddress.extract(address))
    }

    /// F_VMS_FETCH (§7.3.20).
    public static func vmsFetch(streamID: UInt32, substreamID: UInt32? = nil, fetchAddress: UInt64, reason: UInt16 = 0) -> EventRecord {
        EventRecord(dw0: header(.vmsFetch, streamID, substreamID), dw1: Evt.DW1.reason.place(UInt64(reason)), dw3: Evt.DW3.fetchAddress.extract(fetchAddress))
    }

    // MARK: Description

    /// A readable rendering, e.g. `F_TRANSLATION sid=0x10 ssid=0x1 R addr=0x1000 S1 IN`.
    public var description: String {
        var text = EventType.name(of: number) + " sid=\(hex(streamID))"
        if let substreamID { text += " ssid=\(hex(substreamID))" }
        guard let type else {
            return text + " dw=[\(hex(dw0, digits: 16)) \(hex(dw1, digits: 16)) \(hex(dw2, digits: 16)) \(hex(dw3, digits: 16))]"
        }
        switch type {
        case .badStreamID, .badSTE, .streamDisabled, .badSubstreamID, .badCD:
            break
        case .unsupportedUpstreamTransaction:
            text += " \(access) addr=\(hex(inputAddress)) reason=\(hex(Evt.DW1.reason.extract(dw1)))"
        case .steFetch, .cdFetch, .vmsFetch:
            text += " fetch=\(hex(fetchAddress)) reason=\(hex(Evt.DW1.reason.extract(dw1)))"
            if Evt.DW1.gpcf.isSet(dw1) { text += " GPCF" }
        case .badATSTranslationRequest:
            var perms = ""
            if Evt.DW1.uR.isSet(dw1) { perms += "R" }
            if Evt.DW1.uW.isSet(dw1) { perms += "W" }
            if Evt.DW1.uX.isSet(dw1) { perms += "X" }
            if Evt.DW1.priv.isSet(dw1) { perms += " priv" }
            text += " addr=\(hex(Evt.DW2.pageAddress.extract(dw2))) span=\(Evt.DW1.span.extract(dw1)) \(perms)"
        case .translationForbidden:
            text += " \(Evt.DW1.rnw.isSet(dw1) ? "R" : "W") addr=\(hex(inputAddress))"
        case .walkExternalAbort:
            text += " \(access) addr=\(hex(inputAddress)) \(isStage2 ? "S2" : "S1") \(faultClass.map(\.description) ?? "?") fetch=\(hex(fetchAddress))"
        case .translation, .addressSize, .access, .permission:
            text += " \(access) addr=\(hex(inputAddress)) \(isStage2 ? "S2" : "S1") \(faultClass.map(\.description) ?? "?")"
            if isStage2 { text += " ipa=\(hex(ipa))" }
            if type == .permission && faultClass == .translationTable { text += Evt.DW1.ttrnw.isSet(dw1) ? " TT-read" : " TT-write" }
            if isStall { text += " STALL stag=\(hex(stag))" }
        case .tlbConflict:
            text += " \(access) addr=\(hex(inputAddress)) \(isStage2 ? "S2 ipa=\(hex(ipa))" : "S1") reason=\(hex(Evt.DW1.reason.extract(dw1)))"
        case .configurationConflict:
            text += " reason=\(hex(Evt.DW1.configurationReason.extract(dw1)))"
        case .pageRequest:
            var perms: [String] = []
            let flags: [(BitField, String)] = [(Evt.DW1.uR, "uR"), (Evt.DW1.uW, "uW"), (Evt.DW1.uX, "uX"), (Evt.DW1.pR, "pR"), (Evt.DW1.pW, "pW"), (Evt.DW1.pX, "pX")]
            for (field, name) in flags where field.isSet(dw1) { perms.append(name) }
            text += " addr=\(hex(Evt.DW2.pageAddress.extract(dw2))) span=\(Evt.DW1.span.extract(dw1)) \(perms.joined(separator: ","))"
        }
        return text
    }
}
