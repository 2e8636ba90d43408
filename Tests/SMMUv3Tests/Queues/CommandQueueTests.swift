import Testing
import Platform
import SMMUv3

@Suite struct CommandQueueTests {
    /// One legal instance of every command; each must be consumed without error.
    static let legalCommands: [Command] = [
        .prefetchConfig(streamID: 1, substreamID: 2),
        .prefetchAddress(streamID: 1, substreamID: nil, address: 0x1000, size: 2, stride: 0),
        .cfgiSTE(streamID: 1, leaf: false),
        .cfgiSTERange(streamID: 0x20, range: 4),
        .cfgiAll,
        .cfgiCD(streamID: 1, substreamID: 5, leaf: true),
        .cfgiCDAll(streamID: 1),
        .tlbiNHAll(vmid: 1),
        .tlbiNHASID(vmid: 1, asid: 2),
        .tlbiNHVA(vmid: 1, asid: 2, address: 0x4000, scope: .single(leaf: true)),
        .tlbiNHVAA(vmid: 1, address: 0x4000, scope: TLBIScope(leaf: false, num: 1, scale: 0, granule: 1, ttl: 0)),
        .tlbiEL2All,
        .tlbiEL2ASID(asid: 3),
        .tlbiEL2VA(asid: 3, address: 0x8000, scope: .single()),
        .tlbiEL2VAA(address: 0x8000, scope: .single()),
        .tlbiS12VMAll(vmid: 4),
        .tlbiS2IPA(vmid: 4, address: 0x1_0000, scope: .single(leaf: true)),
        .tlbiNSNHAll,
        .atcInv(streamID: 1, substreamID: nil, global: false, address: 0, size: 52),
        .priResp(streamID: 1, substreamID: 1, prgIndex: 3, response: .invalidRequest),
        .resume(streamID: 1, stag: 7, action: .abort),
        .stallTerm(streamID: 1),
        .sync(SyncParameters()),
    ]

    @Test(arguments: legalCommands)
    func legalCommandIsConsumed(_ command: Command) {
        let rig = Rig()
        rig.smmu.commandProcessing = .stepped
        rig.startCommandQueue()
        rig.push([command])
        let step = rig.smmu.stepCommand()
        #expect(step?.command == command)
        #expect(step?.consumerIndex == 0)
        #expect(step?.address == 0x4010_0000)
        if case .consumed = step?.outcome {} else { Issue.record("not consumed: \(String(describing: step))") }
        #expect(rig.read(.cmdqCons) == 1)
        #expect(!rig.cmdqErrActive)
        #expect(rig.smmu.stepCommand() == nil)
    }

    @Test func automaticModeConsumesEverythingWhenProdIsWritten() {
        let rig = Rig()
        rig.startCommandQueue(log2: 3)
        rig.push(Array(CommandQueueTests.legalCommands.prefix(7)), log2: 3)
        #expect(rig.read(.cmdqCons) == 7)
        rig.push(Array(CommandQueueTests.legalCommands.suffix(5)), log2: 3)
        #expect(rig.read(.cmdqCons) == (12 & 7) | 8, "index 4 with the wrap bit set")
        #expect(rig.smmu.statistics.commandsConsumed == 12)
    }

    @Test func steppedModeWalksTheQueueOneEntryAtATime() {
        let rig = Rig()
        rig.smmu.commandProcessing = .stepped
        rig.startCommandQueue()
        rig.push([Command.cfgiAll, .tlbiNSNHAll, .sync(SyncParameters())])
        #expect(rig.read(.cmdqCons) == 0, "nothing consumed until stepped")
        #expect(rig.smmu.commandQueueStatus == .ready(count: 3))
        #expect(rig.smmu.stepCommand()?.command == .cfgiAll)
        #expect(rig.read(.cmdqCons) == 1)
        let rest = rig.smmu.runCommandQueue()
        #expect(rest.map(\.command) == [.tlbiNSNHAll, .sync(SyncParameters())])
        #expect(rig.smmu.commandQueueStatus == .empty)
    }

    @Test func nothingIsConsumedWhileCMDQENIsClear() {
        let rig = Rig()
        rig.write64(.cmdqBase, 0x4010_0000 | 4)
        rig.push([Command.cfgiAll, .sync(SyncParameters())])
        #expect(rig.read(.cmdqCons) == 0)
        #expect(rig.smmu.commandQueueStatus == .disabled)
        rig.write(.cr0, 1 << 3)
        #expect(rig.read(.cmdqCons) == 2, "enabling the queue starts processing")
    }

    @Test func fetchAbortGivesCERRORABTAndRetriesAfterAcknowledge() {
        let rig = Rig()
        rig.startCommandQueue()
        let fault = rig.bus.faults.injectAbort(0x4010_0010...0x4010_001F, on: .read)
        rig.push([Command.cfgiAll, .tlbiNSNHAll, .sync(SyncParameters())])
        #expect(rig.read(.cmdqCons) == (2 << 24) | 1, "CONS stays on the entry that could not be fetched")
        #expect(rig.cmdqErrActive)
        #expect(rig.smmu.statistics.commandErrors == 1)
        rig.bus.faults.remove(fault)
        rig.host.acknowledgeGlobalErrors()
        #expect(rig.read(.cmdqCons) & 0xFFFFF == 3, "the entry is fetched again once acknowledged")
        #expect(!rig.cmdqErrActive)
    }

    @Test func queueBeyondOASIsTruncatedLikeTheSpecSays() {
        // §3.4.3: queue base addresses above OAS are truncated to OAS.
        let rig = Rig { $0.outputAddressSize = .bits32 }
        rig.write64(.cmdqBase, 0x7_4010_0000 | 4)
        rig.write(.cr0, 1 << 3)
        rig.push([Command.cfgiAll], queue: 0x4010_0000)
        #expect(rig.read(.cmdqCons) == 1)
    }

    @Test func replacingTheIllegalCommandAndAcknowledgingResumesProcessing() {
        let rig = Rig()
        rig.startCommandQueue()
        rig.push([CommandEntry(dw0: 0x3046, dw1: 0), Command.cfgiAll.entry])
        #expect(rig.read(.cmdqCons) == (1 << 24) | 0)
        // Software may rewrite the failing command while CMDQ_ERR is active (§7.1).
        rig.bus.memory.write64(Command.sync(SyncParameters()).entry.dw0, at: 0x4010_0000)
        rig.push([Command.tlbiNSNHAll])
        #expect(rig.read(.cmdqCons) & 0xFFFFF == 0, "nothing consumed while CMDQ_ERR is active")
        rig.host.acknowledgeGlobalErrors()
        #expect(rig.read(.cmdqCons) & 0xFFFFF == 3)
        #expect(rig.smmu.statistics.commandsConsumed == 3)
    }

    @Test func disablingTheQueueDoesNotClearCMDQErr() {
        let rig = Rig()
        rig.startCommandQueue()
        rig.push([CommandEntry(dw0: 0, dw1: 0)])
        rig.write(.cr0, 0)
        rig.write(.cr0, 1 << 3)
        #expect(rig.cmdqErrActive, "CMDQEN changes neither clear nor acknowledge CMDQ_ERR (§7.1)")
    }

    @Test func inconsistentPointersStopConsumption() {
        let rig = Rig()
        rig.startCommandQueue(log2: 2)
        // PROD index 2 with the wrap flag set while CONS is 0 without it: 6 entries "queued"
        // in a 4-entry queue.
        rig.write(.cmdqProd, 0b110)
        #expect(rig.read(.cmdqCons) == 0)
        #expect(rig.smmu.commandQueueStatus == .inconsistent)
        #expect(rig.smmu.diagnostics.last?.kind == .inconsistentQueue(.command))
        for slot in 0..<2 {
            rig.bus.memory.write64(Command.tlbiNSNHAll.entry.dw0, at: 0x4010_0000 + UInt64(slot) * 16)
        }
        rig.write(.cmdqProd, 0b010)
        #expect(rig.read(.cmdqCons) == 2, "consistent again: the two entries are consumed")
    }

    @Test func becomingNonFullSendsAWakeUpEvent() {
        let rig = Rig()
        rig.smmu.commandProcessing = .stepped
        rig.startCommandQueue(log2: 2)
        rig.push(Array(repeating: Command.tlbiNSNHAll, count: 4), log2: 2)
        #expect(rig.read(.cmdqProd) == 0b100, "full: same index, other wrap")
        rig.smmu.stepCommand()
        #expect(rig.bus.interrupts.sendEventCount == 1)
        rig.smmu.stepCommand()
        #expect(rig.bus.interrupts.sendEventCount == 1, "only the full to non-full transition")
        let noSEV = Rig { $0.sev = false }
        noSEV.smmu.commandProcessing = .stepped
        noSEV.startCommandQueue(log2: 2)
        noSEV.push(Array(repeating: Command.tlbiNSNHAll, count: 4), log2: 2)
        noSEV.smmu.stepCommand()
        #expect(noSEV.bus.interrupts.sendEventCount == 0)
    }

    @Test func priResponseReachesTheEndpointOnlyWhenEnabled() {
        let rig = Rig()
        var responses: [PRGResponse] = []
        rig.smmu.onPRGResponse { responses.append($0) }
        rig.startCommandQueue()
        rig.push([Command.priResp(streamID: 4, substreamID: 9, prgIndex: 0x11, response: .success)])
        #expect(responses.isEmpty, "CMD_PRI_RESP is IGNORED while SMMUEN == 0")
        rig.write(.cr0, (1 << 3) | 1)
        rig.push([Command.priResp(streamID: 4, substreamID: 9, prgIndex: 0x11, response: .responseFailure)])
        #expect(responses == [PRGResponse(streamID: 4, substreamID: 9, prgIndex: 0x11, code: .responseFailure, automatic: false)])
    }

    @Test func priResponseDropsThePASIDWithoutSubstreams() throws {
        let rig = Rig { $0.substreamIDBits = 0 }
        var responses: [PRGResponse] = []
        rig.smmu.onPRGResponse { responses.append($0) }
        rig.startCommandQueue(extraEnables: 1)
        rig.push([Command.priResp(streamID: 4, substreamID: 9, prgIndex: 1, response: .success)])
        try #require(responses.count == 1, "the response reaches the endpoint")
        #expect(responses[0] == PRGResponse(streamID: 4, substreamID: nil, prgIndex: 1, code: .success, automatic: false))
    }

    @Test func traceShowsEachCommandAndPointerMove() {
        let rig = Rig(trace: [.command, .queue])
        rig.startCommandQueue()
        rig.push([Command.cfgiSTE(streamID: 0x10, leaf: true).entry, CommandEntry(dw0: 0x09, dw1: 0)])
        #expect(rig.bus.trace.texts() == [
            "smmu.cmdq: PROD <- 0",
            "smmu.cmdq: PROD <- 2",
            "smmu.cmdq: CONS -> 1",
            "smmu.cmdq: [0] CMD_CFGI_STE sid=0x10 leaf -> invalidated 0 cached entries",
            "smmu.cmdq: [1] CMD_RESERVED_0x09 [reserved opcode] dw0=0x0000000000000009 dw1=0x0000000000000000 -> CERROR_ILL: reserved opcode",
        ])
    }
}

@Suite struct CommandSyncTests {
    @Test func sigNoneSignalsNothing() {
        let rig = Rig()
        rig.startCommandQueue()
        rig.push([Command.sync(SyncParameters(completion: .none, msiAddress: 0x5000, msiData: 1))])
        #expect(rig.read(.cmdqCons) == 1)
        #expect(rig.bus.interrupts.records.isEmpty)
        #expect(rig.memory32(0x5000) == 0)
    }

    @Test func sigIRQWritesTheMSIDataToMemoryAfterConsPassesTheSync() {
        let rig = Rig()
        rig.startCommandQueue()
        var consAtMSI: UInt64?
        rig.bus.interrupts.onMSI = { [weak smmu = rig.smmu] _, _ in consAtMSI = smmu?.peek(.cmdqCons) }
        rig.push([Command.tlbiNSNHAll, .sync(SyncParameters(completion: .irq, msiAddress: 0x4050_0040, msiData: 0xCAFE))])
        #expect(rig.memory32(0x4050_0040) == 0xCAFE)
        #expect(consAtMSI == 2, "the MSI is observable only after CONS has passed the CMD_SYNC")
        #expect(rig.bus.interrupts.pulses(on: 66) == 1, "and the wired CMD_SYNC line pulses")
    }

    @Test func sigIRQWithoutAnAddressOrMSISupportUsesTheWiredLineOnly() {
        let rig = Rig()
        rig.startCommandQueue()
        rig.push([Command.sync(SyncParameters(completion: .irq, msiAddress: 0, msiData: 5))])
        #expect(rig.bus.interrupts.deliveredMSICount == 0)
        #expect(rig.bus.interrupts.pulses(on: 66) == 1)
        let noMSI = Rig { $0.msi = false }
        noMSI.startCommandQueue()
        noMSI.push([Command.sync(SyncParameters(completion: .irq, msiAddress: 0x5000, msiData: 5))])
        #expect(noMSI.memory32(0x5000) == 0)
        #expect(noMSI.bus.interrupts.pulses(on: 66) == 1)
        let noWires = Rig { $0.interruptLines = nil }
        noWires.startCommandQueue()
        noWires.push([Command.sync(SyncParameters(completion: .irq, msiAddress: 0x5000, msiData: 5))])
        #expect(noWires.memory32(0x5000) == 5)
        #expect(noWires.bus.interrupts.pulseCounts.isEmpty)
    }

    @Test func abortedSyncMSISetsMSICMDQAbtErr() {
        let rig = Rig()
        rig.startCommandQueue()
        rig.bus.faults.injectAbort(0x6000...0x6003, on: .write)
        rig.write(.irqCtrl, 1)
        rig.push([Command.sync(SyncParameters(completion: .irq, msiAddress: 0x6000, msiData: 5))])
        #expect(rig.read(.cmdqCons) == 1, "the CMD_SYNC itself is consumed")
        #expect(rig.read(.gerror) == 1 << 4, "MSI_CMDQ_ABT_ERR")
        #expect(rig.bus.interrupts.pulses(on: 67) == 1, "GERROR interrupt")
        #expect(!rig.cmdqErrActive)
    }

    @Test func droppedSyncMSILeavesNoTraceInMemoryOrErrors() {
        let rig = Rig()
        rig.startCommandQueue()
        rig.bus.faults.dropMSIs(to: 0x6000...0x6003)
        rig.push([Command.sync(SyncParameters(completion: .irq, msiAddress: 0x6000, msiData: 5))])
        #expect(rig.memory32(0x6000) == 0)
        #expect(rig.read(.gerror) == 0)
    }

    @Test func sigSEVSendsAWakeUpOnlyWithIDR0SEV() {
        let rig = Rig()
        rig.startCommandQueue()
        rig.push([Command.sync(SyncParameters(completion: .sev))])
        #expect(rig.bus.interrupts.sendEventCount == 1)
        let noSEV = Rig { $0.sev = false }
        noSEV.startCommandQueue()
        noSEV.push([Command.sync(SyncParameters(completion: .sev))])
        #expect(noSEV.read(.cmdqCons) == 1)
        #expect(noSEV.bus.interrupts.sendEventCount == 0, "SIG_SEV behaves as SIG_NONE without IDR0.SEV")
    }

    @Test func syncMSIAddressIsTruncatedToOAS() {
        let rig = Rig { $0.outputAddressSize = .bits32 }
        rig.startCommandQueue()
        rig.push([Command.sync(SyncParameters(completion: .irq, msiAddress: 0x1_0000_7000, msiData: 9))])
        #expect(rig.memory32(0x7000) == 9)
    }
}
