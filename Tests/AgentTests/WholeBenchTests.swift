import Agent
import Bootloaders
import Parts
import Simulation
import Synchronization
import Transport
import FirmwareImage
import Foundation
import Recovery
import Rules
import TestSupport
import Testing
import VirtualBench

/// The whole bench on one board: ISP restore of Atmel DFU (merged with the application) and its fuses,
/// the bootloader enumerates on the board's own USB, the rule's EEPROM settings make the flash through it
/// needed (the application is erased, written and verified through DFU, the EEPROM written), and the
/// application runs — one job.
@Suite(.serialized) struct WholeBenchTests {
    @Test(.needsFirmware) func ispRestoreThenTheApplicationThroughTheRestoredBootloaderIsOneJob() throws {
        let dir = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let app = try syntheticHex(0..<6000, in: dir)
        let settings = garbage(256, seed: 9)
        try Data(settings).write(to: dir.appendingPathComponent("settings.bin"))
        let text = """
        [[rule]]
        name = "keyboard"
        match = { part = "atmega32u4" }
        bootloader = "bootloader_atmega32u4_1_0_0.hex"
        application = "\(app)"
        eeprom = "\(dir.appendingPathComponent("settings.bin").path)"
        fuses = { low = 0x5E, high = 0x99, extended = 0xF3 }
        clock = "crystal"
        clock_div8 = false
        expect_usb = "03EB:2FF4"
        """
        let rules = try #require(RulesFile.parse(text, path: "r.toml", firmwareDirectory: Fixtures.firmwareDirectory.path).ruleSet)
        let run = try PlayedScenario(try scenario("""
        [[step]]
        at = 0.0
        plug = "a"
        programmer = "usbasp"
        [[step]]
        at = 0.05
        attach = "a"
        part = "atmega32u4"
        usb = true
        [[step]]
        at = 3.0
        unplug = "a"
        """), pollInterval: 0.05, expectUSBTimeout: 2, backups: BackupStore(directory: dir.appendingPathComponent("backups").path), rules: rules)
        let entries = run.journal.entries
        let jobs = Set(entries.compactMap { $0.fields["BOOTMEDIC_JOB"] })
        #expect(jobs.count == 1, "one job from ISP restore to application: \(entries.map(\.message))")
        let results = entries.filter { [.restored, .healthy, .failed].contains($0.kind) }
        #expect(results.map { $0.fields["BOOTMEDIC_PROGRAMMER"] } == ["usbasp", "atmel-dfu"], "\(results.map(\.message))")
        #expect(results.allSatisfy { $0.kind == .restored }, "\(results.map { $0.message + " " + ($0.fields["BOOTMEDIC_REASON"] ?? "") })")
        #expect(results.last?.fields["BOOTMEDIC_BOOTLOADER"] == "atmel-dfu")
        #expect(entries.map(\.kind).firstIndex(of: .bootloaderEnumerated).map { $0 < entries.map(\.kind).lastIndex(of: .restored)! } == true)
        #expect(entries.contains { $0.fields["BOOTMEDIC_STEP"] == "write-eeprom" })
        #expect(entries.contains { $0.message.contains("the application runs: the bootloader's device went away") })
        let chip = try #require(run.bench.chips["a"])
        let boot = try FirmwareFile(path: Fixtures.firmware("bootloader_atmega32u4_1_0_0.hex")).image
        #expect(Array(chip.flash[0..<6000]) == (try FirmwareFile(path: app).image.bytes(in: 0..<6000)))
        #expect(boot.segments.allSatisfy { s in Array(chip.flash[Int(s.address)..<Int(s.address) + s.bytes.count]) == s.bytes })
        #expect(Array(chip.eeprom[0..<256]) == settings && chip.eeprom[256...].allSatisfy { $0 == 0xFF })
        #expect(chip.fuses.low == 0x5E && chip.fuses.high == 0x99)
    }
}

/// A board that arrives in its bootloader on its own is flashed by a job of its own, once.
@Suite(.serialized) struct BootloaderArrivalTests {
    @Test(.needsFirmware) func aBoardArrivingInAtmelDFUIsFlashedOnce() throws {
        let dir = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let app = try syntheticHex(0..<3000, in: dir)
        let rules = try #require(RulesFile.parse("""
        [[rule]]
        name = "keyboard"
        match = { part = "atmega32u4" }
        application = "\(app)"
        backup = false
        restore_eeprom = false
        """, path: "r.toml").ruleSet)
        let journal = RecordingJournal()
        let agent = Agent(rules: rules, journal: journal, backups: nil, pollInterval: 0.05)
        let boot = try FirmwareFile(path: Fixtures.firmware("bootloader_atmega32u4_1_0_0.hex")).image
        nonisolated(unsafe) let chip = SimulatedAVR(part: avr("atmega32u4"), clock: VirtualClock(), flash: boot.bytes(in: 0..<0x8000),
                                                    fuses: FuseSet(low: 0x5E, high: 0x99, extended: 0xF3), lock: 0x2F)
        let opens = Mutex(0)
        let opened = DispatchSemaphore(value: 0), goOn = DispatchSemaphore(value: 0)
        let board = BenchBootloader(id: "/sys/devices/virtual/kb", kind: .atmelDFU, usb: USBID(vendor: 0x03EB, product: 0x2FF4), port: "pci-0-usb-0:3") {
            opens.withLock { $0 += 1 }
            opened.signal()
            _ = goOn.wait(timeout: .now() + 10)
            return AtmelDFUBootloader(device: SimulatedAtmelDFU(chip: chip, productID: 0x2FF4), time: chip.clock)
        }
        agent.start()
        agent.arrived(board)
        agent.arrived(board)   // udev's enumeration and its event both reporting it
        #expect(opened.wait(timeout: .now() + 10) == .success)
        let job = try #require(journal.entries.first { $0.kind == .targetFound }?.fields["BOOTMEDIC_JOB"])
        #expect(agent.status == "no programmer plugged in; pci-0-usb-0:3: flashing through Atmel DFU (job \(job))")
        goOn.signal()
        let deadline = Date().addingTimeInterval(10)
        while agent.status.contains(job), Date() < deadline { usleep(10_000) }
        #expect(agent.status == "no programmer plugged in", "the ended job leaves the status line")
        agent.stop()
        let entries = journal.entries
        let result = try #require(entries.first { $0.kind == .restored }, "\(entries.map(\.message))")
        #expect(result.fields["BOOTMEDIC_BOOTLOADER"] == "atmel-dfu" && result.fields["BOOTMEDIC_PORT"] == "pci-0-usb-0:3")
        #expect(entries.first { $0.kind == .targetFound }?.fields["BOOTMEDIC_USB_ID"] == "03EB:2FF4")
        #expect(Set(entries.compactMap { $0.fields["BOOTMEDIC_JOB"] }).count == 1)
        #expect(opens.withLock { $0 } == 1, "one job for one board")
        #expect(Array(chip.flash[0..<3000]) == (try FirmwareFile(path: app).image.bytes(in: 0..<3000)))
    }

    /// Without a rule that has an application, a board in its bootloader is left alone.
    @Test(.needsFirmware) func withoutAnApplicationTheBoardIsLeftAlone() throws {
        let journal = RecordingJournal()
        let agent = Agent(rules: try guideRules(), journal: journal, backups: nil, pollInterval: 0.05)
        agent.start()
        agent.arrived(BenchBootloader(id: "kb", kind: .atmelDFU, usb: USBID(vendor: 0x03EB, product: 0x2FF4), port: nil) {
            throw USBError.noDevice
        })
        agent.stop()
        #expect(journal.entries.map(\.kind) == [.agentStarted, .agentStopping])
    }
}
