import Testing
import Platform
import SMMUv3
import SMMUv3Host
import Scenario
import Endpoints

/// The SMMU's client handlers: a root complex and any number of observers each get what the
/// SMMU sends, and registering one never replaces another.
@Suite struct HandlerRegistrationTests {
    @Test func anObserverAndTheRootComplexBothReceivePRGResponses() throws {
        let rig = try EndpointRig(ats: true, pri: true)
        var observed: [PRGResponse] = []
        let registration = rig.system.smmu.onPRGResponse { observed.append($0) }
        let response = Command.priResp(streamID: 0x10, substreamID: 1, prgIndex: 7, response: .success)
        try rig.submit([response])
        #expect(observed.map(\.prgIndex) == [7])
        #expect(rig.function.responsesReceived.map(\.prgIndex) == [7], "the root complex still routes responses")
        rig.system.smmu.removeHandler(registration)
        try rig.submit([response])
        #expect(observed.count == 1, "a removed handler gets nothing more")
        #expect(rig.function.responsesReceived.count == 2)
    }

    @Test func aLaterRootComplexDoesNotClobberAnEarlierObserver() throws {
        let system = try SMMUSystem()
        var stalls = 0, invalidations = 0
        system.smmu.onStallResolved { _, _ in stalls += 1 }
        system.smmu.onATCInvalidation { _ in
            invalidations += 1
            return nil
        }
        let rootComplex = RootComplex(smmu: system.smmu)
        rootComplex.attach(requesterID: 0x20, ats: true)
        system.stage1Stream(0x20, cd: CDConfig(table0: system.pageTable(), asid: 1)) { $0.eats = 0b01 }
        try system.host.submit([.atcInv(streamID: 0x20, substreamID: nil, global: false, address: 0, size: 0), .sync(SyncParameters())])
        #expect(invalidations == 1, "the observer registered first still sees the request")
        #expect(rootComplex.functions[0x20]?.invalidationsReceived.count == 1, "and the root complex answers it")
        #expect(stalls == 0)
    }
}
