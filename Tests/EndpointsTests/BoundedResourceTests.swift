import Testing
import Platform
@testable import SMMUv3
import SMMUv3Host
import Endpoints

/// Nothing software controls makes memory grow without bound, and a dropped system is freed.
@Suite struct BoundedResourceTests {
    @Test func aDroppedSystemIsFreed() throws {
        weak var bus: Bus?
        weak var smmu: SMMU?
        weak var rootComplex: RootComplex?
        weak var function: PCIeFunction?
        do {
            let rig = try EndpointRig(ats: true, pri: true)
            rig.table.map(0x10_0000, to: 0x5_0000)
            _ = rig.function.read(0x10_0000, length: 64, pasid: 1)
            bus = rig.system.bus
            smmu = rig.system.smmu
            rootComplex = rig.rootComplex
            function = rig.function
            #expect(bus != nil && smmu != nil)
        }
        #expect(bus == nil, "the bus and its memory are freed")
        #expect(smmu == nil, "the SMMU is freed")
        #expect(rootComplex == nil && function == nil, "the endpoints are freed")
    }

    @Test func manyATCInvalidationsWithoutASyncAreCountedInBoundedLogsAndTheNextSyncStillFails() throws {
        let rig = try EndpointRig(ats: true)
        rig.function.invalidationResponse = .noResponse
        let host = rig.system.host
        for _ in 0..<200 {
            try host.write(Array(repeating: Command.atcInv(streamID: 0x10, substreamID: nil, global: false, address: 0, size: 0).entry, count: 100))
        }
        #expect(rig.system.smmu.outstandingATCInvalidations.count == 20_000)
        #expect(rig.function.invalidationCount == 20_000)
        #expect(rig.function.invalidationsReceived.count == PCIeFunction.messageLogCapacity)
        try? host.submit([.sync(SyncParameters())])
        #expect(rig.system.smmu.commandQueueStatus == .error(.atcInvalidationSync), "the CMD_SYNC still sees that one never completed")
        #expect(rig.system.smmu.outstandingATCInvalidations.count == 0)
    }

    @Test func finishedDMAOperationsAreForgottenBeyondABound() throws {
        let rig = try EndpointRig()
        rig.table.map(0x10_0000, to: 0x5_0000)
        let first = rig.function.read(0x10_0000, length: 8, pasid: 1)
        var last = first
        for _ in 0..<(PCIeFunction.finishedOperationsKept + 10) { last = rig.function.read(0x10_0000, length: 8, pasid: 1) }
        #expect(rig.function.state(of: first) == nil, "the oldest finished operation was forgotten")
        #expect(rig.function.state(of: last) == .completed)
        #expect(rig.function.rememberedOperations == PCIeFunction.finishedOperationsKept)
    }

    @Test func theATCHasACapacity() throws {
        let rig = try EndpointRig(ats: true)
        rig.function.atcCapacity = 8
        for page in UInt64(0)..<20 {
            rig.table.map(0x10_0000 + page << 12, to: 0x5_0000 + page << 12)
            let read = rig.function.read(0x10_0000 + page << 12, length: 8, pasid: 1)
            #expect(rig.function.state(of: read) == .completed)
        }
        // Full at 8, emptied by the 9th and the 17th translation: 4 left after 20.
        #expect(rig.function.atcEntryCount == 4)
        #expect(rig.function.atcEntryCount == rig.function.atc.values.reduce(0) { $0 + $1.count })
    }

    @Test func moreCreditsThanPRGIndexesWaitInsteadOfSpinning() throws {
        let rig = try EndpointRig(ats: true, pri: true, credits: 600, priQueueLog2: 10)
        var handles: [DMAHandle] = []
        for page in UInt64(0)..<520 { handles.append(rig.function.read(0x40_0000 + page << 12, length: 8, pasid: 1)) }
        #expect(rig.function.outstandingPageRequests == PCIeFunction.prgIndexCount)
        #expect(rig.function.state(of: handles[519]) == .waitingForCredits)
        _ = try rig.servicePageRequests(.success) { request in rig.table.map(request.address, to: 0x7_0000) }
        #expect(rig.function.state(of: handles[0]) == .completed)
    }
}
