import SMMUv3Layout
import VMSA

/// What the SMMU did with a PRI message (§8).
public enum PRIMessageOutcome: Hashable, Sendable, CustomStringConvertible {
    /// Written to the PRI queue at `index` (the PROD value before the write).
    case queued(index: UInt32)
    /// Discarded without a response (L=0 during overflow, any Stop Marker not queued).
    case discarded
    /// Discarded and answered by the SMMU itself.
    case autoResponded(PRGResponse)
    /// The SMMU does not implement PRI (IDR0.PRI == 0): the message is not accepted.
    case unsupported

    public var description: String {
        switch self {
        case .queued(let index): "queued at \(index)"
        case .discarded: "discarded"
        case .autoResponded(let response): "auto-responded: \(response)"
        case .unsupported: "unsupported (no PRI)"
        }
    }
}
