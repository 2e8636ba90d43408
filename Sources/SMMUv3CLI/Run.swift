import Foundation
import Platform
import Scenario

/// `smmuv3 run FIXTURE... [--seed N | --seeds A..B] [--trace CATEGORIES] [--perfetto FILE] [--story] [--quiet]`:
/// runs fixtures, printing each check with its line; on a failure, the trace around it and the
/// seed that replays it.
enum Run {
    static let usage = """
    usage: smmuv3 run FIXTURE... [options]

    Runs each fixture (Fixtures/README.md) under its seeds and prints every check with its
    line: "PASS file:line: text" or "FAIL file:line: text: what was found". On the first
    failing seed, prints the model's trace and the kernel log around the failure and the
    command that replays it.

    options:
      --seed N           run under seed N only (overrides the fixture's seed/seeds)
      --seeds A..B       run under seeds A to B (inclusive)
      --trace CATS       print the model's trace as it runs (categories as for demo)
      --story            print what each step did (kernel log, events, responses)
      --perfetto FILE    write the run's timeline as Chrome trace-event JSON (open it in
                         ui.perfetto.dev): a track per kernel context, the SMMU and each
                         endpoint, queue occupancy counters, PASID state spans. One fixture
                         only; the first seed's run, or the failing seed's when one fails
      --quiet            print failures and the summary only
      -h, --help         this text

    exit status: 0 every check passed; 1 a check failed; 2 bad usage or a fixture error
    (reported as file:line:column: error: ...).
    """

    static func run(_ arguments: [String]) throws -> Int32 {
        var files: [String] = []
        var seeds: ClosedRange<UInt64>?
        var trace: TraceCategory?
        var story = false
        var quiet = false
        var perfettoFile: String?
        var remaining = arguments[...]
        while let argument = remaining.popFirst() {
            switch argument {
            case "-h", "--help":
                print(usage)
                return 0
            case "--seed":
                let seed = try seedOption(&remaining)
                seeds = seed...seed
            case "--seeds":
                guard let text = remaining.popFirst() else { throw UsageError("--seeds needs A..B") }
                let parts = text.components(separatedBy: "..")
                guard parts.count == 2, let low = Decode.parseNumber(parts[0]), let high = Decode.parseNumber(parts[1]), low <= high, high - low < 1 << 24 else {
                    throw UsageError("--seeds needs A..B with A <= B and at most 2^24 seeds, got '\(text)'")
                }
                seeds = low...high
            case "--trace":
                trace = try traceOption(&remaining)
            case "--perfetto":
                guard let file = remaining.popFirst(), !file.hasPrefix("-") else { throw UsageError("--perfetto needs a file name") }
                perfettoFile = file
            case "--story": story = true
            case "--quiet": quiet = true
            default:
                if argument.hasPrefix("-") { throw UsageError("run: unknown option '\(argument)'") }
                files.append(argument)
            }
        }
        guard !files.isEmpty else { throw UsageError("run needs at least one fixture file") }
        if perfettoFile != nil && files.count > 1 { throw UsageError("--perfetto records one fixture's run; \(files.count) were given") }
        var fixtures: [Fixture] = []
        for file in files {
            guard var fixture = load(file) else { return 2 }
            if let seeds { fixture.seeds = seeds }
            fixtures.append(fixture)
        }
        var failed = 0
        for fixture in fixtures {
            let runner = FixtureRunner(fixture: fixture, traceCategories: trace ?? .standard, traceSink: trace.map { _ in { print($0) } })
            let seedList = runner.seeds
            var passedSeeds = 0
            var recorded: PerfettoTrace?
            for (index, seed) in seedList.enumerated() {
                let timeline = perfettoFile != nil && index == 0 ? PerfettoTrace() : nil
                var result = runner.run(seed: seed, perfetto: timeline)
                if let timeline { recorded = timeline }
                if perfettoFile != nil && index > 0 && !result.passed {
                    // The same seed replays the same run: record the failing one.
                    let failing = PerfettoTrace()
                    result = runner.run(seed: seed, perfetto: failing)
                    recorded = failing
                }
                let verbose = !quiet && (index == 0 || !result.passed)
                if story && verbose { for line in result.transcript { print("  \(line)") } }
                if verbose {
                    for check in result.checks where !check.passed || !story {
                        print("\(check.passed ? "PASS" : "FAIL") \(check.location.file):\(check.location.line): \(check.text)\(check.passed ? "" : ": \(check.detail)")")
                    }
                }
                if !result.passed {
                    if quiet, let failure = result.firstFailure {
                        print("FAIL \(failure.location.file):\(failure.location.line): \(failure.text): \(failure.detail)")
                    }
                    print("--- trace around the first failure ---")
                    for line in result.traceAtFailure { print(line) }
                    let replay = seed.map { " --seed \($0)" } ?? ""
                    print("replay: smmuv3 run \(fixture.file)\(replay)")
                    failed += 1
                    break
                }
                passedSeeds += 1
                if seedList.count > 16 && (index + 1) % max(seedList.count / 10, 1) == 0 {
                    printError("\(fixture.file): \(index + 1)/\(seedList.count) seeds passed")
                }
            }
            if let perfettoFile, let recorded {
                do {
                    try recorded.json.write(toFile: perfettoFile, atomically: true, encoding: .utf8)
                } catch {
                    printError("\(perfettoFile): error: cannot write the trace: \(error.localizedDescription)")
                    return 2
                }
                printError("perfetto: wrote \(perfettoFile) (\(recorded.count) events\(recorded.dropped > 0 ? ", \(recorded.dropped) dropped" : ""))")
            }
            if passedSeeds == seedList.count {
                let seedText = seedList.count == 1 ? (seedList[0].map { "seed \($0)" } ?? "unseeded") : "\(seedList.count) seeds"
                print("ok \(fixture.file) (\(seedText))")
            }
        }
        return failed == 0 ? 0 : 1
    }

    /// The compiled fixture in `file`, or nil after printing why not (file:line:column).
    static func load(_ file: String) -> Fixture? {
        guard let data = FileManager.default.contents(atPath: file) else {
            printError("\(file): error: cannot read the file")
            return nil
        }
        switch FixtureCompiler.compile(String(decoding: data, as: UTF8.self), file: file) {
        case .success(let fixture):
            return fixture
        case .failure(let error):
            printError("\(error)")
            return nil
        }
    }
}
