import Testing
import Platform
@testable import SMMUv3
import SMMUv3Host
import Scenario
import Endpoints

/// A seeded random walk through everything software and devices can do to the model, in a
/// debug build with overflow checks: register writes (MSI and CMD_SYNC targets inside the
/// SMMU's own frame among them), bit-flipped command words, corrupted tables, page tables whose
/// leaves point at the register frame, translations, ATS and PRI traffic, endpoint DMA, stall
/// resolution, fault injection and resets. Nothing may trap, memory must stay bounded and the
/// model's own invariants must hold after every operation.
@Suite struct RandomOperationTests {
    /// Where SMMUSystem maps the SMMU.
    static let base: UInt64 = 0x0900_0000
    static let operationsPerSeed = 30_000

    @Test(arguments: [UInt64(0x5EED_0001), 0x5EED_0002, 0x5EED_0003, 0x5EED_0004])
    func randomOperationsKeepTheModelWithinItsInvariants(_ seed: UInt64) throws {
        var random = SplitMix(seed: seed)
        let rig = try EndpointRig(ats: seed % 2 == 0, pri: seed % 2 == 0, stall: seed % 4 == 1, priQueueLog2: 3) {
            $0.stallMax = 8
            $0.diagnosticsCapacity = 64
            // Small caches that are not a power of two: replacement runs all the time.
            $0.tlbCapacity = 12
            $0.configurationCacheCapacity = 12
            $0.acknowledgeLatency = Int(seed % 3)
        }
        let system = rig.system, smmu = system.smmu, bus = system.bus, memory = bus.memory
        bus.trace.enabled = .all
        bus.trace.lineCapacity = 512
        bus.interrupts.recordCapacity = 64
        // Leaves that point at the SMMU's register frame, and one mapping to wild memory.
        rig.table.map(0x50_0000, to: Self.base)
        rig.table.map(0x51_0000, to: Self.base + 0x1_0000)
        rig.table.map(0x52_0000, to: 0x7FFF_FFFF_F000)
        for page in UInt64(0)..<8 { rig.table.map(0x10_0000 + page << 12, to: 0x6_0000 + page << 12) }
        let registers = SMMURegister.allCases
        let tableArea = 0x8000_0000...(system.arena.next - 1)
        var resets = 0
        #expect(smmu.base == Self.base)

        for step in 0..<Self.operationsPerSeed {
            switch random.next() % 20 {
            case 0, 1:
                // A register write: a random value, or an SMMU-frame (or wild) MSI target.
                let register = registers[Int(random.next() % UInt64(registers.count))]
                let value: UInt64
                switch random.next() % 4 {
                case 0: value = Self.base + registers[Int(random.next() % UInt64(registers.count))].offset
                case 1: value = random.next() & 0x1F
                default: value = random.next()
                }
                if register.is64Bit && random.next() % 2 == 0 {
                    bus.write64(value, at: Self.base + register.offset)
                } else {
                    bus.write32(UInt32(truncatingIfNeeded: value), at: Self.base + register.offset)
                }
            case 2:
                _ = bus.read32(at: Self.base + registers[Int(random.next() % UInt64(registers.count))].offset)
            case 3, 4:
                // A command, valid or with a flipped bit, often a CMD_SYNC whose MSI lands in
                // the SMMU's own frame.
                var command = Self.randomCommand(&random).entry
                if random.next() % 3 == 0 { command.dw0 ^= 1 << (random.next() % 64) }
                if random.next() % 3 == 0 { command.dw1 ^= 1 << (random.next() % 64) }
                try? system.host.write([command])
                if smmu.commandQueueStatus != .empty && random.next() % 2 == 0 {
                    system.host.rewindCommandQueueToConsumer()
                    system.host.acknowledgeGlobalErrors()
                }
            case 5:
                // Corrupt a table word (or flip one bit of it).
                let address = tableArea.lowerBound + (random.next() % UInt64(tableArea.count)) & ~7
                let word = random.next() % 2 == 0 ? random.next() : memory.read64(at: address) ^ (1 << (random.next() % 64))
                memory.write64(word, at: address)
            case 6, 7, 8:
                let address: UInt64
                switch random.next() % 4 {
                case 0: address = random.next()
                case 1: address = 0x50_0000 + (random.next() % 0x2_0000)
                default: address = 0x10_0000 + (random.next() % 0x8000)
                }
                let kind: InboundTransaction.Kind = random.next() % 8 == 0 ? .atsTranslated : (random.next() % 50 == 0 ? .unsupported(reason: 1) : .untranslated)
                let access = AccessAttributes(read: random.next() % 2 == 0, instruction: random.next() % 5 == 0, privileged: random.next() % 2 == 0)
                _ = smmu.translate(InboundTransaction(streamID: random.next() % 2 == 0 ? 0x10 : UInt32(random.next() % 24), substreamID: random.next() % 3 == 0 ? nil : UInt32(random.next() % 5), address: address, access: access, kind: kind))
            case 9:
                _ = smmu.translationRequest(ATSTranslationRequest(streamID: UInt32(random.next() % 24), substreamID: random.next() % 2 == 0 ? nil : UInt32(random.next() % 4), address: random.next() % 3 == 0 ? random.next() : 0x10_0000 + (random.next() % 0x8000), noWrite: random.next() % 2 == 0, execute: random.next() % 4 == 0, privileged: random.next() % 2 == 0, span: UInt8(truncatingIfNeeded: random.next())))
            case 10:
                let pasid: UInt32? = random.next() % 4 == 0 ? nil : UInt32(random.next() % 4)
                let request = random.next() % 6 == 0 && pasid != nil
                    ? PageRequest.stopMarker(streamID: 0x10, substreamID: pasid!, prgIndex: UInt16(random.next() % 512))
                    : PageRequest(streamID: UInt32(random.next() % 24), substreamID: pasid, prgIndex: UInt16(random.next() % 512), last: random.next() % 2 == 0, read: random.next() % 2 == 0, write: random.next() % 2 == 0, address: random.next())
                smmu.receivePageRequest(request)
            case 11, 12:
                // Endpoint DMA, including to pages mapped onto the register frame.
                let address: UInt64 = [0x10_0000, 0x50_0000, 0x51_0000, 0x52_0000, 0x40_0000][Int(random.next() % 5)] + (random.next() % 0x3000)
                let pasid: UInt32? = random.next() % 3 == 0 ? nil : UInt32(random.next() % 3)
                if random.next() % 2 == 0 {
                    _ = rig.function.read(address, length: Int(random.next() % 9000), pasid: pasid, privileged: random.next() % 2 == 0)
                } else {
                    _ = rig.function.write(address, bytes: [UInt8](repeating: UInt8(truncatingIfNeeded: step), count: Int(random.next() % 64)), pasid: pasid)
                }
            case 13:
                if random.next() % 2 == 0 {
                    _ = system.host.drainEvents()
                } else {
                    _ = system.host.drainPRIQueue()
                }
            case 14:
                // Answer page requests and resume stalls through the queue.
                var commands: [Command] = []
                for entry in system.host.drainPRIQueue().entries where entry.request.last {
                    commands.append(.priResp(streamID: entry.request.streamID, substreamID: entry.request.substreamID, prgIndex: entry.request.prgIndex, response: [.success, .invalidRequest, .responseFailure][Int(random.next() % 3)]))
                }
                for stalled in smmu.stalled.prefix(2) {
                    commands.append(.resume(streamID: stalled.streamID, stag: stalled.stag, action: [.retry, .abort, .terminate][Int(random.next() % 3)]))
                }
                try? system.host.write((commands + [.sync(SyncParameters(completion: .irq, msiAddress: Self.base + SMMURegister.gerrorn.offset, msiData: UInt32(truncatingIfNeeded: random.next())))]).map(\.entry))
            case 15:
                if random.next() % 2 == 0 {
                    let start = random.next() % 0x1_0000_0000
                    bus.faults.injectAbort(start...(start + random.next() % 0x10_0000), on: [.read, .write, .readWrite][Int(random.next() % 3)], count: Int(random.next() % 4))
                } else if random.next() % 3 == 0 {
                    bus.faults.removeAll()
                } else {
                    rig.function.stopPASID(UInt32(random.next() % 3), mode: random.next() % 2 == 0 ? .waitForCompletion : .markStaleAndSendStopMarker)
                    rig.function.resumePASID(UInt32(random.next() % 3))
                }
            case 16:
                // Bring the SMMU back to a working state now and then (as a driver would), with
                // fresh tables for the endpoint's stream.
                if !smmu.isEnabled || random.next() % 40 == 0 {
                    smmu.reset()
                    resets += 1
                    system.reset()
                    if system.arena.next < system.arena.limit - 0x10_0000 {
                        var cd = CDConfig(table0: rig.table, asid: 1)
                        cd.stall = seed % 4 == 1
                        system.stage1Stream(0x10, cd: cd, cdMax: 4, ssids: [0, 1, 2]) {
                            $0.s1DSS = 0b10
                            $0.eats = seed % 2 == 0 ? 0b01 : 0
                        }
                        for page in UInt64(0)..<8 { rig.table.map(0x10_0000 + page << 12, to: 0x6_0000 + page << 12) }
                    }
                    try? system.host.submit([.cfgiAll, .tlbiNSNHAll, .sync(SyncParameters())])
                } else {
                    system.host.acknowledgeGlobalErrors()
                    smmu.settle()
                }
            case 17:
                rig.function.processPendingResponses()
                smmu.recordEvent(EventRecord(dw0: random.next(), dw1: random.next(), dw2: random.next(), dw3: random.next()))
            case 18:
                _ = smmu.stepCommand()
                _ = smmu.runCommandQueue()
            default:
                _ = bus.deliverMSI(address: random.next() % 2 == 0 ? Self.base + registers[Int(random.next() % UInt64(registers.count))].offset : random.next(), data: UInt32(truncatingIfNeeded: random.next()), source: "random")
            }
            Self.checkInvariants(rig, step: step)
        }
        #expect(smmu.statistics.commandsConsumed > 100)
        #expect(smmu.statistics.eventsWritten > 0)
        #expect(smmu.tlb.hits > 0, "translations got as far as the TLB")
        #expect(resets > 0, "the run brought the SMMU back up after breaking it")
    }

    /// A command of a random kind with random parameters.
    static func randomCommand(_ random: inout SplitMix) -> Command {
        let sid = UInt32(random.next() % 24), ssid = UInt32(random.next() % 4)
        let address = random.next() % 2 == 0 ? 0x10_0000 + (random.next() % 0x8000) & ~0xFFF : random.next() & ~0xFFF & 0x000F_FFFF_FFFF_FFFF
        let msi = random.next() % 2 == 0 ? base + SMMURegister.allCases[Int(random.next() % UInt64(SMMURegister.allCases.count))].offset : random.next() & 0x000F_FFFF_FFFF_FFFC
        switch random.next() % 14 {
        case 0: return .cfgiAll
        case 1: return .cfgiSTE(streamID: sid, leaf: random.next() % 2 == 0)
        case 2: return .cfgiCD(streamID: sid, substreamID: ssid, leaf: true)
        case 3: return .tlbiNHAll(vmid: 0)
        case 4: return .tlbiNHVA(vmid: 0, asid: UInt16(random.next() % 4), address: address, scope: .single(leaf: random.next() % 2 == 0))
        case 5: return .tlbiNSNHAll
        case 6: return .tlbiS12VMAll(vmid: UInt16(random.next() % 4))
        case 7: return .atcInv(streamID: sid, substreamID: random.next() % 2 == 0 ? nil : ssid, global: random.next() % 2 == 0, address: address, size: UInt8(random.next() % 53))
        case 8: return .priResp(streamID: sid, substreamID: random.next() % 2 == 0 ? nil : ssid, prgIndex: UInt16(random.next() % 512), response: .success)
        case 9: return .resume(streamID: sid, stag: UInt16(random.next() % 8), action: [.retry, .abort, .terminate][Int(random.next() % 3)])
        case 10: return .stallTerm(streamID: sid)
        case 11: return .tlbiEL2All
        default: return .sync(SyncParameters(completion: [.none, .irq, .sev][Int(random.next() % 3)], msiAddress: msi, msiData: UInt32(truncatingIfNeeded: random.next())))
        }
    }

    /// What must hold after every operation.
    static func checkInvariants(_ rig: EndpointRig, step: Int) {
        let smmu = rig.system.smmu, bus = rig.system.bus
        let configuration = smmu.configuration
        func check(_ condition: Bool, _ what: String) {
            if !condition { Issue.record("step \(step): \(what)") }
        }
        check(smmu.stalledTransactions.count <= configuration.stallMax, "at most STALL_MAX stalls")
        check(smmu.pendingStallRecords.count <= configuration.stallMax, "at most STALL_MAX held stall records")
        check(smmu.operationDepth == 0, "no operation left open")
        check(smmu.undeliveredInterrupts <= 64, "interrupts do not pile up")
        check(smmu.tlb.count <= smmu.tlb.table.capacityLimit && smmu.tlb.table.capacityLimit < 2 * configuration.tlbCapacity, "the TLB within its capacity")
        check(smmu.streamContexts.count <= smmu.streamContexts.capacityLimit && smmu.streamContexts.capacityLimit < 2 * configuration.configurationCacheCapacity, "stream contexts within capacity")
        check(smmu.streamContexts.contextsInUse == smmu.streamContexts.count, "every pooled stream context belongs to a cached entry")
        check(smmu.diagnostics.count <= configuration.diagnosticsCapacity, "diagnostics bounded")
        check(bus.trace.lines.count <= bus.trace.lineCapacity, "trace bounded")
        check(bus.interrupts.records.count <= bus.interrupts.recordCapacity, "interrupt records bounded")
        check(bus.memory.allocatedPageCount < 16_384, "memory bounded (\(bus.memory.allocatedPageCount) pages)")
        check(rig.function.rememberedOperations <= PCIeFunction.finishedOperationsKept + 64, "endpoint operations bounded")
        check(rig.function.outstandingPageRequests <= PCIeFunction.prgIndexCount, "PRGs bounded")
        check(rig.function.atcEntryCount == rig.function.atc.values.reduce(0) { $0 + $1.count }, "the ATC's entry count matches its entries")
        check(rig.function.atcEntryCount <= rig.function.atcCapacity, "the ATC within its capacity")
        check(smmu.activeGlobalErrors & ~Reg.GERROR.implemented == 0, "only implemented GERROR bits")
        let cmdq = QueueIndex(log2Size: min(Int(smmu.peek(.cmdqBase) & 0x1F), configuration.commandQueueMaxLog2))
        check(UInt32(truncatingIfNeeded: smmu.peek(.cmdqCons)) & 0xFFFFF & ~cmdq.pointerMask == 0, "CMDQ_CONS within the queue")
        let eventq = QueueIndex(log2Size: min(Int(smmu.peek(.eventqBase) & 0x1F), configuration.eventQueueMaxLog2))
        check(UInt32(truncatingIfNeeded: smmu.peek(.eventqProd)) & 0x7FFF_FFFF & ~eventq.pointerMask == 0, "EVENTQ_PROD within the queue")
    }
}

/// SplitMix64: a deterministic generator for seeded tests.
struct SplitMix: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
