import Testing
import Platform
import SMMUv3
import SMMUv3Host
import Scenario
import Endpoints

/// A system with a root complex and one PCIe function (RequesterID 0x10 = StreamID 0x10)
/// translating through a stage-1 CD table with PASIDs.
final class EndpointRig {
    let system: SMMUSystem
    let rootComplex: RootComplex
    let function: PCIeFunction
    let table: PageTableBuilder

    init(ats: Bool = false, pri: Bool = false, credits: Int = 32, stall: Bool = false, priQueueLog2: Int = 6, configure: (inout SMMUConfiguration) -> Void = { _ in }, adjustCD: (inout CDConfig) -> Void = { _ in }, adjustSTE: (inout STEConfig) -> Void = { _ in }) throws {
        var configuration = SMMUConfiguration.default
        configure(&configuration)
        system = try SMMUSystem(configuration: configuration, priQueueLog2: priQueueLog2)
        rootComplex = RootComplex(smmu: system.smmu)
        function = rootComplex.attach(requesterID: 0x10, ats: ats, pri: pri, pageRequestCredits: credits)
        table = system.pageTable()
        var cd = CDConfig(table0: table, asid: 1)
        cd.stall = stall
        adjustCD(&cd)
        system.stage1Stream(0x10, cd: cd, cdMax: 4, ssids: [0, 1, 2]) {
            $0.s1DSS = 0b10
            $0.eats = ats ? 0b01 : 0
            $0.s1StallDisable = false
            adjustSTE(&$0)
        }
    }

    func submit(_ commands: [Command]) throws {
        try system.host.submit(commands + [.sync(SyncParameters())])
    }

    /// Answers every queued page request with `code` after running `fix` (the fault handler).
    func servicePageRequests(_ response: PRIResponse, fix: (PageRequest) -> Void = { _ in }) throws -> [PageRequest] {
        let requests = system.host.drainPRIQueue().entries.map(\.request)
        var commands: [Command] = []
        for request in requests where !request.isStopMarker {
            fix(request)
            if request.last {
                commands.append(.priResp(streamID: request.streamID, substreamID: request.substreamID, prgIndex: request.prgIndex, response: response))
            }
        }
        if !commands.isEmpty { try submit(commands) }
        return requests
    }
}

@Suite struct EndpointDMATests {
    @Test func dmaGoesThroughTheSMMUToMemory() throws {
        let rig = try EndpointRig()
        rig.table.map(0x10_0000, to: 0x5_0000)
        rig.table.map(0x10_1000, to: 0x9_0000)
        let payload = (0..<6000).map { UInt8(truncatingIfNeeded: $0) }
        let write = rig.function.write(0x10_0800, bytes: payload, pasid: 1)
        #expect(rig.function.state(of: write) == .completed)
        #expect(rig.system.bus.memory.bytes(at: 0x5_0800, count: 2048) == Array(payload[0..<2048]), "first page")
        #expect(rig.system.bus.memory.bytes(at: 0x9_0000, count: 3952) == Array(payload[2048...]), "second page, mapped elsewhere")
        let read = rig.function.read(0x10_0800, length: 6000, pasid: 1)
        #expect(rig.function.state(of: read) == .completed)
        #expect(rig.function.data(of: read) == payload)
    }

    @Test func unmappedDMAFails() throws {
        let rig = try EndpointRig()
        let read = rig.function.read(0x20_0000, length: 8)
        #expect(rig.function.state(of: read) == .failed(.aborted(.translation)))
    }

    @Test func memoryAbortAfterTranslationFailsTheOperation() throws {
        let rig = try EndpointRig()
        rig.table.map(0x10_0000, to: 0x5_0000)
        rig.system.bus.faults.injectAbort(0x5_0000...0x5_0FFF, on: .write)
        let write = rig.function.write(0x10_0000, bytes: [1, 2, 3])
        #expect(rig.function.state(of: write) == .failed(.memoryAbort(0x5_0000)))
    }

    @Test func stalledDMACompletesAfterTheFaultIsFixedAndResumed() throws {
        let rig = try EndpointRig(stall: true)
        let write = rig.function.write(0x30_0000, bytes: [0xAA, 0xBB], pasid: 2)
        guard case .stalled(let stag) = rig.function.state(of: write) else { Issue.record("not stalled"); return }
        let records = rig.system.host.drainEvents().records
        #expect(records.first?.isStall == true)
        rig.table.map(0x30_0000, to: 0x6_0000)
        try rig.submit([.resume(streamID: 0x10, stag: stag, action: .retry)])
        #expect(rig.function.state(of: write) == .completed)
        #expect(rig.system.bus.memory.bytes(at: 0x6_0000, count: 2) == [0xAA, 0xBB])
    }
}

@Suite struct EndpointATSTests {
    @Test func atsFillsTheATCAndUsesTranslatedTransactions() throws {
        let rig = try EndpointRig(ats: true)
        rig.table.map(0x10_0000, to: 0x5_0000)
        let first = rig.function.write(0x10_0010, bytes: [7], pasid: 1)
        #expect(rig.function.state(of: first) == .completed)
        #expect(rig.function.atc[1]?[0x10_0000]?.translatedAddress == 0x5_0000)
        // Remapping without ATC invalidation: the ATC still points at the old page.
        rig.table.map(0x10_0000, to: 0x7_0000)
        try rig.submit([.tlbiNHASID(vmid: 0, asid: 1)])
        let stale = rig.function.write(0x10_0010, bytes: [8], pasid: 1)
        #expect(rig.function.state(of: stale) == .completed)
        #expect(rig.system.bus.memory.read8(at: 0x5_0010) == 8, "the ATC entry was used")
        try rig.submit([.atcInv(streamID: 0x10, substreamID: 1, global: false, address: 0x10_0000, size: 0)])
        #expect(rig.function.invalidationsReceived.count == 1)
        #expect(rig.function.atc[1]?[0x10_0000] == nil)
        let fresh = rig.function.write(0x10_0010, bytes: [9], pasid: 1)
        #expect(rig.function.state(of: fresh) == .completed)
        #expect(rig.system.bus.memory.read8(at: 0x7_0010) == 9)
    }

    @Test func endpointThatNeverCompletesAnInvalidationFailsTheSync() throws {
        let rig = try EndpointRig(ats: true)
        rig.function.invalidationResponse = .noResponse
        #expect(throws: SMMUHost.HostError.self) {
            try rig.submit([.atcInv(streamID: 0x10, substreamID: nil, global: false, address: 0, size: 52)])
        }
        #expect(rig.system.smmu.commandQueueStatus == .error(.atcInvalidationSync))
    }

    /// §3.9.1.2: a stage-1 stream with STE.EATS == 0b00 answers the function's Translation
    /// Request with UR and records F_BAD_ATS_TREQ, although the page is mapped.
    @Test func atsDisabledInTheSTEFailsTheRequest() throws {
        let rig = try EndpointRig(ats: true, adjustSTE: { $0.eats = 0b00 })
        rig.table.map(0x1000, to: 0x5000)
        let read = rig.function.read(0x1010, length: 4)
        #expect(rig.function.state(of: read) == .failed(.translationRequestFailed(.unsupportedRequest)))
        #expect(rig.function.atc.isEmpty)
        #expect(rig.system.host.drainEvents().records == [.badATSTranslationRequest(streamID: 0x10, address: 0x1000, span: 1, read: true, write: false, execute: false, privileged: false)])
    }
}

@Suite struct EndpointPRITests {
    @Test func missingPageIsRequestedAndTheDMARetriedAfterSuccess() throws {
        let rig = try EndpointRig(ats: true, pri: true)
        let write = rig.function.write(0x40_0000, bytes: [5, 6, 7], pasid: 2)
        #expect(rig.function.state(of: write) == .waitingForPageRequest(prgIndex: 0))
        let requests = try rig.servicePageRequests(.success) { request in
            rig.table.map(request.address, to: 0x8_0000)
        }
        #expect(requests == [PageRequest(streamID: 0x10, substreamID: 2, prgIndex: 0, last: true, read: false, write: true, address: 0x40_0000)])
        #expect(rig.function.state(of: write) == .completed)
        #expect(rig.system.bus.memory.bytes(at: 0x8_0000, count: 3) == [5, 6, 7])
        #expect(rig.function.responsesReceived == [PRGResponse(streamID: 0x10, substreamID: 2, prgIndex: 0, code: .success, automatic: false)])
    }

    @Test(arguments: [PRIResponse.invalidRequest, .responseFailure])
    func failedPageRequestGivesUp(_ response: PRIResponse) throws {
        let rig = try EndpointRig(ats: true, pri: true)
        let read = rig.function.read(0x40_0000, length: 4, pasid: 2)
        _ = try rig.servicePageRequests(response)
        #expect(rig.function.state(of: read) == .failed(.pageRequestRejected(PRGResponseCode(response))))
        #expect(rig.function.outstandingPageRequests == 0)
    }

    @Test func pageRequestsWaitForCredits() throws {
        let rig = try EndpointRig(ats: true, pri: true, credits: 1)
        let first = rig.function.read(0x40_0000, length: 4, pasid: 1)
        let second = rig.function.read(0x50_0000, length: 4, pasid: 1)
        #expect(rig.function.state(of: first) == .waitingForPageRequest(prgIndex: 0))
        #expect(rig.function.state(of: second) == .waitingForCredits)
        _ = try rig.servicePageRequests(.success) { rig.table.map($0.address, to: 0x8_0000) }
        #expect(rig.function.state(of: first) == .completed)
        #expect(rig.function.state(of: second) == .waitingForPageRequest(prgIndex: 1), "the returned credit lets the second request go")
        _ = try rig.servicePageRequests(.success) { rig.table.map($0.address, to: 0x9_0000) }
        #expect(rig.function.state(of: second) == .completed)
    }

    @Test func stopPASIDWaitingForOutstandingRequests() throws {
        let rig = try EndpointRig(ats: true, pri: true)
        let read = rig.function.read(0x40_0000, length: 4, pasid: 1)
        rig.function.stopPASID(1, mode: .waitForCompletion)
        #expect(rig.function.state(ofPASID: 1) == .stopping(outstanding: 1))
        let refused = rig.function.read(0x40_0000, length: 4, pasid: 1)
        #expect(rig.function.state(of: refused) == .failed(.pasidStopped))
        _ = try rig.servicePageRequests(.success) { rig.table.map($0.address, to: 0x8_0000) }
        #expect(rig.function.state(ofPASID: 1) == .stopped)
        #expect(rig.function.state(of: read) == .completed, "outstanding requests complete normally")
    }

    @Test func stopPASIDWithAStopMarker() throws {
        let rig = try EndpointRig(ats: true, pri: true)
        let read = rig.function.read(0x40_0000, length: 4, pasid: 1)
        rig.function.stopPASID(1, mode: .markStaleAndSendStopMarker)
        #expect(rig.function.state(of: read) == .failed(.staleAfterStop))
        #expect(rig.function.state(ofPASID: 1) == .stopped)
        let requests = try rig.servicePageRequests(.success)
        #expect(requests.map(\.isStopMarker) == [false, true], "the page request, then the stop marker")
        #expect(rig.function.outstandingPageRequests == 0, "the stale group's response returned its credit")
        #expect(rig.function.state(of: read) == .failed(.staleAfterStop), "and was otherwise ignored")
        rig.function.resumePASID(1)
        #expect(rig.function.state(ofPASID: 1) == .active)
    }

    @Test func overflowAutoResponseMakesTheFunctionRetry() throws {
        let rig = try EndpointRig(ats: true, pri: true, priQueueLog2: 0)
        let first = rig.function.read(0x40_0000, length: 4, pasid: 1)
        let second = rig.function.read(0x50_0000, length: 4, pasid: 1)
        // The one-entry PRI queue holds the first request; the second overflows and gets an
        // automatic Success, which the function handles the next time it runs.
        #expect(rig.function.state(of: first) == .waitingForPageRequest(prgIndex: 0))
        #expect(rig.system.smmu.priQueueOverflowActive)
        #expect(rig.function.responsesReceived == [PRGResponse(streamID: 0x10, substreamID: 1, prgIndex: 1, code: .success, automatic: true)])
        #expect(rig.function.pendingResponses == 1)
        // Servicing the queue acknowledges the overflow; the first response then arrives, and the
        // function retries the second request, which now reaches the queue.
        _ = try rig.servicePageRequests(.success) { rig.table.map($0.address, to: 0x8_0000) }
        #expect(rig.function.state(of: first) == .completed)
        #expect(rig.function.state(of: second) == .waitingForPageRequest(prgIndex: 2))
        _ = try rig.servicePageRequests(.success) { rig.table.map($0.address, to: 0x9_0000) }
        #expect(rig.function.state(of: second) == .completed)
        #expect(rig.function.outstandingPageRequests == 0)
    }
}
