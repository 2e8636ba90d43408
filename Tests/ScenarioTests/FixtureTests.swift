import Foundation
import Testing
import Scenario

/// The fixture language: the bundled fixtures pass; mistakes are named by file:line:column;
/// failing checks are reported with their line; no input text traps the parser.
@Suite struct FixtureTests {
    static let fixturesDirectory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("Fixtures")

    static var bundled: [URL] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: fixturesDirectory.path)) ?? []
        return names.filter { $0.hasSuffix(".fixture") }.sorted().map { fixturesDirectory.appendingPathComponent($0) }
    }

    /// A bundled fixture, compiled.
    static func bundled(_ name: String) throws -> Fixture {
        let url = fixturesDirectory.appendingPathComponent(name)
        return try FixtureCompiler.compile(String(contentsOf: url, encoding: .utf8), file: url.lastPathComponent).get()
    }

    static func compile(_ text: String, file: String = "test.fixture") -> Result<Fixture, FixtureError> {
        FixtureCompiler.compile(text, file: file)
    }

    static func run(_ text: String) throws -> FixtureRun {
        let fixture = try compile(text).get()
        return FixtureRunner(fixture: fixture).run(seed: fixture.seeds?.lowerBound)
    }

    @Test func everyBundledFixturePassesUnderEachOfItsSeeds() throws {
        #expect(Self.bundled.count >= 1)
        for url in Self.bundled {
            let text = try String(contentsOf: url, encoding: .utf8)
            let fixture: Fixture
            switch Self.compile(text, file: url.lastPathComponent) {
            case .success(let compiled): fixture = compiled
            case .failure(let error):
                Issue.record("\(error)")
                continue
            }
            let runner = FixtureRunner(fixture: fixture)
            for seed in runner.seeds {
                let result = runner.run(seed: seed)
                if let failure = result.firstFailure {
                    Issue.record("\(url.lastPathComponent):\(failure.location.line) (seed \(seed.map(String.init) ?? "none")): \(failure.text): \(failure.detail)")
                    break
                }
                #expect(!result.checks.isEmpty)
            }
        }
    }

    @Test func aRunPrintsTheSameTranscriptEveryTime() throws {
        let url = Self.fixturesDirectory.appendingPathComponent("sva-demo.fixture")
        let fixture = try Self.compile(try String(contentsOf: url, encoding: .utf8)).get()
        let first = FixtureRunner(fixture: fixture).run(seed: 7)
        let second = FixtureRunner(fixture: fixture).run(seed: 7)
        #expect(first.transcript == second.transcript)
        #expect(first.transcript.contains { $0.contains("received: PRG response") })
    }

    @Test func aWrongExpectationFailsWithItsLineAndWhatWasFound() throws {
        let result = try Self.run("""
        device gpu sid=0x10
        probe
        expect register CR0ACK 0x0 mask=0x1
        expect log "no such line"
        add-device gpu ret=-EINVAL
        """)
        #expect(!result.passed)
        let failures = result.checks.filter { !$0.passed }
        #expect(failures.map(\.location.line) == [3, 4, 5])
        #expect(failures[0].detail.contains("CR0ACK = 0x"))
        #expect(failures[2].detail == "returned 0, expected -22")
        #expect(!result.traceAtFailure.isEmpty)
    }

    @Test func aViolatedInvariantFailsAtItsDeclarationNamingTheStepAndLine() throws {
        let result = try Self.run("""
        invariant no-spurious-response
        invariant context-released-once
        device gpu sid=0x10 ats pri
        process app
        area app 0x400000 size=1M
        probe
        domain d0
        add-device gpu
        attach gpu d0
        sva-init gpu
        bind gpu app
        inject duplicate-response gpu
        dma gpu write 0x400000 data="x" pasid=app as=first
        expect dma first completed
        """)
        let failures = result.checks.filter { !$0.passed }
        #expect(failures.count == 1)
        #expect(failures.first?.location.line == 1)
        #expect(failures.first?.text == "invariant no-spurious-response")
        #expect(failures.first?.detail.contains("during line 13 (dma gpu write 0x400000") == true, "\(failures)")
        #expect(failures.first?.detail.hasSuffix("gpu received a PRG response for no outstanding group") == true)
        // The invariant that held is reported as a passed check.
        #expect(result.checks.contains { $0.passed && $0.text == "invariant context-released-once" && $0.detail.hasPrefix("held at each of ") })
    }

    @Test func staleConfigurationUseBreaksTheNoDiagnosticsInvariant() throws {
        let result = try Self.run("""
        invariant no-diagnostics
        device nic sid=0x20
        probe
        domain d0
        add-device nic
        attach nic d0
        map d0 0x10000 0x90000000 4K
        dma nic read 0x10000 as=cached
        inject corrupt ste nic S1DSS 0
        dma nic read 0x10000 as=stale
        """)
        let failure = try #require(result.firstFailure)
        #expect(failure.location.line == 1)
        #expect(failure.detail.contains("during line 10") && failure.detail.contains("without CMD_CFGI_STE"), "\(failure.detail)")
    }

    @Test func everyStatementExpectationAndFaultIsDocumented() throws {
        let readme = try String(contentsOf: Self.fixturesDirectory.appendingPathComponent("README.md"), encoding: .utf8)
        for keyword in FixtureCompiler.configurationKeywords + FixtureCompiler.stepKeywords where keyword != "end" {
            #expect(readme.contains("`\(keyword)"), "statement '\(keyword)' is not in Fixtures/README.md")
        }
        for kind in FixtureCompiler.expectationKinds {
            #expect(readme.contains("`expect \(kind)"), "'expect \(kind)' is not in Fixtures/README.md")
        }
        for kind in FixtureCompiler.injectionKinds {
            #expect(readme.contains("`inject \(kind)"), "'inject \(kind)' is not in Fixtures/README.md")
        }
        for invariant in FixtureInvariant.allCases {
            #expect(readme.contains(invariant.rawValue), "invariant '\(invariant.rawValue)' is not in Fixtures/README.md")
        }
        // Every bundled fixture has its row.
        for url in Self.bundled {
            #expect(readme.contains("`\(url.lastPathComponent)`"), "\(url.lastPathComponent) is not in the table of Fixtures/README.md")
        }
    }

    @Test func theFunctionTraceNamesEachDriverFunctionAContextEnters() throws {
        var lines: [String] = []
        let fixture = try Self.compile("device gpu sid=0x10\nprobe\nadd-device gpu\n").get()
        _ = FixtureRunner(fixture: fixture, traceCategories: .function, traceSink: { lines.append($0.description) }).run(seed: nil)
        #expect(lines.first?.hasSuffix("fixture:2: arm_smmu_device_probe") == true, "\(lines.prefix(3))")
        #expect(lines.contains { $0.hasSuffix("fixture:3: arm_smmu_add_device") })
        // Off in the standard categories.
        var standard: [String] = []
        _ = FixtureRunner(fixture: fixture, traceSink: { standard.append($0.description) }).run(seed: nil)
        #expect(!standard.isEmpty && !standard.contains { $0.contains("arm_smmu_device_probe") })
    }

    @Test func mistakesAreNamedByLineAndColumn() {
        let cases: [(String, Int, Int, String)] = [
            ("smmu evtq=7\nfrobnicate\n", 2, 1, "unknown statement 'frobnicate'"),
            ("device gpu sid=0x10\nattach gpu nowhere\n", 2, 12, "no domain named 'nowhere'"),
            ("device gpu\n", 1, 1, "needs sid=STREAMID"),
            ("device gpu sid=0x1_0000_0000\n", 1, 16, "StreamID must be at most"),
            ("probe\n  expect dma x \"unterminated\n", 2, 16, "unterminated string"),
            ("probe\nsmmu evtq=3\n", 2, 1, "must come before the first step"),
            ("together\nprobe\n", 1, 1, "no matching 'end'"),
            ("device gpu sid=1 colour=blue\n", 1, 18, "unknown option 'colour='"),
            ("seeds 5..1\n", 1, 7, "is empty"),
            ("seeds 0..0xFFFFFFFFFFFFFFFF\n", 1, 7, "at most"),
            ("probe ret=-EWHAT\n", 1, 11, "expected a return value"),
            ("expect event F_NOTHING\n", 1, 14, "unknown event type"),
            ("smmu evtq=\n", 1, 11, "'evtq=' needs a value"),
            ("device gpu sid=1\ninject corrupt ste gpu Colour 1\n", 2, 24, "no STE field 'Colour'"),
            ("device gpu sid=1\ninject corrupt ste gpu Config 8\n", 2, 31, "does not fit in Config (3 bits)"),
            ("device gpu sid=1\ninject corrupt cd gpu V 0\n", 2, 1, "needs pasid=PROCESS|NUMBER"),
            ("expect queue evtq\n", 1, 1, "needs prod=, cons=, overflow"),
            ("expect queue priq slot=3\n", 1, 1, "slot= and contains= go together"),
            ("expect queue cmdq overflow\n", 1, 1, "the command queue has no overflow flag"),
            ("device gpu sid=1\nresume gpu later\n", 2, 12, "expected a resume action"),
            ("inject abort pgtable nowhere\n", 1, 22, "no domain or process named 'nowhere'"),
            ("invariant always-right\n", 1, 11, "expected an invariant"),
            ("device gpu sid=1 smmu=1\n", 1, 1, "behind SMMU 1, but the platform has 1"),
            ("smmu count=2\ndevice a sid=1\ndevice b sid=1 smmu=1\ndevice c sid=1 smmu=1\n", 4, 14, "already used by another device behind SMMU 1"),
            ("smmu count=2\nexpect register CR0 0 smmu=2\n", 2, 28, "SMMU 2 does not exist"),
            ("smmu count=5\n", 1, 12, "at most 4"),
            ("repeat 2\nsettle\n", 1, 1, "'repeat' has no matching 'end'"),
            ("repeat 2\nrepeat 3\nend\nend\n", 2, 1, "'repeat' blocks do not nest"),
            ("repeat 65536\nrepeat 0\n", 2, 1, "'repeat' blocks do not nest"),
            ("repeat 65536\nsettle\nsettle\nsettle\nsettle\nsettle\nsettle\nsettle\nsettle\nsettle\nsettle\nsettle\nsettle\nsettle\nsettle\nsettle\nsettle\nsettle\nend\n", 1, 1, "longer than 1048576 statements"),
            ("repeat many\nend\n", 1, 8, "expected a repeat count"),
            ("invariant no-diagnostics\ninvariant no-diagnostics\n", 2, 11, "is already declared"),
            ("device gpu sid=1 stop=never\n", 1, 23, "expected a stop mode"),
        ]
        for (text, line, column, message) in cases {
            switch Self.compile(text) {
            case .success: Issue.record("accepted: \(text.debugDescription)")
            case .failure(let error):
                #expect(error.location.line == line && error.location.column == column, "\(text.debugDescription): \(error)")
                #expect(error.message.contains(message), "\(text.debugDescription): \(error)")
                #expect(error.description.hasPrefix("test.fixture:\(error.location.line):\(error.location.column): error: "))
            }
        }
    }

    @Test func noTextTrapsTheCompiler() throws {
        // Seeded random texts: mutations of the bundled fixtures (bytes replaced, inserted,
        // deleted, lines swapped) and random token soup. Each compiles or fails with a location
        // inside the text.
        var state: UInt64 = 0x5EED_F1C7
        func next() -> UInt64 {
            state ^= state << 13
            state ^= state >> 7
            state ^= state << 17
            return state
        }
        let sources = try Self.bundled.map { try Array(String(contentsOf: $0, encoding: .utf8).utf8) }
        let alphabet = Array("abcdefxyz0123456789 =\"#.\\\n\t-_KMG,;xX\u{0}\u{7F}".utf8)
        let words = ["smmu", "device", "probe", "expect", "inject", "together", "repeat", "end", "bind", "dma", "=", "\"", "..", "0x", "sid=", "pasid=", "#", "\n"]
        var compiled = 0
        for iteration in 0..<3000 {
            var bytes: [UInt8]
            if iteration % 3 == 0 || sources.isEmpty {
                bytes = []
                for _ in 0..<Int(next() % 40) { bytes += Array(words[Int(next() % UInt64(words.count))].utf8) + [0x20] }
            } else {
                bytes = sources[Int(next() % UInt64(sources.count))]
                for _ in 0..<(1 + Int(next() % 8)) where !bytes.isEmpty {
                    let position = Int(next() % UInt64(bytes.count))
                    switch next() % 4 {
                    case 0: bytes[position] = alphabet[Int(next() % UInt64(alphabet.count))]
                    case 1: bytes.insert(UInt8(truncatingIfNeeded: next()), at: position)
                    case 2: bytes.remove(at: position)
                    default: bytes.insert(contentsOf: Array(words[Int(next() % UInt64(words.count))].utf8), at: position)
                    }
                }
            }
            let text = String(decoding: bytes, as: UTF8.self)
            switch Self.compile(text) {
            case .success(var fixture):
                compiled += 1
                // Run some of them too: whatever values a fixture gives the driver and the
                // devices, a run ends with a verdict.
                if compiled <= 150 {
                    fixture.seeds = fixture.seeds.map { $0.lowerBound...$0.lowerBound }
                    _ = FixtureRunner(fixture: fixture).run(seed: fixture.seeds?.lowerBound)
                }
            case .failure(let error):
                let lines = text.split(omittingEmptySubsequences: false, whereSeparator: \.isNewline).count
                #expect(error.location.line >= 1 && error.location.line <= max(lines, 1), "\(error)")
                #expect(error.location.column >= 1)
            }
        }
        #expect(compiled > 0, "some mutations still compile")
    }
}
