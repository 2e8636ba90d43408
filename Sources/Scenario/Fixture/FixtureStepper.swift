import Platform
import SMMUv3Layout
import SMMUv3
import Kernel
import IOMMU
import ArmSMMUv3

/// An interactive stepper over one run of a fixture (`smmuv3 step`): the same run as
/// ``FixtureRunner`` (same seed, same interleaving), stopped where the user asks — after each
/// command the SMMU consumes, at an opcode, an event type, a StreamID, a driver function or
/// the end of a fixture line — with views of the registers, the queues as rings, the STE and CD
/// of a stream, the PASIDs and every kernel context's wait point.
///
/// Commands are text lines (``execute(_:)``), so a terminal, a script or a test drives it the
/// same way. A stop on a driver function takes effect at the function's next scheduling point
/// (the scheduler stops between jobs, never inside one), so the context is shown waiting
/// there; stops on commands and events are exact: the command has just taken effect.
public final class FixtureStepper {
    /// What a stop waits for.
    public enum Target: Equatable, Sendable, CustomStringConvertible {
        /// Any command consumed by the SMMU.
        case anyCommand
        /// A command with this spec name (`CMD_SYNC`).
        case opcode(String)
        /// An event record of this type (`F_TRANSLATION`).
        case event(String)
        /// A command or event record naming this StreamID.
        case streamID(UInt32)
        /// Entry to a driver function marked with ``ftrace(_:)`` (`arm_smmu_handle_ppr`).
        case function(String)

        public var description: String {
            switch self {
            case .anyCommand: "any command"
            case .opcode(let name), .event(let name), .function(let name): name
            case .streamID(let sid): "sid \(sid)"
            }
        }

        /// `CMD_…`, `F_…`/`C_BAD_…`/`E_…` event names, `sid N`, or a function name; nil with
        /// why not.
        static func parse(_ words: ArraySlice<String>) -> Result<Target, StepperError> {
            guard let first = words.first else { return .failure(StepperError("a target: CMD_NAME, an event type, sid N or a driver function")) }
            if first == "sid" {
                guard words.count == 2, let value = FixtureValue.parseNumber(words[words.startIndex + 1]), value <= UInt64(UInt32.max) else {
                    return .failure(StepperError("sid takes one StreamID"))
                }
                return .success(.streamID(UInt32(value)))
            }
            guard words.count == 1 else { return .failure(StepperError("one target expected, got '\(words.joined(separator: " "))'")) }
            if first.hasPrefix("CMD_") {
                guard first == "CMD_CFGI_ALL" || CommandFormat.all.contains(where: { $0.name == first }) else {
                    return .failure(StepperError("no command is named \(first)"))
                }
                return .success(.opcode(first))
            }
            if EventType.allCases.contains(where: { $0.specName == first }) { return .success(.event(first)) }
            if first.hasPrefix("F_") || first.hasPrefix("C_BAD_") || first.hasPrefix("E_") {
                return .failure(StepperError("no event type is named \(first)"))
            }
            let identifier = first.utf8.allSatisfy { ($0 >= 0x61 && $0 <= 0x7A) || ($0 >= 0x30 && $0 <= 0x39) || $0 == 0x5F }
            guard identifier, let head = first.utf8.first, head < 0x30 || head > 0x39 else {
                return .failure(StepperError("'\(first)' is not a command, event type, sid N or driver function name"))
            }
            return .success(.function(first))
        }
    }

    /// A stepper command that could not be understood.
    public struct StepperError: Error, Sendable, CustomStringConvertible {
        /// What was wrong.
        public let description: String
        init(_ description: String) { self.description = description }
    }

    /// Why the run last stopped.
    private enum Stop {
        case command(CommandStep, context: String)
        case event(EventRecord, EventQueueOutcome, context: String)
        case function(String, context: String)
    }

    private let world: FixtureWorld
    private var breakpoints: [Target] = []
    /// The one-shot target of the running `next`/`continue`, if any.
    private var target: Target?
    private var stop: Stop?
    private var printedTranscript = 0
    private var registrations: [(SMMU, SMMUHandlerRegistration)] = []
    /// Every step done.
    public private(set) var isFinished = false
    /// `quit` was given.
    public private(set) var hasQuit = false

    /// A stepper at the start of `fixture` under `seed` (nothing has run yet).
    public init(fixture: Fixture, seed: UInt64?, traceCategories: TraceCategory = .standard) throws {
        world = try FixtureWorld(fixture: fixture, seed: seed, traceCategories: traceCategories, traceSink: nil, traceLinesAtFailure: 40)
        let scheduler = world.system.scheduler
        for (model, _) in world.smmus {
            registrations.append((model, model.onCommand { [weak self] step in
                guard let self else { return }
                guard let command = step.command else {
                    // An entry that could not be fetched or decoded stops any command target.
                    if target == .anyCommand { halt(.command(step, context: Self.contextName)) }
                    return
                }
                let hit = { (candidate: Target) -> Bool in
                    switch candidate {
                    case .anyCommand: true
                    case .opcode(let name): command.name == name
                    case .streamID(let sid): command.format.fields.contains(.streamID) && command.streamID == sid
                    case .event, .function: false
                    }
                }
                if target.map(hit) == true || breakpoints.contains(where: hit) { halt(.command(step, context: Self.contextName)) }
            }))
            registrations.append((model, model.onEvent { [weak self] record, outcome in
                guard let self else { return }
                let hit = { (candidate: Target) -> Bool in
                    switch candidate {
                    case .event(let name): record.type?.specName == name
                    case .streamID(let sid): record.streamID == sid
                    case .anyCommand, .opcode, .function: false
                    }
                }
                if target.map(hit) == true || breakpoints.contains(where: hit) { halt(.event(record, outcome, context: Self.contextName)) }
            }))
        }
        let tracer = scheduler.onFunctionEntry
        scheduler.onFunctionEntry = { [weak self] function, context in
            tracer?(function, context)
            guard let self else { return }
            let name = "\(function)"
            let hit = { (candidate: Target) -> Bool in candidate == .function(name) }
            if target.map(hit) == true || breakpoints.contains(where: hit) { halt(.function(name, context: context.name)) }
        }
    }

    deinit {
        for (model, registration) in registrations { model.removeHandler(registration) }
        world.system.scheduler.onFunctionEntry = nil
    }

    private static var contextName: String { KernelContext.current?.name ?? "fixture" }

    private func halt(_ reason: Stop) {
        guard stop == nil else { return }
        stop = reason
        world.system.scheduler.requestPause()
    }

    /// The run's checks and transcript so far.
    public var run: FixtureRun { world.result }

    /// The stepper's commands, one line each.
    public static let help: [String] = [
        "next [N]             run until the SMMU consumes the next command (N times); show it decoded with its effect",
        "step                 run to the end of the current fixture line",
        "continue [TARGET]    run to TARGET, a breakpoint or the end; TARGET is CMD_NAME, an event type",
        "                     (F_TRANSLATION...), sid N, or a driver function (arm_smmu_handle_ppr...: any the",
        "                     port marks with ftrace(); a run with --trace func lists those it enters)",
        "break TARGET         stop at TARGET whenever the run goes on; breakpoints lists them, delete [N] removes",
        "registers            every SMMU register",
        "queues | queue Q     the command, event and PRI queues (or Q: cmdq, evtq, priq) as rings",
        "ste SID | cd SID [SSID]  the STE or CD the SMMU would fetch, field by field",
        "pasids               PASIDs allocated and each device's PASID context states",
        "contexts             every kernel context and where it waits",
        "where                the fixture line running and the next one",
        "log [N] | trace [N]  the last N kernel log or model trace lines (10)",
        "                     (registers, queues, ste and cd show SMMU 0; add smmu=I for another)",
        "help | quit",
    ]

    /// Runs one command line; its output lines.
    public func execute(_ line: String) -> [String] {
        let words = line.split(whereSeparator: { $0 == " " || $0 == "\t" }).map(String.init)
        guard let verb = words.first else { return [] }
        var arguments = words.dropFirst()
        // `smmu=I` picks the SMMU a view shows (default 0) on platforms with several.
        var smmu = 0
        if let option = arguments.firstIndex(where: { $0.hasPrefix("smmu=") }) {
            guard let value = FixtureValue.parseNumber(String(arguments[option].dropFirst(5))), value < UInt64(world.smmus.count) else {
                return ["error: no SMMU \(arguments[option].dropFirst(5)) (the platform has \(world.smmus.count))"]
            }
            smmu = Int(value)
            arguments.remove(at: option)
        }
        switch verb {
        case "next", "n":
            var times = 1
            if let text = arguments.first {
                guard arguments.count == 1, let value = FixtureValue.parseNumber(text), value >= 1, value <= 1_000_000 else { return ["error: next takes a count from 1 to 1000000"] }
                times = Int(value)
            }
            var output: [String] = []
            for _ in 0..<times where !isFinished {
                output += resume(target: .anyCommand, toLineEnd: false)
            }
            return output.isEmpty ? ["the run is finished"] : output
        case "step", "s":
            guard arguments.isEmpty else { return ["error: step takes no argument"] }
            return isFinished ? ["the run is finished"] : resume(target: nil, toLineEnd: true)
        case "continue", "c":
            var goal: Target?
            if !arguments.isEmpty {
                switch Target.parse(arguments) {
                case .success(let parsed): goal = parsed
                case .failure(let error): return ["error: \(error)"]
                }
            }
            return isFinished ? ["the run is finished"] : resume(target: goal, toLineEnd: false)
        case "break", "b":
            switch Target.parse(arguments) {
            case .success(let parsed):
                breakpoints.append(parsed)
                return ["breakpoint \(breakpoints.count): \(parsed)"]
            case .failure(let error):
                return ["error: \(error)"]
            }
        case "breakpoints":
            return breakpoints.isEmpty ? ["no breakpoints"] : breakpoints.enumerated().map { "breakpoint \($0.offset + 1): \($0.element)" }
        case "delete", "d":
            if arguments.isEmpty {
                breakpoints.removeAll()
                return ["every breakpoint deleted"]
            }
            guard arguments.count == 1, let value = FixtureValue.parseNumber(arguments[arguments.startIndex]), value >= 1, value <= UInt64(breakpoints.count) else {
                return ["error: no breakpoint \(arguments.joined(separator: " "))"]
            }
            let removed = breakpoints.remove(at: Int(value) - 1)
            return ["deleted breakpoint \(value): \(removed)"]
        case "registers", "regs":
            return registers(smmu)
        case "queues":
            return ["cmdq", "evtq", "priq"].flatMap { queue($0, smmu) }
        case "queue":
            guard arguments.count == 1 else { return ["error: queue takes cmdq, evtq or priq"] }
            return queue(arguments[arguments.startIndex], smmu)
        case "ste", "cd":
            return structures(verb, Array(arguments), smmu)
        case "pasids":
            return pasidStates()
        case "contexts", "ps":
            return contexts()
        case "where":
            return position()
        case "log", "trace":
            var count = 10
            if let text = arguments.first {
                guard arguments.count == 1, let value = FixtureValue.parseNumber(text), value <= 10_000 else { return ["error: \(verb) takes a line count up to 10000"] }
                count = Int(value)
            }
            if verb == "log" { return world.system.log.lines.suffix(count).map { "kernel: \($0)" } }
            return world.system.bus.trace.lines.suffix(count).map(\.description)
        case "help", "h", "?":
            return Self.help
        case "quit", "q", "exit":
            hasQuit = true
            return []
        default:
            return ["error: unknown command '\(verb)' (help lists them)"]
        }
    }

    // MARK: Running

    /// Runs until `target` or a breakpoint is hit, the current line ends (`toLineEnd`), or the
    /// fixture ends.
    private func resume(target: Target?, toLineEnd: Bool) -> [String] {
        self.target = target
        stop = nil
        defer { self.target = nil }
        var output: [String] = []
        while true {
            let progress = world.advance()
            output += freshTranscript()
            switch progress {
            case .paused:
                guard let stop else { continue }
                output += describe(stop)
                self.stop = nil
                return output
            case .stepped:
                if toLineEnd { return output }
            case .finished:
                isFinished = true
                let run = world.result
                let failed = run.checks.filter { !$0.passed }.count
                output.append("the run is finished: \(run.checks.count - failed) of \(run.checks.count) checks passed")
                return output
            }
        }
    }

    private func freshTranscript() -> [String] {
        let transcript = world.transcript
        defer { printedTranscript = transcript.count }
        return Array(transcript.dropFirst(printedTranscript))
    }

    private func describe(_ stop: Stop) -> [String] {
        let line = world.inFlight.map { "fixture line \($0.step.location.line): \($0.step.text)" } ?? "between fixture lines"
        switch stop {
        case .command(let step, let context):
            return ["stopped: \(context) consumed CMDQ \(step)", "  (\(line))"]
        case .event(let record, let outcome, let context):
            return ["stopped: event \(record) -> \(outcome) (\(context))", "  (\(line))"]
        case .function(let name, let context):
            let point = world.system.scheduler.liveContexts.first { $0.name == context }.map(Self.state) ?? "running"
            return ["stopped: \(context) entered \(name); it is now \(point)", "  (\(line))"]
        }
    }

    // MARK: Views

    private func registers(_ index: Int) -> [String] {
        let model = world.smmus[index].model
        return SMMURegister.allCases.map { register in
            let value = model.peek(register)
            let offset = "0x" + String(register.rawValue, radix: 16).leftPadded(to: 5)
            let digits = register.is64Bit ? 16 : 8
            return "\(offset)  \(register.name.padding(toLength: 18, withPad: " ", startingAt: 0)) 0x\(String(value, radix: 16).leftPadded(to: digits))"
        }
    }

    /// One queue as a ring (§3.5): geometry, PROD and CONS with wrap bits and flags, then
    /// the last three entries consumed and the first 16 waiting between CONS and PROD, decoded.
    private func queue(_ name: String, _ index: Int) -> [String] {
        guard let queue = FixtureQueue(rawValue: name) else { return ["error: no queue '\(name)' (cmdq, evtq, priq)"] }
        let ring = QueueView(model: world.smmus[index].model, memory: world.system.bus.memory, queue: queue)
        let title = name.uppercased()
        guard ring.base != 0 else { return ["\(title): not programmed (\(queue.registers.base.name) is 0)"] }
        var lines = ["\(title) at 0x\(String(ring.address, radix: 16)), 2^\(ring.log2) = \(ring.size) slots of \(ring.entryBytes) bytes"]
        var flags: [String] = []
        if ring.commandError != 0 { flags.append("CONS.ERR = \(ring.commandError)") }
        if ring.overflowed { flags.append("OVERFLOWED (PROD.OVFLG != CONS.OVACKFLG)") }
        let waiting = ring.waiting
        let size = ring.size
        lines.append("  PROD 0x\(String(ring.prod, radix: 16)) (\(ring.describe(ring.prod)))  CONS 0x\(String(ring.cons, radix: 16)) (\(ring.describe(ring.cons)))  \(waiting) \(queue == .cmdq ? "waiting" : "unread")\(waiting > size ? " (inconsistent)" : "")\(flags.isEmpty ? "" : "  " + flags.joined(separator: ", "))")
        let consIndex = ring.consPointer
        // The last entries consumed (at most three, and only slots the ring has passed).
        let passed = consIndex & ring.wrapBit != 0 ? size : consIndex & ring.indexMask
        let free = waiting > size ? 0 : size - waiting
        let digits = String(size - 1).count
        func label(_ slot: UInt32) -> String { "[" + String(slot) + "]" + String(repeating: " ", count: digits - String(slot).count) }
        for back in stride(from: min(passed, free, 3), to: 0, by: -1) {
            let slot = (consIndex &- back) & ring.indexMask
            lines.append("  \(label(slot)) consumed \(ring.entry(Int(slot)))")
        }
        let shown = min(waiting > size ? 0 : waiting, 16)
        for offset in 0..<shown {
            let slot = (consIndex &+ offset) & ring.indexMask
            let mark = offset == 0 ? "<- CONS" : "       "
            lines.append("  \(label(slot)) \(mark) \(ring.entry(Int(slot)))")
        }
        if waiting > shown && waiting <= size { lines.append("  ... \(waiting - shown) more") }
        lines.append("  \(label(ring.prodPointer & ring.indexMask)) <- PROD  (the next \(queue == .cmdq ? "command" : "record") goes here)")
        return lines
    }

    private func structures(_ verb: String, _ arguments: [String], _ index: Int) -> [String] {
        let usage = verb == "ste" ? "ste takes a StreamID" : "cd takes a StreamID and an optional SubstreamID"
        guard !arguments.isEmpty, arguments.count <= (verb == "ste" ? 1 : 2) else { return ["error: \(usage)"] }
        let values = arguments.map(FixtureValue.parseNumber)
        guard let sid = values[0], sid <= UInt64(UInt32.max) else { return ["error: \(usage)"] }
        var ssid: UInt32?
        if values.count == 2 {
            guard let value = values[1], value <= 0xF_FFFF else { return ["error: a SubstreamID is at most 0xfffff"] }
            ssid = UInt32(value)
        }
        let model = world.smmus[index].model
        guard model.peek(.strtabBase) != 0 || model.peek(.strtabBaseCfg) != 0 else { return ["no stream table programmed yet (STRTAB_BASE is 0)"] }
        let found = model.inspectStructures(streamID: UInt32(sid), substreamID: ssid)
        var lines: [String] = []
        if verb == "ste" {
            guard let address = found.steAddress, let words = found.ste else { return [found.stoppedAt ?? "no STE"] }
            lines.append("STE for SID \(sid) at 0x\(String(address, radix: 16))")
            lines += StructureDecoder.describeSTE(words, configuration: model.configuration).map { "  " + $0 }
        } else {
            guard let address = found.cdAddress, let words = found.cd else {
                return [found.stoppedAt ?? "SID \(sid) does not translate through a CD (its STE is not stage-1)"]
            }
            lines.append("CD for SID \(sid) SSID \(ssid ?? 0) at 0x\(String(address, radix: 16))")
            lines += StructureDecoder.describeCD(words, streamTableEntry: found.ste, configuration: model.configuration).map { "  " + $0 }
        }
        if let stopped = found.stoppedAt { lines.append("  note: \(stopped)") }
        return lines
    }

    private func pasidStates() -> [String] {
        guard let smmu = world.driver else { return ["no SMMU driver (not probed yet)"] }
        var lines: [String] = []
        var owners: [UInt32: String] = [:]
        for (name, pasid) in world.pasids { owners[pasid] = name }
        smmu.pasids.idr_for_each { id, _ in
            lines.append("PASID \(id): allocated\(owners[id].map { " (bound for \($0))" } ?? "")")
        }
        if lines.isEmpty { lines.append("no PASID allocated") }
        for spec in world.fixture.devices {
            guard let function = world.functions[spec.name], let stream = world.driver(of: spec.name)?.streams[function.streamID] else { continue }
            for (pasid, context) in stream.contexts.sorted(by: { $0.key < $1.key }) {
                lines.append("  \(spec.name) (sid \(function.streamID)) PASID \(pasid): context \(FixtureWorld.contextState(context.state.snapshot))")
            }
        }
        return lines
    }

    private func contexts() -> [String] {
        let live = world.system.scheduler.liveContexts
        guard !live.isEmpty else { return ["no kernel context"] }
        let width = live.map(\.name.count).max() ?? 0
        return live.map { "\($0.name.padding(toLength: width, withPad: " ", startingAt: 0))  \(Self.state($0))\($0.isDaemon ? " (daemon)" : "")" }
    }

    private static func state(_ context: KernelContext) -> String {
        switch context.state {
        case .runnable: "runnable"
        case .blocked(let point): "waiting in \(point)"
        case .finished: "finished"
        }
    }

    private func position() -> [String] {
        var lines: [String] = []
        if let flight = world.inFlight {
            lines.append("running fixture line \(flight.step.location.line): \(flight.step.text)")
        }
        let steps = world.fixture.steps
        if world.nextStep < steps.count {
            lines.append("next: line \(steps[world.nextStep].location.line): \(steps[world.nextStep].text)")
        } else if world.inFlight == nil {
            lines.append(isFinished ? "the run is finished" : "no step left")
        }
        return lines
    }
}
