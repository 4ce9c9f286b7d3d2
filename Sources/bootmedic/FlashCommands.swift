import ArgumentParser
import Bootloaders
import FirmwareImage
import FoundationEssentials
import Parts
import Recovery
import Rules
import Simulation
import Transport

extension BootloaderKind: ExpressibleByArgument {
    public init?(argument: String) { self.init(rawValue: argument.lowercased()) }
    public static var allValueStrings: [String] { allCases.map(\.rawValue) }
}

/// `bootmedic flash`: the board waiting in its bootloader now gets its rule's application, as
/// `qmk flash` does it.
struct FlashCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "flash",
        abstract: "Flash the rule's application through the bootloader a board is waiting in.",
        discussion: """
        The rule is the first whose part matches what the bootloader reports and that has an \
        `application` (or the one --rule names). The application section is backed up where the \
        bootloader reads flash, erased, written and verified; the bootloader's own section is never \
        written, and an application that reaches into it is refused before anything is erased. Then the \
        application is started and the bootloader's device must go away. Same output and exit status \
        as `restore`.
        """)

    @OptionGroup var options: RestoreOptions

    @Option(help: "The bootloader's serial port (Caterina: the board's /dev/ttyACM*).")
    var port: String

    @Option(help: "The bootloader on that port.")
    var bootloader: BootloaderKind = .caterina

    func validate() throws {
        guard bootloader.isSerial else { throw ValidationError("--bootloader \(bootloader.rawValue) is not reached through a serial port") }
    }

    func run() throws {
        let set = try options.loadRules()
        let line: SerialPort
        do { line = try SerialPort(path: port, baudRate: 57600) } catch { throw fail(error.description, code: FailureClass.programmerFailed.rawValue) }
        let session = AVR109Bootloader(line: line, time: SystemTimeSource(), kind: bootloader)
        let backups = BackupStore(directory: options.backupDir ?? set.backupDirectory)
        let result = RecoveryJob(bootloader: session, rules: set, ruleName: options.rule, backups: backups, sink: ConsoleSink(quiet: options.json)).run()
        try finish(result, json: options.json)
    }
}

extension RehearseCommand {
    /// A board in its bootloader: the simulated chip holds the rule's bootloader (at its section, with the
    /// rule's fuses and Arduino's lock 0x2F) unless --initial-* say otherwise, and the bootloader is
    /// served on a pseudo-terminal with USB CDC timing.
    func rehearseBootloader() throws {
        let avr = try chip.avrPart()
        let set = try options.loadRules()
        let chosen = options.rule.flatMap(set.rule(named:))
            ?? set.firstMatch(for: TargetContext(avrPart: avr, signature: avr.signature, bootloader: .caterina))
        var (flash, eeprom, fuses) = try chip.contents()
        var lock: UInt8?
        if flash == nil, let rule = chosen, let image = try? rule.loadFirmware().bootloader?.image, let span = image.span {
            flash = image.bytes(in: 0..<UInt32(span.upperBound))
            fuses = fuses ?? rule.fuses
            lock = rule.lock ?? 0x2F
        }
        let clock = VirtualClock()
        let simulated = SimulatedAVR(part: avr, clock: clock, flash: flash, eeprom: eeprom, fuses: fuses, lock: lock)
        let server: SerialSimulatorServer
        do { server = try SerialSimulatorServer(simulator: SimulatedCaterina(chip: simulated)) } catch { throw fail(error.description) }
        server.line = .usbCDC
        // The board pulled mid-flash: its port goes once two pages are written.
        if fault.contains(.programmerUnplugged) {
            server.fault = .cablePulled
            server.faultAfterPageWrites = 2
        }
        server.start()
        let line: SerialPort
        do { line = try SerialPort(path: server.path, baudRate: 57600) } catch { throw fail(error.description) }
        let backupDir = options.backupDir ?? temporaryDirectory() + "bootmedic-rehearsal-backups"
        let job = RecoveryJob(bootloader: AVR109Bootloader(line: line, time: SystemTimeSource()), rules: set, ruleName: options.rule,
                              backups: BackupStore(directory: backupDir), sink: ConsoleSink(quiet: options.json))
        job.stepClock = clock
        let result = job.run()
        line.close()
        server.stop()
        if let dump {
            do {
                try ChipState(flash: simulated.flash, eeprom: simulated.eeprom, fuses: simulated.fuses, lock: simulated.lock).write(to: dump)
            } catch { throw fail("cannot write the dump to \(dump): \(InputFile.reason(error))") }
        }
        try finish(result, json: options.json, simulation: .init(seconds: clock.seconds, usbTransfers: nil))
    }
}
