import Scenario

/// The tests' name for the driver-on-model system.
typealias DriverRig = DriverSystem
