import Foundation
import Platform
import SMMUv3
import SMMUv3Host

/// `smmuv3`: the command-line front end of the model.
enum CLI {
    static let usage = """
    usage: smmuv3 <command> [options]

    commands:
      run FIXTURE... [--seed N | --seeds A..B] [--trace CATEGORIES] [--perfetto FILE] [--story]
                                  run fixtures and check their expectations
      step FIXTURE [--seed N]     step through a fixture's run: each command the SMMU
                                  consumes, breakpoints, registers, queues, STE/CD, PASIDs
      demo [--trace CATEGORIES]   bring an SMMU up through the bus, run commands, provoke
                                  errors and events, and print the trace
      decode cmd DW0 DW1          decode a command queue entry
      decode evt DW0 DW1 DW2 DW3  decode an event record
      decode pri DW0 DW1          decode a PRI queue entry
      decode ste DW0 [... DW7]    decode a Stream Table Entry field by field, with its validity
      decode cd DW0 [... DW7]     decode a Context Descriptor field by field, with its validity
      help                        this text

    Every command takes --help. Exit status: 0 success, 1 a failed check or run,
    2 a usage or input error (a one-line message, then this usage hint).

    CATEGORIES is a comma-separated list of: \(TraceCategory.named.map(\.1).joined(separator: ", ")),
    or "all" / "standard" (the default).
    """

    static func main() -> Int32 {
        var arguments = Array(CommandLine.arguments.dropFirst())
        guard let command = arguments.first else {
            print(usage)
            return 2
        }
        arguments.removeFirst()
        do {
            switch command {
            case "demo": return try Demo.run(arguments)
            case "run": return try Run.run(arguments)
            case "step": return try Step.run(arguments)
            case "decode": return try Decode.run(arguments)
            case "help", "--help", "-h":
                print(usage)
                return 0
            default:
                throw UsageError("unknown command '\(command)'")
            }
        } catch let error as UsageError {
            printError("smmuv3: \(error.message)")
            printError(command == "run" ? Run.usage : command == "step" ? Step.usage : usage)
            return 2
        } catch {
            printError("smmuv3: \(error)")
            return 1
        }
    }
}

/// The value after `--seed`.
func seedOption(_ remaining: inout ArraySlice<String>) throws -> UInt64 {
    guard let text = remaining.popFirst(), let seed = Decode.parseNumber(text) else { throw UsageError("--seed needs a number") }
    return seed
}

/// The categories after `--trace` (as `TraceCategory(names:)` reads them).
func traceOption(_ remaining: inout ArraySlice<String>) throws -> TraceCategory {
    guard let names = remaining.popFirst() else { throw UsageError("--trace needs a category list") }
    guard let parsed = TraceCategory(names: names) else { throw UsageError("unknown trace category in '\(names)'") }
    return parsed
}

/// A command-line mistake: reported with the usage hint and exit status 2.
struct UsageError: Error {
    let message: String
    init(_ message: String) { self.message = message }
}

func printError(_ text: String) {
    var standardError = StandardError()
    print(text, to: &standardError)
}

struct StandardError: TextOutputStream {
    mutating func write(_ string: String) {
        FileHandle.standardError.write(Data(string.utf8))
    }
}

exit(CLI.main())
