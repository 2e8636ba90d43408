import Platform
import SMMUv3
import Endpoints
import SMMUv3Layout
import Kernel
import IOMMU
import ArmSMMUv3

/// Gives fixture statements their meaning (the keywords of Fixtures/README.md): checks every
/// keyword, argument and value, and names the first mistake by file, line and column. It
/// never traps on any text.
public enum FixtureCompiler {
    /// Compiles fixture `text` read from `file`.
    public static func compile(_ text: String, file: String) -> Result<Fixture, FixtureError> {
        switch FixtureSyntax.statements(in: text, file: file) {
        case .failure(let error): return .failure(error)
        case .success(let statements):
            do {
                var builder = Builder(file: file)
                return .success(try builder.build(statements))
            } catch {
                return .failure(error)
            }
        }
    }

    /// Every statement keyword, for the README and error hints.
    public static let configurationKeywords = ["smmu", "policy", "device", "process", "area", "seed", "seeds", "strategy", "checked", "invariant"]
    /// What `expect` can check (the word after it).
    public static let expectationKinds = ["event", "no-events", "response", "dma", "memory", "process-memory", "page", "device-pasid", "log", "no-log",
                                          "register", "queue", "pasid", "context", "mm-exits", "partial-faults", "relayed", "outcome", "diagnostics"]
    /// What `inject` can arm (the word after it).
    public static let injectionKinds = ["abort", "drop-msi", "alloc-fail", "lose", "atc-inv", "corrupt", "duplicate-response", "hold-response"]
    /// Step keywords.
    public static let stepKeywords = ["probe", "remove-smmu", "add-device", "remove-device", "domain", "attach", "detach", "map", "unmap",
                                      "sva-init", "sva-shutdown", "fault-handler", "unregister-handler", "bind-driver", "relay-respond",
                                      "bind", "unbind", "exit", "raw-command", "dma", "page-request", "ats-request", "stop-marker", "settle", "resume", "stop-pasid", "release-responses", "together", "repeat", "end",
                                      "expect", "inject", "clear-events"]
}

/// The arguments of one statement, consumed as they are read; what is left over is an error.
struct ArgumentReader {
    let statement: FixtureStatement
    private var positional: [FixtureArgument]
    private var keyed: [String: FixtureArgument] = [:]
    private var keyOrder: [String] = []

    init(_ statement: FixtureStatement) throws(FixtureError) {
        self.statement = statement
        positional = statement.arguments.filter { $0.key == nil }
        for argument in statement.arguments {
            guard let key = argument.key else { continue }
            if keyed[key] != nil { throw FixtureError(argument.location, "'\(key)=' given twice") }
            keyed[key] = argument
            keyOrder.append(key)
        }
    }

    var location: FixtureLocation { statement.location }

    /// The next positional argument, or an error saying what was expected.
    mutating func word(_ what: String) throws(FixtureError) -> FixtureArgument {
        guard !positional.isEmpty else {
            let end = FixtureLocation(file: location.file, line: location.line, column: location.column + statement.text.count)
            throw FixtureError(end, "'\(statement.keyword)' needs \(what)")
        }
        return positional.removeFirst()
    }

    /// The next positional argument if there is one.
    mutating func optionalWord() -> FixtureArgument? {
        positional.isEmpty ? nil : positional.removeFirst()
    }

    /// Whether the bare word `flag` is present (consumed).
    mutating func flag(_ flag: String) -> Bool {
        guard let index = positional.firstIndex(where: { !$0.quoted && $0.value == flag }) else { return false }
        positional.remove(at: index)
        return true
    }

    /// The `key=` argument, consumed.
    mutating func key(_ key: String) -> FixtureArgument? {
        keyed.removeValue(forKey: key)
    }

    /// Fails on any argument not consumed.
    func finish() throws(FixtureError) {
        if let extra = positional.first {
            throw FixtureError(extra.location, "unexpected argument '\(extra.value)' for '\(statement.keyword)'")
        }
        if let key = keyOrder.first(where: { keyed[$0] != nil }), let argument = keyed[key] {
            throw FixtureError(argument.location, "unknown option '\(key)=' for '\(statement.keyword)'")
        }
    }
}

/// Value parsing with locations.
enum FixtureValue {
    /// Decimal, `0x` hexadecimal or `0b` binary, `_` allowed, optional K/M/G suffix (powers of
    /// 1024).
    static func number(_ argument: FixtureArgument, _ what: String = "a number") throws(FixtureError) -> UInt64 {
        guard !argument.quoted, let value = parseNumber(argument.value) else {
            throw FixtureError(argument.valueLocation, "expected \(what) (decimal, 0x hexadecimal or 0b binary, optional K/M/G), found '\(argument.value)'")
        }
        return value
    }

    static func parseNumber(_ text: String) -> UInt64? {
        var body = Substring(text.replacingOccurrences(of: "_", with: ""))
        var scale: UInt64 = 1
        if let last = body.last, "KMG".contains(last) {
            scale = last == "K" ? 1 << 10 : last == "M" ? 1 << 20 : 1 << 30
            body = body.dropLast()
        }
        let value: UInt64?
        if body.hasPrefix("0x") || body.hasPrefix("0X") {
            value = UInt64(body.dropFirst(2), radix: 16)
        } else if body.hasPrefix("0b") || body.hasPrefix("0B") {
            value = UInt64(body.dropFirst(2), radix: 2)
        } else {
            value = UInt64(body, radix: 10)
        }
        guard let value else { return nil }
        let (scaled, overflow) = value.multipliedReportingOverflow(by: scale)
        return overflow ? nil : scaled
    }

    static func signed(_ argument: FixtureArgument) throws(FixtureError) -> Int32 {
        var text = argument.value
        var negative = false
        if text.hasPrefix("-") {
            negative = true
            text.removeFirst()
        }
        if let named = errnoNames[text] { return negative ? -named : named }
        guard !argument.quoted, let magnitude = parseNumber(text), magnitude <= UInt64(Int32.max) else {
            throw FixtureError(argument.valueLocation, "expected a return value (0, -22, -EINVAL...), found '\(argument.value)'")
        }
        return negative ? -Int32(magnitude) : Int32(magnitude)
    }

    static let errnoNames: [String: Int32] = [
        "EPERM": EPERM, "ENOENT": ENOENT, "ESRCH": ESRCH, "ENXIO": ENXIO, "EAGAIN": EAGAIN, "ENOMEM": ENOMEM, "EBUSY": EBUSY,
        "EEXIST": EEXIST, "ENODEV": ENODEV, "EINVAL": EINVAL, "ENOSPC": ENOSPC, "ERANGE": ERANGE, "ETIMEDOUT": ETIMEDOUT,
        "EOVERFLOW": EOVERFLOW, "ERESTARTSYS": ERESTARTSYS,
    ]

    static func int(_ argument: FixtureArgument, _ what: String, max: UInt64 = UInt64(Int32.max)) throws(FixtureError) -> Int {
        let value = try number(argument, what)
        guard value <= max else { throw FixtureError(argument.valueLocation, "\(what) must be at most \(max), found \(value)") }
        return Int(value)
    }

    static func bool(_ argument: FixtureArgument) throws(FixtureError) -> Bool {
        switch argument.value {
        case "on", "yes", "true", "1": return true
        case "off", "no", "false", "0": return false
        default: throw FixtureError(argument.valueLocation, "expected on or off, found '\(argument.value)'")
        }
    }

    /// `A..B` (inclusive).
    static func range(_ argument: FixtureArgument, _ what: String) throws(FixtureError) -> ClosedRange<UInt64> {
        let parts = argument.value.components(separatedBy: "..")
        guard !argument.quoted, parts.count == 2, let low = parseNumber(parts[0]), let high = parseNumber(parts[1]) else {
            throw FixtureError(argument.valueLocation, "expected \(what) as FIRST..LAST (inclusive), found '\(argument.value)'")
        }
        guard low <= high else { throw FixtureError(argument.valueLocation, "\(what) \(argument.value) is empty (FIRST > LAST)") }
        return low...high
    }

    /// Bytes: a string (each character below U+0100 one byte, others UTF-8) or a hex word
    /// `0x0102...` (bytes in order).
    static func bytes(_ argument: FixtureArgument) throws(FixtureError) -> [UInt8] {
        if argument.quoted {
            var bytes: [UInt8] = []
            for scalar in argument.value.unicodeScalars {
                if scalar.value < 0x100 { bytes.append(UInt8(scalar.value)) } else { bytes.append(contentsOf: Array(String(scalar).utf8)) }
            }
            return bytes
        }
        let text = argument.value.replacingOccurrences(of: "_", with: "")
        guard text.hasPrefix("0x"), text.count > 2, text.count % 2 == 0 else {
            throw FixtureError(argument.valueLocation, "expected bytes as a \"string\" or 0x followed by pairs of hex digits, found '\(argument.value)'")
        }
        var bytes: [UInt8] = []
        var index = text.index(text.startIndex, offsetBy: 2)
        while index < text.endIndex {
            let next = text.index(index, offsetBy: 2)
            guard let byte = UInt8(text[index..<next], radix: 16) else {
                throw FixtureError(argument.valueLocation, "'\(text[index..<next])' is not a hex byte")
            }
            bytes.append(byte)
            index = next
        }
        return bytes
    }

    static func choice<T>(_ argument: FixtureArgument, _ choices: [(String, T)], _ what: String) throws(FixtureError) -> T {
        if let match = choices.first(where: { $0.0 == argument.value }) { return match.1 }
        throw FixtureError(argument.valueLocation, "expected \(what): \(choices.map(\.0).joined(separator: ", ")); found '\(argument.value)'")
    }
}

/// Builds a ``Fixture`` from statements, keeping track of names.
private struct Builder {
    var fixture: Fixture
    var devices: Set<String> = []
    var processes: Set<String> = []
    var domains: Set<String> = []
    var dmaNames: Set<String> = []
    var stepsStarted = false
    /// The largest `map`/`unmap` (bounded so that a fixture cannot ask for unbounded tables).
    static let maximumMapping: UInt64 = 64 << 30
    /// The most seeds a fixture (or `--seeds`) may name.
    static let maximumSeeds: UInt64 = 1 << 24

    init(file: String) {
        fixture = Fixture(file: file)
        // Fixtures drive the driver's queues at Linux's sizes, with room for a flood test.
        fixture.configuration.eventQueueMaxLog2 = 7
        fixture.configuration.priQueueMaxLog2 = 7
    }

    /// The most statements `repeat` blocks may expand a fixture to.
    static let maximumExpandedStatements = 1 << 20

    /// Expands each `repeat N ... end` block into N copies of its statements (blocks do not
    /// nest; `together` blocks may sit inside).
    static func expandRepeats(_ statements: [FixtureStatement]) throws(FixtureError) -> [FixtureStatement] {
        var result: [FixtureStatement] = []
        var index = 0
        while index < statements.count {
            let statement = statements[index]
            index += 1
            guard statement.keyword == "repeat" else {
                result.append(statement)
                continue
            }
            var reader = try ArgumentReader(statement)
            let times = try FixtureValue.int(reader.word("a repeat count"), "a repeat count", max: 1 << 16)
            try reader.finish()
            var body: [FixtureStatement] = []
            var depth = 0
            var closed = false
            while index < statements.count {
                let inner = statements[index]
                index += 1
                if inner.keyword == "repeat" { throw FixtureError(inner.location, "'repeat' blocks do not nest") }
                if inner.keyword == "together" { depth += 1 }
                if inner.keyword == "end" {
                    if depth == 0 {
                        try ArgumentReader(inner).finish()
                        closed = true
                        break
                    }
                    depth -= 1
                }
                body.append(inner)
            }
            guard closed else { throw FixtureError(statement.location, "'repeat' has no matching 'end'") }
            guard result.count + body.count * times <= maximumExpandedStatements else {
                throw FixtureError(statement.location, "repeating \(body.count) statements \(times) times makes the fixture longer than \(maximumExpandedStatements) statements")
            }
            for _ in 0..<times { result += body }
        }
        return result
    }

    mutating func build(_ input: [FixtureStatement]) throws(FixtureError) -> Fixture {
        let statements = try Self.expandRepeats(input)
        var index = 0
        while index < statements.count {
            let statement = statements[index]
            index += 1
            if statement.keyword == "together" {
                try ArgumentReader(statement).finish()
                var group: [FixtureStep] = []
                var closed = false
                while index < statements.count {
                    let inner = statements[index]
                    index += 1
                    if inner.keyword == "end" {
                        try ArgumentReader(inner).finish()
                        closed = true
                        break
                    }
                    guard inner.keyword != "together" else { throw FixtureError(inner.location, "'together' blocks do not nest") }
                    var innerReader = try ArgumentReader(inner)
                    guard let action = try action(&innerReader) else {
                        throw FixtureError(inner.location, "only driver actions and device stimuli can run together; '\(inner.keyword)' cannot")
                    }
                    try innerReader.finish()
                    group.append(FixtureStep(location: inner.location, text: inner.text, kind: .action(action)))
                }
                guard closed else { throw FixtureError(statement.location, "'together' has no matching 'end'") }
                guard !group.isEmpty else { throw FixtureError(statement.location, "'together' block is empty") }
                stepsStarted = true
                fixture.steps.append(FixtureStep(location: statement.location, text: statement.text, kind: .together(group)))
                continue
            }
            if statement.keyword == "end" { throw FixtureError(statement.location, "'end' without 'together' or 'repeat'") }
            try handle(statement)
        }
        if let device = fixture.devices.first(where: { $0.smmu >= fixture.smmuCount }) {
            throw FixtureError(device.location, "device '\(device.name)' is behind SMMU \(device.smmu), but the platform has \(fixture.smmuCount) (smmu count=N)")
        }
        return fixture
    }

    mutating func handle(_ statement: FixtureStatement) throws(FixtureError) {
        var reader = try ArgumentReader(statement)
        if FixtureCompiler.configurationKeywords.contains(statement.keyword) {
            if stepsStarted && statement.keyword != "area" {
                throw FixtureError(statement.location, "'\(statement.keyword)' configures the platform and must come before the first step")
            }
            try configure(&reader)
        } else if let action = try action(&reader) {
            stepsStarted = true
            fixture.steps.append(FixtureStep(location: statement.location, text: statement.text, kind: .action(action)))
        } else if statement.keyword == "expect" {
            let expectation = try expectation(&reader)
            fixture.steps.append(FixtureStep(location: statement.location, text: statement.text, kind: .expect(expectation)))
        } else if statement.keyword == "inject" {
            let injection = try injection(&reader)
            fixture.steps.append(FixtureStep(location: statement.location, text: statement.text, kind: .inject(injection)))
        } else if statement.keyword == "clear-events" {
            fixture.steps.append(FixtureStep(location: statement.location, text: statement.text, kind: .inject(.clearEvents)))
        } else {
            throw FixtureError(statement.location, "unknown statement '\(statement.keyword)'; expected one of: \((FixtureCompiler.configurationKeywords + FixtureCompiler.stepKeywords).joined(separator: ", "))")
        }
        try reader.finish()
    }

    // MARK: Configuration

    mutating func configure(_ reader: inout ArgumentReader) throws(FixtureError) {
        switch reader.statement.keyword {
        case "smmu":
            var configuration = fixture.configuration
            if let value = reader.key("evtq") { configuration.eventQueueMaxLog2 = try FixtureValue.int(value, "log2 of the event queue size", max: 19) }
            if let value = reader.key("priq") { configuration.priQueueMaxLog2 = try FixtureValue.int(value, "log2 of the PRI queue size", max: 19) }
            if let value = reader.key("cmdq") { configuration.commandQueueMaxLog2 = try FixtureValue.int(value, "log2 of the command queue size", max: 19) }
            if let value = reader.key("sid-bits") { configuration.streamIDBits = try FixtureValue.int(value, "StreamID bits", max: 32) }
            if let value = reader.key("ssid-bits") { configuration.substreamIDBits = try FixtureValue.int(value, "SubstreamID bits", max: 20) }
            if let value = reader.key("strtab") { configuration.twoLevelStreamTable = try FixtureValue.choice(value, [("linear", false), ("2level", true)], "a stream table format") }
            if let value = reader.key("ats") { configuration.ats = try FixtureValue.bool(value) }
            if let value = reader.key("pri") { configuration.pri = try FixtureValue.bool(value) }
            if let value = reader.key("msi") { configuration.msi = try FixtureValue.bool(value) }
            if let value = reader.key("stall") {
                configuration.stallModel = try FixtureValue.choice(value, [("stall", SMMUConfiguration.StallModel.stallAndTerminate), ("force", .stallForced), ("none", .terminateOnly)], "a stall model")
            }
            if let value = reader.key("count") {
                fixture.smmuCount = try FixtureValue.int(value, "a number of SMMUs", max: 4)
                guard fixture.smmuCount >= 1 else { throw FixtureError(value.valueLocation, "a platform has at least one SMMU") }
            }
            if let value = reader.key("irq") {
                fixture.interrupts = try FixtureValue.choice(value, Fixture.InterruptMode.allCases.map { ($0.rawValue, $0) }, "an interrupt mode")
            }
            do {
                try configuration.validate()
            } catch {
                throw FixtureError(reader.location, "\(error)")
            }
            fixture.configuration = configuration
        case "checked":
            fixture.checked = try FixtureValue.bool(reader.word("on or off"))
        case "invariant":
            let name = try reader.word("an invariant: \(FixtureInvariant.allCases.map(\.rawValue).joined(separator: ", "))")
            let invariant = try FixtureValue.choice(name, FixtureInvariant.allCases.map { ($0.rawValue, $0) }, "an invariant")
            guard !fixture.invariants.contains(where: { $0.0 == invariant }) else { throw FixtureError(name.location, "invariant '\(name.value)' is already declared") }
            fixture.invariants.append((invariant, reader.location))
        case "policy":
            let word = try reader.word("a policy")
            fixture.policy = try FixtureValue.choice(word, Fixture.Policy.allCases.map { ($0.rawValue, $0) }, "a policy")
        case "device":
            let name = try newName(reader.word("a device name"), in: devices, "device")
            guard let sidArgument = reader.key("sid") else { throw FixtureError(reader.location, "'device' needs sid=STREAMID") }
            let sid = try FixtureValue.int(sidArgument, "a StreamID", max: 0xFFFF)
            let credits = try reader.key("credits").map { argument throws(FixtureError) in try FixtureValue.int(argument, "page request credits", max: 1 << 16) } ?? 32
            let ats = reader.flag("ats")
            let pri = reader.flag("pri")
            let behind = try reader.key("smmu").map { argument throws(FixtureError) in try FixtureValue.int(argument, "an SMMU index", max: 3) } ?? 0
            let stopMode = try reader.key("stop").map { argument throws(FixtureError) in
                try FixtureValue.choice(argument, [("marker", PASIDStopMode.markStaleAndSendStopMarker), ("wait", .waitForCompletion)], "a stop mode")
            } ?? .markStaleAndSendStopMarker
            if fixture.devices.contains(where: { $0.streamID == UInt32(sid) && $0.smmu == behind }) {
                throw FixtureError(sidArgument.valueLocation, "StreamID \(sid) is already used by another device behind SMMU \(behind)")
            }
            devices.insert(name.value)
            fixture.devices.append(Fixture.DeviceSpec(name: name.value, streamID: UInt32(sid), ats: ats, pri: pri, credits: credits, stopMode: stopMode, smmu: behind, location: reader.location))
        case "process":
            let name = try newName(reader.word("a process name"), in: processes, "process")
            let asid = try reader.key("asid").map { argument throws(FixtureError) in try FixtureValue.int(argument, "an ASID", max: 0xFFFF) } ?? (7 + fixture.processes.count)
            processes.insert(name.value)
            fixture.processes.append(Fixture.ProcessSpec(name: name.value, asid: UInt16(asid), areas: [], location: reader.location))
        case "area":
            if stepsStarted { throw FixtureError(reader.location, "'area' configures a process and must come before the first step") }
            let process = try existing(reader.word("a process name"), in: processes, "process")
            let start = try FixtureValue.number(reader.word("the area's start address"), "an address")
            guard let sizeArgument = reader.key("size") else { throw FixtureError(reader.location, "'area' needs size=BYTES") }
            let size = try FixtureValue.number(sizeArgument, "a size")
            guard start % 4096 == 0, size % 4096 == 0, size > 0, start <= UInt64.max - size else {
                throw FixtureError(sizeArgument.location, "an area is whole pages (4 KB-aligned start and size, size > 0)")
            }
            let write = try reader.key("perm").map { argument throws(FixtureError) in try FixtureValue.choice(argument, [("r", false), ("rw", true)], "permissions") } ?? true
            if let index = fixture.processes.firstIndex(where: { $0.name == process }) {
                fixture.processes[index].areas.append((start, start + size, write))
            }
        case "seed":
            let seed = try FixtureValue.number(reader.word("a seed"), "a seed")
            fixture.seeds = seed...seed
        case "seeds":
            let argument = try reader.word("a seed range FIRST..LAST")
            let seeds = try FixtureValue.range(argument, "a seed range")
            // A range's count traps past Int.max, and every seed is a run: keep it countable.
            guard seeds.upperBound - seeds.lowerBound < Self.maximumSeeds else {
                throw FixtureError(argument.valueLocation, "a fixture runs at most \(Self.maximumSeeds) seeds")
            }
            fixture.seeds = seeds
        case "strategy":
            let word = try reader.word("uniform or pct")
            switch word.value {
            case "uniform": fixture.strategy = .uniform
            case "pct":
                let changes = try reader.key("changes").map { argument throws(FixtureError) in try FixtureValue.int(argument, "change points", max: 64) } ?? 2
                let steps = try reader.key("steps").map { argument throws(FixtureError) in try FixtureValue.int(argument, "steps", max: 1 << 20) } ?? 4096
                fixture.strategy = .priorities(changePoints: changes, steps: max(steps, 1))
            default:
                throw FixtureError(word.valueLocation, "expected uniform or pct, found '\(word.value)'")
            }
        default:
            break
        }
    }

    func newName(_ argument: FixtureArgument, in names: Set<String>, _ kind: String) throws(FixtureError) -> FixtureArgument {
        guard !argument.quoted, argument.value.first?.isLetter == true else {
            throw FixtureError(argument.location, "a \(kind) name starts with a letter, found '\(argument.value)'")
        }
        guard !names.contains(argument.value) else { throw FixtureError(argument.location, "\(kind) '\(argument.value)' is already declared") }
        return argument
    }

    func existing(_ argument: FixtureArgument, in names: Set<String>, _ kind: String) throws(FixtureError) -> String {
        guard names.contains(argument.value) else {
            let known = names.sorted()
            throw FixtureError(argument.location, "no \(kind) named '\(argument.value)'\(known.isEmpty ? "" : " (declared: \(known.joined(separator: ", ")))")")
        }
        return argument.value
    }

    func ret(_ reader: inout ArgumentReader) throws(FixtureError) -> Int32 {
        try reader.key("ret").map { argument throws(FixtureError) in try FixtureValue.signed(argument) } ?? 0
    }

    func pasidReference(_ argument: FixtureArgument) throws(FixtureError) -> PASIDReference {
        if processes.contains(argument.value) { return .process(argument.value) }
        if let number = FixtureValue.parseNumber(argument.value), number < 1 << 20 { return .number(UInt32(number)) }
        throw FixtureError(argument.valueLocation, "expected a process name or a PASID number below 2^20, found '\(argument.value)'")
    }

    // MARK: Steps

    /// The action of the statement, or nil when it is not an action.
    mutating func action(_ reader: inout ArgumentReader) throws(FixtureError) -> FixtureAction? {
        switch reader.statement.keyword {
        case "probe": return .probe(ret: try ret(&reader))
        case "remove-smmu": return .removeSMMU
        case "add-device": return .addDevice(try existing(reader.word("a device"), in: devices, "device"), ret: try ret(&reader))
        case "remove-device": return .removeDevice(try existing(reader.word("a device"), in: devices, "device"))
        case "domain":
            let name = try newName(reader.word("a domain name"), in: domains, "domain")
            let dma = try reader.key("type").map { argument throws(FixtureError) in try FixtureValue.choice(argument, [("unmanaged", false), ("dma", true)], "a domain type") } ?? false
            domains.insert(name.value)
            return .domain(name.value, dma: dma)
        case "attach":
            let device = try existing(reader.word("a device"), in: devices, "device")
            let domain = try existing(reader.word("a domain"), in: domains, "domain")
            return .attach(device: device, domain: domain, ret: try ret(&reader))
        case "detach": return .detach(device: try existing(reader.word("a device"), in: devices, "device"))
        case "map":
            let domain = try existing(reader.word("a domain"), in: domains, "domain")
            let iova = try FixtureValue.number(reader.word("an IOVA"), "an IOVA")
            let physical = try FixtureValue.number(reader.word("a physical address"), "a physical address")
            let sizeArgument = try reader.word("a size")
            let size = try FixtureValue.number(sizeArgument, "a size")
            guard size <= Self.maximumMapping else { throw FixtureError(sizeArgument.valueLocation, "a mapping is at most 64G in a fixture") }
            let prot = try reader.key("prot").map { argument throws(FixtureError) in
                try FixtureValue.choice(argument, [("r", IOMMU_READ), ("w", IOMMU_WRITE), ("rw", IOMMU_READ | IOMMU_WRITE)], "permissions")
            } ?? (IOMMU_READ | IOMMU_WRITE)
            return .map(domain: domain, iova: iova, physical: physical, size: size, prot: prot, ret: try ret(&reader))
        case "unmap":
            let domain = try existing(reader.word("a domain"), in: domains, "domain")
            let iova = try FixtureValue.number(reader.word("an IOVA"), "an IOVA")
            let sizeArgument = try reader.word("a size")
            let size = try FixtureValue.number(sizeArgument, "a size")
            guard size <= Self.maximumMapping else { throw FixtureError(sizeArgument.valueLocation, "an unmapping is at most 64G in a fixture") }
            let unmapped = try reader.key("unmapped").map { argument throws(FixtureError) in try FixtureValue.number(argument, "a size") }
            return .unmap(domain: domain, iova: iova, size: size, unmapped: unmapped)
        case "sva-init": return .svaInit(try existing(reader.word("a device"), in: devices, "device"), ret: try ret(&reader))
        case "sva-shutdown": return .svaShutdown(try existing(reader.word("a device"), in: devices, "device"), ret: try ret(&reader))
        case "fault-handler":
            let device = try existing(reader.word("a device"), in: devices, "device")
            let relay = try FixtureValue.choice(reader.word("iopf or relay"), [("iopf", false), ("relay", true)], "a fault handler")
            return .faultHandler(device, relay: relay, ret: try ret(&reader))
        case "unregister-handler": return .unregisterHandler(try existing(reader.word("a device"), in: devices, "device"), ret: try ret(&reader))
        case "bind-driver":
            let device = try existing(reader.word("a device"), in: devices, "device")
            let driver = try reader.word("a driver name (or none)")
            return .bindDriver(device, driver: driver.value == "none" ? nil : driver.value)
        case "relay-respond":
            let device = try existing(reader.word("a device"), in: devices, "device")
            let code = try FixtureValue.choice(reader.word("a response code"), [("success", IOMMU_PAGE_RESP_SUCCESS), ("invalid", IOMMU_PAGE_RESP_INVALID), ("failure", IOMMU_PAGE_RESP_FAILURE)], "a response code")
            return .relayRespond(device, code: code)
        case "bind":
            let device = try existing(reader.word("a device"), in: devices, "device")
            let process = try existing(reader.word("a process"), in: processes, "process")
            return .bind(device: device, process: process, ret: try ret(&reader))
        case "unbind":
            let device = try existing(reader.word("a device"), in: devices, "device")
            let process = try existing(reader.word("a process"), in: processes, "process")
            var flags: UInt32 = 0
            if reader.flag("clean") { flags |= IOMMU_PASID_CLEAN }
            if reader.flag("flushed") { flags |= IOMMU_PASID_FLUSHED }
            return .unbind(device: device, process: process, flags: flags, ret: try ret(&reader))
        case "exit": return .exit(try existing(reader.word("a process"), in: processes, "process"))
        case "dma":
            let device = try existing(reader.word("a device"), in: devices, "device")
            let direction = try FixtureValue.choice(reader.word("read or write"), [("read", false), ("write", true)], "a direction")
            let address = try FixtureValue.number(reader.word("an address"), "an address")
            var data: [UInt8] = []
            var length = 8
            if let argument = reader.key("data") {
                guard direction else { throw FixtureError(argument.location, "data= is for writes") }
                data = try FixtureValue.bytes(argument)
                length = data.count
            } else if direction {
                throw FixtureError(reader.location, "'dma ... write' needs data=\"...\"")
            }
            if let argument = reader.key("length") {
                guard !direction else { throw FixtureError(argument.location, "length= is for reads (a write's length is its data's)") }
                length = try FixtureValue.int(argument, "a length", max: 1 << 20)
            }
            guard length > 0 else { throw FixtureError(reader.location, "a DMA moves at least one byte") }
            let pasid = try reader.key("pasid").map { argument throws(FixtureError) in try pasidReference(argument) }
            var name: String?
            if let argument = reader.key("as") {
                name = try newName(argument, in: dmaNames, "DMA").value
                dmaNames.insert(argument.value)
            }
            let count = try reader.key("count").map { argument throws(FixtureError) in try FixtureValue.int(argument, "a count", max: 1 << 16) } ?? 1
            guard count >= 1 else { throw FixtureError(reader.location, "count= is at least 1") }
            return .dma(device: device, write: direction, address: address, length: length, data: data, pasid: pasid, name: name, count: count)
        case "page-request":
            let device = try existing(reader.word("a device"), in: devices, "device")
            let address = try FixtureValue.number(reader.word("an address"), "an address")
            guard let prgArgument = reader.key("prg") else { throw FixtureError(reader.location, "'page-request' needs prg=INDEX") }
            let prg = try FixtureValue.int(prgArgument, "a PRG index", max: 511)
            let pasid = try reader.key("pasid").map { argument throws(FixtureError) in try pasidReference(argument) }
            let count = try reader.key("count").map { argument throws(FixtureError) in try FixtureValue.int(argument, "a count", max: 1 << 16) } ?? 1
            let last = reader.flag("last")
            var read = reader.flag("read")
            let write = reader.flag("write")
            if !read && !write { read = true }
            return .pageRequest(device: device, address: address, prgIndex: UInt16(prg), pasid: pasid, last: last, read: read, write: write, count: max(count, 1))
        case "ats-request":
            let device = try existing(reader.word("a device"), in: devices, "device")
            let address = try FixtureValue.number(reader.word("an address"), "an address")
            let pasid = try reader.key("pasid").map { argument throws(FixtureError) in try pasidReference(argument) }
            let write = reader.flag("write")
            let status = try reader.key("status").map { argument throws(FixtureError) in
                try FixtureValue.choice(argument, [("success", ATSCompletionStatus.success), ("ur", .unsupportedRequest), ("ca", .completerAbort)], "a completion status")
            }
            return .atsRequest(device: device, address: address, pasid: pasid, write: write, status: status)
        case "stop-marker":
            let device = try existing(reader.word("a device"), in: devices, "device")
            guard let argument = reader.key("pasid") else { throw FixtureError(reader.location, "'stop-marker' needs pasid=PROCESS|NUMBER") }
            return .stopMarker(device: device, pasid: try pasidReference(argument))
        case "raw-command":
            let dw0 = try FixtureValue.number(reader.word("the command's first doubleword"), "a doubleword")
            let dw1 = try FixtureValue.number(reader.word("the command's second doubleword"), "a doubleword")
            return .rawCommand(dw0, dw1)
        case "settle": return .settle
        case "resume":
            let device = try existing(reader.word("a device"), in: devices, "device")
            let retry = try FixtureValue.choice(reader.word("retry or abort"), [("retry", true), ("abort", false)], "a resume action")
            return .resume(device: device, retry: retry)
        case "stop-pasid":
            let device = try existing(reader.word("a device"), in: devices, "device")
            guard let argument = reader.key("pasid") else { throw FixtureError(reader.location, "'stop-pasid' needs pasid=PROCESS|NUMBER") }
            return .stopPASID(device: device, pasid: try pasidReference(argument))
        case "release-responses":
            return .releaseResponses(device: try existing(reader.word("a device"), in: devices, "device"))
        default: return nil
        }
    }

    /// `count=N`, when given.
    func count(_ reader: inout ArgumentReader) throws(FixtureError) -> Int? {
        try reader.key("count").map { argument throws(FixtureError) in try FixtureValue.int(argument, "a count") }
    }

    /// `smmu=I` (default 0), checked against `smmu count=N`.
    func smmuIndex(_ reader: inout ArgumentReader) throws(FixtureError) -> Int {
        guard let argument = reader.key("smmu") else { return 0 }
        let index = try FixtureValue.int(argument, "an SMMU index", max: 3)
        guard index < fixture.smmuCount else { throw FixtureError(argument.valueLocation, "SMMU \(index) does not exist (smmu count=\(fixture.smmuCount))") }
        return index
    }

    mutating func expectation(_ reader: inout ArgumentReader) throws(FixtureError) -> FixtureExpectation {
        let what = try reader.word("what to expect (\(FixtureCompiler.expectationKinds.joined(separator: ", ")))")
        switch what.value {
        case "event":
            let type = try reader.word("an event type (F_TRANSLATION, C_BAD_STE...)")
            guard EventType.allCases.contains(where: { $0.specName == type.value }) else {
                throw FixtureError(type.location, "unknown event type '\(type.value)'; expected one of: \(EventType.allCases.map(\.specName).joined(separator: ", "))")
            }
            let sid = try reader.key("sid").map { argument throws(FixtureError) in UInt32(try FixtureValue.int(argument, "a StreamID", max: UInt64(UInt32.max))) }
            let ssid = try reader.key("ssid").map { argument throws(FixtureError) in UInt32(try FixtureValue.int(argument, "a SubstreamID", max: (1 << 20) - 1)) }
            let address = try reader.key("addr").map { argument throws(FixtureError) in try FixtureValue.number(argument, "an address") }
            let stall = reader.flag("stall")
            return .event(type: type.value, streamID: sid, substreamID: ssid, address: address, stall: stall, count: try count(&reader))
        case "no-events": return .noEvents
        case "response":
            let device = try existing(reader.word("a device"), in: devices, "device")
            var code: PRGResponseCode?
            if let word = reader.optionalWord() {
                code = try FixtureValue.choice(word, [("success", PRGResponseCode.success), ("invalid", .invalidRequest), ("failure", .responseFailure)], "a response code")
            }
            let prg = try reader.key("prg").map { argument throws(FixtureError) in UInt16(try FixtureValue.int(argument, "a PRG index", max: 511)) }
            let pasid = try reader.key("pasid").map { argument throws(FixtureError) in try pasidReference(argument) }
            return .response(device: device, code: code, prgIndex: prg, pasid: pasid, count: try count(&reader))
        case "dma":
            let name = try reader.word("a DMA name (as=) or a device")
            guard dmaNames.contains(name.value) || devices.contains(name.value) else {
                throw FixtureError(name.location, "no DMA or device named '\(name.value)'")
            }
            let state = try reader.word("a state: completed, waiting, stalled or failed")
            guard ["completed", "waiting", "stalled", "failed"].contains(state.value) else {
                throw FixtureError(state.location, "expected completed, waiting, stalled or failed, found '\(state.value)'")
            }
            return .dma(name.value, state: state.value)
        case "memory":
            let address = try FixtureValue.number(reader.word("an address"), "an address")
            return .memory(address, try FixtureValue.bytes(reader.word("the bytes")))
        case "process-memory":
            let process = try existing(reader.word("a process"), in: processes, "process")
            let address = try FixtureValue.number(reader.word("an address"), "an address")
            return .processMemory(process, address, try FixtureValue.bytes(reader.word("the bytes")))
        case "log", "no-log":
            let text = try reader.word("the text to look for, as a \"string\"")
            return .log(text.value, present: what.value == "log")
        case "register":
            let name = try reader.word("a register name (CR0, GERROR...)")
            guard let register = SMMURegister.allCases.first(where: { $0.name.uppercased() == name.value.uppercased() }) else {
                throw FixtureError(name.location, "unknown register '\(name.value)'")
            }
            let value = try FixtureValue.number(reader.word("a value"), "a value")
            let mask = try reader.key("mask").map { argument throws(FixtureError) in try FixtureValue.number(argument, "a mask") } ?? UInt64.max
            return .register(register, value: value, mask: mask, smmu: try smmuIndex(&reader))
        case "pasid":
            let reference = try pasidReference(reader.word("a process or PASID"))
            let state = try FixtureValue.choice(reader.word("allocated or free"), [("allocated", true), ("free", false)], "a PASID state")
            return .pasid(reference, allocated: state)
        case "context":
            let device = try existing(reader.word("a device"), in: devices, "device")
            let reference = try pasidReference(reader.word("a process or PASID"))
            let state = try reader.word("used, stale, invalidated or none")
            guard ["used", "stale", "invalidated", "none"].contains(state.value) else {
                throw FixtureError(state.location, "expected used, stale, invalidated or none, found '\(state.value)'")
            }
            return .context(device: device, pasid: reference, state: state.value)
        case "mm-exits":
            let device = try existing(reader.word("a device"), in: devices, "device")
            return .mmExits(device, count: try FixtureValue.int(reader.word("a count"), "a count"))
        case "partial-faults":
            let device = try existing(reader.word("a device"), in: devices, "device")
            return .partialFaults(device, count: try FixtureValue.int(reader.word("a count"), "a count"))
        case "relayed":
            let device = try existing(reader.word("a device"), in: devices, "device")
            return .relayed(device, count: try FixtureValue.int(reader.word("a count"), "a count"))
        case "outcome":
            let word = try reader.word("completed or deadlock")
            return .outcome(deadlock: try FixtureValue.choice(word, [("completed", false), ("deadlock", true)], "an outcome"))
        case "diagnostics":
            return .diagnostics(count: try FixtureValue.int(reader.word("a count"), "a count"))
        case "device-pasid":
            let device = try existing(reader.word("a device"), in: devices, "device")
            let reference = try pasidReference(reader.word("a process or PASID"))
            let state = try reader.word("active, stopping or stopped")
            guard ["active", "stopping", "stopped"].contains(state.value) else {
                throw FixtureError(state.location, "expected active, stopping or stopped, found '\(state.value)'")
            }
            return .devicePASID(device: device, pasid: reference, state: state.value)
        case "page":
            let process = try existing(reader.word("a process"), in: processes, "process")
            let address = try FixtureValue.number(reader.word("an address"), "an address")
            let present = try FixtureValue.choice(reader.word("present or absent"), [("present", true), ("absent", false)], "a page state")
            return .page(process: process, address: address, present: present)
        case "queue":
            let name = try reader.word("a queue: cmdq, evtq or priq")
            let queue = try FixtureValue.choice(name, FixtureQueue.allCases.map { ($0.rawValue, $0) }, "a queue")
            let prod = try reader.key("prod").map { argument throws(FixtureError) in try FixtureValue.number(argument, "a PROD value") }
            let cons = try reader.key("cons").map { argument throws(FixtureError) in try FixtureValue.number(argument, "a CONS value") }
            var overflow: Bool?
            if reader.flag("overflow") { overflow = true }
            if reader.flag("no-overflow") {
                guard overflow == nil else { throw FixtureError(reader.location, "overflow and no-overflow contradict each other") }
                overflow = false
            }
            let slot = try reader.key("slot").map { argument throws(FixtureError) in try FixtureValue.int(argument, "a slot index", max: (1 << 19) - 1) }
            let contains = reader.key("contains")
            if let contains, !contains.quoted { throw FixtureError(contains.valueLocation, "contains= takes a \"string\"") }
            guard (slot == nil) == (contains == nil) else { throw FixtureError(reader.location, "slot= and contains= go together") }
            if queue == .cmdq && overflow != nil { throw FixtureError(reader.location, "the command queue has no overflow flag") }
            guard prod != nil || cons != nil || overflow != nil || slot != nil else {
                throw FixtureError(reader.location, "'expect queue' needs prod=, cons=, overflow, no-overflow or slot= with contains=")
            }
            return .queue(queue, prod: prod, cons: cons, overflow: overflow, slot: slot, contains: contains?.value, smmu: try smmuIndex(&reader))
        default:
            throw FixtureError(what.location, "unknown expectation '\(what.value)'; expected one of: \(FixtureCompiler.expectationKinds.joined(separator: ", "))")
        }
    }

    mutating func injection(_ reader: inout ArgumentReader) throws(FixtureError) -> FixtureInjection {
        let what = try reader.word("a fault (\(FixtureCompiler.injectionKinds.joined(separator: ", ")))")
        switch what.value {
        case "abort":
            let targetArgument = try reader.word("a target: FIRST..LAST, cmdq, evtq, priq, strtab, ste DEVICE, cd DEVICE pasid=P or pgtable DOMAIN|PROCESS")
            let named: [(String, AbortTarget)] = [("cmdq", .cmdq), ("evtq", .evtq), ("priq", .priq), ("strtab", .strtab)]
            let target: AbortTarget
            if let match = named.first(where: { $0.0 == targetArgument.value }) {
                target = match.1
            } else if targetArgument.value == "ste" {
                target = .ste(device: try existing(reader.word("a device"), in: devices, "device"))
            } else if targetArgument.value == "cd" {
                let device = try existing(reader.word("a device"), in: devices, "device")
                guard let argument = reader.key("pasid") else { throw FixtureError(reader.location, "'inject abort cd' needs pasid=PROCESS|NUMBER (0 for a domain's CD)") }
                target = .cd(device: device, pasid: try pasidReference(argument))
            } else if targetArgument.value == "pgtable" {
                let owner = try reader.word("a domain or a process")
                guard domains.contains(owner.value) || processes.contains(owner.value) else {
                    throw FixtureError(owner.location, "no domain or process named '\(owner.value)'")
                }
                target = .pageTable(owner: owner.value)
            } else {
                target = .range(try FixtureValue.range(targetArgument, "an address range"))
            }
            let reads = reader.flag("read")
            let writes = reader.flag("write")
            return .abort(target, reads: reads || !writes, writes: writes || !reads, count: try count(&reader))
        case "drop-msi":
            let range = try FixtureValue.range(reader.word("an address range FIRST..LAST"), "an address range")
            return .dropMSI(range, count: try count(&reader))
        case "alloc-fail":
            let after = try reader.key("after").map { argument throws(FixtureError) in try FixtureValue.int(argument, "an allocation count") } ?? 0
            return .allocationFailure(after: after)
        case "lose":
            let device = try existing(reader.word("a device"), in: devices, "device")
            let kind = try FixtureValue.choice(reader.word("stop-marker or last"), [("stop-marker", true), ("last", false)], "what to lose")
            return .lose(device: device, stopMarkers: kind, count: try count(&reader) ?? 1)
        case "atc-inv":
            let device = try existing(reader.word("a device"), in: devices, "device")
            let word = try reader.word("never, unsupported or completed")
            let response = try FixtureValue.choice(word, [("never", ATCInvalidationResponse.noResponse), ("unsupported", .unsupportedRequest), ("completed", .completed)], "an ATC invalidation response")
            return .atcInvalidation(device: device, response: response)
        case "corrupt":
            let structure = try FixtureValue.choice(reader.word("ste or cd"), [("ste", false), ("cd", true)], "a structure")
            let device = try existing(reader.word("a device"), in: devices, "device")
            var pasid: PASIDReference?
            if structure {
                guard let argument = reader.key("pasid") else { throw FixtureError(reader.location, "'inject corrupt cd' needs pasid=PROCESS|NUMBER (0 for a domain's CD)") }
                pasid = try pasidReference(argument)
            }
            let fieldArgument = try reader.word("a field name as the spec spells it (Config, S1CDMax, ASID...)")
            let fields = structure ? CDField.all : STEField.all
            guard let field = fields.first(where: { $0.name == fieldArgument.value })?.field else {
                throw FixtureError(fieldArgument.location, "no \(structure ? "CD" : "STE") field '\(fieldArgument.value)'; expected one of: \(fields.map(\.name).joined(separator: ", "))")
            }
            let valueArgument = try reader.word("a value")
            let value = try FixtureValue.number(valueArgument, "a value")
            guard value <= field.bits.maxValue else {
                throw FixtureError(valueArgument.valueLocation, "\(value) does not fit in \(fieldArgument.value) (\(field.bits.width) bits)")
            }
            return .corrupt(device: device, cd: pasid, field: fieldArgument.value, value: value)
        case "duplicate-response", "hold-response":
            let device = try existing(reader.word("a device"), in: devices, "device")
            let count = try count(&reader) ?? 1
            return what.value == "hold-response" ? .holdResponses(device: device, count: count) : .duplicateResponses(device: device, count: count)
        default:
            throw FixtureError(what.location, "unknown fault '\(what.value)'; expected one of: \(FixtureCompiler.injectionKinds.joined(separator: ", "))")
        }
    }
}
