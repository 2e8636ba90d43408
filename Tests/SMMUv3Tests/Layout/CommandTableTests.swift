import Testing
import Platform
import SMMUv3

/// The command table (``CommandFormat/all``): one entry per opcode holds its facts, and the
/// encoder, decoder and renderer all follow it.
@Suite struct CommandTableTests {
    @Test func theTableHasOneEntryPerOpcodeInOpcodeOrder() {
        #expect(CommandFormat.all.map(\.opcode) == CommandOpcode.allCases)
        #expect(CommandFormat.all.map(\.opcode.rawValue) == CommandFormat.all.map(\.opcode.rawValue).sorted())
        for format in CommandFormat.all {
            #expect(format.name.hasPrefix("CMD_") && format.section.hasPrefix("§4."), "\(format.name) \(format.section)")
            #expect(format.opcode.specName == format.name)
        }
    }

    /// Sets each parameter group a format defines to a random value (legal where the format
    /// checks values) and leaves the others alone.
    static func randomCommand(_ format: CommandFormat, _ random: inout SeededGenerator) -> Command {
        var command = Command(format.opcode)
        let fields = format.fields
        func value(_ bits: Int) -> UInt64 { random.next() & UInt64.lowBits(bits) }
        if fields.contains(.streamID) { command.streamID = UInt32(truncatingIfNeeded: random.next()) }
        if fields.contains(.substream) { command.substreamID = random.next() % 2 == 0 ? nil : UInt32(value(20)) }
        if fields.contains(.substreamIndex) { command.substreamID = UInt32(value(20)) }
        if fields.contains(.global) { command.global = random.next() % 2 == 0 }
        if fields.contains(.leaf) { command.leaf = random.next() % 2 == 0 }
        if fields.contains(.range) {
            command.range = UInt8(value(5))
            if command.range == 31 { command.streamID = 0 }
        }
        if fields.contains(.vmid) { command.vmid = UInt16(value(16)) }
        if fields.contains(.asid) { command.asid = UInt16(value(16)) }
        if fields.contains(.virtualAddress) || fields.contains(.address) { command.address = random.next() & ~0xFFF }
        if fields.contains(.ipa) { command.address = value(52) & ~0xFFF }
        if fields.contains(.scope) {
            command.scope = random.next() % 2 == 0
                ? .single(leaf: random.next() % 2 == 0)
                : TLBIScope(leaf: random.next() % 2 == 0, num: UInt8(value(5)) | 1, scale: UInt8(value(5)), granule: UInt8(1 + random.next() % 3), ttl: UInt8(value(2)))
        }
        if fields.contains(.prefetchSpan) {
            command.size = UInt8(value(5))
            command.stride = UInt8(value(4))
        }
        if fields.contains(.atcSize) { command.size = UInt8(random.next() % 53) }
        if fields.contains(.prgResponse) {
            command.prgIndex = UInt16(value(9))
            command.response = PRIResponse.allCases[Int(random.next() % 3)]
        }
        if fields.contains(.resume) {
            command.stag = UInt16(value(16))
            command.action = [ResumeAction.retry, .abort, .terminate][Int(random.next() % 3)]
        }
        if fields.contains(.sync) {
            command.sync = SyncParameters(
                completion: [SyncCompletion.none, .irq, .sev][Int(random.next() % 3)], msiAddress: value(52) & ~3,
                msiData: UInt32(truncatingIfNeeded: random.next()), msiAttributes: UInt8(value(4)), msiShareability: UInt8(value(2)))
        }
        return command
    }

    @Test(arguments: CommandFormat.all.filter { if case .nonSecure = $0.availability { true } else { false } }.map(\.opcode))
    func everyCommandRoundTripsThroughItsEntryWithReservedBitsChecked(_ opcode: CommandOpcode) {
        var features = CommandFeatures.permissive
        features.checksReservedFields = true
        var random = SeededGenerator(seed: UInt64(opcode.rawValue) + 1)
        for _ in 0..<200 {
            let command = Self.randomCommand(opcode.format, &random)
            let entry = command.entry
            #expect(entry.dw0 & ~opcode.format.definedBits.dw0 == 0 && entry.dw1 & ~opcode.format.definedBits.dw1 == 0, "\(command) writes undefined bits")
            let decoded = Command.decode(entry, features: features)
            #expect(decoded == .success(command), "\(command)")
            #expect(CommandEntry(dw0: entry.dw0, dw1: entry.dw1).description == command.description)
        }
    }

    @Test func secureAndUnmodelledOpcodesAreRejectedBeforeAnyField() {
        for format in CommandFormat.all {
            let result = Command.decode(CommandEntry(dw0: UInt64(format.opcode.rawValue) | ~0xFF, dw1: .max), features: .permissive)
            switch format.availability {
            case .secureOnly: #expect(result == .failure(IllegalCommand(opcode: format.opcode.rawValue, reason: .notOnThisQueue)))
            case .notModelled: #expect(result == .failure(IllegalCommand(opcode: format.opcode.rawValue, reason: .reservedOpcode)))
            case .nonSecure: break
            }
        }
    }
}
