import Platform
import SMMUv3

/// Why a DMA operation failed.
public enum DMAFailure: Hashable, Sendable, CustomStringConvertible {
    /// The SMMU terminated the transaction with an abort (the event it recorded, if any).
    case aborted(EventType?)
    /// An ATS Translation Request got UR or CA.
    case translationRequestFailed(ATSCompletionStatus)
    /// The translation gave no access and the function cannot ask for the page (no PRI or no
    /// PASID requirement met).
    case noAccess
    /// A page request was answered with Invalid Request or Response Failure.
    case pageRequestRejected(PRGResponseCode)
    /// The PASID is stopped (or stopping) at the function.
    case pasidStopped
    /// The PASID's outstanding page request was marked stale by a Stop PASID.
    case staleAfterStop
    /// The memory access after translation got an external abort.
    case memoryAbort(UInt64)

    public var description: String {
        switch self {
        case .aborted(let event): "aborted by the SMMU" + (event.map { " (\($0))" } ?? "")
        case .translationRequestFailed(let status): "ATS translation request failed (\(status))"
        case .noAccess: "no access and no way to request the page"
        case .pageRequestRejected(let code): "page request rejected (\(code))"
        case .pasidStopped: "PASID stopped"
        case .staleAfterStop: "page request made stale by a Stop PASID"
        case .memoryAbort(let address): "external abort at \(hex(address))"
        }
    }
}

/// The state of a DMA operation.
public enum DMAState: Hashable, Sendable, CustomStringConvertible {
    /// Every byte was transferred.
    case completed
    /// Waiting for the PRG response to a page request.
    case waitingForPageRequest(prgIndex: UInt16)
    /// Waiting for page request credits.
    case waitingForCredits
    /// A transaction is stalled in the SMMU.
    case stalled(stag: UInt16)
    /// Given up.
    case failed(DMAFailure)

    public var description: String {
        switch self {
        case .completed: "completed"
        case .waitingForPageRequest(let index): "waiting for PRG \(hex(index))"
        case .waitingForCredits: "waiting for page request credits"
        case .stalled(let stag): "stalled (stag \(hex(stag)))"
        case .failed(let failure): "failed: \(failure)"
        }
    }
}

/// Identifies a DMA operation of a function.
public struct DMAHandle: Hashable, Sendable {
    /// A unique number for the operation within its function.
    public let id: Int
}

/// How a function stops using a PASID (PCIe "Managing PASID TLP Prefix Usage"; seed 001).
public enum PASIDStopMode: Sendable, Hashable {
    /// Stop issuing requests and wait for every outstanding page request to complete.
    case waitForCompletion
    /// Mark outstanding page requests stale and send a Stop Marker; the PASID may be reused
    /// at once.
    case markStaleAndSendStopMarker
}

/// A PASID's state at the function.
public enum PASIDState: Hashable, Sendable {
    case active
    /// Stopping, waiting for `outstanding` page request groups.
    case stopping(outstanding: Int)
    case stopped
}

/// A PCIe function behind the SMMU: a RequesterID mapped to a StreamID, a PASID capability, an
/// ATC with ATS, and a PRI capability with outstanding-request credits. It issues DMA that goes
/// through the SMMU to memory, asks for missing pages with PRI, retries after a Success
/// response and gives up after a failure.
public final class PCIeFunction {
    /// The PCIe RequesterID (bus/device/function).
    public let requesterID: UInt16
    /// The StreamID the root complex gives it.
    public let streamID: UInt32
    /// ATS enabled: translations are requested and cached in the ATC.
    public var atsEnabled: Bool
    /// PRI enabled: missing pages are requested with page requests.
    public var priEnabled: Bool
    /// Outstanding page request allocation (credits).
    public var pageRequestCredits: Int
    /// How the function answers ATS invalidations (fault injection for CERROR_ATC_INV_SYNC).
    public var invalidationResponse: ATCInvalidationResponse = .completed

    weak var rootComplex: RootComplex?
    var smmu: SMMU? { rootComplex?.smmu }

    /// Cached translations, by PASID and 4 KB page.
    public private(set) var atc: [UInt32?: [UInt64: ATSTranslationCompletion]] = [:]
    /// The number of translations in ``atc``.
    public private(set) var atcEntryCount = 0
    /// The most translations the ATC holds; inserting into a full ATC empties it first (a
    /// deterministic replacement policy, like the capacity of a real ATC).
    public var atcCapacity = 4096
    private var invalidationLog = BoundedLog<ATCInvalidation>(capacity: PCIeFunction.messageLogCapacity)
    private var responseLog = BoundedLog<PRGResponse>(capacity: PCIeFunction.messageLogCapacity)
    /// PASIDs with a state other than active.
    public private(set) var pasidStates: [UInt32: PASIDState] = [:]

    /// How many received messages ``invalidationsReceived`` and ``responsesReceived`` keep.
    public static let messageLogCapacity = 1024
    /// How many finished DMA operations stay queryable with ``state(of:)`` and ``data(of:)``.
    public static let finishedOperationsKept = 4096
    /// The number of PRG indexes (9 bits): at most this many page request groups can be
    /// outstanding, whatever the credits.
    public static let prgIndexCount = 512

    /// The most recent ATS invalidations received, oldest first (at most
    /// ``messageLogCapacity``; ``invalidationCount`` counts them all).
    public var invalidationsReceived: [ATCInvalidation] { invalidationLog.elements }
    /// The number of ATS invalidations received.
    public var invalidationCount: Int { invalidationLog.totalAppended }
    /// The most recent PRG responses received, oldest first (at most ``messageLogCapacity``;
    /// ``responseCount`` counts them all).
    public var responsesReceived: [PRGResponse] { responseLog.elements }
    /// The number of PRG responses received.
    public var responseCount: Int { responseLog.totalAppended }

    final class Operation {
        let handle: DMAHandle
        let pasid: UInt32?
        let address: UInt64
        let write: Bool
        let privileged: Bool
        var data: [UInt8]
        var done = 0
        var state: DMAState = .completed

        init(handle: DMAHandle, pasid: UInt32?, address: UInt64, write: Bool, privileged: Bool, data: [UInt8]) {
            self.handle = handle
            self.pasid = pasid
            self.address = address
            self.write = write
            self.privileged = privileged
            self.data = data
        }
    }

    struct PageRequestGroup {
        var pasid: UInt32?
        var stale: Bool
        var waiting: [Int]
    }

    private var operations: [Int: Operation] = [:]
    /// Finished operations, oldest first; the oldest are forgotten beyond
    /// ``finishedOperationsKept``.
    private var finished = BoundedLog<Int>(capacity: PCIeFunction.finishedOperationsKept)
    private var nextOperation = 0
    private var groups: [UInt16: PageRequestGroup] = [:]
    private var nextPRGIndex: UInt16 = 0
    private var creditsInUse = 0
    private var waitingForCredits: [Int] = []
    private var inbox: [PRGResponse] = []
    private var busy = false
    /// ATC invalidations received (and PASID stops), counted to notice one that arrives while a
    /// Translation Request is in flight.
    private var atcInvalidations = 0

    /// Creates a function; attach it to a ``RootComplex`` to give it a StreamID and an SMMU.
    init(requesterID: UInt16, streamID: UInt32, ats: Bool, pri: Bool, credits: Int) {
        self.requesterID = requesterID
        self.streamID = streamID
        self.atsEnabled = ats
        self.priEnabled = pri
        self.pageRequestCredits = credits
    }

    // MARK: DMA

    /// Starts a DMA read of `length` bytes at `address`; see ``state(of:)`` and ``data(of:)``.
    @discardableResult
    public func read(_ address: UInt64, length: Int, pasid: UInt32? = nil, privileged: Bool = false) -> DMAHandle {
        start(address: address, pasid: pasid, write: false, privileged: privileged, data: [UInt8](repeating: 0, count: max(length, 0)))
    }

    /// Starts a DMA write of `bytes` at `address`.
    @discardableResult
    public func write(_ address: UInt64, bytes: [UInt8], pasid: UInt32? = nil, privileged: Bool = false) -> DMAHandle {
        start(address: address, pasid: pasid, write: true, privileged: privileged, data: bytes)
    }

    /// The state of an operation (nil once a finished operation has been forgotten: the
    /// function remembers the last ``finishedOperationsKept`` finished ones).
    public func state(of handle: DMAHandle) -> DMAState? { operations[handle.id]?.state }

    /// The bytes of a read operation (complete only once its state is `.completed`).
    public func data(of handle: DMAHandle) -> [UInt8]? { operations[handle.id]?.data }

    /// The number of operations the function remembers (unfinished ones and the most recent
    /// finished ones).
    public var rememberedOperations: Int { operations.count }

    /// Ends an operation in `state` and forgets the oldest finished operation beyond the bound.
    private func finish(_ operation: Operation, _ state: DMAState) {
        operation.state = state
        if let forgotten = finished.append(operation.handle.id) { operations[forgotten] = nil }
    }

    private func start(address: UInt64, pasid: UInt32?, write: Bool, privileged: Bool, data: [UInt8]) -> DMAHandle {
        let handle = DMAHandle(id: nextOperation)
        nextOperation += 1
        let operation = Operation(handle: handle, pasid: pasid, address: address, write: write, privileged: privileged, data: data)
        operations[handle.id] = operation
        let wasBusy = busy
        busy = true
        defer { busy = wasBusy }
        if let pasid, let state = pasidStates[pasid], state != .active {
            finish(operation, .failed(.pasidStopped))
        } else {
            advance(operation)
        }
        return handle
    }

    /// Moves an operation forward chunk by chunk (each chunk within one 4 KB page) until it
    /// completes, waits or fails.
    private func advance(_ operation: Operation) {
        guard let smmu else {
            // Detached from its root complex (or the SMMU is gone): nothing carries the access.
            finish(operation, .failed(.aborted(nil)))
            return
        }
        while operation.done < operation.data.count {
            let address = operation.address &+ UInt64(operation.done)
            let chunk = min(operation.data.count - operation.done, 4096 - Int(address & 0xFFF))
            let physical: UInt64
            if atsEnabled {
                guard let translated = atsTranslate(operation, address: address, smmu: smmu) else { return }
                physical = translated
            } else {
                let transaction = InboundTransaction(
                    streamID: streamID, substreamID: operation.pasid, address: address,
                    access: AccessAttributes(read: !operation.write, privileged: operation.privileged), token: UInt64(operation.handle.id))
                switch smmu.translate(transaction) {
                case .translated(let address): physical = address
                case .terminatedRAZ:
                    if !operation.write { for index in 0..<chunk { operation.data[operation.done + index] = 0 } }
                    operation.done += chunk
                    continue
                case .stalled(let stag):
                    operation.state = .stalled(stag: stag)
                    return
                case .aborted(let event):
                    finish(operation, .failed(.aborted(event)))
                    return
                }
            }
            guard transfer(operation, physical: physical, count: chunk) else {
                finish(operation, .failed(.memoryAbort(physical)))
                return
            }
            operation.done += chunk
        }
        finish(operation, .completed)
    }

    /// Moves `count` bytes between the operation's buffer and memory through the bus.
    private func transfer(_ operation: Operation, physical: UInt64, count: Int) -> Bool {
        guard let bus = smmu?.bus else { return false }
        let start = operation.done
        if operation.write {
            return operation.data.withUnsafeBytes { bus.dmaWrite(at: physical, from: UnsafeRawBufferPointer(rebasing: $0[start..<(start + count)])) }
        }
        return operation.data.withUnsafeMutableBytes { bus.dmaRead(at: physical, into: UnsafeMutableRawBufferPointer(rebasing: $0[start..<(start + count)])) }
    }

    /// The ATS path for one chunk: the ATC, then a Translation Request, then a page request.
    /// Returns the physical address, or nil when the operation now waits or failed.
    private func atsTranslate(_ operation: Operation, address: UInt64, smmu: SMMU) -> UInt64? {
        let page = address & ~0xFFF
        if let cached = atc[operation.pasid]?[page], grants(cached, operation) {
            return issueTranslated(operation, physical: cached.translatedAddress &+ (address & (cached.size &- 1)), smmu: smmu)
        }
        let request = ATSTranslationRequest(streamID: streamID, substreamID: operation.pasid, address: page, noWrite: !operation.write, privileged: operation.privileged)
        let invalidationsBefore = atcInvalidations
        let completion = smmu.translationRequest(request)
        guard completion.status == .success else {
            finish(operation, .failed(.translationRequestFailed(completion.status)))
            return nil
        }
        if grants(completion, operation) {
            // An invalidation that arrived while the request was in flight (an interrupt the
            // request delivered may have run CMD_ATC_INV) may cover it: use it for this access
            // only, as an in-flight translation, and do not cache it.
            if atcInvalidations == invalidationsBefore { cache(completion, pasid: operation.pasid, page: page) }
            return issueTranslated(operation, physical: completion.translatedAddress &+ (address & (completion.size &- 1)), smmu: smmu)
        }
        guard priEnabled else {
            finish(operation, .failed(.noAccess))
            return nil
        }
        requestPage(operation, page: page)
        return nil
    }

    private func cache(_ completion: ATSTranslationCompletion, pasid: UInt32?, page: UInt64) {
        if atc[pasid]?[page] == nil {
            if atcEntryCount >= max(atcCapacity, 1) {
                atc.removeAll()
                atcEntryCount = 0
            }
            atcEntryCount += 1
        }
        atc[pasid, default: [:]][page] = completion
    }

    private func grants(_ completion: ATSTranslationCompletion, _ operation: Operation) -> Bool {
        operation.write ? completion.write : completion.read
    }

    /// Sends the translated access through the SMMU (which checks it under CR0.ATSCHK).
    private func issueTranslated(_ operation: Operation, physical: UInt64, smmu: SMMU) -> UInt64? {
        let transaction = InboundTransaction(streamID: streamID, substreamID: operation.pasid, address: physical, access: AccessAttributes(read: !operation.write), kind: .atsTranslated, token: UInt64(operation.handle.id))
        switch smmu.translate(transaction) {
        case .translated(let address): return address
        case .aborted(let event):
            finish(operation, .failed(.aborted(event)))
            return nil
        default:
            finish(operation, .failed(.aborted(nil)))
            return nil
        }
    }

    // MARK: PRI

    private func requestPage(_ operation: Operation, page: UInt64) {
        // Credits beyond the 512 PRG indexes cannot be used: a group needs an index.
        guard creditsInUse < min(pageRequestCredits, PCIeFunction.prgIndexCount), groups.count < PCIeFunction.prgIndexCount else {
            operation.state = .waitingForCredits
            waitingForCredits.append(operation.handle.id)
            return
        }
        var index = nextPRGIndex
        while groups[index] != nil { index = (index &+ 1) & 0x1FF }
        nextPRGIndex = (index &+ 1) & 0x1FF
        groups[index] = PageRequestGroup(pasid: operation.pasid, stale: false, waiting: [operation.handle.id])
        creditsInUse += 1
        operation.state = .waitingForPageRequest(prgIndex: index)
        let request = PageRequest(streamID: streamID, substreamID: operation.pasid, prgIndex: index, last: true, read: !operation.write, write: operation.write, privileged: operation.privileged && operation.pasid != nil, address: page)
        _ = smmu?.receivePageRequest(request)
    }

    /// A PRG Response arrives (from CMD_PRI_RESP or an SMMU auto-response). A response that
    /// arrives while the function is itself issuing a request (an automatic response to that
    /// very request) is handled the next time the function runs, never re-entrantly: an
    /// endpoint retrying into an overflowed PRI queue would otherwise loop forever.
    func receive(_ response: PRGResponse) {
        if responsesToHold > 0 {
            responsesToHold -= 1
            heldResponses.append(response)
            return
        }
        responseLog.append(response)
        inbox.append(response)
        if responsesToDuplicate > 0 {
            responsesToDuplicate -= 1
            responseLog.append(response)
            inbox.append(response)
        }
        if !busy { processPendingResponses() }
    }

    // MARK: Link faults (fault injection)

    /// The next this-many PRG responses arrive twice (a duplicating link or switch): the second
    /// copy finds its group already answered and is ignored, or answers a new group that
    /// reused the PRG index.
    public var responsesToDuplicate = 0
    /// The next this-many PRG responses are held on the link until
    /// ``releaseHeldResponses()``: late responses.
    public var responsesToHold = 0
    /// Responses held back, oldest first.
    public private(set) var heldResponses: [PRGResponse] = []

    /// Delivers the held responses now, oldest first; how many there were.
    @discardableResult
    public func releaseHeldResponses() -> Int {
        let late = heldResponses
        heldResponses.removeAll()
        for response in late { receive(response) }
        return late.count
    }

    /// Handles the PRG responses that arrived while the function was busy.
    public func processPendingResponses() {
        guard !busy else { return }
        busy = true
        defer { busy = false }
        let batch = inbox
        inbox.removeAll()
        for response in batch { handle(response) }
    }

    /// PRG responses that answered no outstanding page request group (ignored).
    public private(set) var unexpectedResponses = 0

    /// PRG responses received but not yet handled.
    public var pendingResponses: Int { inbox.count }

    private func handle(_ response: PRGResponse) {
        guard let group = groups.removeValue(forKey: response.prgIndex) else {
            unexpectedResponses &+= 1
            return
        }
        creditsInUse -= 1
        if !group.stale {
            for id in group.waiting {
                guard let operation = operations[id] else { continue }
                if response.code == .success {
                    advance(operation)
                } else {
                    finish(operation, .failed(.pageRequestRejected(response.code)))
                }
            }
        }
        if let pasid = group.pasid, case .stopping = pasidStates[pasid] {
            let outstanding = groups.values.filter { $0.pasid == pasid && !$0.stale }.count
            pasidStates[pasid] = outstanding == 0 ? .stopped : .stopping(outstanding: outstanding)
        }
        let retry = waitingForCredits
        waitingForCredits.removeAll()
        for id in retry { if let operation = operations[id] { advance(operation) } }
    }

    /// The page request groups waiting for a response.
    public var outstandingPageRequests: Int { groups.count }

    /// Stops using `pasid` (seed 001: the two ways of the PCIe specification).
    public func stopPASID(_ pasid: UInt32, mode: PASIDStopMode) {
        switch mode {
        case .waitForCompletion:
            let outstanding = groups.values.filter { $0.pasid == pasid }.count
            pasidStates[pasid] = outstanding == 0 ? .stopped : .stopping(outstanding: outstanding)
        case .markStaleAndSendStopMarker:
            for (index, group) in groups where group.pasid == pasid && !group.stale {
                groups[index]?.stale = true
                for id in group.waiting {
                    if let operation = operations[id] { finish(operation, .failed(.staleAfterStop)) }
                }
            }
            pasidStates[pasid] = .stopped
            let wasBusy = busy
            busy = true
            _ = smmu?.receivePageRequest(.stopMarker(streamID: streamID, substreamID: pasid))
            busy = wasBusy
        }
        atcEntryCount -= atc[pasid]?.count ?? 0
        atc[pasid] = nil
        atcInvalidations &+= 1
    }

    /// Makes a stopped PASID usable again (a new context).
    public func resumePASID(_ pasid: UInt32) {
        pasidStates[pasid] = nil
    }

    /// The state of a PASID.
    public func state(ofPASID pasid: UInt32) -> PASIDState { pasidStates[pasid] ?? .active }

    // MARK: ATC and stalls

    /// An ATS Invalidate Request arrives: matching ATC entries are dropped.
    func receive(_ invalidation: ATCInvalidation) -> ATCInvalidationResponse {
        invalidationLog.append(invalidation)
        atcInvalidations &+= 1
        for (pasid, entries) in atc where invalidation.global || pasid == invalidation.substreamID || invalidation.substreamID == nil && pasid == nil {
            let kept = entries.filter { !invalidation.covers($0.key) }
            atcEntryCount -= entries.count - kept.count
            atc[pasid] = kept
        }
        return invalidationResponse
    }

    /// A stalled transaction of this function was resolved by the SMMU.
    func resolved(_ transaction: InboundTransaction, _ outcome: TransactionOutcome) {
        guard let operation = operations[Int(truncatingIfNeeded: transaction.token)] else { return }
        // As in start: a PRG response that arrives while this runs (an automatic response to
        // a page request it sends) is not handled re-entrantly; it waits in the inbox.
        let wasBusy = busy
        busy = true
        defer { busy = wasBusy }
        switch outcome {
        case .translated(let physical):
            let address = operation.address &+ UInt64(operation.done)
            let chunk = min(operation.data.count - operation.done, 4096 - Int(address & 0xFFF))
            guard transfer(operation, physical: physical, count: chunk) else {
                finish(operation, .failed(.memoryAbort(physical)))
                return
            }
            operation.done += chunk
            advance(operation)
        case .terminatedRAZ:
            let address = operation.address &+ UInt64(operation.done)
            operation.done += min(operation.data.count - operation.done, 4096 - Int(address & 0xFFF))
            advance(operation)
        case .stalled(let stag):
            operation.state = .stalled(stag: stag)
        case .aborted(let event):
            finish(operation, .failed(.aborted(event)))
        }
    }
}

/// The PCIe root complex in front of an SMMU: it maps RequesterIDs to StreamIDs and routes the
/// SMMU's PRG responses, ATS invalidations and stall resolutions to the right function.
public final class RootComplex {
    /// The SMMU the functions sit behind.
    public let smmu: SMMU
    /// StreamID = base + RequesterID.
    public let streamIDBase: UInt32
    /// The attached functions, by StreamID.
    public private(set) var functions: [UInt32: PCIeFunction] = [:]

    /// Creates a root complex and routes the SMMU's downstream messages through it (alongside
    /// any other handlers registered on the SMMU).
    public init(smmu: SMMU, streamIDBase: UInt32 = 0) {
        self.smmu = smmu
        self.streamIDBase = streamIDBase
        smmu.onPRGResponse { [weak self] response in self?.functions[response.streamID]?.receive(response) }
        smmu.onATCInvalidation { [weak self] request in
            guard let self else { return nil }
            return functions[request.streamID]?.receive(request) ?? .unsupportedRequest
        }
        smmu.onStallResolved { [weak self] transaction, outcome in self?.functions[transaction.streamID]?.resolved(transaction, outcome) }
    }

    /// Creates and attaches a function.
    @discardableResult
    public func attach(requesterID: UInt16, ats: Bool = false, pri: Bool = false, pageRequestCredits: Int = 32) -> PCIeFunction {
        let function = PCIeFunction(requesterID: requesterID, streamID: streamIDBase &+ UInt32(requesterID), ats: ats, pri: pri, credits: pageRequestCredits)
        function.rootComplex = self
        functions[function.streamID] = function
        return function
    }
}
