import Testing
import Platform
@testable import SMMUv3
import SMMUv3Host
import Scenario

/// Guest input never traps the model: random register writes, queue contents, command words,
/// event and PRI traffic give architected results only.
@Suite struct RobustnessTests {
    static let offsets: [UInt64] = SMMURegister.allCases.map(\.offset) + [0x84, 0x94, 0xA4, 0xA8, 0xAC, 0xC8, 0xCC, 0xFD0, 0xFFC, 0x2, 0x1_FFFC]

    @Test(arguments: [UInt64(1), 2, 3, 4, 5, 6, 7, 8])
    func randomTrafficNeverTraps(_ seed: UInt64) {
        var random = SeededGenerator(seed: seed)
        let rig = Rig { $0.acknowledgeLatency = Int(seed % 3) }
        for _ in 0..<4000 {
            switch random.next() % 10 {
            case 0, 1, 2:
                let offset = RobustnessTests.offsets[Int(random.next() % UInt64(RobustnessTests.offsets.count))]
                let value = random.next() % 4 == 0 ? random.next() : random.next() & 0x1F
                rig.bus.write32(UInt32(truncatingIfNeeded: value), at: Rig.smmuBase + offset)
            case 3:
                let offset = RobustnessTests.offsets[Int(random.next() % UInt64(RobustnessTests.offsets.count))] & ~7
                rig.bus.write64(random.next(), at: Rig.smmuBase + offset)
            case 4:
                let offset = RobustnessTests.offsets[Int(random.next() % UInt64(RobustnessTests.offsets.count))]
                _ = rig.bus.read32(at: Rig.smmuBase + offset)
            case 5:
                // Garbage where the queues most likely point.
                let base = [UInt64(0), 0x4010_0000, 0x4020_0000, 0x4030_0000][Int(random.next() % 4)]
                rig.bus.memory.write64(random.next(), at: base + (random.next() % 64) * 8)
            case 6:
                rig.smmu.recordEvent(EventRecord(dw0: random.next(), dw1: random.next(), dw2: random.next(), dw3: random.next()))
            case 7:
                rig.smmu.receivePageRequest(PageRequest(
                    streamID: UInt32(truncatingIfNeeded: random.next()), substreamID: random.next() % 2 == 0 ? nil : UInt32(truncatingIfNeeded: random.next()),
                    prgIndex: UInt16(truncatingIfNeeded: random.next()), last: random.next() % 2 == 0, read: random.next() % 2 == 0,
                    write: random.next() % 2 == 0, address: random.next()))
            case 8:
                rig.smmu.stepCommand()
                _ = rig.smmu.commandQueueStatus
            default:
                if random.next() % 50 == 0 { rig.smmu.reset() }
                rig.smmu.settle()
            }
        }
        let geometry = QueueIndex(log2Size: min(Int(rig.smmu.peek(.cmdqBase) & 0x1F), 19))
        #expect(UInt32(rig.smmu.peek(.cmdqCons)) & 0xFFFFF & ~geometry.pointerMask == 0, "CONS never leaves the queue")
    }

    @Test(arguments: [UInt64(11), 12, 13])
    func randomCommandWordsDecodeOrAreIllegal(_ seed: UInt64) {
        var random = SeededGenerator(seed: seed)
        var decoded = 0
        for _ in 0..<20_000 {
            let opcode = random.next() % 4 == 0 ? random.next() & 0xFF : UInt64(CommandOpcode.allCases[Int(random.next() % UInt64(CommandOpcode.allCases.count))].rawValue)
            let entry = CommandEntry(dw0: (random.next() & ~0xFF) | opcode, dw1: random.next() % 2 == 0 ? random.next() : random.next() & 0xFFF)
            for features in [CommandFeatures.permissive, CommandFeatures(.default)] {
                if case .success(let command) = Command.decode(entry, features: features) {
                    decoded += 1
                    // Whatever decodes re-encodes to something that decodes to the same command.
                    #expect(Command.decode(command.entry, features: .permissive) == .success(command))
                }
            }
            _ = entry.description
        }
        #expect(decoded > 0)
    }

    @Test func queueAtTheTopOfThePhysicalSpaceAbortsInsteadOfTrapping() {
        let rig = Rig { $0.outputAddressSize = .bits52 }
        rig.write64(.cmdqBase, 0x000F_FFFF_FFFF_FFE0 | 19)
        rig.write(.cmdqProd, 0x7_FFFF)
        rig.write(.cr0, 1 << 3)
        #expect(rig.smmu.commandQueueStatus == .error(.illegal) || rig.smmu.commandQueueStatus == .error(.abort))
    }
}

/// Guest-controlled tables never trap: random STEs, CDs, L1 descriptors and page-table words,
/// random commands and random inbound traffic give architected outcomes only.
@Suite struct TranslationRobustnessTests {
    /// What must hold after any step, whatever the tables and commands contain: the caches
    /// stay within their capacity, every cached stream context owns exactly one pool slot,
    /// stalls stay within STALL_MAX and every held stall record belongs to a stalled
    /// transaction, and the queue indices stay consistent.
    static func checkInvariants(_ smmu: SMMU, step: Int) {
        #expect(smmu.tlb.count <= smmu.tlb.table.capacityLimit, "step \(step)")
        #expect(smmu.streamContexts.contextsInUse == smmu.streamContexts.count, "step \(step)")
        #expect(smmu.stalled.count <= Int(smmu.configuration.stallMax), "step \(step)")
        #expect(smmu.pendingStallRecords.count <= smmu.stalled.count, "step \(step)")
        #expect(smmu.eventq.isConsistent && smmu.cmdq.isConsistent, "step \(step)")
    }

    @Test(arguments: [UInt64(21), 22, 23, 24])
    func randomTablesAndTrafficKeepTheModelsInvariants(_ seed: UInt64) throws {
        var random = SeededGenerator(seed: seed)
        var configuration = SMMUConfiguration.default
        configuration.tlbCapacity = 64
        let system = try SMMUSystem(configuration: configuration, streamTableLog2Size: 10, split: seed % 2 == 0 ? 6 : nil)
        let smmu = system.smmu
        smmu.checkedMode = seed % 2 == 0
        let memory = system.bus.memory
        // A few plausible streams first, then garbage everywhere.
        for sid in UInt32(0)..<8 {
            let pt = system.pageTable(granule: [12, 14, 16][Int(sid % 3)], inputBits: 39 + Int(sid))
            for page in UInt64(0)..<4 { pt.map(page << 16, to: 0x9000_0000 + page << 16) }
            var cd = CDConfig(table0: pt, asid: UInt16(sid))
            cd.tg0 = [0b00, 0b10, 0b01][Int(sid % 3)]
            cd.stall = sid % 4 == 1
            system.stage1Stream(sid, cd: cd, cdMax: Int(sid % 3), ssids: [0, 1, 2, 3].filter { $0 < 1 << (sid % 3) }) { $0.s1DSS = UInt8(sid % 3) }
        }
        let span = system.arena.next - 0x8000_0000
        var outcomes = [0, 0, 0, 0]
        for step in 0..<3000 {
            switch random.next() % 8 {
            case 0:
                // Corrupt a word of the table area (often only flipping a few bits).
                let address = 0x8000_0000 + (random.next() % span) & ~7
                let value = random.next() % 3 == 0 ? random.next() : memory.read64(at: address) ^ (1 << (random.next() % 64))
                memory.write64(value, at: address)
            case 1:
                let command = CommandEntry(dw0: (random.next() & ~0xFF) | UInt64(CommandOpcode.allCases[Int(random.next() % UInt64(CommandOpcode.allCases.count))].rawValue), dw1: random.next())
                try? system.host.write([command, Command.sync(SyncParameters()).entry])
                if smmu.commandQueueStatus != .empty {
                    system.host.rewindCommandQueueToConsumer()
                    system.host.acknowledgeGlobalErrors()
                }
            case 2:
                _ = smmu.translationRequest(ATSTranslationRequest(streamID: UInt32(random.next() % 12), substreamID: random.next() % 2 == 0 ? nil : UInt32(random.next() % 8), address: random.next(), noWrite: random.next() % 2 == 0, execute: random.next() % 2 == 0, privileged: random.next() % 2 == 0))
            case 3:
                if let stalled = smmu.stalled.first {
                    try? system.host.submit([.resume(streamID: stalled.streamID, stag: stalled.stag, action: [.retry, .abort, .terminate][Int(random.next() % 3)]), .sync(SyncParameters())])
                }
            case 4:
                _ = system.host.drainEvents()
            default:
                let kind: InboundTransaction.Kind = random.next() % 10 == 0 ? .atsTranslated : .untranslated
                let wild: Bool = random.next() % 4 == 0
                let page: UInt64 = (random.next() % 8) << 16
                let address: UInt64 = wild ? random.next() : page | (random.next() & 0xFFF)
                let access = AccessAttributes(read: random.next() % 3 != 0, instruction: random.next() % 4 == 0, privileged: random.next() % 2 == 0)
                let streamID = UInt32(random.next() % 12)
                let substreamID: UInt32? = random.next() % 2 == 0 ? nil : UInt32(random.next() % 8)
                switch smmu.translate(InboundTransaction(streamID: streamID, substreamID: substreamID, address: address, access: access, kind: kind)) {
                case .translated(let physical):
                    outcomes[0] += 1
                    #expect(physical >> UInt64(smmu.oasBits) == 0, "an output address beyond OAS at step \(step)")
                case .aborted: outcomes[1] += 1
                case .terminatedRAZ: outcomes[2] += 1
                case .stalled: outcomes[3] += 1
                }
            }
            if step % 500 == 499 { try system.host.submit([.cfgiAll, .tlbiNSNHAll, .sync(SyncParameters())]) }
            Self.checkInvariants(smmu, step: step)
        }
        #expect(smmu.statistics.eventsWritten + smmu.statistics.eventsDiscarded > 0)
        #expect(outcomes[0] > 0 && outcomes[1] > 0, "the traffic both translates and faults: \(outcomes)")
        #expect(smmu.statistics.commandsConsumed > 100)
    }
}
