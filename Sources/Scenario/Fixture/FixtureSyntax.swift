/// The lexical layer of fixture files (Fixtures/README.md has the grammar): a fixture is a
/// sequence of lines; each non-blank line, once its `#` comment is removed, is one statement: a
/// keyword followed by arguments, each a bare word, a `key=value` pair or a double-quoted
/// string. This layer knows no keywords; ``FixtureCompiler`` gives statements their meaning.
/// It never traps, whatever the text: every malformed line becomes a ``FixtureError`` naming
/// its file, line and column.

/// A position in a fixture file (1-based line and column, columns counted in characters).
public struct FixtureLocation: Sendable, Hashable, CustomStringConvertible {
    /// The file as named to the parser.
    public let file: String
    /// 1-based line.
    public let line: Int
    /// 1-based column.
    public let column: Int

    /// A location.
    public init(file: String, line: Int, column: Int) {
        self.file = file
        self.line = line
        self.column = column
    }

    /// `file:line:column`, the form compilers and editors understand.
    public var description: String { "\(file):\(line):\(column)" }
}

/// A mistake in a fixture: where, and what was expected there.
public struct FixtureError: Error, Sendable, Hashable, CustomStringConvertible {
    /// Where the mistake is.
    public let location: FixtureLocation
    /// What is wrong (and what was expected).
    public let message: String

    /// An error at `location`.
    public init(_ location: FixtureLocation, _ message: String) {
        self.location = location
        self.message = message
    }

    /// `file:line:column: error: message`.
    public var description: String { "\(location): error: \(message)" }
}

/// One argument of a statement.
public struct FixtureArgument: Sendable, Hashable {
    /// The key of a `key=value` argument (nil for a bare word or a string).
    public let key: String?
    /// The word, the value of `key=value`, or the string's decoded contents.
    public let value: String
    /// Whether the value was written as a double-quoted string.
    public let quoted: Bool
    /// Where the argument starts.
    public let location: FixtureLocation
    /// Where its value starts (after `key=`).
    public let valueLocation: FixtureLocation
}

/// One statement: a keyword and its arguments, with the source line it came from.
public struct FixtureStatement: Sendable, Hashable {
    /// The first word of the line.
    public let keyword: String
    /// The rest of the line.
    public let arguments: [FixtureArgument]
    /// Where the keyword is.
    public let location: FixtureLocation
    /// The line as written, without its comment and surrounding blanks (for reports).
    public let text: String
}

/// The lexer: fixture text to statements.
public enum FixtureSyntax {
    /// Splits `text` (the contents of `file`) into statements, or the first lexical error.
    public static func statements(in text: String, file: String) -> Result<[FixtureStatement], FixtureError> {
        var statements: [FixtureStatement] = []
        var lineNumber = 0
        for rawLine in text.split(omittingEmptySubsequences: false, whereSeparator: \.isNewline) {
            lineNumber += 1
            switch statement(in: Array(rawLine), file: file, line: lineNumber) {
            case .success(let parsed?): statements.append(parsed)
            case .success(nil): continue
            case .failure(let error): return .failure(error)
            }
        }
        return .success(statements)
    }

    private static func isBlank(_ character: Character) -> Bool {
        character == " " || character == "\t" || character == "\r"
    }

    /// One line; nil when it holds no statement (blank or comment only).
    private static func statement(in characters: [Character], file: String, line: Int) -> Result<FixtureStatement?, FixtureError> {
        func location(_ index: Int) -> FixtureLocation { FixtureLocation(file: file, line: line, column: index + 1) }
        var words: [FixtureArgument] = []
        var index = 0
        var end = characters.count
        while index < characters.count {
            let character = characters[index]
            if isBlank(character) { index += 1; continue }
            if character == "#" { end = index; break }
            if !character.isASCII || (character.asciiValue.map { $0 < 0x20 || $0 == 0x7F } ?? true) {
                return .failure(FixtureError(location(index), "unexpected character \(describe(character)); expected a word, key=value or a \"string\""))
            }
            let start = index
            if character == "\"" {
                switch string(characters, from: index, location: location) {
                case .success(let (value, next)):
                    words.append(FixtureArgument(key: nil, value: value, quoted: true, location: location(start), valueLocation: location(start)))
                    index = next
                case .failure(let error): return .failure(error)
                }
            } else {
                var key: String?
                var valueStart = index
                var value = ""
                var quoted = false
                while index < characters.count, !isBlank(characters[index]), characters[index] != "#" {
                    let next = characters[index]
                    if next == "=" && key == nil {
                        guard !value.isEmpty else { return .failure(FixtureError(location(index), "'=' needs a key before it (key=value)")) }
                        key = value
                        value = ""
                        index += 1
                        valueStart = index
                        if index < characters.count, characters[index] == "\"" {
                            switch string(characters, from: index, location: location) {
                            case .success(let (decoded, after)):
                                value = decoded
                                quoted = true
                                index = after
                            case .failure(let error): return .failure(error)
                            }
                            break
                        }
                        continue
                    }
                    if next == "\"" {
                        return .failure(FixtureError(location(index), "a string must start a word or follow 'key='"))
                    }
                    if !next.isASCII || (next.asciiValue.map { $0 < 0x20 || $0 == 0x7F } ?? true) {
                        return .failure(FixtureError(location(index), "unexpected character \(describe(next)) in a word"))
                    }
                    value.append(next)
                    index += 1
                }
                if let key, value.isEmpty, !quoted {
                    return .failure(FixtureError(location(valueStart), "'\(key)=' needs a value"))
                }
                if index < characters.count, !isBlank(characters[index]), characters[index] != "#" {
                    return .failure(FixtureError(location(index), "expected a blank between arguments"))
                }
                words.append(FixtureArgument(key: key, value: value, quoted: quoted, location: location(start), valueLocation: location(valueStart)))
            }
        }
        guard let first = words.first else { return .success(nil) }
        guard first.key == nil, !first.quoted else {
            return .failure(FixtureError(first.location, "a statement starts with a keyword, not \(first.quoted ? "a string" : "key=value")"))
        }
        let text = String(characters[first.location.column - 1..<end]).trimmingBlanks()
        return .success(FixtureStatement(keyword: first.value, arguments: Array(words.dropFirst()), location: first.location, text: text))
    }

    /// A double-quoted string starting at `start`: its decoded contents and the index after
    /// its closing quote. Escapes: `\"`, `\\`, `\n`, `\t`, `\xHH`.
    private static func string(_ characters: [Character], from start: Int, location: (Int) -> FixtureLocation) -> Result<(String, Int), FixtureError> {
        var index = start + 1
        var value = ""
        while index < characters.count {
            let character = characters[index]
            if character == "\"" { return .success((value, index + 1)) }
            if character == "\\" {
                guard index + 1 < characters.count else { break }
                let escape = characters[index + 1]
                switch escape {
                case "\"": value.append("\"")
                case "\\": value.append("\\")
                case "n": value.append("\n")
                case "t": value.append("\t")
                case "x":
                    guard index + 3 < characters.count,
                          let byte = UInt8(String(characters[index + 2...index + 3]), radix: 16) else {
                        return .failure(FixtureError(location(index), "\\x needs two hexadecimal digits"))
                    }
                    value.unicodeScalars.append(Unicode.Scalar(byte))
                    index += 4
                    continue
                default:
                    return .failure(FixtureError(location(index), "unknown escape \\\(escape) (use \\\", \\\\, \\n, \\t or \\xHH)"))
                }
                index += 2
                continue
            }
            value.append(character)
            index += 1
        }
        return .failure(FixtureError(location(start), "unterminated string (expected a closing \")"))
    }

    private static func describe(_ character: Character) -> String {
        let scalars = character.unicodeScalars.map { "U+" + String($0.value, radix: 16, uppercase: true) }
        return scalars.joined(separator: " ")
    }
}

extension String {
    func trimmingBlanks() -> String {
        var scalars = Substring(self)
        while let first = scalars.first, first == " " || first == "\t" || first == "\r" { scalars.removeFirst() }
        while let last = scalars.last, last == " " || last == "\t" || last == "\r" { scalars.removeLast() }
        return String(scalars)
    }
}
