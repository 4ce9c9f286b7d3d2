import Foundation
import Parts
import Recovery
import Rules
import Simulation
import STLink
import TestSupport
import Testing

let bluepillRules = """
[[rule]]
name = "bluepill"
match = { part = "stm32f103" }
bootloader = "generic_boot20_pc13.bin"
sha256 = "8738933a44363f2a3597c7bd6e13afb892b2a4ed304372c31e758745b23b903c"
allow_unlock = true
"""

func bootloader() throws -> [UInt8] { [UInt8](try Data(contentsOf: URL(fileURLWithPath: Fixtures.firmware("generic_boot20_pc13.bin")))) }

struct BluepillRestore {
    let bench: SimulatedSTM32Bench
    let result: RecoveryResult
    let sink = RecordingSink()
    let backups: URL

    init(rules: String = bluepillRules, flash: [UInt8]? = nil, protected: Bool = false, faults: Set<SimulatedFault> = []) throws {
        bench = try SimulatedSTM32Bench(flash: flash, protected: protected, faults: faults)
        let set = try #require(RulesFile.parse(rules, path: "t.toml", firmwareDirectory: Fixtures.firmwareDirectory.path).ruleSet)
        backups = try Fixtures.temporaryDirectory()
        result = RecoveryJob(link: STLink(device: bench.device, time: bench.clock), rules: set, backups: BackupStore(directory: backups.path), sink: sink).run()
    }

    var backupFolders: [String] { (try? FileManager.default.contentsOfDirectory(atPath: backups.path)) ?? [] }
}

@Suite struct BluepillTests {
    @Test(.needsFirmware) func restoresTheSTM32duinoBootloaderOnAnUnprotectedChip() throws {
        let run = try BluepillRestore(flash: garbage(65536))
        defer { try? FileManager.default.removeItem(at: run.backups) }
        #expect(run.result.outcome == .restored, "\(run.result.summary)")
        let boot = try bootloader()
        #expect(Array(run.bench.target.flash.prefix(boot.count)) == boot)
        // Only the 8 pages the image covers were erased; the rest keeps the old contents.
        #expect(Array(run.bench.target.flash[8192...]) == Array(garbage(65536)[8192...]))
        #expect(run.bench.target.flash[boot.count..<8192].allSatisfy { $0 == 0xFF })
        #expect(run.bench.target.unitsErased == 8)
        #expect(run.bench.target.massErases == 0)
        #expect(run.sink.finishedSteps == [.connect, .identify, .selectRule, .check, .healthCheck, .backup, .erase, .writeFlash, .verifyFlash, .release])
        let backup = try #require(run.result.backupPath)
        #expect([UInt8](try Data(contentsOf: URL(fileURLWithPath: backup + "/flash.bin"))) == garbage(65536))
        #expect(try String(contentsOfFile: backup + "/option-bytes.json", encoding: .utf8) == "{\"data0\": 255, \"data1\": 255, \"rdp\": 165, \"user\": 255, \"wrp\": [255, 255, 255, 255]}\n")
        #expect(run.result.stm32?.summary == "STM32F10x medium-density, 64 KiB flash in 1024-byte pages (chip id 0x410, rev 0x2003)")
    }

    @Test(.needsFirmware) func unlocksAProtectedChipWhenTheRuleAllowsIt() throws {
        let run = try BluepillRestore(flash: garbage(65536), protected: true)
        #expect(run.result.outcome == .restored, "\(run.result.summary)")
        let boot = try bootloader()
        #expect(Array(run.bench.target.flash.prefix(boot.count)) == boot)
        #expect(run.bench.target.flash[boot.count...].allSatisfy { $0 == 0xFF }, "unlocking mass-erased the rest")
        #expect(run.bench.target.massErases == 1)
        #expect(!run.bench.target.isReadProtected)
        #expect(run.bench.target.optionBytes[0] == 0xA5)
        #expect(run.sink.finishedSteps == [.connect, .identify, .selectRule, .check, .backup, .unlock, .erase, .writeFlash, .verifyFlash, .release])
        #expect(run.sink.notices.contains("the chip is read-protected: its flash cannot be read, so only the option bytes are saved"))
    }

    @Test(.needsFirmware) func refusesToUnlockWithoutConsent() throws {
        let run = try BluepillRestore(rules: bluepillRules.replacingOccurrences(of: "allow_unlock = true", with: ""), flash: garbage(65536), protected: true)
        #expect(run.result.failure?.step == .unlock)
        #expect(run.result.failure?.reason.exitCode == 7)
        #expect(run.result.failure?.description == "the chip is read-protected (the guide's \"Unknown memory region\"): removing the protection mass-erases it, and its contents cannot be read or saved first; set allow_unlock = true in rule 'bluepill' to allow that")
        #expect(run.bench.target.isReadProtected)
        #expect(run.bench.target.flash == garbage(65536), "nothing erased")
    }

    @Test(.needsFirmware) func aHealthyBluepillIsLeftAlone() throws {
        let run = try BluepillRestore(flash: try bootloader())
        #expect(run.result.outcome == .healthy)
        #expect(run.bench.target.unitsErased == 0)
        #expect(run.backupFolders.isEmpty)
    }

    static let faults: [(SimulatedFault, Int32, String)] = [
        (.noTarget, 3, "no target answers on SWD (the SW-DP IDCODE reads 0x00000000): check the wiring (SWDIO, SWCLK, GND, 3.3V) and try swapping SWDIO and SWCLK, as some ST-Link dongles have them labelled the wrong way round"),
        (.swappedWires, 3, "no target answers on SWD (the SW-DP IDCODE reads 0x00000000): check the wiring (SWDIO, SWCLK, GND, 3.3V) and try swapping SWDIO and SWCLK, as some ST-Link dongles have them labelled the wrong way round"),
        (.noPower, 3, "the target has no power (0.04 V on the ST-Link's 3.3V pin): connect 3.3V and GND to the board"),
        (.oldFirmware, 5, "the ST-Link's firmware V2J22S7 is too old: it lacks 16-bit memory writes (firmware J26 or later), which STM32F1 flash programming needs; update it with ST's STSW-LINK007 firmware updater"),
    ]

    @Test(.needsFirmware, arguments: faults)
    func eachFaultHasItsOwnMessageAndExitCode(_ fault: (SimulatedFault, Int32, String)) throws {
        let run = try BluepillRestore(flash: garbage(65536), faults: [fault.0])
        #expect(run.result.failure?.reason.exitCode == fault.1)
        #expect(run.result.failure?.description == fault.2)
        #expect(run.bench.target.flash == garbage(65536), "nothing erased")
    }

    @Test(.needsFirmware) func anUnpluggedSTLinkKeepsTheBackup() throws {
        let run = try BluepillRestore(flash: garbage(65536), faults: [.programmerUnplugged])
        #expect(run.result.failure?.step == .writeFlash)
        #expect(run.result.failure?.reason.exitCode == 4)
        #expect(run.result.failure?.description.hasPrefix("the ST-Link disappeared from USB while writing memory at 0x8001000 (unplugged?)") == true)
        let backup = try #require(run.result.failure?.backupPath)
        #expect([UInt8](try Data(contentsOf: URL(fileURLWithPath: backup + "/flash.bin"))) == garbage(65536))
    }

    /// A genuine chip answering a CKS32F103's SW-DP: `stm32f103` is ST's silicon only, so the Bluepill rule
    /// leaves it alone, and a rule that lists the clone restores it.
    @Test(.needsFirmware) func aCloneIsNamedAndMatchedOnlyByItsOwnName() throws {
        let refused = try BluepillRestore(faults: [.clone])
        #expect(refused.result.failure?.step == .selectRule)
        #expect(refused.result.failure?.description.contains("CKS32F103") == true, "\(refused.result.summary)")
        #expect(refused.bench.target.unitsErased == 0)
        let run = try BluepillRestore(rules: bluepillRules.replacingOccurrences(of: "part = \"stm32f103\"", with: "part = [\"stm32f103\", \"cks32f103\"]"), faults: [.clone])
        #expect(run.result.outcome == .restored, "\(run.result.summary)")
        #expect(run.sink.notices.contains("this chip is not ST's: CKS32F103 (DPIDR 0x2BA01477, CPUID 0x411FC231, ROM table designer 0x020); programmed with its maker's differences"), "\(run.sink.notices)")
    }

    @Test func decodesTheFirmwareVersion() throws {
        let bench = try SimulatedSTM32Bench()
        let link = STLink(device: bench.device, time: bench.clock)
        _ = try link.connect()
        #expect(link.version?.description == "V2J37S7")
        #expect(abs(try link.targetVoltage() - 3.27) < 0.01)
        #expect(link.swdKilohertz == 4000)
    }

    /// The debug-register commands st-flash relies on (0xF2 0x36 read, 0x35 write) reach the core's
    /// system control space: CPUID, DHCSR halting, AIRCR reset.
    @Test func debugRegistersHaltAndResetTheCore() throws {
        let bench = try SimulatedSTM32Bench()
        let device = bench.device
        func command(_ bytes: [UInt8], reply: Int) throws -> [UInt8] {
            _ = try device.bulkWrite(endpoint: 0x02, data: bytes + [UInt8](repeating: 0, count: 16 - bytes.count), timeoutMilliseconds: 100)
            return try device.bulkRead(endpoint: 0x81, length: reply, timeoutMilliseconds: 100)
        }
        func le(_ v: UInt32) -> [UInt8] { (0..<4).map { UInt8(v >> (8 * $0) & 0xFF) } }
        func readDebug(_ address: UInt32) throws -> [UInt8] { try command([0xF2, 0x36] + le(address), reply: 8) }
        func writeDebug(_ address: UInt32, _ value: UInt32) throws -> [UInt8] { try command([0xF2, 0x35] + le(address) + le(value), reply: 2) }

        #expect(try command([0xF2, 0x30, 0xA3], reply: 2) == [0x80, 0x00])
        #expect(try readDebug(0xE000_ED00) == [0x80, 0, 0, 0] + le(0x411F_C231), "Cortex-M3 r1p1")
        #expect(try writeDebug(0xE000_EDF0, 0xA05F_0003) == [0x80, 0x00])
        #expect(bench.target.isHalted)
        #expect(try readDebug(0xE000_EDF0) == [0x80, 0, 0, 0] + le(0x0003_0003), "S_REGRDY, S_HALT, C_HALT, C_DEBUGEN")
        #expect(try writeDebug(0xE000_EDF0, 0x0000_0000) == [0x80, 0x00])
        #expect(bench.target.isHalted, "without DBGKEY the write is ignored")
        _ = try writeDebug(0xE000_ED0C, 0x05FA_0004)
        #expect(!bench.target.isHalted, "SYSRESETREQ without VC_CORERESET: the core runs")
    }

    @Test func accessesMemoryIn8And16And32BitUnitsAndReportsFaults() throws {
        let bench = try SimulatedSTM32Bench()
        let link = STLink(device: bench.device, time: bench.clock)
        _ = try link.connect()
        try link.write8(0x2000_0001, [0xAA, 0xBB, 0xCC])
        #expect(try link.read8(0x2000_0000, count: 5) == [0x00, 0xAA, 0xBB, 0xCC, 0x00])
        try link.write16(0x2000_0010, [0x34, 0x12])
        try link.writeWord(0x2000_0014, 0xDEAD_BEEF)
        #expect(try link.read32(0x2000_0010, count: 8) == [0x34, 0x12, 0, 0, 0xEF, 0xBE, 0xAD, 0xDE])
        #expect(throws: STLinkError.accessFault(address: 0x6000_0000, status: "access port fault (the target refused the access)")) {
            try link.readWord(0x6000_0000)
        }
    }

    @Test func probeReportsProtection() throws {
        let bench = try SimulatedSTM32Bench(protected: true)
        let report = STM32Probe.run(STLink(device: bench.device, time: bench.clock))
        #expect(report.readProtected == true)
        #expect(report.target?.chipID == 0x410)
        #expect(report.problem == nil)
    }
}
