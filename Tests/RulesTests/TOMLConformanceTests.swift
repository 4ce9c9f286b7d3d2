import Foundation
import Rules
import Testing

/// The toml-test suite as Debian's golang-github-burntsushi-toml-dev installs it (scripts/install-deps.sh
/// installs the package): every valid document that uses no date decodes to the value its JSON file gives,
/// every one that uses a date is refused with the rules file's message for dates, and every invalid document
/// is refused.
@Suite struct TOMLConformanceTests {
    static let corpus = "/usr/share/gocode/src/github.com/BurntSushi/toml/internal/toml-test/tests"

    /// The `.toml` files under `kind` ("valid" or "invalid"), relative to the corpus, sorted.
    static func documents(_ kind: String) -> [String] {
        let root = corpus + "/" + kind
        guard let walker = FileManager.default.enumerator(atPath: root) else { return [] }
        return walker.compactMap { $0 as? String }.filter { $0.hasSuffix(".toml") }.sorted().map { kind + "/" + $0 }
    }

    @Test func theCorpusIsInstalled() {
        #expect(Self.documents("valid").count >= 100, "toml-test corpus missing: install golang-github-burntsushi-toml-dev (make deps)")
        #expect(Self.documents("invalid").count >= 200)
    }

    @Test func validDocumentsDecodeToTheirExpectedValues() throws {
        var decoded = 0, refusedDates = 0
        var failures: [String] = []
        for document in Self.documents("valid") {
            let bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: Self.corpus + "/" + document)))
            let jsonPath = Self.corpus + "/" + document.dropLast(5) + ".json"
            let expected = try Tagged(json: JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: jsonPath)), options: .fragmentsAllowed))
            let usesDates = expected.usesDates
            do {
                let root = try TOMLParser.parse(utf8: bytes)
                if usesDates {
                    failures.append("\(document): uses a date but was accepted")
                } else if Tagged(root) != expected {
                    failures.append("\(document): decoded to \(Tagged(root)), expected \(expected)")
                } else {
                    decoded += 1
                }
            } catch {
                if usesDates, error.message.contains("dates and times are not used in a rules file") {
                    refusedDates += 1
                } else {
                    failures.append("\(document): refused: \(error)")
                }
            }
        }
        print("toml-test valid: \(decoded) documents without dates decoded as expected, \(refusedDates) with dates refused, \(failures.count) failures")
        #expect(failures.isEmpty, "\(failures.joined(separator: "\n"))")
        #expect(decoded + refusedDates == Self.documents("valid").count)
    }

    @Test func invalidDocumentsAreRefused() throws {
        var refused = 0
        var accepted: [String] = []
        for document in Self.documents("invalid") {
            let bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: Self.corpus + "/" + document)))
            do {
                _ = try TOMLParser.parse(utf8: bytes)
                accepted.append(document)
            } catch {
                refused += 1
                // Whatever the input held, the message is one printable line.
                #expect(!error.description.unicodeScalars.contains { $0.properties.generalCategory == .control }, "\(document): \(error)")
            }
        }
        print("toml-test invalid: \(refused) of \(Self.documents("invalid").count) refused")
        #expect(accepted.isEmpty, "accepted though invalid: \(accepted.joined(separator: ", "))")
    }
}

/// A value in toml-test's JSON form: tables and arrays as they are, every scalar as its type and a value
/// normalised for comparison (integers and floats by number, not by spelling).
private indirect enum Tagged: Equatable, CustomStringConvertible {
    case table([String: Tagged])
    case array([Tagged])
    case scalar(type: String, value: String)

    init(json: Any) throws {
        if let array = json as? [Any] {
            self = .array(try array.map(Tagged.init(json:)))
        } else if let object = json as? [String: Any] {
            if object.count == 2, let type = object["type"] as? String, let value = object["value"] as? String {
                self = .scalar(type: type, value: Self.normalised(value, type: type))
            } else {
                self = .table(try object.mapValues(Tagged.init(json:)))
            }
        } else {
            throw CocoaError(.coderReadCorrupt)
        }
    }

    init(_ table: TOMLTable) {
        self = .table(Dictionary(uniqueKeysWithValues: table.entries.map { ($0.key, Tagged($0.node.value)) }))
    }

    init(_ value: TOMLValue) {
        switch value {
        case let .string(s): self = .scalar(type: "string", value: s)
        case let .integer(i): self = .scalar(type: "integer", value: String(i))
        case let .float(f): self = .scalar(type: "float", value: Self.normalised(f))
        case let .boolean(b): self = .scalar(type: "bool", value: String(b))
        case let .array(items): self = .array(items.map { Tagged($0.value) })
        case let .table(table): self = Tagged(table)
        }
    }

    private static func normalised(_ value: String, type: String) -> String {
        switch type {
        case "integer": return Int64(value).map(String.init) ?? value
        case "float":
            let unsigned = value.hasPrefix("+") || value.hasPrefix("-") ? String(value.dropFirst()) : value
            if unsigned == "nan" { return "nan" }
            if unsigned == "inf" { return value.hasPrefix("-") ? "-inf" : "inf" }
            return Double(value).map(normalised) ?? value
        default: return value
        }
    }

    private static func normalised(_ value: Double) -> String {
        // toml-test compares numbers: -0.0 is 0.0.
        value.isNaN ? "nan" : value.isInfinite ? (value < 0 ? "-inf" : "inf") : String(value == 0 ? 0 : value)
    }

    var usesDates: Bool {
        switch self {
        case let .table(t): return t.values.contains { $0.usesDates }
        case let .array(a): return a.contains { $0.usesDates }
        case let .scalar(type, _): return type.hasPrefix("date") || type.hasPrefix("time")
        }
    }

    var description: String {
        switch self {
        case let .table(t): return "{" + t.sorted { $0.key < $1.key }.map { "\($0.key): \($0.value)" }.joined(separator: ", ") + "}"
        case let .array(a): return "[" + a.map(\.description).joined(separator: ", ") + "]"
        case let .scalar(type, value): return "\(type) \(value.debugDescription)"
        }
    }
}
