import Foundation
import Testing

/// The `smmuv3` command as users run it: exit statuses, fixture errors by file:line:column,
/// the replay hint on a failure, `--help` everywhere.
@Suite struct CommandLineTests {
    /// The `smmuv3` built next to the test bundle.
    static var executable: URL {
        URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("smmuv3")
    }

    static func run(_ arguments: [String], input: String? = nil) throws -> (status: Int32, output: String, errors: String) {
        let process = Process()
        process.executableURL = executable
        process.arguments = arguments
        let output = Pipe(), errors = Pipe(), standardInput = Pipe()
        process.standardOutput = output
        process.standardError = errors
        process.standardInput = standardInput
        try process.run()
        standardInput.fileHandleForWriting.write(Data((input ?? "").utf8))
        try standardInput.fileHandleForWriting.close()
        let out = output.fileHandleForReading.readDataToEndOfFile()
        let err = errors.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: out, as: UTF8.self), String(decoding: err, as: UTF8.self))
    }

    static func temporaryFixture(_ text: String) throws -> String {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("cli-\(UUID().uuidString).fixture").path
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    @Test func aFixtureMistakeExitsTwoNamingLineAndColumn() throws {
        let path = try Self.temporaryFixture("device gpu sid=0x10\nprobe\nattach gpu d9\n")
        defer { try? FileManager.default.removeItem(atPath: path) }
        let result = try Self.run(["run", path])
        #expect(result.status == 2)
        #expect(result.errors.contains("\(path):3:12: error: no domain named 'd9'"), "\(result.errors)")
        #expect(result.output.isEmpty)
    }

    @Test func aFailedCheckExitsOneWithTheTraceAndTheReplayingSeed() throws {
        let path = try Self.temporaryFixture("seeds 3..5\ndevice gpu sid=0x10\nprobe\nexpect register CR0ACK 0\n")
        defer { try? FileManager.default.removeItem(atPath: path) }
        let result = try Self.run(["run", path])
        #expect(result.status == 1)
        #expect(result.output.contains("FAIL \(path):4: expect register CR0ACK 0: CR0ACK = 0x1f"), "\(result.output)")
        #expect(result.output.contains("--- trace around the first failure ---"))
        #expect(result.output.contains("replay: smmuv3 run \(path) --seed 3"))
    }

    @Test func passingFixturesExitZeroAndPrintEachCheck() throws {
        let path = try Self.temporaryFixture("device gpu sid=0x10\nprobe\nexpect register CR0ACK 0x1F\n")
        defer { try? FileManager.default.removeItem(atPath: path) }
        let result = try Self.run(["run", path, "--seed", "9"])
        #expect(result.status == 0)
        #expect(result.output.contains("PASS \(path):3: expect register CR0ACK 0x1F"))
        #expect(result.output.contains("ok \(path) (seed 9)"))
    }

    @Test func everySubcommandHasHelpAndUnknownOptionsGetTheUsage() throws {
        for command in ["run", "step", "decode", "demo"] {
            let result = try Self.run([command, "--help"])
            #expect(result.status == 0 && result.output.hasPrefix("usage: smmuv3 \(command)"), "\(command): \(result.output)")
        }
        let unknown = try Self.run(["run", "--frobnicate", "x.fixture"])
        #expect(unknown.status == 2)
        #expect(unknown.errors.hasPrefix("smmuv3: run: unknown option '--frobnicate'\nusage: smmuv3 run"))
    }

    @Test func stepReadsItsCommandsFromStandardInputAndEchoesThem() throws {
        let path = try Self.temporaryFixture("device gpu sid=0x10\nprobe\nexpect register CR0ACK 0x1F\n")
        defer { try? FileManager.default.removeItem(atPath: path) }
        let result = try Self.run(["step", path, "--seed", "4"], input: "next\nqueue cmdq\ncontinue\nquit\n")
        #expect(result.status == 0, "\(result.errors)")
        let lines = result.output.split(separator: "\n").map(String.init)
        #expect(lines.first == "stepping \(path) under seed 4: 2 steps; help lists the commands")
        #expect(lines.contains("(smmuv3) next"))
        #expect(lines.contains { $0.hasPrefix("stopped: hw/smmu consumed CMDQ [0] CMD_CFGI_ALL") }, "\(result.output)")
        #expect(lines.contains { $0.contains("CONS 0x1 (index 1, wrap 0)") }, "\(result.output)")
        #expect(lines.contains("the run is finished: 2 of 2 checks passed"))
    }

    @Test func stepExitsOneWhenACheckFailedAndTwoOnABadFixture() throws {
        let failing = try Self.temporaryFixture("device gpu sid=0x10\nprobe\nexpect register CR0ACK 0\n")
        defer { try? FileManager.default.removeItem(atPath: failing) }
        let failed = try Self.run(["step", failing], input: "continue\n")
        #expect(failed.status == 1)
        #expect(failed.output.contains("FAIL \(failing):3: expect register CR0ACK 0: CR0ACK = 0x1f"), "\(failed.output)")
        let broken = try Self.temporaryFixture("probe\nbind gpu\n")
        defer { try? FileManager.default.removeItem(atPath: broken) }
        let bad = try Self.run(["step", broken], input: "")
        #expect(bad.status == 2)
        #expect(bad.errors.contains("\(broken):2:"), "\(bad.errors)")
        let usage = try Self.run(["step"], input: "")
        #expect(usage.status == 2)
        #expect(usage.errors.contains("usage: smmuv3 step FIXTURE"))
    }

    @Test func perfettoWritesOneFixturesTimeline() throws {
        let path = try Self.temporaryFixture("device gpu sid=0x10\nprobe\nexpect register CR0ACK 0x1F\n")
        let output = FileManager.default.temporaryDirectory.appendingPathComponent("timeline-\(UUID().uuidString).json").path
        defer {
            try? FileManager.default.removeItem(atPath: path)
            try? FileManager.default.removeItem(atPath: output)
        }
        let result = try Self.run(["run", path, "--perfetto", output])
        #expect(result.status == 0)
        #expect(result.errors.hasPrefix("perfetto: wrote \(output) ("), "\(result.errors)")
        let data = try Data(contentsOf: URL(fileURLWithPath: output))
        let document = try JSONSerialization.jsonObject(with: data) as? [String: Any]
        #expect((document?["traceEvents"] as? [Any])?.isEmpty == false)
        let two = try Self.run(["run", path, path, "--perfetto", output])
        #expect(two.status == 2)
        #expect(two.errors.hasPrefix("smmuv3: --perfetto records one fixture's run; 2 were given"))
    }
}
