import Platform
import SMMUv3

/// A ready-to-use system: a bus, an SMMU brought up the Linux way with an empty stream table,
/// a host agent, and a DMA arena for tables. The starting point for scenario tests.
public final class SMMUSystem {
    /// The bus connecting the SMMU, the host agent and memory.
    public let bus: Bus
    /// The SMMU under test, mapped at `smmuBase` on the bus.
    public let smmu: SMMU
    /// The host agent that programs the SMMU through its registers.
    public let host: SMMUHost
    /// Memory for tables built by the test (0x8000_0000, 1 GB).
    public let arena: DMAArena
    /// The stream table the SMMU was brought up with.
    public let streams: StreamTableBuilder

    /// Creates the system and brings the SMMU up.
    public init(configuration: SMMUConfiguration = .default, smmuBase: UInt64 = 0x0900_0000, streamTableLog2Size: Int = 8, split: Int? = nil, eventQueueLog2: Int = 6, priQueueLog2: Int = 6, trace: TraceCategory = []) throws {
        bus = Bus(traceCategories: trace)
        smmu = try SMMU(configuration: configuration, bus: bus, base: smmuBase)
        host = SMMUHost(bus: bus, base: smmuBase)
        arena = DMAArena(base: 0x8000_0000, size: 0x4000_0000)
        streams = StreamTableBuilder(memory: bus.memory, arena: arena, log2Size: streamTableLog2Size, split: split)
        var layout = SMMUHost.Layout()
        layout.streamTable = streams.base
        layout.streamTableBaseConfig = streams.baseConfig
        layout.eventQueueLog2Size = eventQueueLog2
        layout.priQueueLog2Size = priQueueLog2
        try host.bringUp(layout: layout)
    }

    /// An empty translation table.
    public func pageTable(_ stage: PageTableBuilder.Stage = .stage1, granule: Int = 12, inputBits: Int = 48, startLevel: Int? = nil) -> PageTableBuilder {
        PageTableBuilder(memory: bus.memory, arena: arena, stage: stage, granuleShift: granule, inputBits: inputBits, startLevel: startLevel)
    }

    /// Makes `streamID` a stage-2-only stream translating through `table` with `vmid`
    /// (STE.Config = 0b110, §5.2); `adjust` may change the STE before it is written.
    public func stage2Stream(_ streamID: UInt32, table: PageTableBuilder, vmid: UInt16 = 0, adjust: (inout STEConfig) -> Void = { _ in }) {
        var ste = STEConfig(config: .stage2)
        ste.stage2 = STEConfig.Stage2(table)
        ste.s2VMID = vmid
        adjust(&ste)
        streams.set(streamID, ste)
    }

    /// Makes `streamID` a stage-1 stream whose CDs (at `ssids`) are `cd`; returns the CD table.
    @discardableResult
    public func stage1Stream(_ streamID: UInt32, cd: CDConfig, cdMax: Int = 0, format: CDTableBuilder.Format = .linear, ssids: [UInt32] = [0], adjust: (inout STEConfig) -> Void = { _ in }) -> CDTableBuilder {
        let cds = CDTableBuilder(memory: bus.memory, arena: arena, cdMax: cdMax, format: format)
        for ssid in ssids { cds.set(ssid, cd) }
        var ste = STEConfig(config: .stage1)
        ste.s1ContextPointer = cds.pointer
        ste.s1CDMax = UInt8(cdMax)
        ste.s1Format = format.rawValue
        adjust(&ste)
        streams.set(streamID, ste)
        return cds
    }
}
