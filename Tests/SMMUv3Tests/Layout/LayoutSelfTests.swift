import Foundation
import Testing

/// Checks every field table of the layout targets (SMMUv3Layout, and VMSA's descriptor) as
/// written in the source: fields lie inside their word or structure, a table that describes one
/// view of its bits has no overlapping fields and lists them in ascending bit order, and a
/// doc comment that names a position (`STE.S2TG[175:174]`, `record [79:64]`, `DW1[8:0]`)
/// names the declared one. Reading the source keeps the tables themselves free of a second
/// list of their fields.
@Suite struct LayoutSelfTests {
    /// One declared field.
    struct Field {
        let table: String
        let name: String
        let kind: String
        let high: Int
        let low: Int
        let doc: String
        let file: String
        let line: Int
    }

    /// Tables whose fields are several views of the same bits, so overlaps are expected.
    static let multiViewTables: [String: String] = [
        "Cmd.DW0": "each opcode has its own layout of the first doubleword",
        "Cmd.DW1": "each opcode has its own layout of the second doubleword",
        "Evt.DW1": "each event type has its own layout",
        "Evt.DW2": "each event type has its own layout",
        "Evt.DW3": "each event type has its own layout",
        "L1Field": "L1STD and L1CD share the table",
        "Descriptor": "stage-1 and stage-2 attributes share bits",
        "Reg.IRQCfg": "fields of the IRQ_CFG0, CFG1 and CFG2 registers",
        "Reg.STRTAB": "fields of STRTAB_BASE and STRTAB_BASE_CFG",
        "Reg.Queue": "fields of the queue BASE, PROD and CONS registers",
    ]

    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent()

    static let files: [String] = {
        let layout = root.appendingPathComponent("Sources/SMMUv3Layout")
        let names = (try? FileManager.default.contentsOfDirectory(atPath: layout.path)) ?? []
        return names.filter { $0.hasSuffix(".swift") }.sorted().map { "Sources/SMMUv3Layout/" + $0 } + ["Sources/VMSA/Descriptor.swift"]
    }()

    /// The fields of every table, and how many field declarations each file has.
    static let parsed: (fields: [Field], declarations: [String: Int]) = {
        let declaration = /static var (\w+): (BitField|StructureField|AddressField) \{ \2\((.*)\) \}/
        let typeOpening = /^\s*(?:public )?(?:enum|struct) (\w+)[^{]*\{\s*$/
        var fields: [Field] = []
        var declarations: [String: Int] = [:]
        for file in files {
            guard let text = try? String(contentsOf: root.appendingPathComponent(file), encoding: .utf8) else { continue }
            var stack: [(name: String, indent: Int)] = []
            var doc = ""
            for (number, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
                let indent = line.prefix { $0 == " " }.count
                let trimmed = line.drop { $0 == " " }
                if let opening = try? typeOpening.wholeMatch(in: String(line)) {
                    stack.append((String(opening.1), indent))
                    continue
                }
                if trimmed == "}", let last = stack.last, last.indent == indent {
                    stack.removeLast()
                    continue
                }
                if let match = line.firstMatch(of: declaration) {
                    declarations[file, default: 0] += 1
                    let arguments = match.3.split(separator: ",").map { $0.replacing("bit:", with: "").trimmingCharacters(in: .whitespaces) }
                    let numbers = arguments.compactMap { Int($0.replacing("_", with: "")) }
                    guard let high = numbers.first else { continue }
                    fields.append(Field(
                        table: stack.map(\.name).joined(separator: "."), name: String(match.1), kind: String(match.2),
                        high: high, low: numbers.count > 1 ? numbers[1] : high, doc: doc, file: file, line: number + 1))
                }
                doc = trimmed.hasPrefix("///") ? String(trimmed) : ""
            }
        }
        return (fields, declarations)
    }()

    static var tables: [String: [Field]] { Dictionary(grouping: parsed.fields, by: \.table) }

    @Test func everyDeclaredFieldIsParsed() {
        let counts = Dictionary(grouping: Self.parsed.fields, by: \.file).mapValues(\.count)
        #expect(Self.parsed.declarations == counts)
        #expect((Self.tables["STEField"]?.count ?? 0) >= 40)
        #expect((Self.tables["CDField"]?.count ?? 0) >= 30)
        #expect((Self.tables["Reg.IDR0"]?.count ?? 0) >= 20)
        #expect((Self.tables["Descriptor"]?.count ?? 0) >= 20)
        #expect(Set(Self.multiViewTables.keys).isSubset(of: Set(Self.tables.keys)), "an exemption names a table that no longer exists")
    }

    @Test func fieldsLieInsideTheirWordOrStructure() {
        for field in Self.parsed.fields {
            let limit = field.kind == "StructureField" ? 512 : 64
            #expect(field.low <= field.high && field.high < limit, "\(field.file):\(field.line) \(field.table).\(field.name) [\(field.high):\(field.low)]")
        }
    }

    @Test func aSingleViewTableHasNoOverlapsAndAscendingFields() {
        for (table, fields) in Self.tables where Self.multiViewTables[table] == nil {
            for (previous, next) in zip(fields, fields.dropFirst()) {
                #expect(previous.high < next.low, "\(next.file):\(next.line) \(table).\(next.name) [\(next.high):\(next.low)] overlaps or precedes \(previous.name) [\(previous.high):\(previous.low)]")
            }
        }
    }

    /// The position a doc comment names for its field, in the field's own numbering, when it
    /// names one: `X.Name[h:l]` (a register or structure field), `record [h:l]` (an event
    /// record bit, 64 per doubleword), or `DWn[h:l]`.
    static func documentedPosition(_ field: Field) -> (high: Int, low: Int)? {
        func numbers(_ high: Substring, _ low: Substring?) -> (Int, Int)? {
            guard let high = Int(high) else { return nil }
            return (high, low.flatMap { Int($0) } ?? high)
        }
        if let match = field.doc.firstMatch(of: /^\/\/\/ [A-Z][A-Z0-9_]*\.[A-Za-z0-9_]+\[(\d+)(?::(\d+))?\]/) {
            return numbers(match.1, match.2)
        }
        if let match = field.doc.firstMatch(of: /record \[(\d+)(?::(\d+))?\]/), let (high, low) = numbers(match.1, match.2) {
            let doubleword = field.table.last.flatMap { Int(String($0)) } ?? 0
            return (high - 64 * doubleword, low - 64 * doubleword)
        }
        if let match = field.doc.firstMatch(of: /DW\d\[(\d+)(?::(\d+))?\]/) {
            return numbers(match.1, match.2)
        }
        return nil
    }

    @Test func docCommentsNameTheDeclaredPositions() {
        var checked = 0
        for field in Self.parsed.fields {
            guard let documented = Self.documentedPosition(field) else { continue }
            checked += 1
            #expect(documented == (field.high, field.low), "\(field.file):\(field.line) \(field.table).\(field.name) is [\(field.high):\(field.low)], its doc says \(field.doc)")
        }
        #expect(checked >= 100, "only \(checked) documented positions found")
    }
}
