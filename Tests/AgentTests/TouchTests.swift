import Agent
import Bootloaders
import FirmwareImage
import Foundation
import Parts
import Recovery
import Rules
import Simulation
import Synchronization
import TestSupport
import Testing
import Transport

/// A Leonardo running a sketch in a socket of the bench: the sketch's port is a pseudo-terminal that
/// takes the 1200-baud touch as the real one does; the touch brings up Caterina (on the same chip, on a
/// new pseudo-terminal) in the same socket, reported to the agent as udev would; when Caterina starts
/// the application the sketch's port comes back.
final class LeonardoOnTheBench: Sendable {
    static let socket = "pci-0000:00:14.0-usb-0:2"
    static let sketchIDs = USBID(vendor: 0x2341, product: 0x8036)
    nonisolated(unsafe) let chip: SimulatedAVR
    let sketch: SimulatedSketchBoard
    private let servers = Mutex<[SerialSimulatorServer]>([])
    /// How many times the sketch's port came back after Caterina started the application.
    let sketchReturns = Atomic<Int>(0)
    /// The agent's status line when the touch arrived and when Caterina was opened.
    let statusSeen = Mutex<[String]>([])

    /// - Parameter ignoresTouch: a sketch built without Arduino's USB core: the touch does nothing.
    /// - Parameter leaving: when given, the board leaves USB after the touch only once it is signalled.
    init(agent: Agent, ignoresTouch: Bool = false, leaving: DispatchSemaphore? = nil) throws {
        let boot = try FirmwareFile(path: Fixtures.firmware("Caterina-promicro16.hex")).image
        chip = SimulatedAVR(part: avr("atmega32u4"), clock: VirtualClock(), flash: garbage(0x7000) + boot.bytes(in: 0x7000..<0x8000),
                            fuses: FuseSet(low: 0xFF, high: 0xD8, extended: 0xCB), lock: 0x2F)
        sketch = try SimulatedSketchBoard()
        guard !ignoresTouch else { return }
        sketch.start { [self] in
            statusSeen.withLock { $0.append(agent.status) }
            _ = leaving?.wait(timeout: .now() + 10)
            agent.handle(.removed(syspath: "/sys/devices/sketch/tty"))
            guard let server = try? SerialSimulatorServer(simulator: SimulatedCaterina(chip: chip)) else { return }
            server.line = .usbCDC
            server.onHangUp = { [self] in
                agent.handle(.removed(syspath: "/sys/devices/caterina/tty"))
                sketchReturns.add(1, ordering: .releasing)
                agent.handle(.added(sketchTTY))
            }
            server.start()
            servers.withLock { $0.append(server) }
            let path = server.path
            agent.arrived(BenchBootloader(id: "/sys/devices/caterina/tty", kind: .caterina, usb: USBID(vendor: 0x2341, product: 0x0036), port: Self.socket + ":1.0") { [self] in
                statusSeen.withLock { $0.append(agent.status) }
                return AVR109Bootloader(line: try SerialPort(path: path, baudRate: 57600), time: SystemTimeSource())
            })
        }
    }

    /// The sketch's tty as udev reports it.
    var sketchTTY: UdevDevice {
        UdevDevice(syspath: "/sys/devices/sketch/tty", subsystem: "tty", vendorID: 0x2341, productID: 0x8036, serial: nil, product: "Arduino Leonardo",
                   idPath: Self.socket + ":1.0", devnode: sketch.path, busNumber: 1, deviceAddress: 5)
    }

    func stop() {
        sketch.stop()
        servers.withLock { $0.forEach { $0.stop() } }
    }
}

@Suite(.serialized) struct TouchTests {
    func rules(application: String, touch: Bool = true) throws -> RuleSet {
        try #require(RulesFile.parse("""
        [[rule]]
        name = "leonardo-sketch"
        match = { usb = "2341:8036", part = "atmega32u4" }
        use_1200bps_touch = \(touch)
        application = "\(application)"
        """, path: "r.toml").ruleSet)
    }

    func waitFor(_ journal: RecordingJournal, seconds: Double = 20, _ done: ([JournalEntry]) -> Bool) {
        let deadline = Date().addingTimeInterval(seconds)
        while !done(journal.entries), Date() < deadline { usleep(10_000) }
    }

    /// The sketch's port is touched, Caterina comes up in the same socket, the application is flashed
    /// through it in the same job, and the sketch that then comes back is left alone.
    @Test(.needsFirmware) func aLeonardoRunningASketchIsTouchedIntoCaterinaAndFlashedOnce() throws {
        let dir = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let app = try syntheticHex(0..<9000, in: dir)
        let journal = RecordingJournal()
        let agent = Agent(rules: try rules(application: app), journal: journal, backups: BackupStore(directory: dir.appendingPathComponent("b").path), pollInterval: 0.05)
        let board = try LeonardoOnTheBench(agent: agent)
        defer { board.stop() }
        agent.start()
        agent.handle(.added(board.sketchTTY))
        waitFor(journal) { $0.contains { $0.kind == .restored || $0.kind == .failed || $0.kind == .bootloaderMissing } }
        // The sketch came back as the application started (during the job); reported again after it,
        // the agent says what it is and does nothing more.
        usleep(100_000)
        agent.handle(.added(board.sketchTTY))
        waitFor(journal, seconds: 5) { $0.contains { $0.kind == .notice } }
        agent.stop()
        let entries = journal.entries
        #expect(board.sketch.touchCount == 1)
        let result = try #require(entries.first { $0.kind == .restored }, "\(entries.map(\.message))")
        #expect(result.fields["BOOTMEDIC_BOOTLOADER"] == "caterina" && result.fields["BOOTMEDIC_RULE"] == "leonardo-sketch")
        #expect(result.fields["BOOTMEDIC_PORT"] == LeonardoOnTheBench.socket + ":1.0")
        #expect(Set(entries.compactMap { $0.fields["BOOTMEDIC_JOB"] }).count == 1, "one job from the touch to the application: \(entries.map(\.message))")
        let found = try #require(entries.first { $0.kind == .targetFound })
        #expect(found.fields["BOOTMEDIC_USB_ID"] == "2341:8036" && found.message.contains("1200-baud touch"), "\(found.message)")
        #expect(entries.first { $0.kind == .bootloaderEnumerated }?.fields["BOOTMEDIC_USB_ID"] == "2341:0036")
        #expect(entries.filter { $0.kind == .restored || $0.kind == .failed }.count == 1, "flashed once: \(entries.map(\.message))")
        #expect(board.sketchReturns.load(ordering: .acquiring) == 1)
        let job = try #require(found.fields["BOOTMEDIC_JOB"])
        #expect(board.statusSeen.withLock { $0 } == ["no programmer plugged in; \(LeonardoOnTheBench.socket): sending Arduino Leonardo running a sketch to its bootloader (job \(job))",
                                                     "no programmer plugged in; \(LeonardoOnTheBench.socket): flashing through Caterina (job \(job))"])
        #expect(agent.status == "no programmer plugged in")
        #expect(entries.last { $0.kind == .notice }?.message.contains("unplug it to flash the next board") == true)
        #expect(Array(board.chip.flash[0..<9000]) == (try FirmwareFile(path: app).image.bytes(in: 0..<9000)))
        #expect(board.chip.flash[9000..<0x7000].allSatisfy { $0 == 0xFF })
        let boot = try FirmwareFile(path: Fixtures.firmware("Caterina-promicro16.hex")).image
        #expect(Array(board.chip.flash[0x7000...]) == boot.bytes(in: 0x7000..<0x8000), "Caterina untouched")
    }

    /// A board plugged in as the service starts is reported twice (udev's enumeration and its event):
    /// one touch, one job, and its sketch coming back afterwards is left alone (found in vmtest part 17:
    /// the second report was taken for the sketch's return, and the board was touched again).
    @Test(.needsFirmware) func aSketchReportedTwiceIsTouchedOnce() throws {
        let dir = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let app = try syntheticHex(0..<2000, in: dir)
        let journal = RecordingJournal()
        let agent = Agent(rules: try rules(application: app), journal: journal, backups: nil, pollInterval: 0.05)
        let leaving = DispatchSemaphore(value: 0)
        let board = try LeonardoOnTheBench(agent: agent, leaving: leaving)
        defer { board.stop() }
        agent.start()
        agent.handle(.added(board.sketchTTY))
        agent.handle(.added(board.sketchTTY))   // the second report, before the touch takes the board off USB
        leaving.signal()
        waitFor(journal) { $0.contains { $0.kind == .restored || $0.kind == .failed || $0.kind == .bootloaderMissing } }
        // Reported again once the job has ended, as udev does when the sketch re-enumerates late.
        usleep(100_000)
        agent.handle(.added(board.sketchTTY))
        waitFor(journal, seconds: 5) { $0.contains { $0.kind == .notice } }
        agent.stop()
        let entries = journal.entries
        #expect(board.sketch.touchCount == 1, "\(entries.map(\.message))")
        #expect(entries.filter { $0.kind == .targetFound }.count == 1)
        #expect(entries.filter { $0.kind == .restored }.count == 1, "\(entries.map(\.message))")
        #expect(entries.last { $0.kind == .notice }?.message.contains("unplug it to flash the next board") == true)
    }

    /// Unplugged after its flash, the socket's next board is touched and flashed again.
    @Test(.needsFirmware) func theNextBoardInTheSocketIsFlashedToo() throws {
        let dir = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let app = try syntheticHex(0..<2000, in: dir)
        let journal = RecordingJournal()
        let agent = Agent(rules: try rules(application: app), journal: journal, backups: nil, pollInterval: 0.05)
        agent.start()
        for n in 1...2 {
            let board = try LeonardoOnTheBench(agent: agent)
            agent.handle(.added(board.sketchTTY))
            waitFor(journal) { $0.filter { $0.kind == .restored }.count == n }
            agent.handle(.removed(syspath: board.sketchTTY.syspath))   // the technician unplugs it
            board.stop()
            #expect(board.sketch.touchCount == 1)
            #expect(Array(board.chip.flash[0..<2000]) == (try FirmwareFile(path: app).image.bytes(in: 0..<2000)), "board \(n)")
        }
        agent.stop()
        #expect(journal.entries.filter { $0.kind == .restored }.count == 2, "\(journal.entries.map(\.message))")
    }

    /// Without `use_1200bps_touch` the sketch's port is only probed for programmer firmware (as any
    /// Arduino's), and never touched.
    @Test(.needsFirmware) func withoutTheKeyTheBoardIsNeverTouched() throws {
        let dir = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let app = try syntheticHex(0..<2000, in: dir)
        let journal = RecordingJournal()
        let probed = Mutex(0)
        let agent = Agent(rules: try rules(application: app, touch: false), journal: journal, backups: nil, pollInterval: 0.05) { _, _ in
            probed.withLock { $0 += 1 }
            return nil
        }
        let board = try LeonardoOnTheBench(agent: agent)
        defer { board.stop() }
        agent.start()
        agent.handle(.added(board.sketchTTY))
        let deadline = Date().addingTimeInterval(5)
        while agent.serialProbesUnderWay > 0 || probed.withLock({ $0 }) == 0, Date() < deadline { usleep(10_000) }
        usleep(300_000)
        agent.stop()
        #expect(board.sketch.touchCount == 0)
        #expect(probed.withLock { $0 } == 1)
        #expect(journal.entries.map(\.kind) == [.agentStarted, .agentStopping])
    }

    /// A sketch that ignores the touch: the job says no bootloader came up, and the board is not
    /// touched again until it is unplugged.
    @Test(.needsFirmware) func aSketchThatIgnoresTheTouchIsReported() throws {
        let dir = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let app = try syntheticHex(0..<2000, in: dir)
        let journal = RecordingJournal()
        let agent = Agent(rules: try rules(application: app), journal: journal, backups: nil, pollInterval: 0.05)
        agent.expectUSBTimeout = 0.5
        let board = try LeonardoOnTheBench(agent: agent, ignoresTouch: true)
        defer { board.stop() }
        agent.start()
        agent.handle(.added(board.sketchTTY))
        waitFor(journal) { $0.contains { $0.kind == .bootloaderMissing } }
        agent.handle(.added(board.sketchTTY))   // udev reporting it again
        usleep(200_000)
        agent.stop()
        let entries = journal.entries
        let missing = try #require(entries.first { $0.kind == .bootloaderMissing }, "\(entries.map(\.message))")
        #expect(missing.fields["BOOTMEDIC_REASON"]?.contains("within 0.5 s of the 1200-baud touch") == true, "\(missing.message)")
        #expect(entries.filter { $0.kind == .targetFound }.count == 1)
        #expect(Array(board.chip.flash[0..<0x7000]) == garbage(0x7000), "nothing written")
    }
}
