import Agent
import Dispatch
import Foundation
import Programmers
import Recovery
import Synchronization
import Rules
import TestSupport
import Testing
import Transport
import VirtualBench

/// Keeps entries in memory.
final class RecordingJournal: JournalWriter {
    private let stored = Mutex<[(entry: JournalEntry, at: Date)]>([])
    var entries: [JournalEntry] { stored.withCheckedLock { $0.map(\.entry) } }
    /// When each entry was written.
    var timedEntries: [(entry: JournalEntry, at: Date)] { stored.withCheckedLock { $0 } }
    func write(_ entry: JournalEntry) { stored.withCheckedLock { $0.append((entry, Date())) } }
}

func guideRules() throws -> RuleSet {
    let path = Fixtures.guideRules
    return try #require(RulesFile.load(path: path, firmwareDirectory: Fixtures.firmwareDirectory.path).ruleSet)
}

func scenario(_ text: String) throws -> VirtualBenchScenario {
    let dir = try Fixtures.temporaryDirectory()
    let path = dir.appendingPathComponent("s.toml").path
    try text.write(toFile: path, atomically: true, encoding: .utf8)
    return try VirtualBenchScenario.load(path: path)
}

/// A scenario played by a virtual bench against an agent on the shipped rules, the agent stopped after.
struct PlayedScenario {
    let journal = RecordingJournal()
    let agent: Agent
    let bench: VirtualBench

    init(_ scenario: VirtualBenchScenario, pollInterval: Double, expectUSBTimeout: Double? = nil, backups: BackupStore? = nil, rules: RuleSet? = nil) throws {
        let rules = try rules ?? guideRules()
        agent = Agent(rules: rules, journal: journal, backups: backups, pollInterval: pollInterval)
        bench = VirtualBench(rules: rules)
        agent.usbPresence = bench.usbPresence
        agent.bootloaderOnBus = bench.bootloaderOnBus
        if let expectUSBTimeout { agent.expectUSBTimeout = expectUSBTimeout }
        agent.start()
        defer { agent.stop() }
        try bench.play(scenario, on: agent)
    }
}

@Suite(.serialized) struct AgentTests {
    @Test(.needsFirmware) func slotsRestoreHealthyAndFailedBoardsInParallel() throws {
        let backups = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: backups) }
        let run = try PlayedScenario(try scenario("""
        [[step]]
        at = 0.0
        plug = "a"
        programmer = "usbasp"
        [[step]]
        at = 0.0
        plug = "b"
        programmer = "usbtiny"
        [[step]]
        at = 0.05
        attach = "a"
        part = "atmega32u4"
        usb = true
        [[step]]
        at = 0.05
        attach = "b"
        part = "atmega32a"
        [[step]]
        at = 1.0
        detach = "a"
        [[step]]
        at = 1.2
        attach = "a"
        part = "atmega32u4"
        healthy = "atmel-dfu-atmega32u4"
        [[step]]
        at = 1.8
        detach = "a"
        [[step]]
        at = 2.0
        attach = "a"
        part = "atmega328p"
        [[step]]
        at = 2.6
        unplug = "a"
        [[step]]
        at = 2.7
        unplug = "b"
        """), pollInterval: 0.05, expectUSBTimeout: 0.5, backups: BackupStore(directory: backups.path))
        let entries = run.journal.entries
        let results = entries.filter { $0.fields["BOOTMEDIC_RESULT"] != nil }
        #expect(results.map { "\($0.fields["BOOTMEDIC_PORT"]!) \($0.fields["BOOTMEDIC_RESULT"]!)" }.sorted()
                == ["virtual-a failed", "virtual-a healthy", "virtual-a restored", "virtual-b restored"])
        // One job id per restore, shared by all of its entries, and different between jobs.
        let jobs = Set(results.compactMap { $0.fields["BOOTMEDIC_JOB"] })
        #expect(jobs.count == 4)
        for job in jobs {
            let of = entries.filter { $0.fields["BOOTMEDIC_JOB"] == job }
            #expect(of.first?.kind == .jobStarted)
            #expect(of.filter { [.restored, .healthy, .failed].contains($0.kind) }.count == 1, "one result per job")
            #expect([.restored, .healthy, .failed, .bootloaderEnumerated, .bootloaderMissing].contains(of.last?.kind))
        }
        let restored = try #require(results.first { $0.fields["BOOTMEDIC_PORT"] == "virtual-a" && $0.kind == .restored })
        #expect(restored.fields["BOOTMEDIC_PART"] == "ATmega32U4")
        #expect(restored.fields["BOOTMEDIC_SIGNATURE"] == "0x1E9587")
        #expect(restored.fields["BOOTMEDIC_RULE"] == "atmel-dfu-atmega32u4")
        #expect(restored.fields["BOOTMEDIC_FUSES"] == "L 0x5E, H 0x99, E 0xF3")
        #expect(restored.fields["BOOTMEDIC_BACKUP"]?.hasPrefix(backups.path) == true)
        #expect(restored.priority == 5)
        let failed = try #require(results.first { $0.kind == .failed })
        #expect(failed.message.hasSuffix("failed: no rule matches ATmega328P on USBasp; add one to the rules file or name one with --rule"))
        #expect(failed.priority == 3)
        #expect(failed.fields["BOOTMEDIC_EXIT_STATUS"] == "7")
        #expect(failed.fields["BOOTMEDIC_REASON"] == "no rule matches ATmega328P on USBasp; add one to the rules file or name one with --rule")
        #expect(entries.filter { $0.kind == .targetFound }.count == 4)
        // expect_usb: the USB-connected board's Atmel DFU enumerated; the PS2AVRGB board's USB was not connected.
        #expect(entries.filter { $0.kind == .bootloaderEnumerated }.map { $0.fields["BOOTMEDIC_USB_ID"] } == ["03EB:2FF4"])
        #expect(entries.filter { $0.kind == .bootloaderMissing }.map { $0.fields["BOOTMEDIC_USB_ID"] } == ["16C0:05DF"])
        #expect(entries.filter { $0.kind == .targetRemoved }.count >= 2)
        #expect(entries.filter { $0.kind == .programmerAdded }.count == 2)
        #expect(entries.filter { $0.kind == .programmerRemoved }.count == 2)
        #expect(entries.first?.kind == .agentStarted)
        #expect(entries.last?.kind == .agentStopping)
        #expect(run.agent.currentSlots.isEmpty)
    }

    @Test func aBoardIsNeverFlashedTwice() throws {
        let run = try PlayedScenario(try scenario("""
        [[step]]
        at = 0.0
        plug = "a"
        programmer = "usbasp"
        [[step]]
        at = 0.0
        attach = "a"
        part = "atmega32u4"
        [[step]]
        at = 1.0
        unplug = "a"
        """), pollInterval: 0.02)
        #expect(run.journal.entries.filter { $0.kind == .jobStarted }.count == 1)
    }

    @Test(.needsFirmware) func unpluggingWhileWaitingForTheBootloaderEndsTheWaitQuietly() throws {
        // expect_usb waits 30 s, far longer than the scenario: only the unplug can end the wait.
        let started = Date()
        let run = try PlayedScenario(try scenario("""
        [[step]]
        at = 0.0
        plug = "a"
        programmer = "usbasp"
        [[step]]
        at = 0.05
        attach = "a"
        part = "atmega32u4"
        [[step]]
        at = 1.0
        unplug = "a"
        """), pollInterval: 0.05, expectUSBTimeout: 30)
        let kinds = run.journal.entries.map(\.kind)
        #expect(kinds.contains(.restored))
        #expect(!kinds.contains(.bootloaderMissing), "the bench moved on; no claim about the board's USB")
        #expect(kinds.contains(.programmerRemoved))
        #expect(Date().timeIntervalSince(started) < 10)
        #expect(run.agent.currentSlots.isEmpty)
    }

    /// The programmer stays open from board to board; the SCK a slow board needed must not slow the next.
    @Test(.needsFirmware) func eachNewBoardIsProgrammedAtTheFastestSCKItAnswersAt() throws {
        let run = try PlayedScenario(try scenario("""
        [[step]]
        at = 0.0
        plug = "a"
        programmer = "usbasp"
        [[step]]
        at = 0.05
        attach = "a"
        part = "atmega32u4"
        fault = "slow-clock"
        [[step]]
        at = 0.6
        detach = "a"
        [[step]]
        at = 0.8
        attach = "a"
        part = "atmega32u4"
        healthy = "pro-micro-5v"
        [[step]]
        at = 1.4
        unplug = "a"
        """), pollInterval: 0.02, expectUSBTimeout: 0.05)
        let connects = run.journal.entries.filter { $0.fields["BOOTMEDIC_STEP"] == "connect" }.map(\.message)
        #expect(connects.count == 2)
        #expect(connects.first?.hasSuffix("USBasp at SCK 187.5 kHz") == true, "a 1 MHz chip: SCK below 250 kHz")
        #expect(connects.last?.hasSuffix("USBasp at SCK 1.5 MHz") == true, "the 16 MHz board that came next")
        #expect(run.journal.entries.filter { $0.kind == .restored }.map { $0.fields["BOOTMEDIC_RULE"] } == ["atmel-dfu-atmega32u4", "atmel-dfu-atmega32u4"])
        #expect(run.bench.chips["a"]?.fuses.low == 0x5E, "the second board has the rule's fuses")
    }

    /// `real_time`: the simulated programmer and chip take the hardware's time on the wall clock as well.
    @Test(.needsFirmware) func aRealTimeScenarioTakesTheHardwaresTime() throws {
        let played = try scenario("""
        real_time = true
        [[step]]
        at = 0.0
        plug = "a"
        programmer = "usbasp"
        [[step]]
        at = 0.05
        attach = "a"
        part = "atmega32u4"
        healthy = "atmel-dfu-atmega32u4"
        [[step]]
        at = 1.5
        unplug = "a"
        """)
        #expect(played.realTime)
        let timed = try PlayedScenario(played, pollInterval: 0.02).journal.timedEntries
        let started = try #require(timed.first { $0.entry.kind == .jobStarted }?.at)
        let finished = try #require(timed.first { $0.entry.kind == .healthy })
        let simulated = try #require(finished.entry.fields["BOOTMEDIC_DURATION_MS"].flatMap(Double.init)) / 1000
        #expect(simulated > 0.1, "a 4 KiB read and the fuses")
        // Less a wait at the very end that no later transfer is held back for.
        #expect(finished.at.timeIntervalSince(started) >= simulated - 0.01)
    }

    @Test(.needsFirmware) func serialProgrammersRestoreOnTheVirtualBench() throws {
        let run = try PlayedScenario(try scenario("""
        [[step]]
        at = 0.0
        plug = "uno"
        programmer = "stk500v1"
        [[step]]
        at = 0.0
        plug = "pirate"
        programmer = "buspirate"
        [[step]]
        at = 0.1
        attach = "uno"
        part = "atmega32u4"
        [[step]]
        at = 0.1
        attach = "pirate"
        part = "atmega32a"
        [[step]]
        at = 2.0
        unplug = "uno"
        [[step]]
        at = 2.0
        unplug = "pirate"
        """), pollInterval: 0.05)
        let results = run.journal.entries.filter { $0.fields["BOOTMEDIC_RESULT"] != nil }
        #expect(results.map { "\($0.fields["BOOTMEDIC_PROGRAMMER"]!) \($0.fields["BOOTMEDIC_RULE"] ?? "-") \($0.fields["BOOTMEDIC_RESULT"]!)" }.sorted()
                == ["buspirate ps2avrgb-bootloadhid restored", "stk500v1 atmel-dfu-atmega32u4 restored"])
        #expect(run.bench.chips["uno"]?.fuses.low == 0x5E)
    }

    @Test func aBurstOfPlugAndUnplugEventsLeavesNothingBehind() throws {
        // 1,000 events: 500 plugs and 500 unplugs over eight programmers, as fast as they come.
        var steps: [VirtualBenchScenario.Step] = []
        for i in 0..<500 {
            let name = "p\(i % 8)-\(i)"
            steps.append(.init(at: 0, action: .plug(name: name, kind: i % 2 == 0 ? .usbasp : .usbtiny)))
            steps.append(.init(at: 0, action: .unplug(name: name)))
        }
        let start = Date()
        let run = try PlayedScenario(VirtualBenchScenario(pollInterval: 0.01, steps: steps), pollInterval: 0.01)
        #expect(run.agent.currentSlots.isEmpty, "no slot stuck")
        #expect(run.journal.entries.filter { $0.kind == .programmerAdded }.count == 500)
        #expect(run.journal.entries.filter { $0.kind == .programmerRemoved }.count == 500)
        #expect(Date().timeIntervalSince(start) < 60)
    }

    @Test(.needsFirmware) func eightProgrammersRestoreAtOnce() throws {
        var steps: [VirtualBenchScenario.Step] = []
        for i in 0..<8 {
            steps.append(.init(at: 0, action: .plug(name: "b\(i)", kind: i % 2 == 0 ? .usbasp : .usbtiny)))
            steps.append(.init(at: 0.01, action: .attach(name: "b\(i)", part: "atmega32u4", healthyRule: nil, faults: [], protected: false)))
        }
        for i in 0..<8 { steps.append(.init(at: 3.0, action: .unplug(name: "b\(i)"))) }
        let run = try PlayedScenario(VirtualBenchScenario(pollInterval: 0.02, steps: steps), pollInterval: 0.02)
        let results = run.journal.entries.filter { $0.fields["BOOTMEDIC_RESULT"] != nil }
        #expect(results.count == 8)
        #expect(results.allSatisfy { $0.fields["BOOTMEDIC_RESULT"] == "restored" })
        #expect(Set(results.compactMap { $0.fields["BOOTMEDIC_PORT"] }).count == 8)
    }

    @Test func aWorkshopExtendsTheProgrammerCatalogInItsConfig() throws {
        let loaded = RulesFile.parse("""
        [[programmer]]
        usb = "1209:5BF0"
        kind = "usbasp"
        [[programmer]]
        usb = "1781:0C9F"
        product = "Not a programmer"
        kind = "ignore"
        [[programmer]]
        usb = "1209:5BF1"
        kind = "usbspa"
        [[programmer]]
        usb = "1A86:7523"
        kind = "ignore"
        [[programmer]]
        usb = "0403:6015"
        kind = "buspirate"
        """, path: "c.toml")
        #expect(loaded.problems.filter { $0.severity == .error }.map(\.description) == ["c.toml:10:8: error: unknown programmer kind 'usbspa' (did you mean 'usbasp'?); use one of usbasp, usbtiny, stk500v1, avrisp, buspirate, stlink, ignore"])
        let catalog = try #require(loaded.ruleSet).deviceCatalog
        func role(_ vid: UInt16, _ pid: UInt16, _ product: String?) -> DeviceRole? {
            catalog.entry(for: USBID(vendor: vid, product: pid), product: product)?.role
        }
        // Serial adapters: one silenced (never probed), one probed only for the kind declared.
        #expect(role(0x1A86, 0x7523, "USB Serial") == .ignore)
        #expect(role(0x0403, 0x6015, "FT231X") == .serialCandidate([.buspirate]), "a serial kind is never opened through libusb")
        #expect(role(0x0403, 0x6001, "FT232R") == .serialCandidate([.stk500v1, .buspirate]))
        #expect(role(0x1209, 0x5BF0, "Clone") == .programmer(.usbasp))
        #expect(role(0x1781, 0x0C9F, "Not a programmer") == .ignore)
        #expect(role(0x1781, 0x0C9F, "USBtiny") == .programmer(.usbtiny))
        #expect(role(0x16C0, 0x05DC, "USBaspLoader") == .bootloader(.usbasploader))
        #expect(role(0x16C0, 0x05DC, "USBasp") == .programmer(.usbasp))
        #expect(role(0x0483, 0x3748, nil) == .programmer(.stlink))

        // What udev reports reaches the slots through the same catalog.
        let journal = RecordingJournal()
        let agent = Agent(rules: try #require(loaded.ruleSet), journal: journal, backups: nil, pollInterval: 0.05,
                          serialProbe: { device, kinds in
                              BenchProgrammer(id: device.syspath, kind: kinds[0], serial: nil, port: nil) { throw USBError.noDevice }
                          })
        agent.handle(.added(udev("/sys/a", vid: 0x1209, pid: 0x5BF0, product: "Clone")))
        agent.handle(.added(udev("/sys/b", vid: 0x16C0, pid: 0x05DC, product: "USBaspLoader")))
        agent.handle(.added(udev("/sys/c", vid: 0x1A86, pid: 0x7523, product: "USB Serial", subsystem: "tty")))
        agent.handle(.added(udev("/sys/d", vid: 0x0403, pid: 0x6015, product: "FT231X", subsystem: "tty")))
        agent.handle(.added(udev("/sys/e", vid: 0x0403, pid: 0x6015, product: "FT231X")))
        #expect(probesSettle(agent), "the serial probe ended")
        #expect(agent.currentSlots.mapValues(\.programmer.kind) == ["/sys/a": .usbasp, "/sys/d": .buspirate])
        agent.stop()
    }

    @Test func aSerialDeviceThatLeavesDuringItsProbeGetsNoSlot() throws {
        let rules = try #require(RulesFile.parse("", path: "-").ruleSet)
        for leaves in [true, false] {
            let started = DispatchSemaphore(value: 0), proceed = DispatchSemaphore(value: 0)
            let journal = RecordingJournal()
            let agent = Agent(rules: rules, journal: journal, backups: nil, pollInterval: 0.05, serialProbe: { device, kinds in
                started.signal()
                _ = proceed.wait(timeout: .now() + 5)
                return BenchProgrammer(id: device.syspath, kind: kinds[0], serial: nil, port: nil) { throw USBError.noDevice }
            })
            let uno = udev("/sys/devices/usb1/1-2/tty/ttyACM0", vid: 0x2341, pid: 0x0043, product: "Arduino Uno", subsystem: "tty")
            agent.handle(.added(uno))
            #expect(started.wait(timeout: .now() + 5) == .success, "the probe started")
            if leaves { agent.handle(.removed(syspath: uno.syspath)) }
            proceed.signal()
            // Decided once the probe's job has ended, slot or no slot: before the agent stops, which adds none.
            #expect(probesSettle(agent), "the probe's job ended")
            #expect(agent.currentSlots.count == (leaves ? 0 : 1), leaves ? "a slot for a device that left" : "the probe's programmer got a slot")
            agent.stop()
            #expect(journal.entries.contains { $0.kind == .programmerAdded } == !leaves)
        }
    }

    @Test func everyMessageIDHasACatalogEntry() throws {
        let catalog = try String(contentsOf: Fixtures.repositoryRoot.appendingPathComponent("systemd/bootmedic.catalog"), encoding: .utf8)
        for message in JournalMessage.allCases {
            #expect(catalog.contains("-- \(message.id)\n"), "\(message)")
        }
        #expect(Set(JournalMessage.allCases.map(\.id)).count == JournalMessage.allCases.count)
    }
}

@Suite(.serialized) struct SystemIntegrationTests {
    @Test(.needsFirmware) func theAgentWritesStructuredEntriesToARealJournald() throws {
        try Fixtures.ensureJournald()
        let name = "journal-\(UUID().uuidString.prefix(8).lowercased())"
        let dir = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let scenarioPath = dir.appendingPathComponent("s.toml").path
        try """
        poll_interval = 0.05
        [[step]]
        at = 0.0
        plug = "\(name)"
        programmer = "usbasp"
        [[step]]
        at = 0.05
        attach = "\(name)"
        part = "atmega32u4"
        [[step]]
        at = 1.0
        unplug = "\(name)"
        """.write(toFile: scenarioPath, atomically: true, encoding: .utf8)
        let config = Fixtures.guideRules
        let agent = try run(Fixtures.bootmedicBinary, ["agent", "--config", config, "--firmware-dir", Fixtures.firmwareDirectory.path,
                                                       "--backup-dir", dir.appendingPathComponent("b").path, "--virtual-bench", scenarioPath])
        #expect(agent.status == 0, "\(agent.stderr)")
        Thread.sleep(forTimeInterval: 0.3)
        let read = try run("/usr/bin/journalctl", ["-o", "json", "--no-pager", "BOOTMEDIC_PORT=virtual-\(name)"])
        let entries = read.stdout.split(separator: "\n").compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
        let ids = entries.compactMap { $0["MESSAGE_ID"] as? String }
        #expect(ids.first == "4333a14dda834fe090c34aab938cb21a", "programmer added first")
        #expect(ids.contains("653ff7d7d1b44943a18bba4e1ca67320"), "target found")
        #expect(ids.contains("f5b3ae2d1d914a1ebba540e8109c9a9b"), "restored")
        #expect(ids.last == "2811e27351aa44f3bc147fb1c00a397b", "programmer removed last")
        let restored = try #require(entries.first { $0["MESSAGE_ID"] as? String == "f5b3ae2d1d914a1ebba540e8109c9a9b" })
        #expect(restored["BOOTMEDIC_RESULT"] as? String == "restored")
        #expect(restored["BOOTMEDIC_PART"] as? String == "ATmega32U4")
        #expect(restored["BOOTMEDIC_RULE"] as? String == "atmel-dfu-atmega32u4")
        #expect(restored["PRIORITY"] as? String == "5")
        #expect(restored["SYSLOG_IDENTIFIER"] as? String == "bootmedic")
        let job = try #require(restored["BOOTMEDIC_JOB"] as? String)
        let steps = entries.filter { $0["BOOTMEDIC_JOB"] as? String == job && $0["MESSAGE_ID"] as? String == "2d328a7740814abb9c54ceb76b4cf13f" }
        #expect(steps.compactMap { $0["BOOTMEDIC_STEP"] as? String } == ["connect", "identify", "select-rule", "check", "health-check", "backup", "erase",
                                                                        "write-flash", "verify-flash", "restore-eeprom", "write-fuses", "verify-fuses", "release"])
        #expect(steps.allSatisfy { $0["BOOTMEDIC_DURATION_MS"] != nil && $0["BOOTMEDIC_BYTES"] != nil })
        // bootmedic status reads the same entries back through sd-journal.
        let status = try run(Fixtures.bootmedicBinary, ["status"])
        #expect(status.stdout.contains("usbasp at virtual-\(name): 1 restored, 0 healthy, 0 failed"), "\(status.stdout)")
    }

    /// systemctl stop's SIGTERM and a terminal's SIGINT each stop the real agent in order: it journals that it
    /// stops and exits 0, within a bound.
    @Test(.needsFirmware, arguments: [SIGTERM, SIGINT])
    func aTerminationSignalStopsTheAgentInOrder(signal: Int32) throws {
        try Fixtures.ensureJournald()
        let dir = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let bench = "signal-\(signal)-\(UUID().uuidString.prefix(8).lowercased())"
        let process = Process()
        process.executableURL = URL(fileURLWithPath: Fixtures.bootmedicBinary)
        process.arguments = ["agent", "--config", try guideRules(naming: bench, in: dir), "--firmware-dir", Fixtures.firmwareDirectory.path,
                             "--backup-dir", dir.appendingPathComponent("b").path, "--state-dir", dir.appendingPathComponent("s").path]
        process.standardError = FileHandle.nullDevice
        try process.run()
        defer { if process.isRunning { process.interrupt(); kill(process.processIdentifier, SIGKILL) } }
        let ids = { () throws -> [String] in
            let read = try run("/usr/bin/journalctl", ["-o", "cat", "--output-fields=MESSAGE_ID", "--no-pager", "BOOTMEDIC_BENCH=\(bench)"])
            return read.stdout.split(separator: "\n").map(String.init)
        }
        let started = Date()
        while try !ids().contains("6e0dc842e83944b6b3f26d3f2d995104"), Date().timeIntervalSince(started) < 20 { Thread.sleep(forTimeInterval: 0.05) }
        #expect(try ids().contains("6e0dc842e83944b6b3f26d3f2d995104"), "the agent journalled its start")
        kill(process.processIdentifier, signal)
        let sent = Date()
        while process.isRunning, Date().timeIntervalSince(sent) < 10 { Thread.sleep(forTimeInterval: 0.02) }
        #expect(!process.isRunning, "stopped within 10 s of the signal")
        guard !process.isRunning else { return }
        #expect(process.terminationReason == .exit && process.terminationStatus == 0, "exited 0, not killed by the signal")
        // journald may take a moment on a loaded machine to show the last entry.
        let exited = Date()
        while try ids().last != "fbeb05170bcb47b491dbf68f41f16664", Date().timeIntervalSince(exited) < 10 { Thread.sleep(forTimeInterval: 0.05) }
        #expect(try ids().last == "fbeb05170bcb47b491dbf68f41f16664", "its last entry says it stops")
    }

    /// A workshop's collector: two benches' entries, exported from journald and received by the real
    /// systemd-journal-remote into one folder (a file per source, as its per-host split makes), read back by
    /// `status --directory`.
    @Test(.needsFirmware, .enabled(if: FileManager.default.fileExists(atPath: "/lib/systemd/systemd-journal-remote")))
    func statusSummarisesEveryBenchOfACollectedJournal() throws {
        try Fixtures.ensureJournald()
        let dir = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let tag = UUID().uuidString.prefix(8).lowercased()
        // Bench A restores two factory ATmega32U4s; bench B restores one and fails one ATmega328P (no rule).
        let benches: [(name: String, host: String?, boards: [(programmer: String, part: String)])] = [
            ("bench-a-\(tag)", nil, [("usbasp", "atmega32u4"), ("usbtiny", "atmega32u4")]),
            ("bench-b-\(tag)", "bench-b-pc-\(tag)", [("usbasp", "atmega32u4"), ("usbtiny", "atmega328p")]),
        ]
        let remote = dir.appendingPathComponent("remote")
        try FileManager.default.createDirectory(at: remote, withIntermediateDirectories: true)
        for (n, bench) in benches.enumerated() {
            let rules = try guideRules(naming: bench.name, in: dir)
            var scenario = "poll_interval = 0.05\n"
            for (i, board) in bench.boards.enumerated() {
                scenario += "[[step]]\nat = 0.0\nplug = \"\(bench.name)-\(i)\"\nprogrammer = \"\(board.programmer)\"\n"
                scenario += "[[step]]\nat = 0.1\nattach = \"\(bench.name)-\(i)\"\npart = \"\(board.part)\"\n"
                scenario += "[[step]]\nat = 2.5\nunplug = \"\(bench.name)-\(i)\"\n"
            }
            let scenarioPath = dir.appendingPathComponent("s-\(n).toml").path
            try scenario.write(toFile: scenarioPath, atomically: true, encoding: .utf8)
            let agent = try run(Fixtures.bootmedicBinary, ["agent", "--config", rules, "--firmware-dir", Fixtures.firmwareDirectory.path,
                                                           "--backup-dir", dir.appendingPathComponent("b").path, "--virtual-bench", scenarioPath])
            #expect(agent.status == 0, "\(agent.stderr)")
            // What the bench's systemd-journal-upload would send: its entries in the journal export format.
            _ = try run("/usr/bin/journalctl", ["--sync"])
            var export = try run("/usr/bin/journalctl", ["-o", "export", "--no-pager", "BOOTMEDIC_BENCH=\(bench.name)"]).stdout
            #expect(export.contains("BOOTMEDIC_BENCH=\(bench.name)\n"))
            if let host = bench.host {
                // The second bench is another machine: its entries carry its own host name.
                export = export.split(separator: "\n", omittingEmptySubsequences: false)
                    .map { $0.hasPrefix("_HOSTNAME=") ? "_HOSTNAME=\(host)" : String($0) }.joined(separator: "\n")
            }
            let exportPath = dir.appendingPathComponent("bench-\(n).export").path
            try export.write(toFile: exportPath, atomically: true, encoding: .utf8)
            let received = try run("/lib/systemd/systemd-journal-remote",
                                   ["--split-mode=none", "--output=\(remote.path)/remote-bench-\(n).journal", exportPath])
            #expect(received.status == 0, "\(received.stderr)")
        }
        let status = try run(Fixtures.bootmedicBinary, ["status", "--directory", remote.path, "--since=-1h", "--json"])
        #expect(status.status == 0, "\(status.stderr)")
        let report = try #require(try JSONSerialization.jsonObject(with: Data(status.stdout.utf8)) as? [String: Any])
        let found = try #require(report["benches"] as? [[String: Any]])
        #expect(found.map { $0["bench"] as? String } == benches.map(\.name))
        let a = found[0], b = found[1]
        #expect((a["restored"] as? Int, a["healthy"] as? Int, a["failed"] as? Int) == (2, 0, 0))
        #expect((b["restored"] as? Int, b["healthy"] as? Int, b["failed"] as? Int) == (1, 0, 1))
        #expect(b["host"] as? String == "bench-b-pc-\(tag)")
        #expect(a["host"] as? String != b["host"] as? String)
        #expect((a["programmers"] as? [[String: Any]])?.count == 2)
        let rule = try #require((a["rules"] as? [[String: Any]])?.first)
        #expect(rule["rule"] as? String == "atmel-dfu-atmega32u4" && rule["restored"] as? Int == 2)
        #expect((rule["median_restore_seconds"] as? Double).map { $0 > 0 } == true)
        let failure = try #require((b["failures"] as? [[String: Any]])?.first)
        #expect(failure["count"] as? Int == 1 && failure["step"] as? String == "select-rule" && failure["exit_status"] as? Int == 7)
        #expect(failure["reason"] as? String == "no rule matches ATmega328P on USBtinyISP; add one to the rules file or name one with --rule")
        // The same window as text, and an empty one before these jobs ran.
        let text = try run(Fixtures.bootmedicBinary, ["status", "--directory", remote.path, "--since=-1h"])
        #expect(text.stdout.contains("bench-b-\(tag) (host bench-b-pc-\(tag)): 1 restored, 0 healthy, 1 failed"), "\(text.stdout)")
        #expect(text.stdout.contains("  1× failed at select-rule (exit 7): no rule matches ATmega328P"), "\(text.stdout)")
        let before = try run(Fixtures.bootmedicBinary, ["status", "--directory", remote.path, "--since=-2h", "--until=-1h", "--json"])
        let earlier = try JSONSerialization.jsonObject(with: Data(before.stdout.utf8)) as? [String: Any]
        #expect((earlier?["benches"] as? [Any])?.isEmpty == true, "\(before.stdout)")
        let missing = try run(Fixtures.bootmedicBinary, ["status", "--directory", dir.appendingPathComponent("nowhere").path])
        #expect(missing.status == 1 && missing.stderr.contains("nowhere: no such folder"))
    }

    /// `status --follow` as a person sees it: in a tmux pane, redrawn in place while a bench restores a board
    /// in real time; and through a pipe, one line per entry.
    @Test(.needsFirmware, .enabled(if: FileManager.default.fileExists(atPath: "/usr/bin/tmux")))
    func theLiveViewShowsASlotMidRestoreUnderTmux() throws {
        try Fixtures.ensureJournald()
        let dir = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let tag = UUID().uuidString.prefix(8).lowercased()
        let bench = "live-\(tag)"
        let rules = try guideRules(naming: bench, in: dir)
        // Real time: the factory ATmega32U4's restore takes its USBasp's seconds, long enough to be seen.
        let scenario = dir.appendingPathComponent("s.toml").path
        try """
        poll_interval = 0.05
        real_time = true
        [[step]]
        at = 1.0
        plug = "\(bench)"
        programmer = "usbasp"
        [[step]]
        at = 1.2
        attach = "\(bench)"
        part = "atmega32u4"
        [[step]]
        at = 9.0
        detach = "\(bench)"
        """.write(toFile: scenario, atomically: true, encoding: .utf8)
        let socket = "bootmedic-test-\(tag)"
        let tmux = { (arguments: [String]) throws -> CommandResult in try run("/usr/bin/tmux", ["-L", socket] + arguments) }
        // The tmux server outlives the command that starts it: it must not hold a pipe that run() reads to the end.
        // From a second before now: however slowly the pane's command starts, it reads the bench from its start.
        let since = Int(Date().timeIntervalSince1970) - 1
        // Nor any other descriptor the test process holds (another test's pipes): closed before tmux starts.
        let started = try run("/bin/bash", ["-c", "for fd in /proc/$$/fd/*; do n=${fd##*/}; if (( n > 2 )); then eval \"exec $n>&-\" 2>/dev/null; fi; done; "
                                            + "exec /usr/bin/tmux -L \(socket) new-session -d -x 160 -y 20 "
                                            + "'\(Fixtures.bootmedicBinary) status --follow --since @\(since)' </dev/null >/dev/null 2>&1"])
        try #require(started.status == 0)
        defer { _ = try? tmux(["kill-server"]) }
        let agent = Process()
        agent.executableURL = URL(fileURLWithPath: Fixtures.bootmedicBinary)
        agent.arguments = ["agent", "--config", rules, "--firmware-dir", Fixtures.firmwareDirectory.path,
                           "--backup-dir", dir.appendingPathComponent("b").path, "--virtual-bench", scenario]
        agent.standardOutput = FileHandle.nullDevice
        agent.standardError = FileHandle.nullDevice
        try agent.run()
        func pane(until done: (String) -> Bool, within seconds: Double) throws -> String {
            let deadline = Date().addingTimeInterval(seconds)
            var screen = ""
            while Date() < deadline {
                screen = try tmux(["capture-pane", "-p"]).stdout
                if done(screen) { break }
                Thread.sleep(forTimeInterval: 0.05)
            }
            return screen
        }
        let midway = try pane(until: { $0.contains("[#") }, within: 20)
        #expect(midway.contains("bootmedic status --follow"), "\(midway)")
        #expect(midway.contains(bench), "the bench's heading: \(midway)")
        let slot = midway.split(separator: "\n").first { $0.contains("usbasp") && $0.contains("virtual-\(bench)") }
        #expect(slot?.contains("ATmega32U4") == true && slot?.contains("[#") == true, "a slot with its progress bar: \(midway)")
        // This slot's line: another test's bench in the same journal may have been restored already.
        let restored = { (screen: String) in screen.split(separator: "\n").contains { $0.contains("virtual-\(bench)") && $0.contains("restored in") } }
        let finished = try pane(until: restored, within: 30)
        #expect(restored(finished), "\(finished)")
        agent.waitUntilExit()
        #expect(agent.terminationStatus == 0)

        // Not a terminal: a line per entry, and --until ends it.
        let lines = try run(Fixtures.bootmedicBinary, ["status", "--follow", "--since=-10min", "--until", "now"])
        #expect(lines.status == 0, "\(lines.stderr)")
        let ours = lines.stdout.split(separator: "\n").filter { $0.contains(" \(bench) usbasp virtual-\(bench) ") }
        #expect(ours.first?.hasSuffix("USBasp plugged in at virtual-\(bench)") == true, "\(ours)")
        #expect(ours.contains { $0.contains(": restored: ATmega32U4") }, "\(ours)")
    }

    @Test func realNetlinkUeventsReachTheSlots() throws {
        // A private network namespace: its own netlink, where injected libudev messages reach a real
        // udev_monitor without udevd or any device.
        let result = try run("/usr/bin/unshare", ["-n", Fixtures.bootmedicBinary, "self-test", "netlink"])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout == """
        add /sys/devices/pci0000:00/0000:00:14.0/usb1/1-2 16c0:05dc USBasp pci-0000:00:14.0-usb-0:2
        remove /sys/devices/pci0000:00/0000:00:14.0/usb1/1-2
        slots after add: 1
        slots after remove: 0
        journal: programmerAdded programmerRemoved agentStopping

        """)
    }

    @Test func udevAcceptsTheRules() throws {
        // udevadm reads every rules file for a test run and names each line it cannot use.
        let installed = "/run/udev/rules.d/60-bootmedic.rules"
        try FileManager.default.createDirectory(atPath: "/run/udev/rules.d", withIntermediateDirectories: true)
        try? FileManager.default.removeItem(atPath: installed)
        try FileManager.default.copyItem(atPath: Fixtures.repositoryRoot.appendingPathComponent("udev-rules/60-bootmedic.rules").path, toPath: installed)
        defer { try? FileManager.default.removeItem(atPath: installed) }
        let test = try run("/usr/bin/udevadm", ["test", "--action=add", "/sys/class/net/lo"])
        let ours = (test.stdout + test.stderr).split(separator: "\n").map(String.init).filter { $0.contains("60-bootmedic.rules") }
        #expect(ours.contains("Reading rules file: \(installed)"), "udevadm read the file")
        // Before `make install` runs systemd-sysusers the bootmedic group may not exist; anything else is an error.
        let problems = ours.filter { !$0.hasPrefix("Reading rules file") && !$0.hasSuffix("Unknown group 'bootmedic', ignoring") }
        #expect(problems.isEmpty, "\(problems)")
    }

    @Test func systemdAcceptsTheUnit() throws {
        let dir = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let unit = try String(contentsOf: Fixtures.repositoryRoot.appendingPathComponent("systemd/bootmedic.service"), encoding: .utf8)
            .replacingOccurrences(of: "/usr/bin/bootmedic", with: Fixtures.bootmedicBinary)
        let path = dir.appendingPathComponent("bootmedic.service").path
        try unit.write(toFile: path, atomically: true, encoding: .utf8)
        // The man pages it names come with the package, which this machine need not have.
        let verify = try run("/usr/bin/systemd-analyze", ["verify", "--man=no", path])
        #expect(verify.status == 0)
        #expect(verify.stderr.isEmpty, "\(verify.stderr)")
        let security = try run("/usr/bin/systemd-analyze", ["security", "--offline=true", path])
        #expect(security.stdout.contains("Overall exposure level for bootmedic.service: 1."), "\(security.stdout.suffix(200))")
    }
}

func udev(_ syspath: String, vid: UInt16, pid: UInt16, product: String?, subsystem: String = "usb") -> UdevDevice {
    UdevDevice(syspath: syspath, subsystem: subsystem, vendorID: vid, productID: pid, serial: nil, product: product, idPath: nil,
               devnode: subsystem == "tty" ? "/dev/null" : nil, busNumber: 1, deviceAddress: 2)
}

/// Waits (at most 10 s) until every serial probe the agent queued has ended; false if one has not.
func probesSettle(_ agent: Agent) -> Bool {
    for _ in 0..<1000 {
        if agent.serialProbesUnderWay == 0 { return true }
        Thread.sleep(forTimeInterval: 0.01)
    }
    return false
}

/// The guide's rules with `[defaults] bench = "NAME"` in front, written to a file of its own in `dir`.
func guideRules(naming bench: String, in dir: URL) throws -> String {
    let path = dir.appendingPathComponent("rules-\(bench).toml").path
    try "[defaults]\nbench = \"\(bench)\"\n\n\(try String(contentsOfFile: Fixtures.guideRules, encoding: .utf8))"
        .write(toFile: path, atomically: true, encoding: .utf8)
    return path
}

/// What the journal stores of a field is read back whole: a value may be empty, hold `=` or newlines, and
/// a field's data that does not start with its name is not taken for it.
@Suite struct JobRecordTests {
    @Test func fieldsAreReadAsTheJournalStoresThem() {
        let stored: [String: [UInt8]] = [
            "BOOTMEDIC_JOB": Array("BOOTMEDIC_JOB=abc".utf8),
            "MESSAGE": Array("MESSAGE=".utf8),
            "BOOTMEDIC_PORT": Array("BOOTMEDIC_PORT=pci-0000:00:14.0-usb-0:2=x\nnext".utf8),
            "BOOTMEDIC_RESULT": Array("SOMETHING_ELSE=restored".utf8),
            "BOOTMEDIC_RESUMES": Array("BOOTMEDIC_RESUMES=0123".utf8),
        ]
        let record = JobRecord { stored[$0] }
        #expect(record.job == "abc")
        #expect(record.message == "", "an empty MESSAGE read as its own name before")
        #expect(record.port == "pci-0000:00:14.0-usb-0:2=x\nnext")
        #expect(record.result == "?")
        #expect(record.programmer == "?")
        #expect(record.part == nil)
        #expect(record.resumes == "0123")
    }
}
