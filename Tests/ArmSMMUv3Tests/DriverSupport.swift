import Testing
import Platform
import Kernel
import SMMUv3
import Scenario

/// The driver-on-model system for the driver's tests, with the model in checked mode: when a
/// rig goes away, every cache hit it served must have matched memory, so that a missing
/// invalidation anywhere in the driver fails the test that exercised it. A test that removes
/// an invalidation on purpose sets ``expectsStaleEntries``.
@dynamicMemberLookup
final class DriverRig {
    let system: DriverSystem
    /// The test leaves stale entries on purpose.
    var expectsStaleEntries = false
    private let createdAt: SourceLocation

    init(configuration: SMMUConfiguration = .default, seed: UInt64? = nil, msi: Bool = true, combinedIRQ: Bool = false, trace: TraceCategory = [], faults: AllocationFaults = AllocationFaults(), sourceLocation: SourceLocation = #_sourceLocation) throws {
        system = try DriverSystem(configuration: configuration, seed: seed, msi: msi, combinedIRQ: combinedIRQ, trace: trace, faults: faults)
        system.model.checkedMode = true
        createdAt = sourceLocation
    }

    /// A rig around an existing system.
    init(system: DriverSystem, sourceLocation: SourceLocation = #_sourceLocation) {
        self.system = system
        system.model.checkedMode = true
        createdAt = sourceLocation
    }

    subscript<Value>(dynamicMember keyPath: KeyPath<DriverSystem, Value>) -> Value { system[keyPath: keyPath] }

    @discardableResult
    func run(_ name: String = "test", _ body: @escaping () async -> Void) -> KernelScheduler.Outcome { system.run(name, body) }
    func probe() -> Int32 { system.probe() }
    func messages(atMost level: KernelLog.Level = .debug) -> [String] { system.messages(atMost: level) }

    /// The checked-mode reports of stale cached structures and translations.
    var staleEntries: [SMMUDiagnostic] {
        system.model.diagnostics.filter {
            switch $0.kind {
            case .staleConfiguration, .staleTranslation: true
            default: false
            }
        }
    }

    deinit {
        if !expectsStaleEntries {
            #expect(staleEntries.isEmpty, "checked mode: \(staleEntries.map(\.message))", sourceLocation: createdAt)
        }
    }
}
