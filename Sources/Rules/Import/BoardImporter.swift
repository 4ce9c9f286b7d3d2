import BenchModel
import FirmwareImage
import FoundationEssentials
import Parts

/// A board of a `boards.txt` that became no rule, and why.
public struct SkippedBoard: Sendable, Hashable, CustomStringConvertible {
    /// "nano" or "nano:atmega168" (board and processor-menu entry).
    public let board: String
    public let name: String
    public let reason: String

    public var description: String { "\(board) (\(name)): \(reason)" }
}

/// One rule made from a board, as TOML text, checked as `bootmedic rules check` checks it.
public struct ImportedRule: Sendable {
    public let name: String
    public let board: String
    public let part: AVRPart
    public let toml: String
}

/// Why an import could not start.
public enum BoardImportError: Error, Equatable, Sendable, CustomStringConvertible {
    case file(BoardsFileError)
    case unknownBoard(String, path: String, suggestion: String)

    public var description: String {
        switch self {
        case let .file(error): return error.description
        case let .unknownBoard(id, path, suggestion): return "\(path) has no board '\(id)'\(suggestion)"
        }
    }
}

/// `bootmedic rules import`: one rule per board (and per processor-menu entry) of an Arduino
/// `boards.txt` whose bootloader file exists — part from `build.mcu`, the file pinned by its sha256,
/// fuses and lock bits, the clock the low fuse selects — each checked as `rules check` would; every
/// board that cannot be expressed is listed with the reason.
public struct BoardImport: Sendable {
    public let source: BoardsFile
    public let rules: [ImportedRule]
    public let skipped: [SkippedBoard]

    /// Imports `boards` (ids; all boards when empty) from `file`.
    public init(file: BoardsFile, boards selection: [String] = []) throws(BoardImportError) {
        for id in selection where !file.boards.contains(where: { $0.id == id }) {
            throw .unknownBoard(id, path: file.path, suggestion: suggestion(for: id, among: file.boards.map(\.id)))
        }
        var rules: [ImportedRule] = []
        var skipped: [SkippedBoard] = []
        var names: Set<String> = []
        for board in file.boards where selection.isEmpty || selection.contains(board.id) {
            let variants: [ArduinoBoard.Variant?] = board.variants.isEmpty ? [nil] : board.variants
            for variant in variants {
                let label = variant.map { "\(board.id):\($0.id)" } ?? board.id
                let title = variant.map { "\(board.name), \($0.label)" } ?? board.name
                var name = Self.ruleName(board.id, variant?.id)
                var n = 2
                while names.contains(name) { name = Self.ruleName(board.id, variant?.id) + "-\(n)"; n += 1 }
                switch Self.rule(named: name, title: title, board: board, variant: variant, file: file) {
                case let .success(rule):
                    names.insert(name)
                    rules.append(ImportedRule(name: name, board: label, part: rule.part, toml: rule.toml))
                case let .failure(reason):
                    skipped.append(SkippedBoard(board: label, name: title, reason: reason.text))
                }
            }
        }
        self.source = file
        self.rules = rules
        self.skipped = skipped
    }

    private struct Reason: Error { let text: String }

    /// "nano" + "atmega328old" → "nano-atmega328old"; only lower-case letters, digits and '-'.
    static func ruleName(_ board: String, _ variant: String?) -> String {
        let raw = ([board] + (variant.map { [$0] } ?? [])).joined(separator: "-").lowercased()
        let cleaned = String(raw.map { $0.isASCII && ($0.isLetter || $0.isNumber) ? $0 : "-" })
        return cleaned.split(separator: "-").joined(separator: "-")
    }

    private static func rule(named name: String, title: String, board: ArduinoBoard, variant: ArduinoBoard.Variant?,
                             file: BoardsFile) -> Result<(part: AVRPart, toml: String), Reason> {
        var properties = board.properties
        for (key, value) in variant?.properties ?? [:] { properties[key] = value }
        if let menu = board.otherMenusSettingBootloader.first {
            return .failure(Reason(text: "its menu '\(menu)' changes the bootloader or fuses, and a rule cannot tell which entry a board was built with; write those rules by hand"))
        }
        guard let mcu = properties["build.mcu"] else { return .failure(Reason(text: "it names no build.mcu")) }
        guard case let .avr(part)? = PartCatalog.part(named: mcu) else {
            return .failure(Reason(text: "bootmedic does not know the part '\(mcu)'"))
        }
        guard let declared = properties["bootloader.file"] else { return .failure(Reason(text: "it names no bootloader.file")) }
        let relative: String
        switch expand(declared, with: properties) {
        case let .success(text): relative = text
        case let .failure(reason): return .failure(reason)
        }
        let path = relative.hasPrefix("/") ? relative : file.bootloaderFolder + "/" + relative
        let firmware: FirmwareFile
        do { firmware = try FirmwareFile(path: path) } catch {
            let origin = KnownBootloaders.entry(forPath: path, pinned: nil).map { "; it is \($0.summary), from \($0.origin)" } ?? ""
            if case .missing = error { return .failure(Reason(text: "its bootloader file \(path) is not there\(origin)")) }
            return .failure(Reason(text: "its bootloader file cannot be used: \(error)\(origin)"))
        }
        var fuses: [(String, UInt8)] = []
        for (byte, key) in [("low", "bootloader.low_fuses"), ("high", "bootloader.high_fuses"), ("extended", "bootloader.extended_fuses")] {
            guard let text = properties[key] else { continue }
            guard let value = byteValue(text) else { return .failure(Reason(text: "\(key) '\(text)' is not a byte")) }
            fuses.append((byte, value))
        }
        var lock: UInt8?
        if let text = properties["bootloader.lock_bits"] {
            guard let value = byteValue(text) else { return .failure(Reason(text: "bootloader.lock_bits '\(text)' is not a byte")) }
            lock = value
        }

        var lines = ["[[rule]]", "name = \(tomlString(name))", "description = \(tomlString(title))",
                     "match = { part = \(tomlString(part.id)) }", "bootloader = \(tomlString(path))", "sha256 = \"\(firmware.sha256)\""]
        if !fuses.isEmpty {
            lines.append("fuses = { " + fuses.map { "\($0.0) = 0x\(hex($0.1))" }.joined(separator: ", ") + " }")
        }
        if let lock { lines.append("lock = 0x\(hex(lock))") }
        if let low = fuses.first(where: { $0.0 == "low" })?.1, let clock = part.clock(low: low) {
            lines.append("clock = \(tomlString(clock.source.rawValue))")
            if let divided = clock.dividedBy8 { lines.append("clock_div8 = \(divided)") }
        }
        let toml = lines.joined(separator: "\n") + "\n"

        // The same checks as `bootmedic rules check`: a rule that would not pass is not written.
        let (_, problems) = RuleChecker.check(RulesFile.parse(toml, path: file.path), path: file.path)
        if let error = problems.first(where: { $0.severity == .error }) {
            return .failure(Reason(text: "rules check would refuse it: \(error.message)"))
        }
        return .success((part, toml))
    }

    /// Replaces `{key}` with the board's property `key`, as the Arduino IDE does in bootloader names.
    private static func expand(_ text: String, with properties: [String: String]) -> Result<String, Reason> {
        var out = ""
        var rest = Substring(text)
        while let open = rest.firstIndex(of: "{") {
            guard let close = rest[open...].firstIndex(of: "}") else { break }
            let key = String(rest[rest.index(after: open)..<close])
            guard let value = properties[key] else {
                return .failure(Reason(text: "its bootloader.file '\(text)' uses {\(key)}, which the board does not define"))
            }
            out += rest[..<open] + value
            rest = rest[rest.index(after: close)...]
        }
        return .success(out + rest)
    }

    /// The whole rules file: a header naming the source, the rules, and what was left out.
    public func renderedFile(by tool: String) -> String {
        var text = """
        # Rules imported from \(source.path) by \(tool).
        # One rule per board (and per processor-menu entry) whose bootloader file exists, pinned by its sha256.
        # The first rule for a part is the one a bench picks for it; `bootmedic restore --rule NAME` picks another.
        # Check the file with: bootmedic rules check FILE

        """
        for rule in rules { text += "\n" + rule.toml }
        if !skipped.isEmpty {
            text += "\n# Boards left out (\(skipped.count)):\n"
            for board in skipped { text += "#   \(board)\n" }
        }
        return text
    }
}

private func byteValue(_ text: String) -> UInt8? {
    let lower = text.lowercased()
    if lower.hasPrefix("0x") { return UInt8(lower.dropFirst(2), radix: 16) }
    return UInt8(lower)
}

private func hex(_ value: UInt8) -> String { String(cFormat: "%02X", value) }

/// A TOML basic string: quotes, backslashes and control characters escaped.
func tomlString(_ text: String) -> String {
    var out = "\""
    for scalar in text.unicodeScalars {
        switch scalar {
        case "\"": out += "\\\""
        case "\\": out += "\\\\"
        case "\n": out += "\\n"
        case "\t": out += "\\t"
        case "\r": out += "\\r"
        default:
            if scalar.value < 0x20 || scalar.value == 0x7F { out += String(cFormat: "\\u%04X", scalar.value) } else { out.unicodeScalars.append(scalar) }
        }
    }
    return out + "\""
}
