import Platform

/// A PCIe PRI message arriving at the SMMU: a Page Request (PPR) or a Stop Marker
/// (Stop PASID message, L=1, R=W=0 with a PASID), §8.
public struct PageRequest: Hashable, Sendable, CustomStringConvertible {
    /// The StreamID (StreamID[15:0] equals the PCIe RequesterID).
    public var streamID: UInt32
    /// The PASID, or nil when the message had no PASID prefix.
    public var substreamID: UInt32?
    /// The Page Request Group index (9 bits).
    public var prgIndex: UInt16
    /// L: the last request of its group.
    public var last: Bool
    /// R.
    public var read: Bool
    /// W.
    public var write: Bool
    /// X (only meaningful with a PASID).
    public var execute: Bool
    /// Priv (only meaningful with a PASID).
    public var privileged: Bool
    /// The page address (bits [11:0] ignored).
    public var address: UInt64

    /// Creates a page request.
    public init(streamID: UInt32, substreamID: UInt32? = nil, prgIndex: UInt16, last: Bool, read: Bool, write: Bool, execute: Bool = false, privileged: Bool = false, address: UInt64) {
        self.streamID = streamID
        self.substreamID = substreamID
        self.prgIndex = prgIndex
        self.last = last
        self.read = read
        self.write = write
        self.execute = execute
        self.privileged = privileged
        self.address = address
    }

    /// A Stop Marker for `substreamID` (§8: L=1, W=0, R=0 with a PASID).
    public static func stopMarker(streamID: UInt32, substreamID: UInt32, prgIndex: UInt16 = 0) -> PageRequest {
        PageRequest(streamID: streamID, substreamID: substreamID, prgIndex: prgIndex, last: true, read: false, write: false, address: 0)
    }

    /// Whether this is a Stop Marker rather than a page request.
    public var isStopMarker: Bool { last && !read && !write && substreamID != nil }

    public var description: String {
        let pasid = substreamID.map { " pasid=\(hex($0))" } ?? ""
        if isStopMarker { return "STOP sid=\(hex(streamID))\(pasid) prgi=\(hex(prgIndex))" }
        var perms = (read ? "R" : "") + (write ? "W" : "") + (execute ? "X" : "")
        if privileged { perms += " priv" }
        return "PPR sid=\(hex(streamID))\(pasid) prgi=\(hex(prgIndex))\(last ? " L" : "") \(perms) addr=\(hex(address))"
    }
}

/// Bit layout of a PRI queue entry (§8.3; identical in the Linux header).
public enum PRIQ {
    /// Doubleword 0.
    public enum DW0 {
        /// StreamID[31:0]: the requester (StreamID[15:0] = PCIe RequesterID).
        @inlinable public static var streamID: BitField { BitField(31, 0) }
        /// SubstreamID[51:32]: the PASID, UNKNOWN when SSV is 0.
        @inlinable public static var substreamID: BitField { BitField(51, 32) }
        /// PRIV[58]: privileged access requested (0 when SSV is 0).
        @inlinable public static var priv: BitField { BitField(bit: 58) }
        /// X[59]: execute access requested (0 when SSV is 0).
        @inlinable public static var exec: BitField { BitField(bit: 59) }
        /// R[60]: read access requested.
        @inlinable public static var read: BitField { BitField(bit: 60) }
        /// W[61]: write access requested.
        @inlinable public static var write: BitField { BitField(bit: 61) }
        /// L[62]: last request of its Page Request Group.
        @inlinable public static var last: BitField { BitField(bit: 62) }
        /// SSV[63]: SubstreamID valid (the request had a PASID prefix).
        @inlinable public static var ssv: BitField { BitField(bit: 63) }
    }

    /// Doubleword 1.
    public enum DW1 {
        /// PRGIndex[72:64] (DW1[8:0]): the Page Request Group index.
        @inlinable public static var prgIndex: BitField { BitField(8, 0) }
        /// Page Address[127:76] (DW1[63:12]): address bits [63:12] of the requested page.
        @inlinable public static var address: AddressField { AddressField(63, 12) }
    }
}

/// One 16-byte PRI queue entry.
public struct PRIQEntry: Hashable, Sendable, CustomStringConvertible {
    /// Doubleword 0 (bits [63:0]): StreamID, SubstreamID and the request flags.
    public var dw0: UInt64
    /// Doubleword 1 (bits [127:64]): PRGIndex and the page address.
    public var dw1: UInt64

    /// Creates an entry from its doublewords.
    public init(dw0: UInt64, dw1: UInt64) {
        self.dw0 = dw0
        self.dw1 = dw1
    }

    /// The entry the SMMU writes for `request`. X and Priv are written as 0 without a PASID
    /// (§8.3).
    public init(_ request: PageRequest) {
        var dw0 = PRIQ.DW0.streamID.place(UInt64(request.streamID))
        if let substreamID = request.substreamID {
            dw0 |= PRIQ.DW0.ssv.mask | PRIQ.DW0.substreamID.place(UInt64(substreamID))
            dw0 |= PRIQ.DW0.exec.place(request.execute) | PRIQ.DW0.priv.place(request.privileged)
        }
        dw0 |= PRIQ.DW0.read.place(request.read) | PRIQ.DW0.write.place(request.write) | PRIQ.DW0.last.place(request.last)
        self.dw0 = dw0
        self.dw1 = PRIQ.DW1.prgIndex.place(UInt64(request.prgIndex)) | PRIQ.DW1.address.extract(request.address)
    }

    /// The message the entry records.
    public var request: PageRequest {
        let hasPASID = PRIQ.DW0.ssv.isSet(dw0)
        return PageRequest(
            streamID: UInt32(PRIQ.DW0.streamID.extract(dw0)),
            substreamID: hasPASID ? UInt32(PRIQ.DW0.substreamID.extract(dw0)) : nil,
            prgIndex: UInt16(PRIQ.DW1.prgIndex.extract(dw1)),
            last: PRIQ.DW0.last.isSet(dw0), read: PRIQ.DW0.read.isSet(dw0), write: PRIQ.DW0.write.isSet(dw0),
            execute: PRIQ.DW0.exec.isSet(dw0), privileged: PRIQ.DW0.priv.isSet(dw0),
            address: PRIQ.DW1.address.extract(dw1))
    }

    public var description: String { request.description }
}

/// The response code of a PCIe PRG Response message (§8.3).
public enum PRGResponseCode: UInt8, Sendable, Hashable, CustomStringConvertible {
    /// 0b0000 Success.
    case success = 0b0000
    /// 0b0001 Invalid Request.
    case invalidRequest = 0b0001
    /// 0b1111 Response Failure.
    case responseFailure = 0b1111

    /// The wire code for a CMD_PRI_RESP Resp value (§4.5.2).
    public init(_ response: PRIResponse) {
        switch response {
        case .responseFailure: self = .responseFailure
        case .invalidRequest: self = .invalidRequest
        case .success: self = .success
        }
    }

    public var description: String {
        switch self {
        case .success: "Success"
        case .invalidRequest: "InvalidRequest"
        case .responseFailure: "ResponseFailure"
        }
    }
}

/// A PRG Response message sent by the SMMU to an endpoint, from CMD_PRI_RESP or generated
/// automatically (§8.1, §8.2).
public struct PRGResponse: Hashable, Sendable, CustomStringConvertible {
    /// The StreamID the response is routed to.
    public var streamID: UInt32
    /// The PASID prefix, if any.
    public var substreamID: UInt32?
    /// The Page Request Group index.
    public var prgIndex: UInt16
    /// The response code.
    public var code: PRGResponseCode
    /// Whether the SMMU generated it itself (rather than software through CMD_PRI_RESP).
    public var automatic: Bool

    /// Creates a response.
    public init(streamID: UInt32, substreamID: UInt32?, prgIndex: UInt16, code: PRGResponseCode, automatic: Bool) {
        self.streamID = streamID
        self.substreamID = substreamID
        self.prgIndex = prgIndex
        self.code = code
        self.automatic = automatic
    }

    public var description: String {
        let pasid = substreamID.map { " pasid=\(hex($0))" } ?? ""
        return "PRG response sid=\(hex(streamID))\(pasid) prgi=\(hex(prgIndex)) \(code)\(automatic ? " (auto)" : "")"
    }
}
