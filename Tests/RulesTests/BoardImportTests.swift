import FirmwareImage
import Foundation
import Parts
import Rules
import TestSupport
import Testing

@Suite struct BoardImportTests {
    @Test func readsBoardsVariantsAndMenus() throws {
        let file = try BoardsFile.parse(sampleBoards, path: "/x/boards.txt")
        #expect(file.boards.map(\.id) == ["uno", "pro", "leo", "mini", "wrong", "odd"])
        #expect(file.boards[1].variants.map(\.id) == ["16MHz", "8MHz168"])
        #expect(file.boards[1].variants[0].label == "ATmega328P (5V, 16 MHz)")
        #expect(file.boards[3].otherMenusSettingBootloader == ["clock"])
        #expect(file.bootloaderFolder == "/x/bootloaders")
        #expect(throws: BoardsFileError.malformedLine(path: "/x/boards.txt", line: 2, text: "uno.name Arduino")) {
            try BoardsFile.parse("uno.name=Arduino\nuno.name Arduino\n", path: "/x/boards.txt")
        }
    }

    @Test func oneCheckedRulePerBoardAndEveryOtherBoardWithItsReason() throws {
        let folder = try BoardsFolder(sampleBoards)
        defer { folder.remove() }
        let imported = try BoardImport(file: BoardsFile.load(path: folder.boardsTxt))
        #expect(imported.rules.map(\.name) == ["uno", "pro-16mhz"])
        let boot = folder.dir.appendingPathComponent("bootloaders").path
        let sha = try FirmwareFile(path: boot + "/optiboot/optiboot_atmega328p.hex").sha256
        #expect(imported.rules[0].toml == """
        [[rule]]
        name = "uno"
        description = "Arduino Uno"
        match = { part = "atmega328p" }
        bootloader = "\(boot)/optiboot/optiboot_atmega328p.hex"
        sha256 = "\(sha)"
        fuses = { low = 0xFF, high = 0xDE, extended = 0xFD }
        lock = 0x0F
        clock = "crystal"
        clock_div8 = false

        """)
        #expect(imported.skipped.map(\.description) == [
            "pro:8MHz168 (Pro Mini, ATmega168 (3.3V, 8 MHz)): its bootloader file \(boot)/atmega/ATmegaBOOT_168_pro_8MHz.hex is not there; it is ATmegaBOOT for the ATmega168 at 8 MHz, from Debian package arduino-core-avr (1.8.7+dfsg), /usr/share/arduino/hardware/arduino/avr/bootloaders/atmega/",
            "leo (Leonardo): its bootloader file \(boot)/caterina/Caterina-Leonardo.hex is not there; it is Caterina for the Arduino Leonardo, combined with a sketch, from an Arduino IDE's avr core, bootloaders/caterina/ (arduino/ArduinoCore-avr on GitHub); Debian's arduino-core-avr leaves the Caterina images out",
            "mini (MiniCore-style board): its menu 'clock' changes the bootloader or fuses, and a rule cannot tell which entry a board was built with; write those rules by hand",
            "wrong (Bootloader in the wrong place): rules check would refuse it: the bootloader starts at 0x7800, below the boot section at 0x7E00 that BOOTSZ=11 selects: reset would land in its middle; BOOTSZ=01 (2048 bytes at 0x7800) would match",
            "odd (Odd placeholder): its bootloader.file 'optiboot/{bootloader.variant}.hex' uses {bootloader.variant}, which the board does not define",
        ])
        // The whole file passes `rules check`, and names what it left out.
        let text = imported.renderedFile(by: "test")
        let (set, problems) = RuleChecker.check(RulesFile.parse(text, path: "imported.toml"), path: "imported.toml")
        #expect(set?.rules.count == 2)
        #expect(problems.filter { $0.severity == .error }.isEmpty, "\(problems)")
        #expect(text.contains("# Boards left out (5):\n#   pro:8MHz168 (Pro Mini, ATmega168 (3.3V, 8 MHz)): its bootloader file \(boot)/atmega/ATmegaBOOT_168_pro_8MHz.hex is not there;"))
    }

    @Test func selectsBoardsByID() throws {
        let folder = try BoardsFolder(sampleBoards)
        defer { folder.remove() }
        let file = try BoardsFile.load(path: folder.boardsTxt)
        let pro = try BoardImport(file: file, boards: ["pro"])
        #expect(pro.rules.map(\.name) == ["pro-16mhz"])
        #expect(pro.skipped.map(\.board) == ["pro:8MHz168"])
        #expect(throws: BoardImportError.unknownBoard("unoo", path: folder.boardsTxt, suggestion: " (did you mean 'uno'?)")) {
            try BoardImport(file: file, boards: ["unoo"])
        }
    }

    @Test func aBoardWhosePartISPCannotReachIsLeftOut() throws {
        let folder = try BoardsFolder("x.name=XMEGA board\nx.bootloader.file=optiboot/optiboot_atmega328p.hex\nx.build.mcu=atxmega128a1\n")
        defer { folder.remove() }
        let imported = try BoardImport(file: BoardsFile.load(path: folder.boardsTxt))
        #expect(imported.rules.isEmpty)
        #expect(imported.skipped.map(\.description) == ["x (XMEGA board): bootmedic does not know the part 'atxmega128a1'"])
    }

    @Test func tomlStringsAreEscaped() throws {
        let folder = try BoardsFolder("q.name=Say \"hi\" \\ bye\nq.bootloader.file=optiboot/optiboot_atmega328p.hex\nq.build.mcu=atmega328p\n")
        defer { folder.remove() }
        let imported = try BoardImport(file: BoardsFile.load(path: folder.boardsTxt))
        let rule = try #require(RulesFile.parse(imported.renderedFile(by: "test"), path: "x.toml").ruleSet?.rules.first)
        #expect(rule.summary == "Say \"hi\" \\ bye")
    }
}

/// The table of known bootloaders is data that must match the files: every pinned digest is checked
/// against the file where this machine has it (the shared firmware folder, Debian's arduino-core-avr).
@Suite struct KnownBootloaderTests {
    @Test func everyPinnedDigestMatchesItsFile() throws {
        let debian = "/usr/share/arduino/hardware/arduino/avr/bootloaders"
        var checked = 0
        for entry in KnownBootloaders.all {
            guard let pinned = entry.sha256 else { continue }
            let candidates = [Fixtures.firmware(entry.fileName)]
                + ((try? FileManager.default.subpathsOfDirectory(atPath: debian)) ?? [])
                    .filter { $0.hasSuffix("/" + entry.fileName) }.map { debian + "/" + $0 }
            guard let path = candidates.first(where: { FileManager.default.fileExists(atPath: $0) }) else { continue }
            #expect(try FirmwareFile(path: path).sha256 == pinned, "\(entry.fileName) at \(path)")
            checked += 1
        }
        let pinnedCount = KnownBootloaders.all.filter { $0.sha256 != nil }.count
        if Fixtures.hasFirmware, FileManager.default.fileExists(atPath: debian) {
            #expect(checked == pinnedCount, "every pinned file is on a CI machine")
        }
        #expect(KnownBootloaders.entry(forPath: "/x/Caterina-promicro16.hex", pinned: nil)?.summary == "Caterina for the SparkFun Pro Micro 5V/16MHz")
    }
}
