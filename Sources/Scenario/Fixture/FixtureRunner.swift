import Platform
import SMMUv3
import SMMUv3Layout
import Endpoints
import Kernel
import IOMMU
import ArmSMMUv3

/// The verdict on one checked line of a fixture (an `expect`, or an action's return value).
public struct FixtureCheck: Sendable, Hashable {
    /// The line checked.
    public let location: FixtureLocation
    /// The line as written.
    public let text: String
    /// Whether it held.
    public let passed: Bool
    /// What was found (on failure: what differs).
    public let detail: String
}

/// One run of a fixture under one seed.
public struct FixtureRun: Sendable {
    /// The seed (nil: unseeded, oldest runnable first).
    public let seed: UInt64?
    /// Every check, in fixture order.
    public let checks: [FixtureCheck]
    /// What happened, step by step: each step's line and result, then the kernel log lines,
    /// event records and page responses it caused (indented).
    public let transcript: [String]
    /// The model's trace and the kernel log around the first failed check (empty when none
    /// failed).
    public let traceAtFailure: [String]

    /// Whether every check held.
    public var passed: Bool { checks.allSatisfy(\.passed) }
    /// The first check that failed.
    public var firstFailure: FixtureCheck? { checks.first { !$0.passed } }
}

/// Runs a compiled fixture: builds the platform (the SMMU model on a bus, the driver port in
/// the deterministic kernel, PCIe functions behind a root complex, processes), then its steps
/// in order. Each action runs in its own kernel context and the scheduler runs until the system
/// settles (every context finished or blocked) before the next step; a `together` group starts
/// all its actions before settling, so the seed picks how they interleave. Expectations check
/// the settled system.
public final class FixtureRunner {
    /// The fixture.
    public let fixture: Fixture
    /// Trace categories recorded (and shown around a failure).
    public var traceCategories: TraceCategory
    /// Where trace lines go as they are recorded (nil: kept in a ring only).
    public var traceSink: ((TraceLine) -> Void)?
    /// Trace lines kept for the report around a failure.
    public var traceLinesAtFailure = 40

    /// A runner for `fixture`.
    public init(fixture: Fixture, traceCategories: TraceCategory = .standard, traceSink: ((TraceLine) -> Void)? = nil) {
        self.fixture = fixture
        self.traceCategories = traceCategories
        self.traceSink = traceSink
    }

    /// The seeds the fixture asks for (one nil entry when it names none).
    public var seeds: [UInt64?] {
        guard let range = fixture.seeds else { return [nil] }
        return range.map { Optional($0) }
    }

    /// Runs the fixture once under `seed`, recording its timeline into `perfetto` when given.
    public func run(seed: UInt64?, perfetto: PerfettoTrace? = nil) -> FixtureRun {
        do {
            let world = try FixtureWorld(fixture: fixture, seed: seed, traceCategories: traceCategories, traceSink: traceSink, traceLinesAtFailure: traceLinesAtFailure)
            if let perfetto { world.record(into: perfetto) }
            return world.runSteps()
        } catch {
            let location = FixtureLocation(file: fixture.file, line: 1, column: 1)
            return FixtureRun(seed: seed, checks: [FixtureCheck(location: location, text: "platform", passed: false, detail: "the platform could not be built: \(error)")], transcript: [], traceAtFailure: [])
        }
    }
}

/// The platform of one run and its bookkeeping; it runs the fixture a step at a time so that
/// a stepper can stop it in the middle of one.
final class FixtureWorld {
    let fixture: Fixture
    let seed: UInt64?
    let system: DriverSystem
    /// One root complex per SMMU.
    let rootComplexes: [RootComplex]
    /// Every SMMU model and its platform device, the first one first.
    let smmus: [(model: SMMU, pdev: platform_device)]
    var functions: [String: PCIeFunction] = [:]
    var devices: [String: device] = [:]
    var processes: [String: MMStruct] = [:]
    var domains: [String: arm_smmu_domain] = [:]
    var perfetto: PerfettoTrace?
    /// PASIDs returned by `bind`, by process.
    var pasids: [String: UInt32] = [:]
    var registry: iommu_sva_registry?
    var globalQueue: iopf_queue?
    var exits: [String: Int] = [:]
    var relayed: [String: [iommu_fault_event]] = [:]
    var relayAnswered: [String: Int] = [:]
    var namedDMAs: [String: (PCIeFunction, DMAHandle)] = [:]
    var lastDMA: [String: (PCIeFunction, DMAHandle)] = [:]
    var lose: [String: (stopMarkers: Int, last: Int)] = [:]
    /// Stall records, with the SMMU that produced each (at most 65,536 kept).
    var stalls = BoundedLog<(smmu: Int, record: EventRecord)>(capacity: 65_536)
    /// STAGs resumed, by device.
    var resumed: [String: Set<UInt16>] = [:]
    var events = BoundedLog<EventRecord>(capacity: 65_536)
    var lastOutcome = KernelScheduler.Outcome.completed
    var checks: [FixtureCheck] = []
    var transcript: [String] = []
    var traceAtFailure: [String] = []
    let traceLinesAtFailure: Int
    // Transcript positions.
    var logSeen = 0
    var eventsSeen = 0
    var responsesSeen: [String: Int] = [:]

    init(fixture: Fixture, seed: UInt64?, traceCategories: TraceCategory, traceSink: ((TraceLine) -> Void)?, traceLinesAtFailure: Int) throws {
        self.fixture = fixture
        self.seed = seed
        self.traceLinesAtFailure = traceLinesAtFailure
        system = try DriverSystem(configuration: fixture.configuration, seed: seed, strategy: fixture.strategy, msi: fixture.interrupts == .msi,
                                  combinedIRQ: fixture.interrupts == .combined, trace: traceCategories)
        system.bus.trace.lineCapacity = max(traceLinesAtFailure, 1)
        system.bus.trace.sink = traceSink
        system.bus.interrupts.recordCapacity = 0
        var smmus: [(model: SMMU, pdev: platform_device)] = [(system.model, system.pdev)]
        for index in 1..<max(fixture.smmuCount, 1) {
            var configuration = fixture.configuration
            // Each SMMU's wired lines after the previous one's.
            if let lines = configuration.interruptLines {
                let offset = 4 * index
                configuration.interruptLines = SMMUConfiguration.InterruptLines(eventQueue: lines.eventQueue + offset, priQueue: lines.priQueue + offset,
                                                                                commandSync: lines.commandSync + offset, globalError: lines.globalError + offset)
            }
            smmus.append(try system.addSMMU(configuration: configuration))
        }
        self.smmus = smmus
        rootComplexes = smmus.map { RootComplex(smmu: $0.model) }
        for (index, (model, _)) in smmus.enumerated() {
            model.checkedMode = fixture.checked
            model.onEvent { [weak self] record, _ in
                self?.events.append(record)
                if record.isStall { self?.stalls.append((index, record)) }
            }
        }
        if !fixture.invariants.isEmpty {
            let previous = system.scheduler.afterEachStep
            system.scheduler.afterEachStep = { [weak self] in
                previous?()
                self?.checkInvariants()
            }
        }
        if traceCategories.contains(.function) {
            let trace = system.bus.trace
            system.scheduler.onFunctionEntry = { function, context in trace.record(.function, "\(context.name): \(function)") }
        }
        let pages = CoherentMemory(memory: system.bus.memory, range: 0x9000_0000...0x93FF_FFFF)
        for spec in fixture.devices {
            let function = rootComplexes[spec.smmu].attach(requesterID: UInt16(truncatingIfNeeded: spec.streamID), ats: spec.ats, pri: spec.pri, pageRequestCredits: spec.credits)
            let pci = pci_dev(name: spec.name, ats_cap: spec.ats)
            pci.onATSControl = { enabled, _ in function.atsEnabled = enabled }
            functions[spec.name] = function
            devices[spec.name] = device(name: spec.name, log: system.log, smmu_pdev: smmus[spec.smmu].pdev, ids: [function.streamID], pci: pci)
        }
        for spec in fixture.processes {
            guard let mm = MMStruct(asid: spec.asid, memory: system.bus.memory, pages: pages) else { throw FixtureError(spec.location, "no memory for process '\(spec.name)'") }
            for area in spec.areas { mm.map(VMArea(start: area.start, end: area.end, write: area.write)) }
            processes[spec.name] = mm
        }
    }

    deinit {
        if let globalQueue { _ = iopf_queue_free(globalQueue) }
    }

    /// The first SMMU's driver.
    var driver: arm_smmu_device? { system.driver }

    /// The SMMU model a device is behind.
    func model(of device: String) -> SMMU {
        smmus[fixture.devices.first { $0.name == device }?.smmu ?? 0].model
    }

    /// The driver of the SMMU a device is behind.
    func driver(of device: String) -> arm_smmu_device? {
        smmus[fixture.devices.first { $0.name == device }?.smmu ?? 0].pdev.drvdata as? arm_smmu_device
    }

    /// Every probed SMMU driver.
    var drivers: [arm_smmu_device] { smmus.compactMap { $0.pdev.drvdata as? arm_smmu_device } }

    // MARK: Steps

    /// How far ``advance()`` got.
    enum Progress {
        /// A step (a fixture line, or a `together` group) is done.
        case stepped(FixtureStep)
        /// The scheduler was paused in the middle of a step.
        case paused
        /// Every step is done.
        case finished
    }

    private var finished = false
    /// The index of the next step to start.
    private(set) var nextStep = 0
    /// The step whose contexts are running, and the checks it leaves for when it settles.
    private(set) var inFlight: (step: FixtureStep, label: String, pending: [(PendingCheck, FixtureStep)])?

    /// Runs every remaining step.
    func runSteps() -> FixtureRun {
        while true {
            if case .finished = advance() { break }
        }
        return result
    }

    /// The run so far.
    var result: FixtureRun {
        FixtureRun(seed: seed, checks: checks, transcript: transcript, traceAtFailure: traceAtFailure)
    }

    /// Goes on until the step in flight (or the next one) is done, or the scheduler pauses.
    func advance() -> Progress {
        if let flight = inFlight {
            lastOutcome = system.scheduler.run()
            if lastOutcome == .paused { return .paused }
            inFlight = nil
            if case .deadlock = lastOutcome {
                transcript.append("\(flight.step.location.line): \(flight.label): \(lastOutcome)")
            }
            for (check, inner) in flight.pending { finish(check, inner) }
            return .stepped(flight.step)
        }
        guard nextStep < fixture.steps.count else {
            if !finished {
                finished = true
                recordInvariantsHeld()
            }
            return .finished
        }
        let step = fixture.steps[nextStep]
        nextStep += 1
        switch step.kind {
        case .action(let action):
            inFlight = (step, step.text, [(start(action, step: step), step)])
            return advance()
        case .together(let group):
            let pending = group.map { (start($0.kind.action, step: $0), $0) }
            inFlight = (step, "together: " + group.map(\.text).joined(separator: " | "), pending)
            return advance()
        case .expect(let expectation):
            let (passed, detail) = evaluate(expectation)
            record(FixtureCheck(location: step.location, text: step.text, passed: passed, detail: detail))
        case .inject(let injection):
            switch inject(injection) {
            case .failed(let why):
                record(FixtureCheck(location: step.location, text: step.text, passed: false, detail: why))
            case .applied(let note):
                transcript.append("\(step.location.line): \(step.text)\(note.map { " -> \($0)" } ?? "")")
            }
        }
        return .stepped(step)
    }

    /// A check an action leaves for after the system settled (its return value).
    final class PendingCheck {
        var result: String?
        var failure: String?
        var done = false
    }

    private func record(_ check: FixtureCheck) {
        checks.append(check)
        transcript.append("\(check.location.line): \(check.text) -> \(check.passed ? "ok" : "FAILED: \(check.detail)")")
        if !check.passed && traceAtFailure.isEmpty {
            traceAtFailure = system.bus.trace.lines.suffix(traceLinesAtFailure).map(\.description)
                + system.log.lines.suffix(traceLinesAtFailure / 2).map { "kernel: \($0)" }
        }
    }

    func finish(_ pending: PendingCheck, _ step: FixtureStep) {
        var detail = pending.result ?? ""
        if !pending.done && pending.failure == nil { pending.failure = "did not finish (\(lastOutcome))" }
        if let failure = pending.failure {
            record(FixtureCheck(location: step.location, text: step.text, passed: false, detail: failure))
        } else {
            if detail.isEmpty { detail = "done" }
            checks.append(FixtureCheck(location: step.location, text: step.text, passed: true, detail: detail))
            transcript.append("\(step.location.line): \(step.text) -> \(detail)")
        }
        appendNews()
    }

    /// What the step caused: kernel log lines, event records, page responses.
    private func appendNews() {
        let lines = system.log.lines
        let total = lines.count + system.log.dropped
        let fresh = max(0, total - logSeen)
        for line in lines.suffix(min(fresh, lines.count)) { transcript.append("    kernel: \(line.text)") }
        logSeen = total
        let records = events.elements
        let eventTotal = events.totalAppended
        for record in records.suffix(min(max(0, eventTotal - eventsSeen), records.count)) { transcript.append("    event: \(record)") }
        eventsSeen = eventTotal
        for spec in fixture.devices {
            guard let function = functions[spec.name] else { continue }
            let seen = responsesSeen[spec.name] ?? 0
            let responses = function.responsesReceived
            let fresh = max(0, function.responseCount - seen)
            for response in responses.suffix(min(fresh, responses.count)) { transcript.append("    \(spec.name) received: \(response)") }
            responsesSeen[spec.name] = function.responseCount
        }
    }

    /// The PASID an optional reference names for a device stimulus: `.some(nil)` without one,
    /// nil (with the step failed) when the process was never bound.
    private func resolve(_ reference: PASIDReference?, _ pending: PendingCheck) -> UInt32?? {
        guard let reference else { return .some(nil) }
        guard let value = pasid(reference) else {
            pending.failure = "no PASID for '\(reference)' (bind it first)"
            return nil
        }
        return .some(value)
    }

    private func pasid(_ reference: PASIDReference) -> UInt32? {
        switch reference {
        case .number(let value): value
        case .process(let name): pasids[name]
        }
    }

    /// Starts `action` in a new kernel context (device stimuli in the device's context).
    private func start(_ action: FixtureAction?, step: FixtureStep) -> PendingCheck {
        let pending = PendingCheck()
        guard let action else {
            pending.failure = "not an action"
            return pending
        }
        func expectReturn(_ got: Int32, _ expected: Int32, _ extra: String = "") {
            pending.done = true
            if got == expected {
                pending.result = "returned \(got)\(extra)"
            } else {
                pending.failure = "returned \(got), expected \(expected)"
            }
        }
        var spawned = false
        func spawn(_ name: String, _ body: @escaping () async -> Void) {
            spawned = true
            system.scheduler.spawn(name, body)
        }
        let context = "fixture:\(step.location.line)"
        switch action {
        case .probe(let expected):
            let pdevs = smmus.map(\.pdev)
            spawn(context) { [self] in
                var ret: Int32 = 0
                for pdev in pdevs where ret == 0 {
                    ret = await driver_probe_device(pdev, arm_smmu_device_probe)
                    if ret == 0, let smmu = pdev.drvdata as? arm_smmu_device { configureAfterProbe(smmu) }
                }
                expectReturn(ret, expected)
            }
        case .removeSMMU:
            let pdevs = smmus.map(\.pdev)
            spawn(context) {
                for pdev in pdevs.reversed() { await device_release_driver(pdev, arm_smmu_device_remove) }
                pending.done = true
            }
        case .addDevice(let name, let expected):
            guard let dev = devices[name] else { break }
            spawn(context) { expectReturn(await arm_smmu_add_device(dev), expected) }
        case .removeDevice(let name):
            guard let dev = devices[name] else { break }
            spawn(context) {
                await arm_smmu_remove_device(dev)
                pending.done = true
            }
        case .domain(let name, let dma):
            pending.done = true
            if let domain = arm_smmu_domain_alloc(system.faults, dma ? .IOMMU_DOMAIN_DMA : .IOMMU_DOMAIN_UNMANAGED) {
                domains[name] = domain
                pending.result = "allocated"
            } else {
                pending.failure = "arm_smmu_domain_alloc failed"
            }
        case .attach(let deviceName, let domainName, let expected):
            guard let dev = devices[deviceName], let domain = domains[domainName] else { break }
            spawn(context) { expectReturn(await iommu_attach_device(domain, dev), expected) }
        case .detach(let deviceName):
            guard let dev = devices[deviceName] else { break }
            spawn(context) {
                if let domain = iommu_get_domain_for_dev(dev) { await iommu_detach_device(domain, dev) }
                pending.done = true
            }
        case .map(let domainName, let iova, let physical, let size, let prot, let expected):
            guard let domain = domains[domainName] else { break }
            spawn(context) { expectReturn(await iommu_map(domain, iova, physical, size, prot), expected) }
        case .unmap(let domainName, let iova, let size, let unmapped):
            guard let domain = domains[domainName] else { break }
            spawn(context) {
                let got = await iommu_unmap(domain, iova, size)
                pending.done = true
                if let unmapped, got != unmapped {
                    pending.failure = "unmapped \(got) bytes, expected \(unmapped)"
                } else {
                    pending.result = "unmapped \(got) bytes"
                }
            }
        case .svaInit(let name, let expected):
            guard let dev = devices[name] else { break }
            spawn(context) { [self] in
                let ret = await iommu_sva_device_init(dev, IOMMU_SVA_FEAT_IOPF, 0) { [weak self] _, _, _ in
                    self?.exits[name, default: 0] += 1
                    return 0
                }
                expectReturn(ret, expected)
            }
        case .svaShutdown(let name, let expected):
            guard let dev = devices[name] else { break }
            guard let registry else { pending.failure = "no SMMU driver (probe first)"; break }
            spawn(context) { expectReturn(await iommu_sva_device_shutdown(dev, registry), expected) }
        case .faultHandler(let name, let relay, let expected):
            guard let dev = devices[name] else { break }
            if relay {
                spawn(context) { [self] in
                    let ret = await iommu_register_device_fault_handler(dev, { [weak self] evt, _ in
                        self?.relayed[name, default: []].append(evt)
                        return 0
                    }, nil)
                    expectReturn(ret, expected)
                }
            } else {
                guard let queue = driver(of: name)?.priq.iopf ?? globalQueue else { pending.failure = "the SMMU has no IOPF queue (probe first; PRI needed)"; break }
                spawn(context) {
                    var ret = await iopf_queue_add_device(queue, dev)
                    if ret == 0 { ret = await iommu_register_device_fault_handler(dev, iommu_queue_iopf, dev) }
                    expectReturn(ret, expected)
                }
            }
        case .unregisterHandler(let name, let expected):
            guard let dev = devices[name] else { break }
            spawn(context) { expectReturn(await iommu_unregister_device_fault_handler(dev), expected) }
        case .bindDriver(let name, let driverName):
            guard let dev = devices[name] else { break }
            spawn(context) {
                await device_bind_driver(dev, driverName)
                pending.done = true
            }
        case .relayRespond(let name, let code):
            guard let dev = devices[name] else { break }
            let faults = relayed[name] ?? []
            let from = relayAnswered[name] ?? 0
            relayAnswered[name] = faults.count
            spawn(context) {
                var answered = 0
                var failures: [Int32] = []
                for evt in faults.dropFirst(from) where evt.last_req {
                    let ret = await iommu_page_response(dev, page_response_msg(answering: evt, code))
                    answered += 1
                    if ret != 0 { failures.append(ret) }
                }
                pending.done = true
                if failures.isEmpty {
                    pending.result = "answered \(answered)"
                } else {
                    pending.failure = "iommu_page_response returned \(failures.map(String.init).joined(separator: ", "))"
                }
            }
        case .bind(let deviceName, let processName, let expected):
            guard let dev = devices[deviceName], let mm = processes[processName] else { break }
            guard let registry else { pending.failure = "no SMMU driver (probe first)"; break }
            spawn(context) { [self] in
                let (ret, pasid) = await iommu_sva_bind_device(dev, mm, nil, registry)
                if ret == 0 {
                    pasids[processName] = pasid
                    // The device driver programs the PASID into its device.
                    functions[deviceName]?.resumePASID(pasid)
                }
                expectReturn(ret, expected, ret == 0 ? ", PASID \(pasid)" : "")
            }
        case .unbind(let deviceName, let processName, let flags, let expected):
            guard let dev = devices[deviceName] else { break }
            guard let registry else { pending.failure = "no SMMU driver (probe first)"; break }
            guard let pasid = pasids[processName] else { pending.failure = "'\(processName)' was never bound"; break }
            spawn(context) { expectReturn(await iommu_sva_unbind_device(dev, pasid, registry, flags: flags), expected) }
        case .exit(let name):
            guard let mm = processes[name] else { break }
            spawn("exit/\(name)") {
                await mm.exit()
                pending.done = true
            }
        case .dma(let deviceName, let write, let first, let length, let data, let reference, let dmaName, let count):
            guard let function = functions[deviceName] else { break }
            guard let pasid = resolve(reference, pending) else { break }
            spawn("dev/\(deviceName)") { [self] in
                for index in 0..<count {
                    let address = first &+ UInt64(index) << 12
                    mark(deviceName, write ? "DMA write" : "DMA read", [("address", "0x" + String(address, radix: 16)), ("length", "\(write ? data.count : length)"), ("pasid", pasid.map { "\($0)" } ?? "none")])
                    let handle = write ? function.write(address, bytes: data, pasid: pasid) : function.read(address, length: length, pasid: pasid)
                    lastDMA[deviceName] = (function, handle)
                    if let dmaName, index == 0 { namedDMAs[dmaName] = (function, handle) }
                }
                pending.done = true
                pending.result = count == 1 ? "issued" : "issued x\(count)"
            }
        case .pageRequest(let deviceName, let address, let prgIndex, let reference, let last, let read, let write, let count):
            guard let function = functions[deviceName] else { break }
            guard let substream = resolve(reference, pending) else { break }
            let model = self.model(of: deviceName)
            spawn("dev/\(deviceName)") { [self] in
                var outcomes: [String] = []
                for index in 0..<count {
                    let prg = UInt16((Int(prgIndex) + index) % 512)
                    let request = PageRequest(streamID: function.streamID, substreamID: substream, prgIndex: prg, last: last, read: read, write: write, address: address &+ UInt64(index) << 12)
                    mark(deviceName, "page request", [("request", "\(request)")])
                    if last, let budget = lose[deviceName], budget.last > 0 {
                        lose[deviceName]?.last -= 1
                        outcomes.append("lost")
                        continue
                    }
                    outcomes.append("\(model.receivePageRequest(request))")
                }
                pending.done = true
                pending.result = Self.summarise(outcomes)
            }
        case .atsRequest(let deviceName, let address, let reference, let write, let status):
            guard let function = functions[deviceName] else { break }
            guard let substream = resolve(reference, pending) else { break }
            let model = self.model(of: deviceName)
            spawn("dev/\(deviceName)") { [self] in
                let request = ATSTranslationRequest(streamID: function.streamID, substreamID: substream, address: address, noWrite: !write)
                mark(deviceName, "ATS translation request", [("address", "0x" + String(address, radix: 16))])
                let completion = model.translationRequest(request)
                pending.done = true
                if let status, completion.status != status {
                    pending.failure = "completed \(completion), expected \(status)"
                } else {
                    pending.result = "\(completion)"
                }
            }
        case .stopMarker(let deviceName, let reference):
            guard let function = functions[deviceName] else { break }
            guard let value = pasid(reference) else { pending.failure = "no PASID for '\(reference)' (bind it first)"; break }
            let model = self.model(of: deviceName)
            spawn("dev/\(deviceName)") { [self] in
                pending.done = true
                mark(deviceName, "stop marker", [("pasid", "\(value)")])
                if let budget = lose[deviceName], budget.stopMarkers > 0 {
                    lose[deviceName]?.stopMarkers -= 1
                    pending.result = "lost"
                    return
                }
                pending.result = "\(model.receivePageRequest(.stopMarker(streamID: function.streamID, substreamID: value)))"
            }
        case .rawCommand(let dw0, let dw1):
            guard let smmu = driver else { pending.failure = "no SMMU driver (probe first)"; break }
            spawn(context) {
                await smmu.cmdq.lock.lock()
                await arm_smmu_cmdq_insert_cmd(smmu, (dw0, dw1))
                smmu.cmdq.lock.unlock()
                expectReturn(await arm_smmu_cmdq_issue_sync(smmu), 0)
            }
        case .settle:
            pending.done = true
            pending.result = "settled"
        case .resume(let deviceName, let retry):
            guard let smmu = driver(of: deviceName) else { pending.failure = "no SMMU driver (probe first)"; break }
            guard let function = functions[deviceName], let index = fixture.devices.first(where: { $0.name == deviceName })?.smmu else { break }
            let stalled = stalls.elements.filter { $0.smmu == index && $0.record.streamID == function.streamID }.map { $0.record }
            let fresh = stalled.filter { !(resumed[deviceName]?.contains($0.stag) ?? false) }
            for record in fresh { resumed[deviceName, default: []].insert(record.stag) }
            spawn(context) {
                for record in fresh {
                    var command = Command(.resume)
                    command.streamID = record.streamID
                    command.stag = record.stag
                    command.action = retry ? .retry : .abort
                    await smmu.cmdq.lock.lock()
                    await arm_smmu_cmdq_insert_cmd(smmu, (command.entry.dw0, command.entry.dw1))
                    smmu.cmdq.lock.unlock()
                }
                let ret = await arm_smmu_cmdq_issue_sync(smmu)
                pending.done = true
                if ret != 0 {
                    pending.failure = "CMD_SYNC after CMD_RESUME returned \(ret)"
                } else {
                    pending.result = "resumed \(fresh.count) stalled transaction(s)"
                }
            }
        case .stopPASID(let deviceName, let reference):
            guard let function = functions[deviceName], let spec = fixture.devices.first(where: { $0.name == deviceName }) else { break }
            guard let value = pasid(reference) else { pending.failure = "no PASID for '\(reference)' (bind it first)"; break }
            spawn("dev/\(deviceName)") {
                function.stopPASID(value, mode: spec.stopMode)
                pending.done = true
                pending.result = "\(function.state(ofPASID: value))"
            }
        case .releaseResponses(let deviceName):
            guard let function = functions[deviceName] else { break }
            spawn("dev/\(deviceName)") {
                let released = function.releaseHeldResponses()
                pending.done = true
                pending.result = "released \(released) late response(s)"
            }
        }
        if !spawned && !pending.done && pending.failure == nil {
            pending.failure = "its device, domain or process is not available"
        }
        return pending
    }

    /// `queued at 3` x4, `discarded` x2...
    private static func summarise(_ outcomes: [String]) -> String {
        var runs: [(String, Int)] = []
        for outcome in outcomes {
            let kind = outcome.hasPrefix("queued") ? "queued" : outcome
            if let last = runs.last, last.0 == kind { runs[runs.count - 1].1 += 1 } else { runs.append((kind, 1)) }
        }
        return runs.map { $0.1 == 1 ? $0.0 : "\($0.0) x\($0.1)" }.joined(separator: ", ")
    }

    private func configureAfterProbe(_ smmu: arm_smmu_device) {
        // One registry for the kernel: every SMMU shares the kernel's PASID space.
        if registry == nil { registry = iommu_sva_registry(pasids: smmu.pasids) }
        switch fixture.policy {
        case .perFaultQueue, .perIOMMU: smmu.iopf_policy = .perFaultQueue
        case .perDomain: smmu.iopf_policy = .perDomain
        case .global:
            let queue = globalQueue ?? iopf_queue_alloc("global", arm_smmu_iopf_queue_flush, nil, on: system.scheduler, pasids: smmu.pasids)
            globalQueue = queue
            if let queue { smmu.iopf_policy = .global(queue) }
        }
    }

    // MARK: Invariants

    /// Invariants already violated (each is reported once).
    private var violated: Set<FixtureInvariant> = []
    /// A PASID context seen by `context-released-once`, held weakly: once nothing else keeps it
    /// it can never be released again, and it leaves the list (so that recycling PASIDs without
    /// end keeps the list at the number of live contexts).
    private struct SeenContext {
        weak var context: arm_smmu_context?
        let device: String
        let pasid: UInt32
    }
    private var contextsSeen: [ObjectIdentifier: SeenContext] = [:]

    /// Checks the fixture's invariants after a scheduling step; the first violation of each
    /// becomes a failed check at the line declaring it.
    private func checkInvariants() {
        for (invariant, location) in fixture.invariants where !violated.contains(invariant) {
            guard let problem = violation(of: invariant) else { continue }
            violated.insert(invariant)
            let line = inFlight.map { " during line \($0.step.location.line) (\($0.step.text))" } ?? ""
            record(FixtureCheck(location: location, text: "invariant \(invariant.rawValue)", passed: false,
                                detail: "violated at scheduling step \(system.scheduler.switches)\(line): \(problem)"))
        }
    }

    private func violation(of invariant: FixtureInvariant) -> String? {
        switch invariant {
        case .noSpuriousResponse:
            for spec in fixture.devices {
                if let function = functions[spec.name], function.unexpectedResponses > 0 {
                    return "\(spec.name) received a PRG response for no outstanding group"
                }
            }
        case .contextReleasedOnce:
            for spec in fixture.devices {
                guard let function = functions[spec.name], let stream = driver(of: spec.name)?.streams[function.streamID] else { continue }
                for (pasid, context) in stream.contexts where contextsSeen[ObjectIdentifier(context)]?.context !== context {
                    contextsSeen[ObjectIdentifier(context)] = SeenContext(context: context, device: spec.name, pasid: pasid)
                }
            }
            contextsSeen = contextsSeen.filter { $0.value.context != nil }
            for seen in contextsSeen.values {
                guard let context = seen.context else { continue }
                let (name, pasid) = (seen.device, seen.pasid)
                if context.releases > 1 { return "the context for PASID \(pasid) of \(name) was released \(context.releases) times" }
                if context.releases == 1, let function = functions[name], driver(of: name)?.streams[function.streamID]?.contexts[pasid] === context {
                    return "the context for PASID \(pasid) of \(name) was released but is still in its device's table"
                }
            }
        case .noDiagnostics:
            for (model, _) in smmus {
                if let first = model.diagnostics.first { return "\(first)" }
            }
        }
        return nil
    }

    /// The invariants that held for the whole run, as passed checks.
    private func recordInvariantsHeld() {
        for (invariant, location) in fixture.invariants where !violated.contains(invariant) {
            checks.append(FixtureCheck(location: location, text: "invariant \(invariant.rawValue)", passed: true,
                                       detail: "held at each of \(system.scheduler.switches) scheduling steps"))
        }
    }

    // MARK: Timeline

    /// The scheduler's step count: the timeline's clock.
    private var now: UInt64 { UInt64(system.scheduler.switches) }

    /// An instant on an endpoint's track.
    private func mark(_ device: String, _ name: String, _ args: [(String, String)]) {
        perfetto?.instant(.endpoints, track: device, name, at: now, args: args)
    }

    /// Records the run's timeline into `trace`: kernel contexts (wait points as slices, driver
    /// functions as instants), commands and event records, queue occupancy, endpoint traffic,
    /// PASID allocation and context states.
    func record(into trace: PerfettoTrace) {
        perfetto = trace
        let scheduler = system.scheduler
        let tracks = ContextTracks()
        scheduler.onContextStateChange = { [unowned scheduler] context in
            let at = UInt64(scheduler.switches)
            let track = tracks.name(for: context)
            switch context.state {
            case .blocked(let point): trace.begin(.kernel, track: track, point, at: at)
            case .runnable, .finished:
                if trace.isOpen(.kernel, track: track) { trace.end(.kernel, track: track, at: at) }
            }
            if context.state == .finished { tracks.finished(context) }
        }
        let tracer = scheduler.onFunctionEntry
        scheduler.onFunctionEntry = { [unowned scheduler] function, context in
            tracer?(function, context)
            trace.instant(.kernel, track: tracks.name(for: context), "\(function)", at: UInt64(scheduler.switches))
        }
        for (index, (model, _)) in smmus.enumerated() {
            // The first SMMU's tracks keep their plain names; the others' carry their index.
            let prefix = index == 0 ? "" : "smmu\(index) "
            model.onCommand { [unowned scheduler] step in
                let name = step.command?.name ?? (step.entry == nil ? "fetch abort" : "ILLEGAL")
                trace.complete(.smmu, track: prefix + "command processor", name, at: UInt64(scheduler.switches),
                               args: [("entry", step.description)])
            }
            model.onEvent { [unowned scheduler] record, outcome in
                trace.instant(.smmu, track: prefix + "event records", record.type?.specName ?? "event 0x" + String(record.number, radix: 16),
                              at: UInt64(scheduler.switches), args: [("record", "\(record)"), ("outcome", "\(outcome)")])
            }
            var names: [UInt32: String] = [:]
            for spec in fixture.devices where spec.smmu == index { names[spec.streamID] = spec.name }
            model.onPRGResponse { [unowned scheduler] response in
                trace.instant(.endpoints, track: names[response.streamID] ?? "sid \(response.streamID)", "PRG response \(response.code)",
                              at: UInt64(scheduler.switches), args: [("response", "\(response)")])
            }
        }
        let previous = scheduler.afterEachStep
        scheduler.afterEachStep = { [weak self] in
            previous?()
            self?.sampleTimeline()
        }
    }

    /// Track names for kernel contexts: a context's own name, or `name (2)`, `name (3)`...
    /// while another live context has it (two device contexts at once, say), so that each
    /// track's slices nest.
    final class ContextTracks {
        private var names: [ObjectIdentifier: String] = [:]
        private var taken: Set<String> = []

        func name(for context: KernelContext) -> String {
            if let name = names[ObjectIdentifier(context)] { return name }
            var name = context.name
            var copy = 1
            while taken.contains(name) {
                copy += 1
                name = "\(context.name) (\(copy))"
            }
            names[ObjectIdentifier(context)] = name
            taken.insert(name)
            return name
        }

        func finished(_ context: KernelContext) {
            if let name = names.removeValue(forKey: ObjectIdentifier(context)) { taken.remove(name) }
        }
    }

    private var occupancy: [String: Int] = [:]
    private var pasidTracks: [String: String] = [:]

    /// Queue occupancy counters and PASID spans, recorded when they change.
    private func sampleTimeline() {
        guard let trace = perfetto else { return }
        let at = now
        for (index, (model, _)) in smmus.enumerated() {
            let prefix = index == 0 ? "" : "smmu\(index) "
            for (queue, base, prod, cons) in [("CMDQ waiting", SMMURegister.cmdqBase, SMMURegister.cmdqProd, SMMURegister.cmdqCons),
                                             ("EVTQ unread", .eventqBase, .eventqProd, .eventqCons),
                                             ("PRIQ unread", .priqBase, .priqProd, .priqCons)] {
                let name = prefix + queue
                let log2 = min(Int(Reg.Queue.log2Size.extract(model.peek(base))), 19)
                let mask = (UInt64(2) << UInt64(log2)) - 1
                let value = Int((model.peek(prod) &- model.peek(cons)) & mask)
                if occupancy[name] != value {
                    occupancy[name] = value
                    trace.counter(.smmu, name, value, at: at)
                }
            }
        }
        guard let smmu = driver else { return }
        var current: [String: String] = [:]
        smmu.pasids.idr_for_each { id, object in
            let mm = (object as? io_mm)?.mm
            let owner = mm.flatMap { mm in processes.first { $0.value === mm }?.key }
            // Without a process: unbound, but held until the IOMMU's contexts let it go (seed 001).
            current["PASID \(id)"] = "allocated (\(owner ?? "released"))"
        }
        for spec in fixture.devices {
            guard let function = functions[spec.name], let stream = driver(of: spec.name)?.streams[function.streamID] else { continue }
            for (pasid, context) in stream.contexts {
                current["PASID \(pasid) \(spec.name)"] = Self.contextState(context.state.snapshot)
            }
        }
        guard current != pasidTracks else { return }
        for track in pasidTracks.keys.sorted() where current[track] != pasidTracks[track] {
            trace.end(.pasids, track: track, at: at)
        }
        for track in current.keys.sorted() where pasidTracks[track] != current[track] {
            trace.begin(.pasids, track: track, current[track] ?? "", at: at)
        }
        pasidTracks = current
    }

    // MARK: Faults

    /// The addresses of an abort target.
    private func resolve(_ target: AbortTarget) -> ClosedRange<UInt64>? {
        func queue(_ q: arm_smmu_queue) -> ClosedRange<UInt64>? {
            guard q.base_dma != 0, q.ent_dwords > 0 else { return nil }
            return q.base_dma...(q.base_dma + (UInt64(q.ent_dwords) * 8 << UInt64(q.max_n_shift)) - 1)
        }
        switch target {
        case .range(let range): return range
        case .cmdq: return driver.flatMap { queue($0.cmdq.q) }
        case .evtq: return driver.flatMap { queue($0.evtq.q) }
        case .priq: return driver.flatMap { queue($0.priq.q) }
        case .ste(let device):
            guard let function = functions[device], let address = model(of: device).inspectStructures(streamID: function.streamID, substreamID: nil).steAddress else { return nil }
            return address...(address + 63)
        case .cd(let device, let reference):
            guard let function = functions[device], let pasid = pasid(reference),
                  let address = model(of: device).inspectStructures(streamID: function.streamID, substreamID: pasid).cdAddress else { return nil }
            return address...(address + 63)
        case .pageTable(let owner):
            if let mm = processes[owner] {
                let base = mm.table.base
                return base...(base + 4095)
            }
            guard let table = domains[owner]?.pgtbl_ops, let pgd = table.pgd else { return nil }
            return pgd.address...(pgd.address + max(table.pgd_size, 8) - 1)
        case .strtab:
            guard let smmu = driver, smmu.strtab_cfg.strtab_dma != 0 else { return nil }
            let cfg = smmu.strtab_cfg
            let size: UInt64 = cfg.l1_desc.isEmpty ? UInt64(64) << UInt64(min(smmu.sid_bits, 32)) : UInt64(cfg.num_l1_ents) * 8
            return cfg.strtab_dma...(cfg.strtab_dma + max(size, 8) - 1)
        }
    }

    /// Arms an injection; a description of what it hit, or nil.
    /// What an injection did.
    enum InjectionOutcome {
        /// Armed or applied, with a note on what it hit.
        case applied(String?)
        /// It could not be applied (a failed check).
        case failed(String)
    }

    private func inject(_ injection: FixtureInjection) -> InjectionOutcome {
        switch injection {
        case .abort(let target, let reads, let writes, let count):
            var kinds: AccessKinds = []
            if reads { kinds.insert(.read) }
            if writes { kinds.insert(.write) }
            guard let range = resolve(target) else { return .failed("\(target) is not allocated yet (probe first)") }
            system.bus.faults.injectAbort(range, on: kinds, count: count)
            return .applied("0x\(String(range.lowerBound, radix: 16))..0x\(String(range.upperBound, radix: 16))")
        case .dropMSI(let range, let count):
            system.bus.faults.dropMSIs(to: range, count: count)
            return .applied(nil)
        case .allocationFailure(let after):
            system.faults.failAttempt(system.faults.attempts + after)
            return .applied(nil)
        case .lose(let device, let stopMarkers, let count):
            var budget = lose[device] ?? (0, 0)
            if stopMarkers { budget.stopMarkers += count } else { budget.last += count }
            lose[device] = budget
            return .applied(nil)
        case .atcInvalidation(let device, let response):
            functions[device]?.invalidationResponse = response
            return .applied(nil)
        case .clearEvents:
            events.removeAll()
            eventsSeen = 0
            return .applied(nil)
        case .corrupt(let device, let cd, let name, let value):
            guard let function = functions[device] else { return .failed("no device '\(device)'") }
            var substream: UInt32?
            if let cd {
                guard let value = pasid(cd) else { return .failed("no PASID for '\(cd)' (bind it first)") }
                substream = value
            }
            let found = model(of: device).inspectStructures(streamID: function.streamID, substreamID: substream)
            let address: UInt64?
            let field: StructureField?
            if substream != nil {
                address = found.cdAddress
                field = CDField.all.first { $0.name == name }?.field
            } else {
                address = found.steAddress
                field = STEField.all.first { $0.name == name }?.field
            }
            guard let address, let field else { return .failed("no \(substream == nil ? "STE" : "CD") to corrupt (\(found.stoppedAt ?? "not located"))") }
            let memory = system.bus.memory
            let at = address &+ UInt64(field.doubleword) * 8
            let old = memory.read64(at: at)
            memory.write64(field.bits.inserting(value, into: old), at: at)
            return .applied("\(name) of the \(substream == nil ? "STE" : "CD") at 0x\(String(address, radix: 16)) was 0x\(String(field.bits.extract(old), radix: 16))")
        case .duplicateResponses(let device, let count):
            functions[device]?.responsesToDuplicate += count
            return .applied(nil)
        case .holdResponses(let device, let count):
            functions[device]?.responsesToHold += count
            return .applied(nil)
        }
    }

    // MARK: Expectations

    private func evaluate(_ expectation: FixtureExpectation) -> (Bool, String) {
        switch expectation {
        case .event(let type, let streamID, let substreamID, let address, let stall, let count):
            let all = events.elements
            let matching = all.filter { record in
                record.type?.specName == type && (!stall || record.isStall)
                    && (streamID.map { record.streamID == $0 } ?? true)
                    && (substreamID.map { record.substreamID == $0 } ?? true)
                    && (address.map { record.inputAddress == $0 } ?? true)
            }
            let seen = all.isEmpty ? "no events" : all.map { $0.type?.specName ?? "0x\(String($0.number, radix: 16))" }.joined(separator: ", ")
            if let count { return (matching.count == count, "\(matching.count) matching (events: \(seen))") }
            return (!matching.isEmpty, matching.first.map { "\($0)" } ?? "none matching (events: \(seen))")
        case .noEvents:
            let all = events.elements
            return (all.isEmpty, all.isEmpty ? "none" : all.map(\.description).joined(separator: "; "))
        case .response(let device, let code, let prgIndex, let reference, let count):
            guard let function = functions[device] else { return (false, "no device") }
            var wanted: UInt32?
            if let reference {
                guard let value = pasid(reference) else { return (false, "no PASID for '\(reference)'") }
                wanted = value
            }
            let all = function.responsesReceived
            let matching = all.filter { response in
                (code.map { response.code == $0 } ?? true) && (prgIndex.map { response.prgIndex == $0 } ?? true)
                    && (wanted.map { response.substreamID == $0 } ?? true)
            }
            let seen = all.isEmpty ? "none received" : all.map(\.description).joined(separator: "; ")
            if let count { return (matching.count == count, "\(matching.count) matching (\(seen))") }
            return (!matching.isEmpty, matching.isEmpty ? "none matching (\(seen))" : "\(matching.count) matching")
        case .dma(let name, let wanted):
            guard let (function, handle) = namedDMAs[name] ?? lastDMA[name], let state = function.state(of: handle) else {
                return (false, "no DMA '\(name)' was issued")
            }
            let kind: String = switch state {
            case .completed: "completed"
            case .waitingForPageRequest, .waitingForCredits: "waiting"
            case .stalled: "stalled"
            case .failed: "failed"
            }
            return (kind == wanted, "\(state)")
        case .memory(let address, let bytes):
            let found = (0..<bytes.count).map { system.bus.memory.read8(at: address &+ UInt64($0)) }
            return (found == bytes, "found \(Self.show(found))")
        case .processMemory(let name, let address, let bytes):
            guard let mm = processes[name] else { return (false, "no process") }
            var found: [UInt8] = []
            for offset in 0..<bytes.count {
                guard let physical = mm.translate(address &+ UInt64(offset)) else {
                    return (false, "0x\(String(address &+ UInt64(offset), radix: 16)) is not mapped in \(name)")
                }
                found.append(system.bus.memory.read8(at: physical))
            }
            return (found == bytes, "found \(Self.show(found))")
        case .log(let text, let present):
            let match = system.log.lines.first { $0.text.contains(text) }
            if present { return (match != nil, match.map(\.text) ?? "no kernel log line contains it") }
            return (match == nil, match.map { "found: \($0.text)" } ?? "absent")
        case .register(let register, let value, let mask, let index):
            let found = smmus[index].model.peek(register)
            return (found & mask == value & mask, "\(register.name) = 0x\(String(found, radix: 16))")
        case .pasid(let reference, let allocated):
            guard let value = pasid(reference) else { return (false, "no PASID for '\(reference)' (never bound)") }
            guard let smmu = driver else { return (false, "no SMMU driver") }
            let isAllocated = smmu.pasids.idr_find(value) != nil
            return (isAllocated == allocated, "PASID \(value) is \(isAllocated ? "allocated" : "free")")
        case .context(let device, let reference, let wanted):
            guard let value = pasid(reference) else { return (false, "no PASID for '\(reference)' (never bound)") }
            guard let smmu = driver(of: device), let function = functions[device] else { return (false, "no SMMU driver") }
            let state: String
            if let context = smmu.streams[function.streamID]?.contexts[value] {
                state = Self.contextState(context.state.snapshot)
            } else {
                state = "none"
            }
            return (state == wanted, "context for PASID \(value) is \(state)")
        case .mmExits(let device, let count):
            let found = exits[device] ?? 0
            return (found == count, "mm_exit ran \(found) time(s)")
        case .partialFaults(let name, let count):
            let found = devices[name]?.iommu_param?.iopf_param?.partial.count ?? 0
            return (found == count, "\(found) partial fault(s)")
        case .relayed(let device, let count):
            let found = relayed[device]?.count ?? 0
            return (found == count, "\(found) fault(s) relayed")
        case .outcome(let deadlock):
            let isDeadlock = if case .deadlock = lastOutcome { true } else { false }
            return (isDeadlock == deadlock, "\(lastOutcome)")
        case .devicePASID(let device, let reference, let wanted):
            guard let function = functions[device] else { return (false, "no device") }
            guard let value = pasid(reference) else { return (false, "no PASID for '\(reference)' (never bound)") }
            let state: String = switch function.state(ofPASID: value) {
            case .active: "active"
            case .stopping(let outstanding): "stopping (\(outstanding) outstanding)"
            case .stopped: "stopped"
            }
            return (state.hasPrefix(wanted), "\(device) has PASID \(value) \(state)")
        case .page(let name, let address, let present):
            guard let mm = processes[name] else { return (false, "no process") }
            let found = mm.translate(address) != nil
            return (found == present, "0x\(String(address, radix: 16)) is \(found ? "present" : "absent") in \(name)")
        case .queue(let queue, let prod, let cons, let overflow, let slot, let contains, let index):
            let ring = QueueView(model: smmus[index].model, memory: system.bus.memory, queue: queue)
            var problems: [String] = []
            if let prod, UInt64(ring.prod) != prod { problems.append("PROD is 0x\(String(ring.prod, radix: 16))") }
            if let cons, UInt64(ring.cons) != cons { problems.append("CONS is 0x\(String(ring.cons, radix: 16))") }
            if let overflow, ring.overflowed != overflow { problems.append(ring.overflowed ? "an overflow is unacknowledged" : "no overflow is unacknowledged") }
            if let slot, let contains {
                let text = ring.entry(slot)
                if !text.contains(contains) { problems.append("slot \(slot) holds \(text)") }
            }
            let summary = "PROD 0x\(String(ring.prod, radix: 16)), CONS 0x\(String(ring.cons, radix: 16))\(ring.overflowed ? ", overflowed" : "")"
            return (problems.isEmpty, problems.isEmpty ? summary : problems.joined(separator: "; "))
        case .diagnostics(let count):
            let diagnostics = smmus.flatMap(\.model.diagnostics)
            return (diagnostics.count == count, diagnostics.isEmpty ? "none" : diagnostics.map(\.description).joined(separator: "; "))
        }
    }

    /// A PASID context's state word as seed 001 names it: `used`, `stale`, `invalidated`, or
    /// `none` once both flags are set (FREE).
    static func contextState(_ bits: Int64) -> String {
        bits & ARM_SMMU_CONTEXT_FREE == ARM_SMMU_CONTEXT_FREE ? "none"
            : bits & ARM_SMMU_CONTEXT_STALE != 0 ? "stale"
            : bits & ARM_SMMU_CONTEXT_INVALIDATED != 0 ? "invalidated" : "used"
    }

    private static func show(_ bytes: [UInt8]) -> String {
        if bytes.allSatisfy({ (0x20..<0x7F).contains($0) }) { return "\"" + String(decoding: bytes, as: UTF8.self) + "\"" }
        return "0x" + bytes.map { String($0, radix: 16).leftPadded(to: 2) }.joined()
    }
}

extension FixtureStep.Kind {
    /// The action of an action step.
    var action: FixtureAction? {
        if case .action(let action) = self { return action }
        return nil
    }
}

extension String {
    func leftPadded(to width: Int) -> String {
        count >= width ? self : String(repeating: "0", count: width - count) + self
    }
}
