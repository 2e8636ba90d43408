import Testing
import Platform
import SMMUv3
import SMMUv3Host
import Scenario

/// An ``SMMUSystem`` plus the ``Rig`` register helpers, for translation tests.
final class TranslationRig {
    let system: SMMUSystem
    let rig: Rig
    var smmu: SMMU { system.smmu }
    var memory: PhysicalMemory { system.bus.memory }
    var host: SMMUHost { system.host }
    var arena: DMAArena { system.arena }
    var streams: StreamTableBuilder { system.streams }

    init(_ configure: (inout SMMUConfiguration) -> Void = { _ in }, log2Size: Int = 8, split: Int? = nil, eventQueueLog2: Int = 6, trace: TraceCategory = []) {
        var configuration = SMMUConfiguration.default
        configure(&configuration)
        do {
            system = try SMMUSystem(configuration: configuration, smmuBase: Rig.smmuBase, streamTableLog2Size: log2Size, split: split, eventQueueLog2: eventQueueLog2, trace: trace)
        } catch {
            fatalError("bring-up failed: \(error)")
        }
        rig = Rig(system: system)
    }

    func table(_ stage: PageTableBuilder.Stage = .stage1, granule: Int = 12, inputBits: Int = 48, startLevel: Int? = nil) -> PageTableBuilder {
        system.pageTable(stage, granule: granule, inputBits: inputBits, startLevel: startLevel)
    }

    @discardableResult
    func stage1Stream(_ streamID: UInt32, cd: CDConfig, cdMax: Int = 0, format: CDTableBuilder.Format = .linear, ssids: [UInt32] = [0], adjust: (inout STEConfig) -> Void = { _ in }) -> CDTableBuilder {
        system.stage1Stream(streamID, cd: cd, cdMax: cdMax, format: format, ssids: ssids, adjust: adjust)
    }

    func stage2Stream(_ streamID: UInt32, table: PageTableBuilder, vmid: UInt16 = 0, adjust: (inout STEConfig) -> Void = { _ in }) {
        system.stage2Stream(streamID, table: table, vmid: vmid, adjust: adjust)
    }

    /// Translates and returns the outcome.
    func translate(_ streamID: UInt32, _ address: UInt64, ssid: UInt32? = nil, _ access: AccessAttributes = .dataRead) -> TransactionOutcome {
        smmu.translate(InboundTransaction(streamID: streamID, substreamID: ssid, address: address, access: access))
    }

    /// Makes `streamID`'s STE invalid (all zero). The driver that brought the SMMU up left
    /// every unattached stream aborting (STE.V = 1, Config = abort: `disable_bypass`).
    func invalidSTE(_ streamID: UInt32) {
        streams.setWords(streamID, Array(repeating: 0, count: 8))
    }

    /// Clears CR2.E2H, which the driver sets (Linux writes PTM | RECINVSID | E2H): EL2
    /// streams then use the EL2 regime, not EL2-E2H. CR2 is guarded by SMMUEN, so the SMMU is
    /// disabled around the write.
    func useEL2WithoutE2H() {
        let cr0 = rig.read(.cr0)
        rig.write(.cr0, cr0 & ~1)
        rig.write(.cr2, rig.read(.cr2) & ~1)
        rig.write(.cr0, cr0)
    }

    /// The event records produced so far (drained from the event queue).
    func events() -> [EventRecord] { host.drainEvents().records }

    /// Submits commands followed by CMD_SYNC; a command error fails the calling test (and
    /// leaves the error for it to inspect) instead of stopping the test run.
    func invalidate(_ commands: [Command], sourceLocation: SourceLocation = #_sourceLocation) {
        do {
            try host.submit(commands + [.sync(SyncParameters())])
        } catch {
            Issue.record("invalidation failed: \(error)", sourceLocation: sourceLocation)
        }
    }
}
