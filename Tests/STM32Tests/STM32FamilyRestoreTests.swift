import Foundation
import Parts
import Recovery
import Rules
import Simulation
import STLink
import TestSupport
import Testing

/// One rule per board a bench sees behind an ST-Link: the Bluepill's chip in each maker's silicon, and
/// the Black Pills.
let benchSTM32Rules = """
[[rule]]
name = "bluepill"
match = { part = ["stm32f103", "gd32f103", "cks32f103", "cs32f103", "apm32f103"] }
bootloader = "generic_boot20_pc13.bin"
allow_unlock = true

[[rule]]
name = "black-pill"
match = { part = ["stm32f401", "stm32f411"] }
bootloader = "generic_boot20_pc13.bin"
allow_unlock = true
"""

/// A restore of the simulated `model` behind a simulated ST-Link.
struct STM32Restore {
    let bench: SimulatedSTM32Bench
    let result: RecoveryResult
    let sink = RecordingSink()

    init(_ model: SimulatedSTM32Model, rules: String = benchSTM32Rules, flash: [UInt8]? = nil, protected: Bool = false,
         volts: Double? = nil) throws {
        bench = try SimulatedSTM32Bench(model: model, flash: flash, protected: protected)
        if let volts { bench.stlink.targetVolts = volts }
        let set = try #require(RulesFile.parse(rules, path: "t.toml", firmwareDirectory: Fixtures.firmwareDirectory.path).ruleSet)
        let backups = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: backups) }
        result = RecoveryJob(link: STLink(device: bench.device, time: bench.clock), rules: set, backups: BackupStore(directory: backups.path), sink: sink).run()
    }
}

@Suite struct STM32FamilyRestoreTests {
    /// Each model, protected: the part it is named as, the rule that took it, how its flash was erased and
    /// programmed. The bootloader's 7,172 bytes take 8 of a Bluepill's 1 KiB pages and sector 0 of a
    /// Black Pill; ST's F1 programs them in 3,586 half-words, a GD32 and an F4 at 3.3 V in 1,793 words.
    @Test(.needsFirmware, arguments: [
        (SimulatedSTM32Model.stm32f103, "STM32F10x medium-density", "bluepill", 8, 3586),
        (.gd32f103, "GD32F103", "bluepill", 8, 1793),
        (.cks32f103, "CKS32F103", "bluepill", 8, 3586),
        (.cs32f103, "CS32F103", "bluepill", 8, 3586),
        (.apm32f103, "APM32F103", "bluepill", 8, 3586),
        (.stm32f401, "STM32F401xB/C", "black-pill", 1, 1793),
        (.stm32f411, "STM32F411xC/E", "black-pill", 1, 1793),
    ])
    func eachChipIsUnlockedAndRestored(_ c: (SimulatedSTM32Model, String, String, Int, Int)) throws {
        let run = try STM32Restore(c.0, flash: garbage(c.0.flashSize), protected: true)
        #expect(run.result.outcome == .restored, "\(run.result.summary)")
        #expect(run.result.targetName == c.1)
        #expect(run.result.rule == c.2)
        let boot = try bootloader()
        #expect(Array(run.bench.target.flash.prefix(boot.count)) == boot)
        #expect(run.bench.target.flash[boot.count...].allSatisfy { $0 == 0xFF }, "unlocking mass-erased the rest")
        #expect(run.bench.target.massErases == 1)
        #expect(run.bench.target.unitsErased == c.3)
        #expect(run.bench.target.accessesProgrammed == c.4)
        #expect(!run.bench.target.isReadProtected)
        #expect(run.sink.finishedSteps == [.connect, .identify, .selectRule, .check, .backup, .unlock, .erase, .writeFlash, .verifyFlash, .release])
        #expect(run.sink.notices.contains { $0.hasPrefix("this chip is not ST's: \(c.1)") } == !c.0.part.hasPrefix("stm32"))
    }

    @Test(.needsFirmware, arguments: [SimulatedSTM32Model.gd32f103, .stm32f411])
    func aProtectedChipIsLeftAloneWithoutConsent(_ model: SimulatedSTM32Model) throws {
        let rules = benchSTM32Rules.replacingOccurrences(of: "allow_unlock = true", with: "allow_unlock = false")
        let run = try STM32Restore(model, rules: rules, flash: garbage(model.flashSize), protected: true)
        #expect(run.result.failure?.step == .unlock)
        #expect(run.result.failure?.reason.exitCode == 7)
        #expect(run.bench.target.isReadProtected)
        #expect(run.bench.target.flash == garbage(model.flashSize), "nothing erased")
        #expect(run.bench.target.massErases == 0 && run.bench.target.unitsErased == 0)
    }

    @Test(.needsFirmware) func theF4LeavesLevel1ThroughOPTCR() throws {
        let run = try STM32Restore(.stm32f411, flash: garbage(512 * 1024), protected: true)
        #expect(run.bench.target.optionBytes[1] == 0xAA, "RDP level 0")
        #expect(run.bench.target.optionBytes[0] == 0xEC, "the user options are kept")
        let unlock = try #require(run.sink.outcomes[.unlock])
        #expect(unlock.detail == "RDP back to level 0 (0xAA) through FLASH_OPTCR: the chip mass-erased its flash (allowed by allow_unlock)")
        #expect(run.sink.outcomes[.writeFlash]?.detail == "7172 bytes in words (PSIZE x32)")
    }

    /// RM0368 Table 7: below 2.7 V the flash takes half-words, below 2.1 V bytes.
    @Test(.needsFirmware, arguments: [(2.5, 3586, "in half-words (PSIZE x16)"), (1.9, 7172, "in bytes (PSIZE x8)")])
    func theF4ProgramsAtTheParallelismItsSupplyAllows(_ c: (Double, Int, String)) throws {
        let run = try STM32Restore(.stm32f411, flash: garbage(512 * 1024), volts: c.0)
        #expect(run.result.outcome == .restored, "\(run.result.summary)")
        #expect(run.bench.target.accessesProgrammed == c.1)
        #expect(run.sink.outcomes[.writeFlash]?.detail == "7172 bytes \(c.2)")
        #expect(Array(run.bench.target.flash.prefix(7172)) == (try bootloader()))
    }

    @Test(.needsFirmware) func aClonesNameIsTheOnlyOneThatMatchesIt() throws {
        let onlyST = benchSTM32Rules.replacingOccurrences(of: "[\"stm32f103\", \"gd32f103\", \"cks32f103\", \"cs32f103\", \"apm32f103\"]", with: "\"stm32f103\"")
        let run = try STM32Restore(.gd32f103, rules: onlyST, flash: garbage(65536))
        #expect(run.result.failure?.step == .selectRule)
        #expect(run.result.failure?.description.contains("GD32F103") == true, "\(run.result.summary)")
        #expect(run.bench.target.flash == garbage(65536))
        let family = benchSTM32Rules.replacingOccurrences(of: "[\"stm32f103\", \"gd32f103\", \"cks32f103\", \"cs32f103\", \"apm32f103\"]", with: "\"stm32f1\"")
        #expect(try STM32Restore(.cs32f103, rules: family, flash: garbage(65536)).result.outcome == .restored, "a family name takes its clones")
    }

    @Test func probeNamesTheClone() throws {
        let bench = try SimulatedSTM32Bench(model: .gd32f103)
        let report = STM32Probe.run(STLink(device: bench.device, time: bench.clock))
        let target = try #require(report.target)
        #expect(target.variant == .gd32f103)
        #expect(target.identity == STM32Identity(debugPortIDCode: 0x1BA0_1477, cpuID: 0x411F_C231, designer: 0x751, chipID: 0x410))
        #expect(target.summary == "GD32F103 (GigaDevice, as STM32F10x medium-density), 64 KiB flash in 1024-byte pages (chip id 0x410, rev 0x1303); DPIDR 0x1BA01477, CPUID 0x411FC231, ROM table designer 0x751")
        #expect(report.readProtected == false)
    }

    /// The simulated F4 controller refuses what the real one refuses, so the driver is checked against it.
    @Test func theSimulatedF4RefusesAWidthOtherThanPSIZE() throws {
        let bench = try SimulatedSTM32Bench(model: .stm32f411)
        let link = STLink(device: bench.device, time: bench.clock)
        _ = try link.connect()
        try link.writeWord(0x4002_3C04, 0x4567_0123)
        try link.writeWord(0x4002_3C04, 0xCDEF_89AB)
        try link.writeWord(0x4002_3C10, 0x0000_0201)      // PG, PSIZE x32
        try link.write16(0x0800_0000, [0x12, 0x34])        // a half-word
        #expect(try link.readWord(0x4002_3C0C) & 0x40 != 0, "PGPERR")
        #expect(bench.target.flash[0] == 0xFF)
        try link.writeWord(0x0800_0000, 0x1234_5678)
        #expect(Array(bench.target.flash.prefix(4)) == [0x78, 0x56, 0x34, 0x12])
    }
}
