import Platform
import SMMUv3Layout
import VMSA

/// An ATS Invalidate Request sent to an endpoint for CMD_ATC_INV (§4.5.1, §3.9.1.4).
public struct ATCInvalidation: Hashable, Sendable, CustomStringConvertible {
    /// The StreamID routing the request.
    public var streamID: UInt32
    /// The PASID prefix, if any.
    public var substreamID: UInt32?
    /// Global Invalidate (only with a PASID).
    public var global: Bool
    /// The first address of the span (aligned to the span).
    public var address: UInt64
    /// log2 of the span in 4 KB units: the span is 4 KB × 2^size (52 = everything).
    public var size: UInt8

    /// The span in bytes (saturating at 2^64 - 1).
    public var spanBytes: UInt64 { size >= 52 ? .max : UInt64(4096) << UInt64(size) }

    /// Whether `address` lies in the span.
    public func covers(_ candidate: UInt64) -> Bool {
        size >= 52 || candidate & ~(spanBytes - 1) == address
    }

    public var description: String {
        let pasid = substreamID.map { " pasid=\(hex($0))\(global ? " global" : "")" } ?? ""
        return "ATS invalidate sid=\(hex(streamID))\(pasid) addr=\(hex(address)) span=\(size >= 52 ? "all" : hex(spanBytes))"
    }
}

/// How an endpoint answers an ATS Invalidate Request.
public enum ATCInvalidationResponse: Hashable, Sendable {
    /// The Invalidation Completion arrives at once.
    case completed
    /// The Invalidation Completion arrives after `ticks` of virtual time.
    case completedAfter(ticks: UInt64)
    /// The endpoint answers Unsupported Request: complete, without a guarantee (§3.9.1.5).
    case unsupportedRequest
    /// No completion ever arrives.
    case noResponse
}

/// The status of an ATS Translation Completion.
public enum ATSCompletionStatus: Hashable, Sendable {
    case success
    /// UR: ATS is disabled or unsupported for the stream.
    case unsupportedRequest
    /// CA: a configuration error.
    case completerAbort
}

/// An ATS Translation Request from an endpoint (§3.9.1).
public struct ATSTranslationRequest: Hashable, Sendable {
    /// The StreamID of the requesting endpoint (StreamID[15:0] = PCIe RequesterID).
    public var streamID: UInt32
    /// The PASID from the request's PASID prefix, or nil when there was none.
    public var substreamID: UInt32?
    /// The untranslated address.
    public var address: UInt64
    /// NW: the endpoint does not need write permission.
    public var noWrite: Bool
    /// Exe (with a PASID).
    public var execute: Bool
    /// Priv (with a PASID).
    public var privileged: Bool
    /// The number of STUs requested.
    public var span: UInt8

    /// Creates a request.
    public init(streamID: UInt32, substreamID: UInt32? = nil, address: UInt64, noWrite: Bool = false, execute: Bool = false, privileged: Bool = false, span: UInt8 = 1) {
        self.streamID = streamID
        self.substreamID = substreamID
        self.address = address
        self.noWrite = noWrite
        self.execute = execute
        self.privileged = privileged
        self.span = span
    }
}

/// An ATS Translation Completion (§3.9.1.2, §13.7).
public struct ATSTranslationCompletion: Hashable, Sendable, CustomStringConvertible {
    /// The completion status: Success, UR (Unsupported Request) or CA (Completer Abort).
    public var status: ATSCompletionStatus
    /// The translated address, aligned to `size`.
    public var translatedAddress: UInt64
    /// The bytes the translation covers.
    public var size: UInt64
    /// R: read access is granted.
    public var read: Bool
    /// W: write access is granted.
    public var write: Bool
    /// Exe: execute access is granted (only with a PASID).
    public var execute: Bool
    /// Priv: the translation is for privileged accesses (only with a PASID).
    public var privileged: Bool

    static func failed(_ status: ATSCompletionStatus) -> ATSTranslationCompletion {
        ATSTranslationCompletion(status: status, translatedAddress: 0, size: 0, read: false, write: false, execute: false, privileged: false)
    }

    public var description: String {
        switch status {
        case .unsupportedRequest: return "UR"
        case .completerAbort: return "CA"
        case .success:
            let perms = (read ? "R" : "") + (write ? "W" : "") + (execute ? "X" : "") + (privileged ? " priv" : "")
            return "success \(hex(translatedAddress)) size=\(hex(size)) \(perms.isEmpty ? "no access" : perms)"
        }
    }
}

extension SMMU {
    /// The Smallest Translation Unit: the smallest implemented granule (§3.9.1).
    var smallestTranslationUnit: UInt64 {
        configuration.granule4K ? 4096 : (configuration.granule16K ? 16384 : 65536)
    }

    /// Answers an ATS Translation Request (§3.9.1.2): UR when ATS is not allowed, CA for
    /// configuration errors, Success with R == W == 0 for translation faults and partial
    /// permissions for permission faults. Translation Requests never stall and record only
    /// F_BAD_ATS_TREQ.
    public func translationRequest(_ request: ATSTranslationRequest) -> ATSTranslationCompletion {
        beginOperation()
        defer { endOperation() }
        let completion = answerTranslationRequest(request)
        trace.record(.translation, "\(names.xlat): ATS TR sid=\(hex(request.streamID))\(request.substreamID.map { " pasid=\(hex($0))" } ?? "") \(hex(request.address))\(request.noWrite ? " NW" : "") -> \(completion)")
        return completion
    }

    private func answerTranslationRequest(_ request: ATSTranslationRequest) -> ATSTranslationCompletion {
        func refused() -> ATSTranslationCompletion {
            recordEvent(.badATSTranslationRequest(streamID: request.streamID, substreamID: request.substreamID, address: request.address, span: request.span, read: true, write: !request.noWrite, execute: request.execute, privileged: request.privileged))
            return .failed(.unsupportedRequest)
        }
        guard isEnabled else { return refused() }
        let ste: StreamTableEntry
        switch streamTableEntry(for: request.streamID, mode: .transaction) {
        case .success(let found): ste = found
        case .failure: return .failed(.completerAbort)
        }
        if ste.problem != nil { return .failed(.completerAbort) }
        if ste.isAbort { return .failed(.unsupportedRequest) }
        if ste.isBypass || ste.eats != 0b01 { return refused() }

        // Without a PASID the request is an unprivileged data access (§13.7.1).
        let hasPASID = request.substreamID != nil
        let requestedPrivilege = hasPASID && request.privileged
        let access = AccessAttributes(read: request.noWrite, instruction: false, privileged: requestedPrivilege)
        var context = StreamContext()
        let stu = smallestTranslationUnit
        let noAccess = ATSTranslationCompletion(status: .success, translatedAddress: 0, size: stu, read: false, write: false, execute: false, privileged: requestedPrivilege)
        let mapping: Mapping
        switch resolveAndTranslate(streamID: request.streamID, substreamID: request.substreamID, address: request.address, access: access, mode: .translationRequest, checksAccess: false, context: &context) {
        case .success(let found): mapping = found
        case .failure(let failure):
            switch failure {
            case .fault(let fault) where fault.type == .walkExternalAbort || fault.type == .tlbConflict: return .failed(.completerAbort)
            case .fault, .bypassAddressSize, .configuration(.stage2): return noAccess
            case .silentAbort: return .failed(.unsupportedRequest)
            default: return .failed(.completerAbort)
            }
        }
        let effectivePrivilege = context.effectiveAccess(access).privileged
        let granted = mapping.stage1.intersection(mapping.stage2)
        func allows(_ privileged: Permissions, _ unprivileged: Permissions) -> Bool {
            granted.contains(effectivePrivilege ? privileged : unprivileged)
        }
        let readable = allows(.privilegedRead, .unprivilegedRead)
        let writable = allows(.privilegedWrite, .unprivilegedWrite)
        let executable = allows(.privilegedExecute, .unprivilegedExecute)
        let read: Bool, execute: Bool
        switch ste.instCfg {
        case 0b11: (read, execute) = (executable, hasPASID && request.execute && executable)
        case 0b10: (read, execute) = (readable, hasPASID && request.execute && readable)
        default: (read, execute) = (readable, hasPASID && request.execute && readable && executable)
        }
        // A writable-clean page is granted write only when the request asked for it (it was
        // made dirty by the resolution above when hardware dirty updates are enabled).
        let write = writable && !request.noWrite
        let size = UInt64(1) << UInt64(mapping.shift)
        return ATSTranslationCompletion(status: .success, translatedAddress: mapping.outputAddress & ~(size - 1), size: size, read: read, write: write, execute: execute, privileged: requestedPrivilege)
    }

    /// CMD_ATC_INV's effect: the request goes to the endpoint behind the StreamID; CMD_SYNC later
    /// checks that it completed.
    func sendATCInvalidation(streamID: UInt32, substreamID: UInt32?, global: Bool, address: UInt64, size: UInt8) -> CommandEffect {
        let pasid = substreamIDBits == 0 ? nil : substreamID
        let span: UInt64 = size >= 52 ? 0 : (UInt64(4096) << UInt64(size))
        let request = ATCInvalidation(streamID: streamID, substreamID: pasid, global: pasid != nil && global, address: size >= 52 ? 0 : address & ~(span &- 1), size: size)
        guard let response = deliver(request) else { return .noEffect(.noATSEndpoint) }
        trace.record(.translation, "\(names.xlat): \(request) -> \(response)")
        outstandingATCInvalidations.note(response, timeout: configuration.atcInvalidationTimeout)
        return .atcInvalidationSent(endpoints: 1)
    }

    /// Whether every ATS invalidation sent so far completed within the timeout. Completions that
    /// arrive late make the SMMU wait (virtual time advances); a missing one fails the
    /// CMD_SYNC. Either way the outstanding set is cleared, so that a retried CMD_SYNC succeeds
    /// (the timed-out invalidations "will never complete", §3.9.1.4).
    func atcInvalidationsComplete() -> Bool {
        let outstanding = outstandingATCInvalidations
        guard outstanding.count != 0 else { return true }
        outstandingATCInvalidations = OutstandingATCInvalidations()
        bus.clock.advance(by: outstanding.timedOut ? configuration.atcInvalidationTimeout : outstanding.longestWait)
        return !outstanding.timedOut
    }

    /// STE.PPAR of a valid STE for `streamID`, or nil when the STE cannot be located or is
    /// invalid (§8.1, used when IDR3.PPS == 0). Without CR2.REC_CFG_ATS nothing is recorded.
    func streamTableEntryForPRIResponse(streamID: UInt32) -> Bool? {
        guard isEnabled, case .success(let ste) = streamTableEntry(for: streamID, mode: .transaction), ste.problem == nil else { return nil }
        return ste.ppar
    }
}

/// The ATS invalidations sent since the last CMD_SYNC, as much as CMD_SYNC needs to know: how
/// many, the latest completion among them, and whether one will never complete in time.
struct OutstandingATCInvalidations {
    /// Invalidations sent (saturating).
    var count = 0
    /// The longest completion delay, in ticks, among those that complete in time.
    var longestWait: UInt64 = 0
    /// Whether one of them does not complete within the timeout.
    var timedOut = false

    mutating func note(_ response: ATCInvalidationResponse, timeout: UInt64) {
        count = count == .max ? count : count + 1
        switch response {
        case .completed, .unsupportedRequest: break
        case .completedAfter(let ticks):
            if ticks > timeout { timedOut = true } else { longestWait = max(longestWait, ticks) }
        case .noResponse: timedOut = true
        }
    }
}
