import Foundation
import Platform
import Scenario

/// `smmuv3 step FIXTURE [--seed N]`: the interactive stepper, reading its commands from
/// standard input.
enum Step {
    static let usage = """
    usage: smmuv3 step FIXTURE [--seed N] [--trace CATEGORIES]

    Steps through one run of FIXTURE (under seed N, or the fixture's first seed), reading
    commands from standard input: a terminal, a here-document or a script. Nothing runs until
    the first command. End of input is quit. When standard input is not a terminal each
    command read is echoed after the "(smmuv3) " prompt, so that the output reads as a
    session. Commands:

    \(FixtureStepper.help.map { "  " + $0 }.joined(separator: "\n"))

    options:
      --seed N       the seed of the interleaving (the fixture's first seed otherwise)
      --trace CATS   what the `trace` command keeps (as for run; default standard)
      -h, --help     this text

    exit status: 0 every check run so far passed; 1 a check failed; 2 bad usage or a fixture
    error (file:line:column: error: ...).
    """

    static func run(_ arguments: [String]) throws -> Int32 {
        var file: String?
        var seed: UInt64?
        var trace = TraceCategory.standard
        var remaining = arguments[...]
        while let argument = remaining.popFirst() {
            switch argument {
            case "-h", "--help":
                print(usage)
                return 0
            case "--seed":
                seed = try seedOption(&remaining)
            case "--trace":
                trace = try traceOption(&remaining)
            default:
                if argument.hasPrefix("-") { throw UsageError("step: unknown option '\(argument)'") }
                guard file == nil else { throw UsageError("step takes one fixture file") }
                file = argument
            }
        }
        guard let file else { throw UsageError("step needs a fixture file") }
        guard let fixture = Run.load(file) else { return 2 }
        let chosen = seed ?? fixture.seeds?.lowerBound
        let stepper = try FixtureStepper(fixture: fixture, seed: chosen, traceCategories: trace)
        let interactive = isatty(0) != 0
        print("stepping \(file)\(chosen.map { " under seed \($0)" } ?? " (unseeded)"): \(fixture.steps.count) steps; help lists the commands")
        while !stepper.hasQuit {
            if interactive {
                print("(smmuv3) ", terminator: "")
                fflush(nil)
            }
            guard let line = readLine() else { break }
            if !interactive { print("(smmuv3) \(line)") }
            for output in stepper.execute(line) { print(output) }
        }
        let run = stepper.run
        let failed = run.checks.filter { !$0.passed }
        for check in failed { print("FAIL \(check.location.file):\(check.location.line): \(check.text): \(check.detail)") }
        return failed.isEmpty ? 0 : 1
    }
}
