import Foundation
import Parts
import Rules
import TestSupport
import Testing

let caterinaSHA = "bd2cffaedb0636d7cb85664800679ad239f00a736c968a5e5a4329ec37af25e7"

/// A valid rule with `extra` lines appended inside it.
func ruleText(_ extra: String = "", name: String = "r") -> String {
    """
    [[rule]]
    name = "\(name)"
    match = { part = "atmega32u4" }
    bootloader = "Caterina-promicro16.hex"
    sha256 = "\(caterinaSHA)"
    fuses = { low = 0xFF, high = 0xD8, extended = 0xFB }
    clock = "crystal"
    clock_div8 = false
    \(extra)
    """
}

func problems(_ text: String) -> [String] {
    RulesFile.parse(text, path: "r.toml", firmwareDirectory: Fixtures.firmwareDirectory.path).problems.map(\.description)
}

@Suite struct RulesFileTests {
    @Test func decodesAValidRule() throws {
        let result = RulesFile.parse(ruleText("expect_usb = \"1B4F:9205\"\nrestore_eeprom = false"), path: "r.toml", firmwareDirectory: "/fw")
        #expect(result.problems.isEmpty)
        let rule = try #require(result.ruleSet?.rules.first)
        #expect(rule.name == "r")
        #expect(rule.match.parts.map(\.id) == ["atmega32u4"])
        #expect(rule.bootloader?.path == "/fw/Caterina-promicro16.hex")
        #expect(rule.bootloader?.sha256?.description == caterinaSHA)
        #expect(rule.fuses == FuseSet(low: 0xFF, high: 0xD8, extended: 0xFB))
        #expect(rule.clock == BoardClock(source: .crystal, dividedBy8: false))
        #expect(rule.expectUSB == USBID(vendor: 0x1B4F, product: 0x9205))
        #expect(rule.policies.backup && !rule.policies.restoreEEPROM && !rule.policies.allowUnsafeFuses && !rule.policies.allowUnlock)
        #expect(result.ruleSet?.backupDirectory == "/var/lib/bootmedic/backups")
    }

    @Test func resolvesFirmwareAgainstDefaultsOrTheFileFolder() throws {
        let withDefault = RulesFile.parse("[defaults]\nfirmware_dir = \"fw\"\nbackup_dir = \"/b\"\n" + ruleText(), path: "/etc/bootmedic/rules.toml")
        #expect(withDefault.ruleSet?.rules.first?.bootloader?.path == "/etc/bootmedic/fw/Caterina-promicro16.hex")
        #expect(withDefault.ruleSet?.backupDirectory == "/b")
        let plain = RulesFile.parse(ruleText(), path: "/etc/bootmedic/rules.toml")
        #expect(plain.ruleSet?.rules.first?.bootloader?.path == "/etc/bootmedic/Caterina-promicro16.hex")
    }

    /// Malformed rules and the exact problems each must produce.
    static let malformed: [(String, String, [String])] = [
        ("unknown top-level key", "bench = 1\n" + ruleText(), ["r.toml:1:1: error: unknown key 'bench' at the top level"]),
        ("misspelt rule table", "[[rules]]\nname = \"x\"", [
            "r.toml:1:3: error: unknown key 'rules' at the top level (did you mean 'rule'?)",
            "r.toml: warning: the file has no [[rule]]: no board will be restored"]),
        ("rule not an array", "rule = 1", ["r.toml:1:8: error: 'rule' must be an array of tables: write each rule under [[rule]]"]),
        ("no name", "[[rule]]\nmatch = { part = \"atmega32u4\" }\nbootloader = \"x.hex\"", ["r.toml:1:1: error: the rule has no name"]),
        ("empty name", ruleText().replacingOccurrences(of: "name = \"r\"", with: "name = \"\""), ["r.toml:2:8: error: name is empty"]),
        ("name not a string", ruleText().replacingOccurrences(of: "name = \"r\"", with: "name = 3"), ["r.toml:2:8: error: name must be a string, not an integer"]),
        ("misspelt key", ruleText().replacingOccurrences(of: "bootloader =", with: "bootlaoder ="), [
            "r.toml:4:1: error: [r] unknown key 'bootlaoder' in a rule (did you mean 'bootloader'?)",
            "r.toml:5:10: error: [r] sha256 is given but bootloader is not",
            "r.toml:1:1: error: [r] the rule has no bootloader (written over ISP or SWD) and no application (flashed through the board's bootloader)"]),
        ("no match", ruleText().replacingOccurrences(of: "match = { part = \"atmega32u4\" }\n", with: ""),
         ["r.toml:1:1: error: [r] the rule has no match table; add match = { part = \"…\" }"]),
        ("match not a table", ruleText().replacingOccurrences(of: "match = { part = \"atmega32u4\" }", with: "match = \"atmega32u4\""),
         ["r.toml:3:9: error: [r] match must be a table, not a string"]),
        ("unknown match key", ruleText().replacingOccurrences(of: "{ part = \"atmega32u4\" }", with: "{ part = \"atmega32u4\", pot = \"x\" }"),
         ["r.toml:3:32: error: [r] unknown key 'pot' in match (did you mean 'port'?)"]),
        ("unknown part", ruleText().replacingOccurrences(of: "\"atmega32u4\"", with: "\"atmega32u5\""),
         ["r.toml:3:18: error: [r] unknown part 'atmega32u5' (did you mean 'atmega32u2'?); `bootmedic parts` lists the 177 names bootmedic knows"]),
        ("signature of another part", ruleText().replacingOccurrences(of: "{ part = \"atmega32u4\" }", with: "{ part = \"atmega32u4\", signature = \"0x1E950F\" }"),
         ["r.toml:3:44: error: [r] signature 0x1E950F is not ATmega32U4's (0x1E9587)"]),
        ("malformed signature", ruleText().replacingOccurrences(of: "{ part = \"atmega32u4\" }", with: "{ signature = \"1E95\" }"),
         ["r.toml:3:23: error: [r] signature '1E95' is not three hex bytes (write it as \"0x1E9587\")"]),
        ("unknown signature", ruleText().replacingOccurrences(of: "{ part = \"atmega32u4\" }", with: "{ signature = \"0x1E9999\" }"),
         ["r.toml:3:23: error: [r] signature 0x1E9999 belongs to no part bootmedic knows"]),
        ("unknown chip id", ruleText().replacingOccurrences(of: "{ part = \"atmega32u4\" }", with: "{ chip_id = 0x999 }"),
         ["r.toml:3:21: error: [r] chip id 0x999 is no STM32 line bootmedic knows"]),
        ("AVR and STM32 parts in one rule", ruleText().replacingOccurrences(of: "{ part = \"atmega32u4\" }", with: "{ part = [\"atmega32u4\", \"gd32f103\"] }"),
         ["r.toml:3:33: error: [r] part lists ATmega32U4 and GD32F103: one rule is for AVR parts or for STM32 chips, not both"]),
        ("an unknown part in a list", ruleText().replacingOccurrences(of: "{ part = \"atmega32u4\" }", with: "{ part = [\"stm32f103\", \"gd32f130\"] }"),
         ["r.toml:3:32: error: [r] unknown part 'gd32f130' (did you mean 'gd32f103'?); `bootmedic parts` lists the 177 names bootmedic knows"]),
        ("an empty part list", ruleText().replacingOccurrences(of: "{ part = \"atmega32u4\" }", with: "{ part = [] }"),
         ["r.toml:3:18: error: [r] part is an empty list; name at least one part"]),
        ("a part list of numbers", ruleText().replacingOccurrences(of: "{ part = \"atmega32u4\" }", with: "{ part = [1] }"),
         ["r.toml:3:19: error: [r] each part in the list must be a string, not an integer"]),
        ("chip id out of range", ruleText().replacingOccurrences(of: "{ part = \"atmega32u4\" }", with: "{ chip_id = 0x1000 }"),
         ["r.toml:3:21: error: [r] chip_id = 4096 is out of range (0…0xFFF)"]),
        ("unknown programmer", ruleText().replacingOccurrences(of: "{ part = \"atmega32u4\" }", with: "{ part = \"atmega32u4\", programmer = \"usbsap\" }"),
         ["r.toml:3:45: error: [r] unknown programmer 'usbsap' (did you mean 'usbasp'?); the kinds are usbasp, usbtiny, stk500v1, avrisp, buspirate, stlink"]),
        ("quoted fuse", ruleText().replacingOccurrences(of: "low = 0xFF", with: "low = \"0xFF\""),
         ["r.toml:6:17: error: [r] low must be an integer, not a string (write it without quotes: low = 0xFF)"]),
        ("fuse out of range", ruleText().replacingOccurrences(of: "high = 0xD8", with: "high = 0x1D8"),
         ["r.toml:6:30: error: [r] high = 472 is out of range (0…0xFF)"]),
        ("avrdude fuse name", ruleText().replacingOccurrences(of: "extended = 0xFB", with: "efuse = 0xFB"),
         ["r.toml:6:36: error: [r] unknown key 'efuse' in fuses"]),
        ("empty fuses", ruleText().replacingOccurrences(of: "{ low = 0xFF, high = 0xD8, extended = 0xFB }", with: "{}"),
         ["r.toml:6:9: error: [r] fuses is empty; give low, high and/or extended, or leave fuses out"]),
        ("fuses not a table", ruleText().replacingOccurrences(of: "{ low = 0xFF, high = 0xD8, extended = 0xFB }", with: "[0xFF, 0xD8]"),
         ["r.toml:6:9: error: [r] fuses must be a table, not an array"]),
        ("lock out of range", ruleText("lock = 256"), ["r.toml:9:8: error: [r] lock = 256 is out of range (0…0xFF)"]),
        ("unknown clock", ruleText().replacingOccurrences(of: "clock = \"crystal\"", with: "clock = \"xtal\""),
         ["r.toml:7:9: error: [r] unknown clock 'xtal'; use one of crystal, low-frequency-crystal, internal-rc, internal-128khz, external-rc, external-clock, pll"]),
        ("divider without clock", ruleText().replacingOccurrences(of: "clock = \"crystal\"\n", with: ""),
         ["r.toml:7:14: error: [r] clock_div8 needs clock = \"…\" beside it"]),
        ("bad expect_usb", ruleText("expect_usb = \"1B4F-9205\""),
         ["r.toml:9:14: error: [r] expect_usb '1B4F-9205' is not VID:PID in hex (e.g. \"1B4F:9205\")"]),
        ("short sha256", ruleText().replacingOccurrences(of: caterinaSHA, with: "bd2cff"),
         ["r.toml:5:10: error: [r] sha256 must be 64 hex digits, as sha256sum prints them"]),
        ("boolean as string", ruleText("backup = \"yes\""), ["r.toml:9:10: error: [r] backup must be true or false, not a string"]),
        ("restore without backup", ruleText("backup = false\nrestore_eeprom = true"),
         ["r.toml:10:18: error: [r] restore_eeprom needs the backup it restores from, but backup = false"]),
        ("application digest without application", ruleText("application_sha256 = \"\(caterinaSHA)\""),
         ["r.toml:9:22: error: [r] application_sha256 is given but application is not"]),
        ("unknown default", "[defaults]\nbackup = \"/x\"\n" + ruleText(),
         ["r.toml:2:1: error: unknown key 'backup' in [defaults] (did you mean 'backup_dir'?)"]),
        ("duplicate names", ruleText() + "\n" + ruleText(), [
            "r.toml:10:1: error: [r] a rule named 'r' already stands on line 1; names must be unique",
            "r.toml:10:1: warning: [r] every target this rule matches is matched first by 'r' (line 1); it is reachable only with --rule r"]),
        ("TOML syntax", ruleText("lock = 0x3F 0x2F"), ["r.toml:9:13: error: expected the end of the line, found '0'"]),
    ]

    @Test(arguments: malformed)
    func malformedRulesGiveExactProblems(_ testCase: (String, String, [String])) {
        #expect(problems(testCase.1) == testCase.2, "\(testCase.0)")
    }

    @Test func badRulesAreLeftOutButTheOthersKept() {
        let text = ruleText(name: "good") + "\n" + ruleText("lock = 999", name: "bad")
        let result = RulesFile.parse(text, path: "r.toml")
        #expect(result.ruleSet?.rules.map(\.name) == ["good"])
        #expect(result.errors.count == 1)
    }

    @Test func firstMatchingRuleWins() throws {
        let text = """
        [[rule]]
        name = "bench-2"
        match = { part = "atmega32u4", port = "pci-0000:00:14.0-usb-0:2:1.0" }
        bootloader = "a.hex"

        [[rule]]
        name = "tiny"
        match = { part = "atmega32u4", programmer = "usbtiny", serial = "T1" }
        bootloader = "b.hex"

        [[rule]]
        name = "any-32u4"
        match = { signature = "0x1E9587" }
        bootloader = "c.hex"

        [[rule]]
        name = "bluepill"
        match = { part = "stm32f103" }
        bootloader = "d.bin"

        [[rule]]
        name = "bluepill-clones"
        match = { part = ["gd32f103", "cks32f103"] }
        bootloader = "d.bin"

        [[rule]]
        name = "black-pill"
        match = { part = "stm32f4" }
        bootloader = "e.bin"
        """
        let set = try #require(RulesFile.parse(text, path: "r.toml").ruleSet)
        let m32u4 = PartCatalog.avrParts.first { $0.id == "atmega32u4" }!
        func pick(_ context: TargetContext) -> String? { set.firstMatch(for: context)?.name }
        #expect(pick(TargetContext(avrPart: m32u4, signature: m32u4.signature, programmer: .usbasp, port: "pci-0000:00:14.0-usb-0:2:1.0")) == "bench-2")
        #expect(pick(TargetContext(avrPart: m32u4, signature: m32u4.signature, programmer: .usbtiny, serial: "T1")) == "tiny")
        #expect(pick(TargetContext(avrPart: m32u4, signature: m32u4.signature, programmer: .usbtiny, serial: "T2")) == "any-32u4")
        #expect(pick(TargetContext(chipID: 0x410, stm32Variant: "st-stm32f1", programmer: .stlink)) == "bluepill")
        #expect(pick(TargetContext(chipID: 0x418, stm32Variant: "st-stm32f1", programmer: .stlink)) == nil, "an F105 is not an F103")
        #expect(pick(TargetContext(chipID: 0x410, stm32Variant: "gd32f103", programmer: .stlink)) == "bluepill-clones")
        #expect(pick(TargetContext(chipID: 0x410, stm32Variant: "cks32f103", programmer: .stlink)) == "bluepill-clones")
        #expect(pick(TargetContext(chipID: 0x410, stm32Variant: "apm32f103", programmer: .stlink)) == nil)
        #expect(pick(TargetContext(chipID: 0x431, stm32Variant: "st-stm32f4", programmer: .stlink)) == "black-pill")
        #expect(pick(TargetContext(chipID: 0x431, stm32Variant: "stm32f4-compatible", programmer: .stlink)) == "black-pill")
        #expect(pick(TargetContext(chipID: 0x999, programmer: .stlink)) == nil)
        let m328p = PartCatalog.avrParts.first { $0.id == "atmega328p" }!
        #expect(pick(TargetContext(avrPart: m328p, signature: m328p.signature, programmer: .usbasp)) == nil)
        #expect(set.rule(named: "tiny")?.match.serial == "T1")
    }

    @Test func aRulesFileOverOneMiBIsRefusedWithItsSize() throws {
        let dir = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("big.toml").path
        try ("a = [" + Array(repeating: "1", count: 600_000).joined(separator: ",") + "]\n").write(toFile: path, atomically: true, encoding: .utf8)
        let loaded = RulesFile.load(path: path)
        #expect(loaded.ruleSet == nil)
        #expect(loaded.problems.map(\.message) == ["the file is 1200006 bytes; a rules file may be at most 1 MiB"])
    }

    /// What cannot be a rules file says so by kind or by place, in one printable line.
    @Test func unreadableRulesFilesSayWhy() throws {
        let dir = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let fifo = dir.appendingPathComponent("rules.toml").path
        #expect(mkfifo(fifo, 0o600) == 0)
        let latin1 = dir.appendingPathComponent("latin1.toml").path
        try Data("# bench\n[[rule]]\nname = \"caf".utf8 + [0xE9] + "\"\n".utf8).write(to: URL(fileURLWithPath: latin1))
        for (path, expected) in [(fifo, "\(fifo): not a regular file (it is a FIFO)"), ("/dev/null", "/dev/null: not a regular file (it is a character device)"),
                                 (dir.path + "/none.toml", "\(dir.path)/none.toml: no such file"),
                                 (latin1, "\(latin1):3:12: invalid UTF-8 (\\xE9): a rules file must be UTF-8 text")] {
            let loaded = RulesFile.load(path: path)
            #expect(loaded.ruleSet == nil)
            #expect(loaded.problems.map(\.description) == [expected.replacingOccurrences(of: ": ", with: ": error: ", options: [], range: expected.range(of: ": "))])
        }
    }
}

/// `eeprom = "erase"` or a file, for a flash through the bootloader.
@Suite struct EEPROMKeyTests {
    @Test func eraseAndAFileAreRead() throws {
        let erase = RulesFile.parse(ruleText("application = \"app.hex\"\neeprom = \"erase\""), path: "r.toml", firmwareDirectory: "/fw")
        #expect(erase.problems.isEmpty)
        #expect(erase.ruleSet?.rules.first?.eeprom == .erase)
        let file = RulesFile.parse(ruleText("application = \"app.hex\"\neeprom = \"settings.eep\"\neeprom_sha256 = \"\(caterinaSHA)\""), path: "r.toml", firmwareDirectory: "/fw")
        #expect(file.problems.isEmpty)
        guard case let .write(reference)? = file.ruleSet?.rules.first?.eeprom else { Issue.record("no eeprom file"); return }
        #expect(reference.path == "/fw/settings.eep" && reference.sha256?.description == caterinaSHA)
    }

    @Test func misuseIsNamedWithItsPosition() {
        #expect(problems(ruleText("eeprom = \"erase\"")) == ["r.toml:9:10: error: [r] eeprom is written after the application is flashed through the bootloader; the rule has no application"])
        #expect(problems(ruleText("application = \"Caterina-Micro.hex\"\neeprom = \"erase\"\neeprom_sha256 = \"\(caterinaSHA)\"")).first?.contains("eeprom = \"erase\" writes no file for eeprom_sha256 to pin") == true)
        #expect(problems(ruleText("eeprom_sha256 = \"\(caterinaSHA)\"")).first?.contains("eeprom_sha256 is given but eeprom is not") == true)
        #expect(problems(ruleText("application = \"Caterina-Micro.hex\"\neeprom = 5")).first?.contains("eeprom") == true)
    }
}

/// `use_1200bps_touch = true`: the board, seen with `match.usb` while it runs a sketch, is sent to its
/// bootloader and the application flashed through it.
@Suite struct TouchKeyTests {
    func touchRule(_ lines: String) -> String {
        "[[rule]]\nname = \"leo\"\n" + lines + "\n"
    }

    @Test func aTouchRuleIsReadAndFoundByTheSketchsIDs() throws {
        let parsed = RulesFile.parse(touchRule("match = { usb = \"2341:8036\", part = \"atmega32u4\" }\nuse_1200bps_touch = true\napplication = \"app.hex\""),
                                     path: "r.toml", firmwareDirectory: "/fw")
        #expect(parsed.problems.isEmpty, "\(parsed.problems)")
        let set = try #require(parsed.ruleSet)
        #expect(set.rules.first?.usesTouch == true)
        #expect(set.touchRule(for: USBID(vendor: 0x2341, product: 0x8036), serial: nil, port: "pci-0-usb-0:2:1.0")?.name == "leo")
        #expect(set.touchRule(for: USBID(vendor: 0x2341, product: 0x8037), serial: nil, port: nil) == nil)
        let plain = try #require(RulesFile.parse(touchRule("match = { usb = \"2341:8036\" }\napplication = \"app.hex\""), path: "r.toml").ruleSet)
        #expect(plain.touchRule(for: USBID(vendor: 0x2341, product: 0x8036), serial: nil, port: nil) == nil, "only when a rule asks")
    }

    @Test func misuseIsNamedWithItsPosition() {
        #expect(problems(touchRule("match = { part = \"atmega32u4\" }\nuse_1200bps_touch = true\napplication = \"a.hex\"")).map { $0 } ==
                ["r.toml:4:21: error: [leo] use_1200bps_touch needs match.usb: the board's ids while it runs a sketch (a Leonardo's \"2341:8036\")"])
        #expect(problems(touchRule("match = { usb = \"2341:0036\" }\nuse_1200bps_touch = true\napplication = \"a.hex\"")).first?
                    .contains("2341:0036 is Caterina itself; match.usb names the board while it runs a sketch") == true,
                "\(problems(touchRule("match = { usb = \"2341:0036\" }\nuse_1200bps_touch = true\napplication = \"a.hex\"")))")
        #expect(problems(touchRule("match = { usb = \"2341:8036\" }\nuse_1200bps_touch = true\nbootloader = \"Caterina-Micro.hex\"")).first?
                    .contains("the rule has no application") == true)
        #expect(problems(touchRule("match = { usb = \"2341:8036\" }\nuse_1200bps_touch = \"yes\"\napplication = \"a.hex\"")).first?.contains("use_1200bps_touch") == true)
    }
}
