import Platform
import SMMUv3Layout
import VMSA

/// The implementation choices of one modelled SMMU: what it implements (reported through the
/// ID registers, spec §6.3.1–§6.3.8) and how the model behaves where the architecture lets an
/// implementation choose.
///
/// ``default`` advertises everything the model implements. Change fields to model a smaller
/// SMMU (for example `stage2 = false` for a stage-1-only part) and call ``validate()`` (the
/// ``SMMU`` initializer does) to catch combinations the architecture forbids.
public struct SMMUConfiguration: Sendable, Hashable {
    /// IDR0.STALL_MODEL: the stall fault model (§3.12).
    public enum StallModel: UInt32, Sendable, Hashable, CaseIterable {
        /// 0b00: stall and terminate models both supported.
        case stallAndTerminate = 0
        /// 0b01: terminate only; CD.S and STE.S2S must be 0; RESUME and STALL_TERM are ILLEGAL.
        case terminateOnly = 1
        /// 0b10: stall forced; CD.S and STE.S2S must be 1. Not allowed for a PCIe-attached SMMU.
        case stallForced = 2
    }

    /// IDR0.HTTU: hardware translation table update support (§3.13).
    public enum HardwareUpdate: UInt32, Sendable, Hashable, CaseIterable {
        /// 0b00: no hardware updates.
        case none = 0
        /// 0b01: Access flag updates.
        case accessFlag = 1
        /// 0b10: Access flag and dirty state updates.
        case accessFlagAndDirty = 2
    }

    /// IDR5.OAS: the output (physical) address size.
    public enum OutputAddressSize: UInt32, Sendable, Hashable, CaseIterable {
        case bits32 = 0, bits36 = 1, bits40 = 2, bits42 = 3, bits44 = 4, bits48 = 5, bits52 = 6

        /// The size in bits.
        public var bits: Int {
            switch self {
            case .bits32: 32
            case .bits36: 36
            case .bits40: 40
            case .bits42: 42
            case .bits44: 44
            case .bits48: 48
            case .bits52: 52
            }
        }

        /// The encoding for a size in bits, if it is one the model supports.
        public init?(bits: Int) {
            guard let match = OutputAddressSize.allCases.first(where: { $0.bits == bits }) else { return nil }
            self = match
        }
    }

    /// Wired interrupt line numbers (edge-triggered outputs, §3.18.2).
    public struct InterruptLines: Sendable, Hashable {
        /// Event queue: empty to non-empty.
        public var eventQueue: Int
        /// PRI queue, per PRIQ_IRQ_CFG2.LO.
        public var priQueue: Int
        /// CMD_SYNC completion with CS=SIG_IRQ.
        public var commandSync: Int
        /// Global error activation.
        public var globalError: Int

        /// Creates a set of line numbers.
        public init(eventQueue: Int, priQueue: Int, commandSync: Int, globalError: Int) {
            self.eventQueue = eventQueue
            self.priQueue = priQueue
            self.commandSync = commandSync
            self.globalError = globalError
        }
    }


    // MARK: Architectural features (ID registers)

    /// IDR0.S1P: stage 1 translation.
    public var stage1 = true
    /// IDR0.S2P: stage 2 translation.
    public var stage2 = true
    /// IDR0.Hyp: EL2 StreamWorlds and TLBI_EL2_* (requires both stages; mandatory in v3.2
    /// when both stages exist).
    public var hypervisor = true
    /// IDR0.ATS: PCIe ATS.
    public var ats = true
    /// IDR0.PRI: PCIe PRI and the PRI queue (requires ATS).
    public var pri = true
    /// IDR0.MSI: message-signalled interrupts (the *_IRQ_CFG0..2 registers).
    public var msi = true
    /// IDR0.SEV: send-event (WFE wake-up) signalling.
    public var sev = true
    /// IDR0.ASID16: 16-bit ASIDs (otherwise 8-bit).
    public var asid16 = true
    /// IDR0.VMID16: 16-bit VMIDs (otherwise 8-bit).
    public var vmid16 = true
    /// IDR0.ST_LEVEL: 2-level stream tables.
    public var twoLevelStreamTable = true
    /// IDR0.CD2L: 2-level context descriptor tables.
    public var twoLevelContextDescriptorTable = true
    /// IDR0.STALL_MODEL.
    public var stallModel: StallModel = .stallAndTerminate
    /// IDR0.TERM_MODEL: when true, terminated transactions always abort (CD.A must be 1).
    public var terminateAlwaysAborts = false
    /// IDR0.HTTU.
    public var hardwareUpdate: HardwareUpdate = .accessFlagAndDirty
    /// IDR0.COHACC: coherent table, queue and MSI accesses.
    public var coherentAccess = true
    /// IDR1.SIDSIZE: StreamID bits (0...32). Values of 7 and more need 2-level stream tables.
    public var streamIDBits = 16
    /// IDR1.SSIDSIZE: SubstreamID bits (0...20).
    public var substreamIDBits = 20
    /// IDR1.CMDQS: log2 of the largest command queue (0...19).
    public var commandQueueMaxLog2 = 19
    /// IDR1.EVENTQS: log2 of the largest event queue (0...19).
    public var eventQueueMaxLog2 = 19
    /// IDR1.PRIQS: log2 of the largest PRI queue (0...19).
    public var priQueueMaxLog2 = 19
    /// IDR1.ATTR_TYPES_OVR and ATTR_PERMS_OVR: the bypass attribute overrides in GBPA and STEs.
    public var attributeOverrides = true
    /// IDR3.PPS: overflow auto-responses carry the PASID of the request.
    public var priPASIDOnOverflow = true
    /// IDR5.GRAN4K.
    public var granule4K = true
    /// IDR5.GRAN16K.
    public var granule16K = true
    /// IDR5.GRAN64K.
    public var granule64K = true
    /// IDR5.OAS.
    public var outputAddressSize: OutputAddressSize = .bits48
    /// IDR5.VAX == 0b01: 52-bit virtual addresses with 64 KB granules (reported, and used, only
    /// when ``granule64K`` is set, §6.3.6).
    public var largeVirtualAddresses = true
    /// IDR5.STALL_MAX: the largest number of outstanding stalled transactions.
    public var stallMax = 256

    // MARK: Identification (IMPLEMENTATION DEFINED)

    /// IIDR.ProductID (12 bits).
    public var productID: UInt32 = 0x5A3
    /// IIDR.Variant (4 bits).
    public var variant: UInt32 = 0
    /// IIDR.Revision (4 bits).
    public var revision: UInt32 = 0
    /// IIDR.Implementer: JEP106 code, [11:8] continuation count, [6:0] identity. 0 = none.
    public var implementer: UInt32 = 0

    // MARK: Model behaviour

    /// The name used for this SMMU in traces and interrupt records.
    public var name = "smmu"
    /// Wired interrupt outputs, or nil when the SMMU only signals by MSI.
    public var interruptLines: InterruptLines? = InterruptLines(eventQueue: 64, priQueue: 65, commandSync: 66, globalError: 67)
    /// How many reads of CR0ACK, IRQ_CTRLACK or GBPA an update takes to complete
    /// (0 = complete at the write). Non-zero values exercise a driver's polling loops.
    public var acknowledgeLatency = 0
    /// Whether non-zero reserved (RES0) command fields raise CERROR_ILL (§4.1.5 lets an
    /// implementation check or ignore them; checking catches driver bugs).
    public var checksReservedCommandFields = true
    /// Whether the Reserved Page 0 offsets 0xA8/0xAC/0xC8/0xCC alias the Page 1
    /// EVENTQ/PRIQ PROD and CONS registers (§6.2.1; Linux ARM_SMMU_OPT_PAGE0_REGS_ONLY).
    /// When false they are RAZ/WI.
    public var page0AliasesPage1Registers = false
    /// The most leaf translations the TLB holds (1...2^30; from 8 up, rounded up to a power of
    /// two). It is 8-way set-associative: a translation that finds its set full replaces the
    /// set's oldest entry (FIFO); nothing else is lost until invalidated. Memory grows with use,
    /// up to about 60 bytes per entry.
    public var tlbCapacity = 16_384
    /// The most entries each configuration cache holds: STEs, CDs, and the combined
    /// STE-and-CD stream contexts (see ``tlbCapacity`` for the range, rounding and replacement
    /// policy). Memory
    /// grows with use, up to about 200 bytes per entry and cache.
    public var configurationCacheCapacity = 131_072
    /// How many diagnostics ``SMMU/diagnostics`` keeps; older ones are dropped and counted.
    public var diagnosticsCapacity = 1024
    /// How long (in virtual clock ticks) CMD_SYNC waits for ATS invalidation completions before
    /// failing with CERROR_ATC_INV_SYNC.
    public var atcInvalidationTimeout: UInt64 = 1_000_000
    /// SMMU_GBPA value at reset (Update=0; the rest is IMPLEMENTATION DEFINED, §6.3.14).
    /// The default bypasses with incoming attributes (SHCFG=0b01).
    public var gbpaResetValue: UInt32 = 0x0000_1000

    /// The default configuration.
    public static let `default` = SMMUConfiguration()

    /// Creates the default configuration.
    public init() {}

    /// A configuration combination the architecture (or the model) does not allow.
    public struct Invalid: Error, CustomStringConvertible, Equatable {
        /// The rule broken.
        public let rule: Rule
        /// What is wrong, in words.
        public var message: String { rule.description }
        public var description: String { "invalid SMMU configuration: \(message)" }

        /// The rules ``SMMUConfiguration/validate()`` checks.
        public enum Rule: Sendable, Hashable, CustomStringConvertible {
            case noTranslationStage
            case hypervisorWithoutBothStages
            case bothStagesWithoutHypervisor
            case priWithoutATS
            case forcedStallsWithATS
            case streamIDBitsOutOfRange
            case twoLevelStreamTableRequired
            case substreamIDBitsOutOfRange
            /// A queue size field (CMDQS, EVENTQS or PRIQS) beyond 19.
            case queueSizeOutOfRange(SMMUQueue)
            case noTranslationGranule
            case outputAddressSize52WithoutGranule64K
            case stallMaxOutOfRange
            case identificationOutOfRange
            case negativeAcknowledgeLatency
            case cacheCapacityOutOfRange
            case negativeDiagnosticsCapacity

            public var description: String {
                switch self {
                case .noTranslationStage: "at least one translation stage must be implemented"
                case .hypervisorWithoutBothStages: "IDR0.Hyp requires both stages"
                case .bothStagesWithoutHypervisor: "SMMUv3.2 requires IDR0.Hyp when both stages are implemented"
                case .priWithoutATS: "IDR0.PRI requires IDR0.ATS"
                case .forcedStallsWithATS: "a PCIe (ATS) SMMU must not force stalls (STALL_MODEL=0b10)"
                case .streamIDBitsOutOfRange: "SIDSIZE must be 0...32"
                case .twoLevelStreamTableRequired: "SIDSIZE >= 7 requires 2-level stream tables"
                case .substreamIDBitsOutOfRange: "SSIDSIZE must be 0...20"
                case .queueSizeOutOfRange(let queue):
                    "\(queue == .command ? "CMDQS" : queue == .event ? "EVENTQS" : "PRIQS") must be 0...19"
                case .noTranslationGranule: "at least one translation granule must be supported"
                case .outputAddressSize52WithoutGranule64K: "a 52-bit OAS requires the 64 KB granule (IDR5.GRAN64K)"
                case .stallMaxOutOfRange: "STALL_MAX must fit 16 bits"
                case .identificationOutOfRange: "IIDR fields out of range"
                case .negativeAcknowledgeLatency: "acknowledgeLatency must not be negative"
                case .cacheCapacityOutOfRange: "cache capacities must be 1...2^30"
                case .negativeDiagnosticsCapacity: "diagnosticsCapacity must not be negative"
                }
            }
        }
    }

    /// Checks the combination against the architecture's rules.
    public func validate() throws(Invalid) {
        func fail(_ rule: Invalid.Rule) throws(Invalid) { throw Invalid(rule: rule) }
        if !stage1 && !stage2 { try fail(.noTranslationStage) }
        if hypervisor && !(stage1 && stage2) { try fail(.hypervisorWithoutBothStages) }
        if stage1 && stage2 && !hypervisor { try fail(.bothStagesWithoutHypervisor) }
        if pri && !ats { try fail(.priWithoutATS) }
        if stallModel == .stallForced && ats { try fail(.forcedStallsWithATS) }
        if !(0...32).contains(streamIDBits) { try fail(.streamIDBitsOutOfRange) }
        if streamIDBits >= 7 && !twoLevelStreamTable { try fail(.twoLevelStreamTableRequired) }
        if !(0...20).contains(substreamIDBits) { try fail(.substreamIDBitsOutOfRange) }
        for (queue, value) in [(SMMUQueue.command, commandQueueMaxLog2), (.event, eventQueueMaxLog2), (.pri, priQueueMaxLog2)] {
            if !(0...19).contains(value) { try fail(.queueSizeOutOfRange(queue)) }
        }
        if !granule4K && !granule16K && !granule64K { try fail(.noTranslationGranule) }
        // §6.3.6 OAS: a 52-bit output address size needs the 64 KB granule (no DS, no D128).
        if outputAddressSize == .bits52 && !granule64K { try fail(.outputAddressSize52WithoutGranule64K) }
        if !(0...0xFFFF).contains(stallMax) { try fail(.stallMaxOutOfRange) }
        if productID > 0xFFF || variant > 0xF || revision > 0xF || implementer > 0xFFF { try fail(.identificationOutOfRange) }
        if acknowledgeLatency < 0 { try fail(.negativeAcknowledgeLatency) }
        if !(1...(1 << 30)).contains(tlbCapacity) || !(1...(1 << 30)).contains(configurationCacheCapacity) {
            try fail(.cacheCapacityOutOfRange)
        }
        if diagnosticsCapacity < 0 { try fail(.negativeDiagnosticsCapacity) }
    }
}

extension SMMUConfiguration {
    /// SMMU_IDR0 (§6.3.1).
    public var idr0: UInt32 {
        var value: UInt64 = 0
        value = Reg.IDR0.stLevel.inserting(twoLevelStreamTable ? 1 : 0, into: value)
        value |= Reg.IDR0.termModel.place(terminateAlwaysAborts)
        value = Reg.IDR0.stallModel.inserting(UInt64(stallModel.rawValue), into: value)
        value = Reg.IDR0.ttEndian.inserting(Reg.IDR0.ttEndianLittle, into: value)
        value |= Reg.IDR0.cd2l.place(twoLevelContextDescriptorTable && stage1)
        value |= Reg.IDR0.vmid16.place(vmid16 && stage2)
        value |= Reg.IDR0.pri.place(pri && ats)
        value |= Reg.IDR0.sev.place(sev)
        value |= Reg.IDR0.msi.place(msi)
        value |= Reg.IDR0.asid16.place(asid16 && stage1)
        // Split-stage ATS (STE.EATS == 0b10) is not modelled: NS1ATS = 1 means "not supported".
        // §6.3.1: NS1ATS is RES0 unless ATS and both stages are implemented.
        value |= Reg.IDR0.ns1ats.place(ats && stage1 && stage2)
        value |= Reg.IDR0.ats.place(ats)
        value |= Reg.IDR0.hyp.place(hypervisor && stage1 && stage2)
        value = Reg.IDR0.httu.inserting(UInt64(hardwareUpdate.rawValue), into: value)
        value |= Reg.IDR0.cohacc.place(coherentAccess)
        value = Reg.IDR0.ttf.inserting(Reg.IDR0.ttfAArch64, into: value)
        value |= Reg.IDR0.s1p.place(stage1)
        value |= Reg.IDR0.s2p.place(stage2)
        return UInt32(truncatingIfNeeded: value)
    }

    /// SMMU_IDR1 (§6.3.2).
    public var idr1: UInt32 {
        var value: UInt64 = 0
        value |= Reg.IDR1.attrTypesOvr.place(attributeOverrides)
        value |= Reg.IDR1.attrPermsOvr.place(attributeOverrides)
        value = Reg.IDR1.cmdqs.inserting(UInt64(commandQueueMaxLog2), into: value)
        value = Reg.IDR1.eventqs.inserting(UInt64(eventQueueMaxLog2), into: value)
        value = Reg.IDR1.priqs.inserting(pri ? UInt64(priQueueMaxLog2) : 0, into: value)
        value = Reg.IDR1.ssidSize.inserting(stage1 ? UInt64(substreamIDBits) : 0, into: value)
        value = Reg.IDR1.sidSize.inserting(UInt64(streamIDBits), into: value)
        return UInt32(truncatingIfNeeded: value)
    }

    /// SMMU_IDR2 (§6.3.3): no VATOS.
    public var idr2: UInt32 { 0 }

    /// SMMU_IDR3 (§6.3.4): what SMMUv3.2 makes mandatory (RIL, FWB, BBML level 1; HAD with
    /// stage 1, XNX with stage 2) and PPS, which is RES0 without PRI or SubstreamIDs.
    public var idr3: UInt32 {
        var value: UInt64 = Reg.IDR3.ril.mask | Reg.IDR3.fwb.mask
        value = Reg.IDR3.bbml.inserting(0b01, into: value)
        value |= Reg.IDR3.had.place(stage1)
        value |= Reg.IDR3.xnx.place(stage2)
        value |= Reg.IDR3.pps.place(pri && ats && priPASIDOnOverflow && stage1 && substreamIDBits > 0)
        return UInt32(truncatingIfNeeded: value)
    }

    /// SMMU_IDR4 (§6.3.5): IMPLEMENTATION DEFINED, zero.
    public var idr4: UInt32 { 0 }

    /// SMMU_IDR5 (§6.3.6).
    public var idr5: UInt32 {
        var value: UInt64 = 0
        value = Reg.IDR5.stallMax.inserting(stallModel == .terminateOnly ? 0 : UInt64(stallMax), into: value)
        // §6.3.6: VAX == 0b01 needs GRAN64K (IDR5.DS is 0 in this model).
        value = Reg.IDR5.vax.inserting(largeVirtualAddresses && granule64K ? 1 : 0, into: value)
        value |= Reg.IDR5.gran64K.place(granule64K)
        value |= Reg.IDR5.gran16K.place(granule16K)
        value |= Reg.IDR5.gran4K.place(granule4K)
        value = Reg.IDR5.oas.inserting(UInt64(outputAddressSize.rawValue), into: value)
        return UInt32(truncatingIfNeeded: value)
    }

    /// SMMU_IIDR (§6.3.7).
    public var iidr: UInt32 {
        (productID << 20) | (variant << 16) | (revision << 12) | implementer
    }

    /// SMMU_AIDR (§6.3.8): SMMUv3.2 (ArchMajorRev 0, ArchMinorRev 2).
    public var aidr: UInt32 { 0x02 }

    /// The IMPLEMENTATION DEFINED identification registers at 0xFD0–0xFFC (PIDR4–7,
    /// PIDR0–3, CIDR0–3 in the CoreSight/PrimeCell layout), derived from the IIDR fields.
    public var identificationRegisters: [UInt32] {
        let jepContinuation = (implementer >> 8) & 0xF
        let jepIdentity = implementer & 0x7F
        let pidr0 = productID & 0xFF
        let pidr1 = ((productID >> 8) & 0xF) | ((jepIdentity & 0xF) << 4)
        let pidr2 = ((jepIdentity >> 4) & 0x7) | (1 << 3) | ((variant & 0xF) << 4)
        let pidr3 = (revision & 0xF) << 4
        let pidr4 = jepContinuation
        return [pidr4, 0, 0, 0, pidr0, pidr1, pidr2, pidr3, 0x0D, 0xF0, 0x05, 0xB1]
    }

    /// The output address size in bits.
    public var oasBits: Int { outputAddressSize.bits }
}

extension CommandFeatures {
    /// The features of a configured SMMU.
    public init(_ configuration: SMMUConfiguration) {
        self.init(
            stage1: configuration.stage1, stage2: configuration.stage2,
            hypervisor: configuration.hypervisor && configuration.stage1 && configuration.stage2,
            ats: configuration.ats, pri: configuration.pri && configuration.ats,
            stalls: configuration.stallModel != .terminateOnly, ds: false,
            checksReservedFields: configuration.checksReservedCommandFields)
    }
}
