import Platform
@testable import SMMUv3
import SMMUv3Host

/// An SMMU brought up the Linux way with a stream table built by the test, plus helpers to
/// describe streams and inspect events.
final class TranslationRig {
    let rig: Rig
    let arena: DMAArena
    let streams: StreamTableBuilder
    var smmu: SMMU { rig.smmu }
    var memory: PhysicalMemory { rig.bus.memory }
    var host: SMMUHost { rig.host }

    init(_ configure: (inout SMMUConfiguration) -> Void = { _ in }, log2Size: Int = 8, split: Int? = nil, eventQueueLog2: Int = 6, trace: TraceCategory = []) {
        rig = Rig(configure, trace: trace)
        arena = DMAArena(base: 0x8000_0000, size: 0x4000_0000)
        streams = StreamTableBuilder(memory: rig.bus.memory, arena: arena, log2Size: log2Size, split: split)
        var layout = SMMUHost.Layout()
        layout.streamTable = streams.base
        layout.streamTableBaseConfig = streams.baseConfig
        layout.eventQueueLog2Size = eventQueueLog2
        do {
            try rig.host.bringUp(layout: layout)
        } catch {
            fatalError("bring-up failed: \(error)")
        }
    }

    func table(_ stage: PageTableBuilder.Stage = .stage1, granule: Int = 12, inputBits: Int = 48, startLevel: Int? = nil) -> PageTableBuilder {
        PageTableBuilder(memory: memory, arena: arena, stage: stage, granuleShift: granule, inputBits: inputBits, startLevel: startLevel)
    }

    /// A stage-1 stream: a single CD (or a CD table) translating through `cd`.
    @discardableResult
    func stage1Stream(_ streamID: UInt32, cd: CDConfig, cdMax: Int = 0, format: CDTableBuilder.Format = .linear, ssids: [UInt32] = [0], adjust: (inout STEConfig) -> Void = { _ in }) -> CDTableBuilder {
        let cds = CDTableBuilder(memory: memory, arena: arena, cdMax: cdMax, format: format)
        for ssid in ssids { cds.set(ssid, cd) }
        var ste = STEConfig(config: .stage1)
        ste.s1ContextPointer = cds.pointer
        ste.s1CDMax = UInt8(cdMax)
        ste.s1Format = format.rawValue
        adjust(&ste)
        streams.set(streamID, ste)
        return cds
    }

    /// Translates and returns the outcome.
    func translate(_ streamID: UInt32, _ address: UInt64, ssid: UInt32? = nil, _ access: AccessAttributes = .dataRead) -> TransactionOutcome {
        smmu.translate(InboundTransaction(streamID: streamID, substreamID: ssid, address: address, access: access))
    }

    /// The event records produced so far (drained from the event queue).
    func events() -> [EventRecord] { host.drainEvents().records }

    /// Submits commands followed by CMD_SYNC.
    func invalidate(_ commands: [Command]) {
        do {
            try host.submit(commands + [.sync(SyncParameters())])
        } catch {
            fatalError("invalidation failed: \(error)")
        }
    }
}
