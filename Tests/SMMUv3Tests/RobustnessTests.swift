import Testing
import Platform
@testable import SMMUv3

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
