import Testing
import Platform
import SMMUv3
import SMMUv3Host
import Endpoints

/// PCIe function corners: ATS without PRI, RAZ/WI reads, global ATC invalidation and stalled
/// DMA that software terminates.
@Suite struct EndpointEdgeTests {
    /// Without PRI the function cannot ask for a page: a completion that does not grant the
    /// access ends the operation with `.noAccess`, and no page request is sent.
    @Test func atsWithoutPRIFailsWithNoAccess() throws {
        let rig = try EndpointRig(ats: true, pri: false)
        rig.table.map(0x10_0000, to: 0x5_0000, .readOnly)
        let unmapped = rig.function.read(0x40_0000, length: 4, pasid: 2)
        #expect(rig.function.state(of: unmapped) == .failed(.noAccess), "translation fault: R == W == 0")
        let readOnly = rig.function.write(0x10_0000, bytes: [1, 2], pasid: 2)
        #expect(rig.function.state(of: readOnly) == .failed(.noAccess), "R granted, W needed")
        #expect(rig.system.bus.memory.bytes(at: 0x5_0000, count: 2) == [0, 0])
        #expect(rig.function.outstandingPageRequests == 0)
        #expect(rig.system.host.drainPRIQueue().entries.isEmpty)
        #expect(rig.system.host.drainEvents().records.isEmpty, "Translation Requests record no fault")
        let read = rig.function.read(0x10_0000, length: 2, pasid: 2)
        #expect(rig.function.state(of: read) == .completed, "the read-only page is readable")
    }

    /// CD.A == 0: a faulting read completes with zeros for the faulting page (RAZ), the pages
    /// around it are read from memory at the right offsets.
    @Test func readThatEndsRAZFillsZeros() throws {
        let rig = try EndpointRig(adjustCD: { $0.abort = false })
        rig.table.map(0x10_0000, to: 0x5_0000)
        rig.table.map(0x10_2000, to: 0x6_0000)
        let first = (0..<0x800).map { UInt8(truncatingIfNeeded: $0 | 1) }
        let third = (0..<0x800).map { UInt8(truncatingIfNeeded: ($0 * 7) | 0x80) }
        rig.system.bus.memory.write(first, at: 0x5_0800)
        rig.system.bus.memory.write(third, at: 0x6_0000)
        let read = rig.function.read(0x10_0800, length: 0x2000, pasid: 1)
        #expect(rig.function.state(of: read) == .completed)
        let data = try #require(rig.function.data(of: read))
        #expect(data.count == 0x2000)
        #expect(Array(data[0..<0x800]) == first)
        #expect(data[0x800..<0x1800].allSatisfy { $0 == 0 }, "the unmapped page reads as zero")
        #expect(Array(data[0x1800...]) == third)
        #expect(rig.system.host.drainEvents().records == [.translationFault(TranslationFault(type: .translation, streamID: 0x10, substreamID: 1, access: .dataRead, inputAddress: 0x10_1000))])
    }

    /// A Global Invalidate (with a PASID) drops the span's entries of every PASID; without
    /// Global only the named PASID's entries go.
    @Test func globalATCInvalidationMatchesEveryPASID() throws {
        let rig = try EndpointRig(ats: true)
        rig.table.map(0x10_0000, to: 0x5_0000)
        rig.table.map(0x20_0000, to: 0x6_0000)
        for pasid in [UInt32(1), 2] {
            for address in [UInt64(0x10_0000), 0x20_0000] {
                #expect(rig.function.state(of: rig.function.read(address, length: 4, pasid: pasid)) == .completed)
            }
        }
        #expect(rig.function.atc[1]?.count == 2 && rig.function.atc[2]?.count == 2)

        try rig.submit([.atcInv(streamID: 0x10, substreamID: 1, global: false, address: 0x10_0000, size: 0)])
        #expect(rig.function.atc[1]?[0x10_0000] == nil)
        #expect(rig.function.atc[2]?[0x10_0000] != nil, "not Global: PASID 2 keeps its entry")

        try rig.submit([.atcInv(streamID: 0x10, substreamID: 1, global: true, address: 0x20_0000, size: 0)])
        let global = try #require(rig.function.invalidationsReceived.last)
        #expect(global.substreamID == 1 && global.global && global.address == 0x20_0000 && global.spanBytes == 0x1000)
        #expect(rig.function.atc[1]?[0x20_0000] == nil)
        #expect(rig.function.atc[2]?[0x20_0000] == nil, "Global: PASID 2's entry goes too")
        #expect(rig.function.atc[2]?[0x10_0000] != nil, "outside the span")
    }

    /// A stalled DMA that software aborts (CMD_RESUME abort or CMD_STALL_TERM) fails; one
    /// resumed with terminate completes as RAZ/WI.
    @Test func stalledDMATerminatedBySoftwareFailsOrCompletesAsRAZ() throws {
        let rig = try EndpointRig(stall: true)
        let aborted = rig.function.write(0x30_0000, bytes: [0xAA], pasid: 2)
        guard case .stalled(let abortedSTAG) = rig.function.state(of: aborted) else {
            Issue.record("not stalled: \(String(describing: rig.function.state(of: aborted)))")
            return
        }
        let terminated = rig.function.read(0x31_0000, length: 4, pasid: 2)
        guard case .stalled(let terminatedSTAG) = rig.function.state(of: terminated) else {
            Issue.record("not stalled: \(String(describing: rig.function.state(of: terminated)))")
            return
        }
        let streamTerminated = rig.function.write(0x32_0000, bytes: [0xCC], pasid: 2)
        guard case .stalled = rig.function.state(of: streamTerminated) else {
            Issue.record("not stalled: \(String(describing: rig.function.state(of: streamTerminated)))")
            return
        }
        rig.table.map(0x30_0000, to: 0x6_0000)
        rig.table.map(0x32_0000, to: 0x7_0000)
        try rig.submit([.resume(streamID: 0x10, stag: abortedSTAG, action: .abort)])
        #expect(rig.function.state(of: aborted) == .failed(.aborted(nil)), "not retried although the page is now mapped")
        #expect(rig.system.bus.memory.read8(at: 0x6_0000) == 0)
        try rig.submit([.resume(streamID: 0x10, stag: terminatedSTAG, action: .terminate)])
        #expect(rig.function.state(of: terminated) == .completed)
        #expect(rig.function.data(of: terminated) == [0, 0, 0, 0])
        try rig.submit([.stallTerm(streamID: 0x10)])
        #expect(rig.function.state(of: streamTerminated) == .failed(.aborted(nil)))
        #expect(rig.system.bus.memory.read8(at: 0x7_0000) == 0)
        #expect(rig.system.smmu.stalled.isEmpty)
    }
}
