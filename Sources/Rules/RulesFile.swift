import BenchModel
import FoundationEssentials
import FirmwareImage
import Parts

/// The outcome of reading a rules file: the rules that could be understood and every problem found.
public struct RulesLoadResult: Sendable {
    /// Nil only when the file could not be read or is not valid TOML.
    public let ruleSet: RuleSet?
    public let problems: [RuleProblem]

    public var errors: [RuleProblem] { problems.filter { $0.severity == .error } }
}

/// Reads the TOML rules file into a ``RuleSet``, checking every key's name and type.
public enum RulesFile {
    public static let defaultBackupDirectory = "/var/lib/bootmedic/backups"
    /// The largest rules file read (a bench's rules take a few KiB; the shipped file is 10 KiB).
    public static let maximumFileSize = 1 << 20

    /// Loads `path`. Relative firmware paths resolve against `firmwareDirectory` if given, else the file's
    /// `[defaults] firmware_dir`, else the rules file's own folder.
    public static func load(path: String, firmwareDirectory: String? = nil) -> RulesLoadResult {
        func refused(_ message: String, at position: SourcePosition? = nil) -> RulesLoadResult {
            RulesLoadResult(ruleSet: nil, problems: [RuleProblem(file: path, position: position, severity: .error, rule: nil, message: message)])
        }
        let bytes: [UInt8]
        do { bytes = try InputFile.contents(of: path, maximumSize: maximumFileSize) } catch {
            if case let .tooLarge(size, _) = error { return refused("the file is \(size) bytes; a rules file may be at most \(maximumFileSize >> 20) MiB") }
            return refused(error.description)
        }
        return parse(utf8: bytes, path: path, firmwareDirectory: firmwareDirectory)
    }

    /// Parses rules from a file's bytes (UTF-8), reporting problems against `path`.
    public static func parse(utf8 bytes: [UInt8], path: String, firmwareDirectory: String? = nil) -> RulesLoadResult {
        let root: TOMLTable
        do { root = try TOMLParser.parse(utf8: bytes) } catch {
            return RulesLoadResult(ruleSet: nil, problems: [RuleProblem(file: path, position: error.position, severity: .error, rule: nil, message: error.message)])
        }
        return decode(root, path: path, firmwareDirectory: firmwareDirectory)
    }

    /// Parses rules from `text`, reporting problems against `path`.
    public static func parse(_ text: String, path: String, firmwareDirectory: String? = nil) -> RulesLoadResult {
        let root: TOMLTable
        do { root = try TOMLParser.parse(text) } catch {
            return RulesLoadResult(ruleSet: nil, problems: [RuleProblem(file: path, position: error.position, severity: .error, rule: nil, message: error.message)])
        }
        return decode(root, path: path, firmwareDirectory: firmwareDirectory)
    }

    private static func decode(_ root: TOMLTable, path: String, firmwareDirectory: String?) -> RulesLoadResult {
        var decoder = Decoder(path: path)
        let set = decoder.ruleSet(root, firmwareDirectory: firmwareDirectory)
        return RulesLoadResult(ruleSet: set, problems: decoder.problems)
    }
}

private struct Decoder {
    let path: String
    var problems: [RuleProblem] = []
    var ruleName: String?

    init(path: String) { self.path = path }

    mutating func report(_ severity: Severity, _ message: String, at position: SourcePosition?) {
        problems.append(RuleProblem(file: path, position: position, severity: severity, rule: ruleName, message: message))
    }

    mutating func ruleSet(_ root: TOMLTable, firmwareDirectory override: String?) -> RuleSet {
        rejectUnknownKeys(in: root, allowed: ["defaults", "rule", "programmer"], context: "at the top level")
        var backupDirectory = RulesFile.defaultBackupDirectory
        var firmwareDirectory: String?
        var bench: String?
        if let node = root["defaults"] {
            if let defaults = table(node, "defaults") {
                rejectUnknownKeys(in: defaults, allowed: ["backup_dir", "firmware_dir", "bench"], context: "in [defaults]")
                backupDirectory = string(defaults, "backup_dir") ?? backupDirectory
                firmwareDirectory = string(defaults, "firmware_dir")
                bench = benchName(defaults)
            }
        }
        // The rules file's folder ("" for a bare file name).
        let base = path.lastIndex(of: "/").map { String(path[..<$0]) } ?? ""
        func absolute(_ p: String) -> String { p.hasPrefix("/") || base.isEmpty ? p : base + "/" + p }
        // Empty: relative firmware paths stay relative to the working directory, beside a rules file there.
        let firmwareRoot = override ?? firmwareDirectory.map(absolute) ?? base

        var rules: [Rule] = []
        if let node = root["rule"] {
            guard case let .array(items) = node.value else {
                report(.error, "'rule' must be an array of tables: write each rule under [[rule]]", at: node.position)
                return RuleSet(path: path, backupDirectory: backupDirectory, firmwareDirectory: firmwareRoot, rules: [])
            }
            for item in items {
                guard case let .table(table) = item.value else {
                    report(.error, "each rule must be a table", at: item.position)
                    continue
                }
                if let rule = self.rule(table, firmwareRoot: firmwareRoot) { rules.append(rule) }
            }
        } else {
            report(.warning, "the file has no [[rule]]: no board will be restored", at: nil)
        }
        checkNamesAndShadowing(rules)
        var set = RuleSet(path: path, backupDirectory: backupDirectory, firmwareDirectory: firmwareRoot, rules: rules)
        set.programmers = programmerDeclarations(root)
        set.bench = bench
        return set
    }

    /// `[defaults] bench`: the name a workshop's collected journal tells this bench by (BOOTMEDIC_BENCH).
    mutating func benchName(_ defaults: TOMLTable) -> String? {
        guard let name = string(defaults, "bench") else { return nil }
        let allowed = name.utf8.allSatisfy { byte in
            (0x30...0x39).contains(byte) || (0x41...0x5A).contains(byte) || (0x61...0x7A).contains(byte) || byte == 0x2D || byte == 0x2E || byte == 0x5F
        }
        guard !name.isEmpty, name.utf8.count <= 64, allowed else {
            report(.error, "bench must be 1 to 64 letters, digits, '-', '_' or '.' (e.g. \"bench-3\"), not \"\(name)\"", at: defaults["bench"]?.position)
            return nil
        }
        return name
    }

    /// `[[programmer]]`: usb = "16C0:05DC", product = "…" (optional), kind = "usbasp" | … | "ignore",
    /// name = "…" (optional): device-catalog entries that go in front of the built-in table.
    mutating func programmerDeclarations(_ root: TOMLTable) -> [DeviceEntry] {
        guard let node = root["programmer"] else { return [] }
        guard case let .array(items) = node.value else {
            report(.error, "'programmer' must be an array of tables: write each under [[programmer]]", at: node.position)
            return []
        }
        var out: [DeviceEntry] = []
        for item in items {
            guard case let .table(table) = item.value else { continue }
            rejectUnknownKeys(in: table, allowed: ["usb", "product", "kind", "name"], context: "in a programmer entry")
            guard let text = string(table, "usb", required: true) else { continue }
            guard let id = USBID(text) else {
                report(.error, "usb '\(text)' is not VID:PID in hex (e.g. \"16C0:05DC\")", at: table["usb"]!.position)
                continue
            }
            let product = string(table, "product")
            // The product string is matched by udev too, where quotes, backslashes and glob characters mean something.
            if let product, product.isEmpty || product.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value > 0x7E || "\"\\*?[]|".unicodeScalars.contains($0) }) {
                report(.error, "product '\(product)' must be the USB product string as printable ASCII without quotes, backslashes or * ? [ ] |", at: table["product"]!.position)
                continue
            }
            guard let kindText = string(table, "kind", required: true) else { continue }
            let role: DeviceRole
            if kindText == "ignore" {
                role = .ignore
            } else if let kind = ProgrammerKind(rawValue: kindText) {
                role = kind.isSerial ? .serialCandidate([kind]) : .programmer(kind)
            } else {
                let names = ProgrammerKind.allCases.map(\.rawValue) + ["ignore"]
                report(.error, "unknown programmer kind '\(kindText)'\(suggestion(for: kindText, among: names)); use one of \(names.joined(separator: ", "))", at: table["kind"]!.position)
                continue
            }
            let name = string(table, "name") ?? product.map { "\(text) \"\($0)\"" } ?? text
            out.append(DeviceEntry(id, product: product, role, name, declared: true))
        }
        return out
    }

    static let ruleKeys = ["name", "description", "match", "bootloader", "sha256", "application", "application_sha256",
                           "fuses", "lock", "clock", "clock_div8", "expect_usb", "backup", "restore_eeprom", "eeprom", "eeprom_sha256",
                           "allow_unsafe_fuses", "allow_unlock", "raise_clock", "application_address", "use_1200bps_touch"]

    mutating func rule(_ table: TOMLTable, firmwareRoot: String) -> Rule? {
        ruleName = nil
        defer { ruleName = nil }
        let errorsBefore = problems.filter { $0.severity == .error }.count
        guard let name = string(table, "name", required: true) else { return nil }
        ruleName = name
        rejectUnknownKeys(in: table, allowed: Self.ruleKeys, context: "in a rule")

        var match = RuleMatch()
        if let node = table["match"], let m = self.table(node, "match") {
            rejectUnknownKeys(in: m, allowed: ["part", "signature", "chip_id", "programmer", "usb", "serial", "port"], context: "in match")
            match.parts = parts(m)
            if let text = string(m, "signature") {
                if let signature = Signature(text) {
                    match.signature = signature
                    if let part = match.parts.lazy.compactMap({ part -> AVRPart? in if case let .avr(avr) = part { avr } else { nil } }).first(where: { $0.signature != signature }) {
                        report(.error, "signature \(signature) is not \(part.name)'s (\(part.signature))", at: m["signature"]!.position)
                    } else if match.parts.isEmpty, PartCatalog.avrParts(withSignature: signature).isEmpty {
                        report(.error, "signature \(signature) belongs to no part bootmedic knows", at: m["signature"]!.position)
                    }
                } else {
                    report(.error, "signature '\(text)' is not three hex bytes (write it as \"0x1E9587\")", at: m["signature"]!.position)
                }
            }
            if let id = integer(m, "chip_id", range: 0...0xFFF) {
                match.chipID = UInt16(id)
                if PartCatalog.stm32Chip(id: UInt16(id)) == nil {
                    report(.error, "chip id \(String(cFormat: "0x%03X", id)) is no STM32 line bootmedic knows", at: m["chip_id"]!.position)
                }
            }
            if let kind = string(m, "programmer") {
                if let programmer = ProgrammerKind(rawValue: kind) { match.programmer = programmer } else {
                    let names = ProgrammerKind.allCases.map(\.rawValue)
                    report(.error, "unknown programmer '\(kind)'\(suggestion(for: kind, among: names)); the kinds are \(names.joined(separator: ", "))", at: m["programmer"]!.position)
                }
            }
            if let text = string(m, "usb") {
                match.usb = USBID(text)
                if match.usb == nil { report(.error, "usb '\(text)' is not VID:PID in hex (e.g. \"1B4F:9205\")", at: m["usb"]!.position) }
            }
            match.serial = string(m, "serial")
            match.port = string(m, "port")
        } else if table["match"] == nil {
            report(.error, "the rule has no match table; add match = { part = \"…\" }", at: table.position)
        }

        // A rule writes a bootloader (over ISP or SWD), flashes an application through the board's own
        // bootloader, or both.
        let bootloader = firmware(table, "bootloader", "sha256", root: firmwareRoot, required: false)
        let application = firmware(table, "application", "application_sha256", root: firmwareRoot, required: false)
        if bootloader == nil, application == nil, table["bootloader"] == nil, table["application"] == nil {
            report(.error, "the rule has no bootloader (written over ISP or SWD) and no application (flashed through the board's bootloader)", at: table.position)
        }
        var fuses: FuseSet?
        if let node = table["fuses"], let f = self.table(node, "fuses") {
            rejectUnknownKeys(in: f, allowed: ["low", "high", "extended"], context: "in fuses")
            var set = FuseSet()
            for byte in FuseByte.allCases { set[byte] = integer(f, byte.rawValue, range: 0...0xFF).map(UInt8.init) }
            if set.givenBytes.isEmpty { report(.error, "fuses is empty; give low, high and/or extended, or leave fuses out", at: node.position) }
            fuses = set
        }
        let lock = integer(table, "lock", range: 0...0xFF).map(UInt8.init)
        var clock: BoardClock?
        let divided = boolean(table, "clock_div8")
        if let text = string(table, "clock") {
            if let source = ClockSource(rawValue: text), source != .reserved {
                clock = BoardClock(source: source, dividedBy8: divided)
            } else {
                let names = ClockSource.allCases.filter { $0 != .reserved }.map(\.rawValue)
                report(.error, "unknown clock '\(text)'\(suggestion(for: text, among: names)); use one of \(names.joined(separator: ", "))", at: table["clock"]!.position)
            }
        } else if divided != nil {
            report(.error, "clock_div8 needs clock = \"…\" beside it", at: table["clock_div8"]!.position)
        }
        var expectUSB: USBID?
        if let text = string(table, "expect_usb") {
            expectUSB = USBID(text)
            if expectUSB == nil { report(.error, "expect_usb '\(text)' is not VID:PID in hex (e.g. \"1B4F:9205\")", at: table["expect_usb"]!.position) }
        }
        var policies = RulePolicies()
        policies.backup = boolean(table, "backup") ?? policies.backup
        policies.restoreEEPROM = boolean(table, "restore_eeprom") ?? policies.restoreEEPROM
        policies.allowUnsafeFuses = boolean(table, "allow_unsafe_fuses") ?? policies.allowUnsafeFuses
        policies.allowUnlock = boolean(table, "allow_unlock") ?? policies.allowUnlock
        policies.raiseClock = boolean(table, "raise_clock") ?? policies.raiseClock
        if !policies.backup, policies.restoreEEPROM, table["restore_eeprom"] != nil {
            report(.error, "restore_eeprom needs the backup it restores from, but backup = false", at: table["restore_eeprom"]!.position)
        }

        var eeprom: EEPROMAction?
        if table["eeprom"] != nil {
            if string(table, "eeprom") == "erase" {
                eeprom = .erase
                if let pin = table["eeprom_sha256"] { report(.error, "eeprom = \"erase\" writes no file for eeprom_sha256 to pin", at: pin.position) }
            } else {
                eeprom = firmware(table, "eeprom", "eeprom_sha256", root: firmwareRoot, required: false).map(EEPROMAction.write)
            }
            if application == nil, let node = table["eeprom"] {
                report(.error, "eeprom is written after the application is flashed through the bootloader; the rule has no application", at: node.position)
            }
        } else if let pin = table["eeprom_sha256"] {
            report(.error, "eeprom_sha256 is given but eeprom is not", at: pin.position)
        }

        let applicationAddress = integer(table, "application_address", range: 0...0xFFFF_FFFF).map(UInt32.init)
        if applicationAddress != nil, table["application"] == nil {
            report(.error, "application_address is given but application is not", at: table["application_address"]!.position)
        }

        let touches = boolean(table, "use_1200bps_touch") ?? false
        if touches, let node = table["use_1200bps_touch"] { checkTouch(match: match, hasApplication: table["application"] != nil, at: node.position) }

        let errorsAfter = problems.filter { $0.severity == .error }.count
        guard errorsAfter == errorsBefore, bootloader != nil || application != nil else { return nil }
        return Rule(name: name, position: table.position, match: match, bootloader: bootloader, application: application,
                    fuses: fuses, fusesPosition: table["fuses"]?.position, lock: lock, clock: clock, expectUSB: expectUSB,
                    policies: policies, summary: string(table, "description"), eeprom: eeprom, applicationAddress: applicationAddress,
                    usesTouch: touches)
    }

    /// `use_1200bps_touch = true` sends a board running a sketch to its bootloader: `match.usb` names the
    /// board as it runs the sketch, and the rule has the application flashed once it is there.
    mutating func checkTouch(match: RuleMatch, hasApplication: Bool, at position: SourcePosition) {
        guard let usb = match.usb else {
            return report(.error, "use_1200bps_touch needs match.usb: the board's ids while it runs a sketch (a Leonardo's \"2341:8036\")", at: position)
        }
        if case let .bootloader(kind)? = DeviceCatalog.builtIn.entry(for: usb, product: nil)?.role {
            report(.error, "use_1200bps_touch: \(usb) is \(kind.description) itself; match.usb names the board while it runs a sketch", at: position)
        }
        if !hasApplication {
            report(.error, "use_1200bps_touch sends the board to its bootloader to flash the application; the rule has no application", at: position)
        }
    }

    mutating func firmware(_ table: TOMLTable, _ key: String, _ digestKey: String, root: String, required: Bool) -> FirmwareReference? {
        let digestText = string(table, digestKey)
        guard let declared = string(table, key, required: required) else {
            if digestText != nil { report(.error, "\(digestKey) is given but \(key) is not", at: table[digestKey]!.position) }
            return nil
        }
        var digest: SHA256Digest?
        if let digestText {
            digest = SHA256Digest(hex: digestText.lowercased())
            if digest == nil { report(.error, "\(digestKey) must be 64 hex digits, as sha256sum prints them", at: table[digestKey]!.position) }
        }
        let resolved = declared.hasPrefix("/") || root.isEmpty ? declared : root + "/" + declared
        return FirmwareReference(declaredPath: declared, path: resolved, sha256: digest, position: table[key]!.position)
    }

    mutating func checkNamesAndShadowing(_ rules: [Rule]) {
        var seen: [String: SourcePosition] = [:]
        for (i, rule) in rules.enumerated() {
            ruleName = rule.name
            if let first = seen[rule.name] {
                report(.error, "a rule named '\(rule.name)' already stands on line \(first.line); names must be unique", at: rule.position)
            }
            seen[rule.name] = seen[rule.name] ?? rule.position
            if let earlier = rules[..<i].first(where: { $0.match.covers(rule.match) }) {
                report(.warning, "every target this rule matches is matched first by '\(earlier.name)' (line \(earlier.position.line)); it is reachable only with --rule \(rule.name)", at: rule.position)
            }
        }
        ruleName = nil
    }

    // MARK: Typed access with errors

    mutating func rejectUnknownKeys(in table: TOMLTable, allowed: [String], context: String) {
        for entry in table.entries where !allowed.contains(entry.key) {
            report(.error, "unknown key '\(entry.key)' \(context)\(suggestion(for: entry.key, among: allowed))", at: entry.keyPosition)
        }
    }

    /// `part = "gd32f103"` or `part = ["stm32f103", "gd32f103"]`: each name a part bootmedic knows, all
    /// of one kind (a rule writes either an AVR's HEX or an STM32's binary).
    mutating func parts(_ match: TOMLTable) -> [Part] {
        guard let node = match["part"] else { return [] }
        let names: [(String, SourcePosition)]
        switch node.value {
        case let .string(name): names = [(name, node.position)]
        case let .array(items):
            var found: [(String, SourcePosition)] = []
            for item in items {
                guard case let .string(name) = item.value else {
                    report(.error, "each part in the list must be a string, not \(item.value.kindName)", at: item.position)
                    return []
                }
                found.append((name, item.position))
            }
            if found.isEmpty { report(.error, "part is an empty list; name at least one part", at: node.position) }
            names = found
        default:
            report(.error, "part must be a string or a list of strings, not \(node.value.kindName)", at: node.position)
            return []
        }
        var parts: [Part] = []
        for (name, position) in names {
            guard let part = PartCatalog.part(named: name) else {
                report(.error, "unknown part '\(name)'\(suggestion(for: name, among: PartCatalog.allNames)); `bootmedic parts` lists the \(PartCatalog.allNames.count) names bootmedic knows", at: position)
                continue
            }
            if let first = parts.first, first.isSTM32 != part.isSTM32 {
                report(.error, "part lists \(first) and \(part): one rule is for AVR parts or for STM32 chips, not both", at: position)
                continue
            }
            if !parts.contains(part) { parts.append(part) }
        }
        return parts
    }

    mutating func table(_ node: TOMLNode, _ key: String) -> TOMLTable? {
        guard case let .table(t) = node.value else {
            report(.error, "\(key) must be a table, not \(node.value.kindName)", at: node.position)
            return nil
        }
        return t
    }

    mutating func string(_ table: TOMLTable, _ key: String, required: Bool = false) -> String? {
        guard let node = table[key] else {
            if required { report(.error, "\(ruleName == nil && key != "name" ? "the entry" : "the rule") has no \(key)", at: table.position) }
            return nil
        }
        guard case let .string(s) = node.value else {
            report(.error, "\(key) must be a string, not \(node.value.kindName)", at: node.position)
            return nil
        }
        if s.isEmpty { report(.error, "\(key) is empty", at: node.position); return nil }
        return s
    }

    mutating func integer(_ table: TOMLTable, _ key: String, range: ClosedRange<Int64>) -> Int64? {
        guard let node = table[key] else { return nil }
        guard case let .integer(v) = node.value else {
            let hint: String
            if case let .string(s) = node.value, s.lowercased().hasPrefix("0x") { hint = " (write it without quotes: \(key) = \(s))" } else { hint = "" }
            report(.error, "\(key) must be an integer, not \(node.value.kindName)\(hint)", at: node.position)
            return nil
        }
        guard range.contains(v) else {
            report(.error, "\(key) = \(v) is out of range (\(range.lowerBound)…\(String(cFormat: "0x%llX", range.upperBound)))", at: node.position)
            return nil
        }
        return v
    }

    mutating func boolean(_ table: TOMLTable, _ key: String) -> Bool? {
        guard let node = table[key] else { return nil }
        guard case let .boolean(b) = node.value else {
            report(.error, "\(key) must be true or false, not \(node.value.kindName)", at: node.position)
            return nil
        }
        return b
    }
}

/// " (did you mean 'x'?)" for the closest name within two edits (a swap of neighbours counts as one),
/// or a name the word begins, else "".
public func suggestion(for word: String, among names: [String]) -> String {
    let lower = word.lowercased()
    let best = names.map { ($0, editDistance(lower, $0.lowercased())) }.min { $0.1 < $1.1 }
    if let best, best.1 <= 2, best.1 > 0 { return " (did you mean '\(best.0)'?)" }
    if lower.count >= 4, let prefixed = names.first(where: { $0.lowercased().hasPrefix(lower) }) { return " (did you mean '\(prefixed)'?)" }
    return ""
}

/// Optimal-string-alignment distance: insertions, deletions, substitutions and adjacent swaps.
func editDistance(_ a: String, _ b: String) -> Int {
    let a = Array(a), b = Array(b)
    if a.isEmpty { return b.count }
    if b.isEmpty { return a.count }
    var d = [[Int]](repeating: [Int](repeating: 0, count: b.count + 1), count: a.count + 1)
    for i in 0...a.count { d[i][0] = i }
    for j in 0...b.count { d[0][j] = j }
    for i in 1...a.count {
        for j in 1...b.count {
            let cost = a[i - 1] == b[j - 1] ? 0 : 1
            d[i][j] = min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost)
            if i > 1, j > 1, a[i - 1] == b[j - 2], a[i - 2] == b[j - 1] { d[i][j] = min(d[i][j], d[i - 2][j - 2] + 1) }
        }
    }
    return d[a.count][b.count]
}
