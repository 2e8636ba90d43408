import Testing
import Platform
import SMMUv3
import SMMUv3Host
import Scenario

/// The register-level host agent on an SMMU the driver brought up.
@Suite struct HostAgentTests {
    @Test func theHostAdoptsTheDriversQueuesAndItsCommandsFollowTheDrivers() throws {
        let system = try SMMUSystem()
        let host = system.host
        #expect(host.layout.commandQueue == system.driver.cmdq.q.base_dma && host.layout.commandQueueLog2Size == 8)
        #expect(host.layout.eventQueue == system.driver.evtq.q.base_dma && host.layout.eventQueueLog2Size == 6)
        let before = system.smmu.peek(.cmdqProd)
        try host.submit([.tlbiNSNHAll, .sync(SyncParameters())])
        #expect(system.smmu.peek(.cmdqProd) == before + 2 && system.smmu.peek(.cmdqCons) == before + 2)
    }

    @Test func drainingAcknowledgesOverflowsInTheSameCONSWrite() throws {
        let system = try SMMUSystem(eventQueueLog2: 1)
        for page in 0..<3 { system.smmu.recordEvent(.badSTE(streamID: UInt32(page))) }
        let drained = system.host.drainEvents()
        #expect(drained.records.map(\.streamID) == [0, 1])
        #expect(drained.overflowed)
        #expect(!system.smmu.eventQueueOverflowActive)
        #expect(system.smmu.peek(.eventqCons) == 0x8000_0002)
    }
}
