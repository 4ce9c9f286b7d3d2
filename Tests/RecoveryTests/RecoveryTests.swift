import AVRISP
import FirmwareImage
import Foundation
import Parts
import Recovery
import Rules
import Simulation
import Synchronization
import TestSupport
import Testing

func ruleSet(_ text: String = Fixtures.seedRules) throws -> RuleSet {
    let loaded = RulesFile.parse(text, path: "test.toml", firmwareDirectory: Fixtures.firmwareDirectory.path)
    #expect(loaded.errors.isEmpty, "\(loaded.errors)")
    return try #require(loaded.ruleSet)
}

/// A restore against a simulated bench, with its backups in a fresh folder.
struct Rehearsal {
    let bench: SimulatedBench
    let result: RecoveryResult
    let sink: RecordingSink
    let backupDirectory: URL

    init(_ kind: ProgrammerKind, _ part: String, rule: String?, rules: RuleSet? = nil, faults: Set<SimulatedFault> = [],
         flash: [UInt8]? = nil, eeprom: [UInt8]? = nil, fuses: FuseSet? = nil, pages: Int = 32) throws {
        bench = try SimulatedBench(kind: kind, part: avr(part), flash: flash, eeprom: eeprom, fuses: fuses, faults: faults, imagePages: pages)
        let isp: ISPProgrammer = kind == .usbasp ? USBasp(device: bench.usbDevice!, time: bench.clock) : USBtinyISP(device: bench.usbDevice!, time: bench.clock)
        backupDirectory = try Fixtures.temporaryDirectory()
        sink = RecordingSink()
        let job = RecoveryJob(programmer: isp, rules: try rules ?? ruleSet(), ruleName: rule,
                              backups: BackupStore(directory: backupDirectory.path), sink: sink)
        result = job.run()
    }

    var backups: [String] { (try? FileManager.default.contentsOfDirectory(atPath: backupDirectory.path)) ?? [] }
}

func image(_ file: String) throws -> MemoryImage { try FirmwareFile(path: Fixtures.firmware(file)).image }

@Suite struct RestoreTests {
    static let cases: [(rule: String, file: String, part: String, fuses: FuseSet, lock: UInt8?)] = [
        ("atmel-dfu", "bootloader_atmega32u4_1_0_0.hex", "atmega32u4", FuseSet(low: 0x5E, high: 0x99, extended: 0xF3), nil),
        ("pro-micro-5v", "Caterina-promicro16.hex", "atmega32u4", FuseSet(low: 0xFF, high: 0xD8, extended: 0xFB), nil),
        ("arduino-micro", "Caterina-Micro.hex", "atmega32u4", FuseSet(low: 0xFF, high: 0xD8, extended: 0xFB), 0x2F),
        ("ps2avrgb", "bootloader_ps2avrgb_bootloadhid_1.0.1.hex", "atmega32a", FuseSet(low: 0x0F, high: 0xD0), 0x3C),
    ]

    @Test(.needsFirmware, arguments: cases, [ProgrammerKind.usbasp, .usbtiny])
    func everyRealBootloaderIsRestored(_ c: (rule: String, file: String, part: String, fuses: FuseSet, lock: UInt8?), _ kind: ProgrammerKind) throws {
        let part = avr(c.part)
        let run = try Rehearsal(kind, c.part, rule: c.rule, flash: garbage(part.flash.size), eeprom: garbage(part.eeprom.size, seed: 3))
        defer { try? FileManager.default.removeItem(at: run.backupDirectory) }
        #expect(run.result.outcome == .restored, "\(run.result.summary)")
        #expect(run.bench.chip.flash == (try image(c.file)).bytes(in: 0..<UInt32(part.flash.size)))
        #expect(part.fusesMatch(expected: c.fuses, actual: run.bench.chip.fuses))
        if let lock = c.lock { #expect(run.bench.chip.lock & 0x3F == lock & 0x3F) }
        #expect(run.bench.chip.eeprom == garbage(part.eeprom.size, seed: 3), "EEPROM written back after the erase")
        #expect(run.bench.chip.instructionsWhileBusy.isEmpty, "every self-timed write was waited out")
        // A rule that clears CKDIV8 on the factory chip's crystal clears it first, then runs at full speed.
        let raises = part.field("CKDIV8") != nil && c.fuses.low.map { $0 & 0x80 != 0 } == true
        var steps: [RecoveryStep] = [.connect, .identify, .selectRule, .check, .healthCheck] + (raises ? [.raiseClock] : [])
            + [.backup, .erase, .writeFlash, .verifyFlash, .restoreEEPROM, .writeFuses, .verifyFuses]
        if c.lock != nil { steps.append(.writeLock) }
        steps.append(.release)
        #expect(run.sink.finishedSteps == steps)
        #expect(run.result.steps.first { $0.step == .writeFlash }!.nanoseconds > 0)
        // The backup holds what the chip had before.
        let backup = try ChipState.read(from: try #require(run.result.backupPath))
        #expect(backup.flash == garbage(part.flash.size))
        #expect(backup.eeprom == garbage(part.eeprom.size, seed: 3))
        #expect(backup.fuses.low == part.factoryFuses.low)
    }

    @Test(.needsFirmware, arguments: [ProgrammerKind.usbasp, .usbtiny])
    func aHealthyBoardIsLeftAlone(_ kind: ProgrammerKind) throws {
        let part = avr("atmega32u4")
        let caterina = try image("Caterina-promicro16.hex").bytes(in: 0..<UInt32(part.flash.size))
        let run = try Rehearsal(kind, "atmega32u4", rule: "pro-micro-5v", flash: caterina, fuses: FuseSet(low: 0xFF, high: 0xD8, extended: 0xCB))
        #expect(run.result.outcome == .healthy)
        #expect(run.sink.finishedSteps == [.connect, .identify, .selectRule, .check, .healthCheck, .release])
        #expect(run.bench.chip.pageWrites == 0)
        #expect(run.backups.isEmpty)
        // Only the bootloader's 32 pages were read.
        #expect(run.result.steps.first { $0.step == .healthCheck }?.bytes == 4096)
    }

    /// Fuses already right, flash not: the health check stops at the first page that differs instead of
    /// reading the whole bootloader region (8 KiB at 19200 baud is six seconds of a serial line).
    @Test(.needsFirmware) func theHealthCheckStopsAtTheFirstPageThatDiffers() throws {
        let part = avr("atmega32u4")
        var flash = try image("Caterina-promicro16.hex").bytes(in: 0..<UInt32(part.flash.size))
        let blank = try Rehearsal(.usbasp, "atmega32u4", rule: "pro-micro-5v", fuses: FuseSet(low: 0xFF, high: 0xD8, extended: 0xCB))
        #expect(blank.result.outcome == .restored)
        #expect(blank.result.steps.first { $0.step == .healthCheck }?.bytes == part.flash.pageSize, "the first page told")
        flash[0x7A00] ^= 0xFF   // one byte off, 2.5 KiB into the bootloader
        let late = try Rehearsal(.usbasp, "atmega32u4", rule: "pro-micro-5v", flash: flash, fuses: FuseSet(low: 0xFF, high: 0xD8, extended: 0xCB))
        #expect(late.result.outcome == .restored)
        let read = try #require(late.result.steps.first { $0.step == .healthCheck }?.bytes)
        #expect(read > 0x7A00 - 0x7000 && read < 4096, "read up to the chunk holding 0x7A00, not beyond")
        #expect(late.bench.chip.flash == (try image("Caterina-promicro16.hex")).bytes(in: 0..<UInt32(part.flash.size)))
    }

    @Test(.needsFirmware) func theFirstMatchingRuleIsUsedWithoutRule() throws {
        let run = try Rehearsal(.usbasp, "atmega32u4", rule: nil)
        #expect(run.result.rule == "atmel-dfu")
        #expect(run.result.outcome == .restored)
    }

    @Test(.needsFirmware) func eepromIsNotWrittenBackWhenTheRuleSaysSo() throws {
        let rules = try ruleSet(Fixtures.seedRules.replacingOccurrences(of: "clock_div8 = true", with: "clock_div8 = true\nrestore_eeprom = false"))
        let run = try Rehearsal(.usbasp, "atmega32u4", rule: "atmel-dfu", rules: rules, eeprom: [1, 2, 3])
        #expect(run.result.outcome == .restored)
        #expect(run.bench.chip.eeprom.allSatisfy { $0 == 0xFF })
        #expect(!run.sink.finishedSteps.contains(.restoreEEPROM))
    }

    @Test func largePartsAreRestoredThroughUSBaspAndRefusedByUSBtiny() throws {
        let dir = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let boot = try MemoryImage(bytes: garbage(8192, seed: 9), at: 0x1E000)
        try IntelHex.format(boot).write(to: dir.appendingPathComponent("dfu128.hex"), atomically: true, encoding: .utf8)
        let rules = try ruleSet("""
        [[rule]]
        name = "teensypp"
        match = { part = "at90usb1286" }
        bootloader = "\(dir.path)/dfu128.hex"
        fuses = { low = 0x5E, high = 0x99, extended = 0xF3 }
        clock = "crystal"
        clock_div8 = true
        """)
        let part = avr("at90usb1286")
        let original = garbage(part.flash.size, seed: 1)
        let usbasp = try Rehearsal(.usbasp, "at90usb1286", rule: nil, rules: rules, flash: original)
        #expect(usbasp.result.outcome == .restored, "\(usbasp.result.summary)")
        #expect(usbasp.bench.chip.flash == boot.bytes(in: 0..<0x20000))

        let tiny = try Rehearsal(.usbtiny, "at90usb1286", rule: nil, rules: rules, flash: original)
        #expect(tiny.result.outcome == .failed)
        #expect(tiny.result.failure?.step == .check)
        #expect(tiny.result.failure?.reason.exitCode == 7)
        #expect(tiny.result.failure?.description == "refused before erasing anything: USBtinyISP addresses only the first 64 KiB of flash, and AT90USB1286 has 128 KiB: it would write the bootloader to the wrong place and fail verification; use a USBasp, an Arduino as ISP or a Bus Pirate")
        #expect(tiny.bench.chip.flash == original, "nothing was erased")
        #expect(tiny.bench.chip.pageWrites == 0)
        #expect(tiny.backups.isEmpty)
    }
}

@Suite struct FaultTests {
    static func run(_ fault: SimulatedFault, kind: ProgrammerKind = .usbasp) throws -> Rehearsal {
        try Rehearsal(kind, "atmega32u4", rule: "pro-micro-5v", faults: [fault], flash: garbage(32768))
    }

    @Test(arguments: [SimulatedFault.noTarget, .misoLow])
    func noTargetIsReportedAtConnect(_ fault: SimulatedFault) throws {
        let run = try Self.run(fault)
        #expect(run.result.failure?.step == .connect)
        #expect(run.result.failure?.reason.exitCode == 3)
        #expect(run.result.failure?.description == "no target answers: programming enable got no echo at any SCK down to 4 kHz (tried 1.5 MHz, 750 kHz, 375 kHz, 187.5 kHz, 93.75 kHz, 32 kHz, 16 kHz, 8 kHz, 4 kHz); check the ISP cable (RESET, SCK, MOSI, MISO, GND), that the board is powered, and that nothing else drives RESET")
        #expect(run.backups.isEmpty)
    }

    @Test func noTargetThroughUSBtiny() throws {
        let run = try Self.run(.noTarget, kind: .usbtiny)
        #expect(run.result.failure?.description.hasPrefix("no target answers: programming enable got no echo at any SCK down to 4 kHz (tried 1 MHz, 500 kHz, 333 kHz, 250 kHz, 200 kHz, 100 kHz, 40 kHz, 20 kHz, 10 kHz, 4 kHz)") == true)
    }

    @Test func wrongPartIsRefusedBeforeAnythingIsWritten() throws {
        let run = try Self.run(.wrongPart)
        #expect(run.result.failure?.step == .selectRule)
        #expect(run.result.failure?.description == "the chip's signature 0x1E9502 is ATmega32A, but rule 'pro-micro-5v' is for ATmega32U4; nothing was written")
        #expect(run.result.failure?.reason.exitCode == 6)
        #expect(run.bench.chip.flash == garbage(32768))
    }

    @Test(.needsFirmware) func aTargetThatVanishesMidWriteIsNamedAndTheBackupKept() throws {
        let run = try Self.run(.targetVanishes)
        #expect(run.result.failure?.step == .verifyFlash)
        #expect(run.result.failure?.reason.exitCode == 3)
        let backup = try #require(run.result.failure?.backupPath)
        #expect(run.result.failure?.description == "the target stopped answering while verifying flash (its signature now reads 0xFFFFFF); check the ISP cable and the target's power; before that the job had changed the low fuse from 0x5E to 0xDE (CKDIV8 cleared early, as the rule's low fuse 0xFF clears it: the low-power crystal oscillator, 8–16 MHz runs undivided): the chip's memory was untouched then, and its original fuses are L 0x5E, H 0x99, E 0xC3 (the chip's previous contents are saved in \(backup))")
        #expect(try ChipState.read(from: backup).flash == garbage(32768))
    }

    @Test(.needsFirmware, arguments: [ProgrammerKind.usbasp, .usbtiny])
    func anUnpluggedProgrammerIsNamedAndTheBackupKept(_ kind: ProgrammerKind) throws {
        let run = try Self.run(.programmerUnplugged, kind: kind)
        #expect(run.result.failure?.step == .writeFlash)
        #expect(run.result.failure?.reason.exitCode == 4)
        #expect(run.result.failure?.description.hasPrefix("the programmer disappeared from USB while ") == true)
        #expect(try ChipState.read(from: try #require(run.result.failure?.backupPath)).flash == garbage(32768))
    }

    @Test(.needsFirmware) func aHungProgrammerTimesOut() throws {
        let run = try Self.run(.programmerHangs)
        #expect(run.result.failure?.step == .writeFlash)
        #expect(run.result.failure?.description.contains("the programmer stopped answering while writing flash at 0x7fe0 (no reply within 5000 ms)") == true)
        #expect(run.result.failure?.backupPath != nil)
    }

    @Test(.needsFirmware) func aFlippedBitOnReadBackIsRetriedAndReported() throws {
        let run = try Self.run(.flippedBit)
        #expect(run.result.outcome == .restored)
        #expect(run.sink.notices.filter { !$0.hasPrefix("low fuse") } == ["read-back glitch at 0x7000 (0x55 read as 0x45); the second read matched — check the ISP cable"])
    }

    @Test(.needsFirmware) func aCellThatWillNotProgramFailsVerification() throws {
        let caterina = try image("Caterina-promicro16.hex")
        let bench = try SimulatedBench(kind: .usbasp, part: avr("atmega32u4"), flash: garbage(32768))
        bench.placeStuckBit(at: 0x7001)
        #expect(caterina[0x7001]! & 0x04 == 0)
        let isp = USBasp(device: bench.usbDevice!, time: bench.clock)
        let dir = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let result = RecoveryJob(programmer: isp, rules: try ruleSet(), ruleName: "pro-micro-5v", backups: BackupStore(directory: dir.path), sink: RecordingSink()).run()
        #expect(result.failure?.step == .verifyFlash)
        #expect(result.failure?.reason.exitCode == 8)
        #expect(result.failure?.reason.description == "verification failed at 0x7001: wrote 0xC0, read 0xC4 twice; the flash cell or the cable is bad")
    }

    @Test(.needsFirmware) func aSlowClockedChipIsReachedAtALowerSCK() throws {
        let run = try Self.run(.slowClock)
        #expect(run.result.outcome == .restored)
        #expect(run.result.programmer.sck == "187.5 kHz")
    }

    @Test(.needsFirmware) func aLockedChipIsRestoredWithoutInventingEEPROM() throws {
        let run = try Self.run(.locked)
        #expect(run.result.outcome == .restored)
        #expect(run.sink.notices.contains("lock bits 0xFC hide the memory: the backup holds what the chip shows, not its contents"))
        #expect(run.bench.chip.eeprom.allSatisfy { $0 == 0xFF })
        #expect(run.result.steps.first { $0.step == .restoreEEPROM }?.detail == "not restored: the lock bits hid the EEPROM, so the backup holds no real contents")
    }
}

@Suite struct StaticRefusalTests {
    /// A rule that fails a static check must leave the chip exactly as it was, and save nothing.
    static let refusals: [(String, String, String)] = [
        ("unsafe fuses", Fixtures.seedRules.replacingOccurrences(of: "high = 0xD8, extended = 0xFB }\nclock = \"crystal\"\nclock_div8 = false\n\n[[rule]]\nname = \"arduino-micro\"", with: "high = 0xF8, extended = 0xFB }\nclock = \"crystal\"\nclock_div8 = false\n\n[[rule]]\nname = \"arduino-micro\""),
         "refused before erasing anything: high fuse 0xF8 leaves SPIEN unprogrammed"),
        ("changed file", Fixtures.seedRules.replacingOccurrences(of: "bd2cffaedb0636d7cb85664800679ad239f00a736c968a5e5a4329ec37af25e7", with: String(repeating: "a", count: 64)),
         "Caterina-promicro16.hex: sha256 is bd2cffaedb0636d7cb85664800679ad239f00a736c968a5e5a4329ec37af25e7, but the rule pins aaaa"),
        ("boot section mismatch", Fixtures.seedRules.replacingOccurrences(of: "high = 0xD8, extended = 0xFB }\nclock = \"crystal\"\nclock_div8 = false\n\n[[rule]]\nname = \"arduino-micro\"", with: "high = 0xDA, extended = 0xFB }\nclock = \"crystal\"\nclock_div8 = false\n\n[[rule]]\nname = \"arduino-micro\""),
         "refused before erasing anything: the bootloader starts at 0x7000, below the boot section at 0x7800"),
    ]

    @Test(.needsFirmware, arguments: refusals)
    func nothingIsErasedWhenAStaticCheckFails(_ refusal: (String, String, String)) throws {
        let rules = try ruleSet(refusal.1)
        let run = try Rehearsal(.usbasp, "atmega32u4", rule: "pro-micro-5v", rules: rules, flash: garbage(32768), eeprom: [9, 9, 9])
        #expect(run.result.failure?.step == .check, "\(refusal.0)")
        #expect(run.result.failure?.reason.exitCode == 7)
        #expect(run.result.failure?.description.contains(refusal.2) == true, "\(refusal.0): \(run.result.failure?.description ?? "")")
        #expect(run.bench.chip.flash == garbage(32768))
        #expect(Array(run.bench.chip.eeprom.prefix(3)) == [9, 9, 9])
        #expect(run.bench.chip.fuses.low == 0x5E)
        #expect(run.backups.isEmpty)
    }

    @Test func anUnknownRuleNameIsAnError() throws {
        let run = try Rehearsal(.usbasp, "atmega32u4", rule: "no-such-rule")
        #expect(run.result.failure?.description == "the rules file has no rule named 'no-such-rule'")
        #expect(run.result.failure?.reason.exitCode == 7)
    }

    @Test func aPartWithoutARuleIsAnError() throws {
        let run = try Rehearsal(.usbasp, "atmega328p", rule: nil)
        #expect(run.result.failure?.description == "no rule matches ATmega328P on USBasp; add one to the rules file or name one with --rule")
    }
}

@Suite struct BackupStoreTests {
    @Test func savesAtomicallyUnderTimestampedFolders() throws {
        let dir = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let store = BackupStore(directory: dir.path)
        let state = ChipState(flash: [1, 2, 3], eeprom: [4], fuses: FuseSet(low: 0x5E, high: 0x99, extended: 0xF3), lock: 0x3F)
        let date = Date(timeIntervalSince1970: 1_700_000_000)
        let first = try store.save(state, part: avr("atmega32u4"), signature: Signature(0x1E, 0x95, 0x87), programmer: "USBasp", rule: "r", date: date)
        let second = try store.save(state, part: avr("atmega32u4"), signature: Signature(0x1E, 0x95, 0x87), programmer: "USBasp", rule: "r", date: date)
        #expect(first.hasSuffix("/20231114T221320Z-atmega32u4"))
        #expect(second.hasSuffix("/20231114T221320Z-atmega32u4-2"))
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path).sorted() == ["20231114T221320Z-atmega32u4", "20231114T221320Z-atmega32u4-2"])
        #expect(try ChipState.read(from: first) == state)
        #expect(try String(contentsOfFile: first + "/fuses.json", encoding: .utf8) == "{\"low\": 94, \"high\": 153, \"extended\": 243, \"lock\": 63}\n")
        let manifest = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: first + "/backup.json"))) as? [String: String]
        #expect(manifest?["signature"] == "0x1E9587")
    }

    @Test func slotsSavingTheSamePartAtOnceGetOneFolderEach() throws {
        let dir = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        // The backup directory does not exist yet: every job tries to create it.
        let store = BackupStore(directory: dir.path + "/backups")
        let date = Date(timeIntervalSince1970: 1_700_000_000)
        let folders = Mutex<[String]>([])
        DispatchQueue.concurrentPerform(iterations: 16) { i in
            let state = ChipState(flash: [UInt8(i)], eeprom: [], fuses: FuseSet(low: 0x5E, high: 0x99, extended: 0xF3), lock: nil)
            let folder = try? store.save(state, part: avr("atmega32u4"), signature: Signature(0x1E, 0x95, 0x87), programmer: "USBasp", rule: "r", date: date)
            folders.withCheckedLock { $0.append(folder ?? "failed") }
        }
        let saved = folders.withCheckedLock { $0 }
        #expect(Set(saved).count == 16 && !saved.contains("failed"))
        #expect(Set(try saved.map { try ChipState.read(from: $0).flash[0] }) == Set(0..<16))
    }

    @Test(.needsFirmware) func aBackupThatCannotBeWrittenStopsTheRestore() throws {
        let bench = try SimulatedBench(kind: .usbasp, part: avr("atmega32u4"), flash: garbage(32768))
        let isp = USBasp(device: bench.usbDevice!, time: bench.clock)
        let result = RecoveryJob(programmer: isp, rules: try ruleSet(), ruleName: "pro-micro-5v",
                                 backups: BackupStore(directory: "/proc/bootmedic-cannot-write-here"), sink: RecordingSink()).run()
        #expect(result.failure?.step == .backup)
        #expect(result.failure?.reason.exitCode == 9)
        #expect(result.failure?.description.hasPrefix("could not save the backup, so nothing was erased: /proc/bootmedic-cannot-write-here") == true)
        #expect(bench.chip.flash == garbage(32768))
    }
}

@Suite struct ExitStatusTests {
    /// The README's table and `--help` come from one table: a new failure class shows up in both.
    @Test func theReadmeListsEveryExitStatus() throws {
        let readme = try String(contentsOf: Fixtures.repositoryRoot.appendingPathComponent("README.md"), encoding: .utf8)
        #expect(readme.contains(FailureClass.markdownTable), "paste FailureClass.markdownTable into the README")
        #expect(RecoveryError.cancelled("x").exitCode == 10)
        #expect(Set(FailureClass.allCases.map(\.rawValue)).count == FailureClass.allCases.count)
    }
}

@Suite struct ChipStateTests {
    @Test(arguments: [("[1, 2]", "not a JSON object"), ("{\"low\": 300}", "low is not a byte value (0–255)"),
                      ("{\"low\": \"0xFF\"}", "low is not a byte value (0–255)"), ("{\"lwo\": 255}", "unknown key 'lwo'"), ("{", "not JSON")])
    func aMalformedFusesFileIsAnErrorNotNoFuses(_ text: String, _ reason: String) throws {
        let dir = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        try ChipState(flash: [0xFF], eeprom: [0xFF], fuses: FuseSet(low: 0x5E), lock: 0x3F).write(to: dir.path)
        #expect(try ChipState.read(from: dir.path).fuses == FuseSet(low: 0x5E))
        try text.write(toFile: dir.path + "/fuses.json", atomically: true, encoding: .utf8)
        #expect(throws: ChipStateError.malformedFuses(path: dir.path + "/fuses.json", reason: reason)) { try ChipState.read(from: dir.path) }
    }
}
