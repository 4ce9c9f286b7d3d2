import FirmwareImage
import Foundation
import Parts
import TestSupport
import Testing

func bootmedic(_ arguments: String...) throws -> CommandResult {
    try run(Fixtures.bootmedicBinary, arguments)
}

func json(_ text: String) throws -> [String: Any] {
    try #require(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any])
}

/// What Python's intelhex (Debian's python3-intelhex, an independent parser) sees in a file.
func intelhexView(of path: String) throws -> [String: Any] {
    let script = """
    import json, sys
    from intelhex import IntelHex
    ih = IntelHex(sys.argv[1])
    print(json.dumps({"bytes": len(ih), "ranges": [list(s) for s in ih.segments()], "start": ih.start_addr,
                      "data": {str(a): ih[a] for a in ih.addresses()}}))
    """
    let result = try run("/usr/bin/python3", ["-c", script, path])
    try #require(result.status == 0, "python3-intelhex failed: \(result.stderr)")
    return try json(result.stdout)
}

@Suite struct HexCommandTests {
    @Test(.needsFirmware, arguments: Fixtures.hexFiles)
    func hexInfoAgreesWithPythonIntelhex(_ name: String) throws {
        let path = Fixtures.firmware(name)
        let ours = try json(try bootmedic("hex", "info", path, "--json").stdout)
        let theirs = try intelhexView(of: path)
        #expect(ours["bytes"] as? Int == theirs["bytes"] as? Int)
        let ourRanges = (ours["ranges"] as? [[String: Int]])?.map { [$0["start"]!, $0["end"]!] }
        #expect(ourRanges == theirs["ranges"] as? [[Int]])
        let start = theirs["start"] as? [String: Int]
        let ourStart = ours["start"] as? [String: Any]
        if let start {
            if let ip = start["IP"] {
                #expect(ourStart?["type"] as? String == "segment")
                #expect(ourStart?["cs"] as? Int == start["CS"])
                #expect(ourStart?["ip"] as? Int == ip)
            } else {
                #expect(ourStart?["type"] as? String == "linear")
                #expect(ourStart?["eip"] as? Int == start["EIP"])
            }
        } else {
            #expect(ourStart == nil)
        }
        #expect((ours["sha256"] as? String)?.count == 64)
    }

    @Test(.needsFirmware) func hexInfoForPeople() throws {
        let result = try bootmedic("hex", "info", Fixtures.firmware("Caterina-promicro16.hex"))
        #expect(result.status == 0)
        #expect(result.stdout.hasSuffix("""
        Caterina-promicro16.hex: Intel HEX, 4090 bytes in 1 range
          0x7000–0x7FF9  4090 bytes
        start: CS:IP 0000:7000
        sha256: bd2cffaedb0636d7cb85664800679ad239f00a736c968a5e5a4329ec37af25e7

        """))
    }

    @Test(.needsFirmware) func hexInfoOnABinaryAtABase() throws {
        let result = try bootmedic("hex", "info", Fixtures.firmware("generic_boot20_pc13.bin"), "--base", "0x08000000", "--json")
        let report = try json(result.stdout)
        #expect(report["format"] as? String == "binary")
        #expect((report["ranges"] as? [[String: Int]])?.first == ["start": 0x0800_0000, "end": 0x0800_1C04, "bytes": 7172])
    }

    @Test func hexInfoReportsMalformedFilesByLine() throws {
        let dir = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let bad = dir.appendingPathComponent("bad.hex").path
        try ":0100000011EE\n:0300000001020305\n:00000001FF\n".write(toFile: bad, atomically: true, encoding: .utf8)
        let result = try run(Fixtures.bootmedicBinary, ["hex", "info", bad])
        #expect(result.status == 1)
        #expect(result.stdout.isEmpty)
        #expect(result.stderr == "bootmedic: error: \(bad):2:16: checksum is 0x05 but the record's bytes need 0xF7\n")
    }

    @Test(.needsFirmware, arguments: Fixtures.bootloaders.filter { $0.file != "Caterina-Micro.hex" })
    func hexMergeIsExact(_ bootloader: (file: String, part: String)) throws {
        let dir = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        // A QMK-style application written by Python's intelhex, so the two tools meet only through files.
        let app = dir.appendingPathComponent("app.hex").path
        let make = """
        import random, sys
        from intelhex import IntelHex
        random.seed(7)
        ih = IntelHex()
        ih.puts(0, bytes(random.randrange(256) for _ in range(0x4E21)))
        ih.write_hex_file(sys.argv[1])
        """
        #expect(try run("/usr/bin/python3", ["-c", make, app]).status == 0)
        let out = dir.appendingPathComponent("production.hex").path
        let result = try run(Fixtures.bootmedicBinary, ["hex", "merge", app, Fixtures.firmware(bootloader.file), "-o", out])
        #expect(result.status == 0, "\(result.stderr)")
        let merged = try intelhexView(of: out)["data"] as? [String: Int]
        let appData = try intelhexView(of: app)["data"] as? [String: Int]
        let bootData = try intelhexView(of: Fixtures.firmware(bootloader.file))["data"] as? [String: Int]
        let expected = try #require(appData).merging(try #require(bootData)) { a, _ in a }
        #expect(merged == expected)
        #expect(merged?.count == (appData?.count ?? 0) + (bootData?.count ?? 0))
    }

    @Test(.needsFirmware) func hexMergeRefusesOverlap() throws {
        let dir = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let out = dir.appendingPathComponent("out.hex").path
        let micro = Fixtures.firmware("Caterina-Micro.hex"), pro = Fixtures.firmware("Caterina-promicro16.hex")
        let result = try run(Fixtures.bootmedicBinary, ["hex", "merge", micro, pro, "-o", out])
        #expect(result.status == 1)
        #expect(result.stderr == "bootmedic: error: cannot merge \(micro) with \(pro): the images overlap at 0x7000–0x7FD9 (4058 bytes)\n")
        #expect(!FileManager.default.fileExists(atPath: out))
    }
}

@Suite struct PartsAndFusesCommandTests {
    @Test func partsListsEveryPart() throws {
        let result = try bootmedic("parts")
        #expect(result.status == 0)
        for id in ["atmega16u4", "atmega32u4", "at90usb646", "at90usb647", "at90usb1286", "at90usb1287", "atmega32a", "atmega328p"] {
            #expect(result.stdout.contains(id))
        }
        let lines = result.stdout.split(separator: "\n")
        #expect(lines.count == PartCatalog.avrParts.count + STM32Line.all.count + PartCatalog.stm32Chips.count)
        #expect(lines.contains("atmega2560     m2560    0x1E9801  flash 256 KiB/256 B pages  EEPROM 4096 B  fuses low/high/extended  named fuses"))
        #expect(lines.contains("attiny441      t441     0x1E9215  flash 4 KiB/16 B pages  EEPROM 256 B  fuses low/high/extended"))
        #expect(lines.contains("at90s2313      2313     0x1E9101  flash 2 KiB/1 B pages  EEPROM 128 B  fuses fuse  (listed only: AT90S-era instructions)"))
        #expect(result.stdout.contains("0x410          STM32F10x medium-density: flash up to 128 KiB in 1024 B pages, SRAM 20 KiB"))
        #expect(lines.contains("stm32f103      STM32F1  STMicroelectronics, chip ids 0x412/0x410/0x414/0x430; ROM table designer 0x020, DPIDR 0x1BA01477, CPUID 0x411FC231; programs in half-words"))
        #expect(lines.contains("gd32f103       STM32F1  GigaDevice GD32F103, any STM32F1 chip id; ROM table designer 0x751; programs in words or half-words"))
        #expect(lines.contains("stm32f4        STM32F4  any maker (clones included), any STM32F4 chip id"))
    }

    @Test func partsShowsOnePartAsJSON() throws {
        let report = try #require(try JSONSerialization.jsonObject(with: Data(try bootmedic("parts", "m32u4", "--json").stdout.utf8)) as? [[String: Any]])
        #expect(report.count == 1)
        let avr = try #require(report.first)
        #expect(avr["family"] as? String == "avr")
        #expect(avr["namedFuses"] as? Bool == true)
        #expect(avr["restorable"] as? Bool == true)
        #expect(avr["signature"] as? String == "0x1E9587")
        #expect(avr["flashSize"] as? Int == 32768)
        #expect(avr["flashPageSize"] as? Int == 128)
        let fuses = avr["fuses"] as? [[String: Any]]
        #expect(fuses?.map { $0["byte"] as? String } == ["low", "high", "extended"])
        #expect(fuses?.last?["implementedMask"] as? Int == 0x0F)
        #expect(avr["waitMicroseconds"] as? [String: Int] == ["flashPage": 4500, "eeprom": 9000, "chipErase": 9000, "fuse": 9000])
    }

    /// Every part as one flat array, the AVR parts first: what `jq length` counts.
    @Test func partsAsJSONListEveryPart() throws {
        let report = try #require(try JSONSerialization.jsonObject(with: Data(try bootmedic("parts", "--json").stdout.utf8)) as? [[String: Any]])
        let avr = report.filter { $0["family"] as? String == "avr" }
        #expect(avr.count >= 163)
        #expect(report.count == avr.count + STM32Line.all.count)
        #expect(report.count == PartCatalog.allNames.count, "one entry per name a rule can use")
        let gd32 = try #require(report.first { $0["id"] as? String == "gd32f103" })
        #expect(gd32["maker"] as? String == "GigaDevice")
        #expect((gd32["recognition"] as? [String: [Int]])?["designers"] == [0x751])
        let highDensity = try #require((gd32["chips"] as? [[String: Any]])?.first { $0["chipID"] as? Int == 0x414 })
        #expect(highDensity["pageSize"] as? Int == 1024, "a GD32's high-density line has 1 KiB pages")
        let f411 = try #require((report.first { $0["id"] as? String == "stm32f411" })?["chips"] as? [[String: Any]])
        #expect(f411.first?["sectorSizes"] as? [Int] == [16384, 16384, 16384, 16384, 65536, 131072, 131072, 131072])
        let t441 = try #require(avr.first { $0["id"] as? String == "attiny441" })
        #expect(t441["namedFuses"] as? Bool == false)
        #expect((t441["fuses"] as? [[String: Any]])?.first?["factoryDefault"] == nil, "no factory value without named semantics")
        let s2313 = try #require(avr.first { $0["id"] as? String == "at90s2313" })
        #expect(s2313["restorable"] as? Bool == false)
        #expect((s2313["refusal"] as? String)?.contains("AT90S-era") == true)
    }

    @Test func unknownPartIsAnError() throws {
        let result = try bootmedic("parts", "atmega2561x")
        #expect(result.status == 1)
        #expect(result.stderr == "bootmedic: error: unknown part 'atmega2561x' (did you mean 'atmega2561'?); `bootmedic parts` lists the \(PartCatalog.allNames.count) names bootmedic knows\n")
    }

    @Test func fusesDecodeForPeopleAndScripts() throws {
        let people = try bootmedic("fuses", "decode", "atmega32u4", "--low", "0x5E", "--high", "0x99", "--extended", "0xF3")
        #expect(people.status == 0)
        #expect(people.stdout.contains("clock: low-power crystal oscillator, 8–16 MHz (CKSEL=1110, SUT=01), divided by 8 at start-up (CKDIV8 programmed)"))
        #expect(people.stdout.contains("boot section: 4096 bytes (2048 words) at 0x7000 (BOOTSZ=00)"))
        #expect(people.stdout.contains("enabled: CKDIV8, JTAGEN, SPIEN, HWBE"))
        let scripts = try json(try bootmedic("fuses", "decode", "m328p", "--high", "D9", "--json").stdout)
        #expect((scripts["bootSection"] as? [String: Int])?["start"] == 0x7000)
        #expect(scripts["resetVector"] as? String == "reset starts the application at 0x0000 (BOOTRST unprogrammed)")
    }

    @Test func fusesDecodeRefusesALockout() throws {
        let result = try bootmedic("fuses", "decode", "atmega328p", "--high", "0x59")
        #expect(result.status == 1)
        #expect(result.stdout.contains("error: high fuse 0x59 programs RSTDISBL"))
        // Fuse bytes are hex whether or not they say so: 99 is 0x99 (DWEN programmed), not 0x63 (RSTDISBL).
        let bare = try bootmedic("fuses", "decode", "m328p", "--high", "99", "--json")
        #expect(bare.status == 1)
        #expect((try json(bare.stdout)["fuses"] as? [String: Int])?["high"] == 0x99)
        let bad = try bootmedic("fuses", "decode", "atmega328p", "--high", "0x1FF")
        #expect(bad.status != 0)
        #expect(bad.stderr.contains("--high"))
    }
}

@Suite struct RulesCommandTests {
    /// As installed, with Debian's arduino-core-avr (a Recommends of the package; `make deps` installs it).
    @Test func checksTheShippedFile() throws {
        let result = try bootmedic("rules", "check", Fixtures.shippedRules)
        #expect(result.status == 0, "\(result.stdout)")
        #expect(result.stdout.hasSuffix("\(Fixtures.shippedRules): 2 rules, 0 errors, 1 warning\n"))
    }

    @Test(.enabled(if: Fixtures.hasFirmware, "needs the real bootloader files"))
    func checksTheGuideRules() throws {
        let result = try bootmedic("rules", "check", Fixtures.guideRules, "--firmware-dir", Fixtures.firmwareDirectory.path)
        #expect(result.status == 0)
        #expect(result.stdout.hasSuffix("\(Fixtures.guideRules): 5 rules, 0 errors, 2 warnings\n"))
    }

    @Test func reportsEveryProblemWithFileAndLine() throws {
        let dir = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("rules.toml").path
        try """
        [[rule]]
        name = "a"
        match = { part = "atmega32u5" }
        bootloader = "x.hex"

        [[rule]]
        name = "b"
        match = { part = "atmega328p", programmer = "usbtinyy" }
        bootloader = "y.hex"
        fuses = { low = 0x62, high = 0x5B }
        """.write(toFile: path, atomically: true, encoding: .utf8)
        let result = try bootmedic("rules", "check", path)
        #expect(result.status == 1)
        let lines = result.stdout.split(separator: "\n").map(String.init)
        #expect(lines.first?.hasPrefix("\(path):3:18: error: [a] unknown part 'atmega32u5' (did you mean 'atmega32u2'?)") == true)
        #expect(lines.dropFirst().first == "\(path):8:45: error: [b] unknown programmer 'usbtinyy' (did you mean 'usbtiny'?); the kinds are usbasp, usbtiny, stk500v1, avrisp, buspirate, stlink")
        #expect(lines.last == "\(path): 0 rules, 2 errors, 0 warnings")
        let report = try json(try bootmedic("rules", "check", path, "--json").stdout)
        #expect(report["errors"] as? Int == 2)
        #expect((report["problems"] as? [[String: Any]])?.map { $0["line"] as? Int } == [3, 8])
    }

    @Test func aMissingFileIsAnError() throws {
        let result = try bootmedic("rules", "check", "/nonexistent/rules.toml")
        #expect(result.status == 1)
        #expect(result.stdout.hasPrefix("/nonexistent/rules.toml: error: no such file\n"))
    }
}

/// `-o` writes a new file or replaces a regular one; a device node, FIFO or folder is never replaced.
@Suite struct OutputOptionTests {
    @Test func specialFilesAreNotReplaced() throws {
        let dir = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let app = dir.appendingPathComponent("app.hex").path, boot = dir.appendingPathComponent("boot.hex").path
        try IntelHex.format(MemoryImage(bytes: garbage(256), at: 0)).write(toFile: app, atomically: true, encoding: .utf8)
        try IntelHex.format(MemoryImage(bytes: garbage(256, seed: 3), at: 0x7000)).write(toFile: boot, atomically: true, encoding: .utf8)
        let merged = try bootmedic("hex", "merge", app, boot, "-o", "/dev/null")
        #expect(merged.status == 1)
        #expect(merged.stderr == "bootmedic: error: /dev/null is not a regular file; -o writes only a new file or replaces a regular one\n")
        #expect((try FileManager.default.attributesOfItem(atPath: "/dev/null")[.type] as? FileAttributeType) == .typeCharacterSpecial)
        let fifo = dir.appendingPathComponent("fifo").path
        #expect(mkfifo(fifo, 0o600) == 0)
        #expect(try bootmedic("devices", "udev-rules", "-o", fifo).status == 1)
        #expect((try FileManager.default.attributesOfItem(atPath: fifo)[.type] as? FileAttributeType) != .typeRegular, "the FIFO is still there")
        let missing = try bootmedic("devices", "udev-rules", "-o", dir.path + "/no/such/x.rules")
        #expect(missing.stderr == "bootmedic: error: cannot write \(dir.path)/no/such/x.rules: there is no folder \(dir.path)/no/such\n")
        // A regular file is replaced whole.
        let out = dir.appendingPathComponent("merged.hex").path
        try "old".write(toFile: out, atomically: true, encoding: .utf8)
        #expect(try bootmedic("hex", "merge", app, boot, "-o", out).status == 0)
        #expect(try FirmwareFile(path: out).image.byteCount == 512)
    }
}

