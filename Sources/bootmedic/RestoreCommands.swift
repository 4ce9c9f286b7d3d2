import ArgumentParser
import AVRISP
import BenchModel
import FirmwareImage
import FoundationEssentials
import DeviceTrace
import Parts
import Programmers
import Recovery
import Rules
import Simulation
import STLink
import Transport

/// Options `restore` and `rehearse` share.
struct RestoreOptions: ParsableArguments {
    @Option(help: "The rules file (TOML); required, except by `flash FILE`.")
    var rules: String?

    @Option(help: "Use this rule instead of the first one that matches.")
    var rule: String?

    @Option(help: "Resolve relative firmware paths here instead of the rules file's firmware_dir.")
    var firmwareDir: String?

    @Option(help: "Save backups here instead of the rules file's backup_dir.")
    var backupDir: String?

    @Flag(help: "Print the result as JSON instead of lines for people.")
    var json = false

    /// Loads the rules, or exits with every problem printed.
    func loadRules() throws -> RuleSet {
        guard let rules else { throw fail("give the rules file with --rules FILE", code: FailureClass.refused.rawValue) }
        let loaded = RulesFile.load(path: rules, firmwareDirectory: firmwareDir)
        let errors = loaded.errors
        guard let set = loaded.ruleSet, errors.isEmpty else {
            errors.forEach { printError($0.description) }
            throw fail("\(rules) has \(errors.count) error\(errors.count == 1 ? "" : "s"); see `bootmedic rules check \(rules)`", code: 7)
        }
        return set
    }
}

/// Which real programmer to use, for `restore` and `probe`.
struct ConnectionOptions: ParsableArguments {
    @Option(help: "The programmer kind: usbasp, usbtiny, stlink (found on USB), stk500v1, avrisp, buspirate (need --port); any USB ISP programmer if omitted.")
    var programmer: ProgrammerKind?

    @Option(help: "A serial programmer's device (/dev/ttyACM0), or a USB programmer's port path (1-2.3).")
    var port: String?

    @Option(help: "Serial baud rate (default: 19200 for stk500v1/avrisp, 115200 for buspirate).")
    var baud: Int?

    @OptionGroup var trace: TraceOption

    /// Opens the programmer these options name — found on USB through `catalog` (a rules file's
    /// `[[programmer]]` entries included), or on a serial port — or exits with the reason.
    func open(catalog: DeviceCatalog = .builtIn) throws -> ProgrammerConnection {
        let recorder = try trace.recorder()
        do {
            return try ProgrammerLocator(catalog: catalog).open(kind: programmer, port: port, baudRate: baud, time: SystemTimeSource(), trace: recorder)
        } catch { throw fail(error.description, code: 4) }
    }
}

/// `--trace FILE`: every USB transfer to the programmer or serial exchange with it, timestamped, for `bootmedic replay`.
struct TraceOption: ParsableArguments {
    @Option(name: .customLong("trace"), help: ArgumentHelp("Record every USB transfer to the programmer, or everything that crosses its serial line, in this file, for `bootmedic replay`.", valueName: "file"))
    var path: String?

    /// The recorder, or nil without --trace; exits when the file cannot be written.
    func recorder() throws -> TraceRecorder? {
        guard let path else { return nil }
        do { return try TraceRecorder(path: path) } catch { throw fail(error.description) }
    }
}

/// Prints a result and turns it into the process's exit code.
func finish(_ result: RecoveryResult, json: Bool, simulation: ResultReport.Simulation? = nil) throws {
    if json {
        try printJSON(ResultReport(result, simulation: simulation))
    } else {
        if result.failure == nil { print(result.summary) }
        if let simulation {
            print(String(cFormat: "simulated: %.3f s on the wire", simulation.seconds)
                  + (simulation.usbTransfers.map { ", \($0) USB transfers" } ?? ""))
        }
    }
    if let failure = result.failure {
        // The one-line reason, on standard error.
        if !json { printError("bootmedic: error: \(failure)") }
        throw ExitCode(failure.reason.exitCode)
    }
}

/// The JSON form of a result.
struct ResultReport: Encodable {
    struct Step: Encodable { let step: String; let seconds: Double; let bytes: Int; let detail: String }
    let outcome: String
    let programmer: String
    let sck: String?
    let part: String?
    let signature: String?
    let rule: String?
    let backup: String?
    let seconds: Double
    let steps: [Step]
    let failedStep: String?
    let error: String?
    let exitCode: Int32
    /// For rehearsals: the simulated time and the USB transfers the programmer answered.
    let simulation: Simulation?

    struct Simulation: Encodable {
        let seconds: Double
        /// USB programmers only.
        let usbTransfers: Int?
    }

    init(_ r: RecoveryResult, simulation: Simulation?) {
        outcome = r.outcome.rawValue
        programmer = r.programmer.linkName
        sck = r.programmer.sck
        part = r.part?.id
        signature = r.signature?.description
        rule = r.rule
        backup = r.backupPath ?? r.failure?.backupPath
        seconds = r.totalSeconds
        steps = r.steps.map { Step(step: $0.step.rawValue, seconds: $0.seconds, bytes: $0.bytes, detail: $0.detail) }
        failedStep = r.failure?.step.rawValue
        error = r.failure?.reason.description
        exitCode = r.failure?.reason.exitCode ?? 0
        self.simulation = simulation
    }
}

struct RestoreCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "restore",
        abstract: "Restore a board's bootloader, fuses and lock bits through a real programmer.",
        discussion: """
        Connects, reads the signature, picks the rule, checks the plan, and if the board is not already \
        healthy backs up the chip, erases it, writes and verifies the bootloader, then fuses and lock bits. \
        \(FailureClass.summary)
        """)

    @OptionGroup var options: RestoreOptions

    @OptionGroup var connection: ConnectionOptions

    func run() throws {
        let set = try options.loadRules()
        let backups = BackupStore(directory: options.backupDir ?? set.backupDirectory)
        let sink = ConsoleSink(quiet: options.json)
        let connection = try connection.open(catalog: set.deviceCatalog)
        defer { connection.close() }
        let result = RecoveryJob(target: connection.restoreTarget, rules: set, ruleName: options.rule, backups: backups, sink: sink).run()
        try finish(result, json: options.json)
    }
}

extension ProgrammerKind: ExpressibleByArgument {
    public init?(argument: String) { self.init(rawValue: argument.lowercased()) }
    public static var allValueStrings: [String] { allCases.map(\.rawValue) }
}

extension SimulatedFault: ExpressibleByArgument {
    public init?(argument: String) { self.init(rawValue: argument) }
    public static var allValueStrings: [String] { allCases.map(\.rawValue) }
}

struct RehearseCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rehearse",
        abstract: "Run a restore against a simulated programmer and chip.",
        discussion: """
        The same pipeline and drivers as `restore`, with a simulated programmer that answers the real \
        protocol and a simulated chip that behaves like silicon. Times are the simulation's: what the \
        hardware would take. Same output and exit status as `restore`. Faults: \
        \(SimulatedFault.allCases.map { "\($0.rawValue) (\($0.summary))" }.joined(separator: ", ")).
        """)

    @OptionGroup var options: RestoreOptions

    @Option(help: "The simulated programmer: usbasp, usbtiny, stk500v1, avrisp or buspirate (served on a pseudo-terminal).")
    var programmer: ProgrammerKind?

    @Option(help: "Instead of a programmer: the board's own simulated bootloader, which the rule's application is flashed through (caterina, atmel-dfu, usbasploader, halfkay, bootloadhid).")
    var bootloader: BootloaderKind?

    @OptionGroup var chip: SimulatedChipOptions

    @Option(help: "Inject a fault (repeatable).")
    var fault: [SimulatedFault] = []

    @Option(help: "Write the chip's final flash.bin, eeprom.bin and fuses.json here (STM32: flash.bin and option-bytes.json).")
    var dump: String?

    @Flag(help: "STM32: start the chip read-protected. Atmel DFU: start with the bootloader's security bit set (no reads until an erase).")
    var protected = false

    @Flag(help: "Caterina: the board runs a sketch first, and is sent to its bootloader with the 1200-baud touch (the rule's use_1200bps_touch), as on a bench.")
    var runningSketch = false

    @OptionGroup var trace: TraceOption

    func validate() throws {
        if (programmer == nil) == (bootloader == nil) { throw ValidationError("give either --programmer or --bootloader") }
        if runningSketch, bootloader != .caterina { throw ValidationError("--running-sketch is for --bootloader caterina: a Caterina board running a sketch") }
        if let bootloader, !BootloaderKind.flashable.contains(bootloader) {
            throw ValidationError("--bootloader \(bootloader.rawValue) has no simulator yet; \(BootloaderKind.flashable.map(\.rawValue).joined(separator: " and ")) have")
        }
    }

    func run() throws {
        guard let programmer else { return try rehearseBootloader() }
        if programmer == .stlink { return try rehearseSTM32() }
        let avr = try chip.avrPart()
        let set = try options.loadRules()
        let (flash, eeprom, fuses) = try chip.contents()

        // Place mid-write faults in the middle of the image the rule will write.
        let chosen = options.rule.flatMap(set.rule(named:))
            ?? set.firstMatch(for: TargetContext(avrPart: avr, signature: avr.signature, programmer: programmer))
        let image = try? chosen?.loadFirmware().image
        let pages = image?.pagesHoldingData(pageSize: avr.flash.pageSize).count ?? 32
        let bench: SimulatedBench
        do {
            bench = try SimulatedBench(kind: programmer, part: avr, flash: flash, eeprom: eeprom, fuses: fuses,
                                       faults: Set(fault), imagePages: pages)
        } catch { throw fail(error.description) }
        if fault.contains(.stuckBit), let image,
           let address = image.segments.lazy.flatMap({ s in s.bytes.indices.lazy.map { (s.address + UInt32($0), s.bytes[$0]) } }).first(where: { $0.1 & 0x04 == 0 })?.0 {
            bench.placeStuckBit(at: address)
        }

        let isp: ISPProgrammer
        let recorder = try trace.recorder()
        do {
            let driver = ProgrammerRegistry.driver(for: programmer)
            let connection: ProgrammerConnection
            switch bench.link {
            case let .usb(device): connection = try driver.open(usb: recorder?.recording(device, time: bench.clock) ?? device, time: bench.clock)
            case let .serial(server): connection = try driver.open(serialPath: server.path, time: SystemTimeSource(), trace: recorder)
            }
            guard case let .isp(opened) = connection else { throw fail("\(programmer) does not program AVRs") }
            isp = opened
        } catch let error as ProgrammerOpenError { throw fail(error.description) }
        let backupDir = options.backupDir ?? temporaryDirectory() + "bootmedic-rehearsal-backups"
        let job = RecoveryJob(programmer: isp, rules: set, ruleName: options.rule, backups: BackupStore(directory: backupDir),
                              sink: ConsoleSink(quiet: options.json))
        job.stepClock = bench.clock
        let result = job.run()
        isp.close()
        bench.stop()
        if let dump {
            let chip = bench.chip
            do {
                try ChipState(flash: chip.flash, eeprom: chip.eeprom, fuses: chip.fuses, lock: chip.lock).write(to: dump)
            } catch { throw fail("cannot write the dump to \(dump): \(InputFile.reason(error))") }
        }
        try finish(result, json: options.json, simulation: .init(seconds: bench.clock.seconds,
                                                                    usbTransfers: bench.usbTransfers > 0 ? bench.usbTransfers : nil))
    }
}

extension RehearseCommand {
    /// The ST-Link path: a simulated ST-Link/V2 and the STM32 `--part` names.
    func rehearseSTM32() throws {
        let model = try simulatedSTM32Model(chip.part)
        let set = try options.loadRules()
        let flash = try chip.initialFlash.map { try readBinary($0) }
        let bench: SimulatedSTM32Bench
        do {
            bench = try SimulatedSTM32Bench(model: model, flash: flash, protected: protected, faults: Set(fault))
        } catch { throw fail(error.description) }
        let backupDir = options.backupDir ?? temporaryDirectory() + "bootmedic-rehearsal-backups"
        let device = try trace.recorder()?.recording(bench.device, time: bench.clock) ?? bench.device
        let job = RecoveryJob(link: STLink(device: device, time: bench.clock), rules: set, ruleName: options.rule,
                                   backups: BackupStore(directory: backupDir), sink: ConsoleSink(quiet: options.json))
        let result = job.run()
        try dump(bench.target)
        try finish(result, json: options.json, simulation: .init(seconds: bench.clock.seconds, usbTransfers: bench.stlink.transfers))
    }

    /// --dump DIR for an STM32: its whole flash and its option bytes as the family lays them out.
    func dump(_ chip: SimulatedSTM32) throws {
        guard let dump else { return }
        do {
            try FileManager.default.createDirectory(atPath: dump, withIntermediateDirectories: true)
            try Data(chip.flash).write(to: URL(fileURLWithPath: dump + "/flash.bin"))
            try chip.model.family.optionBytes.json(chip.optionBytes).write(toFile: dump + "/option-bytes.json", atomically: true, encoding: .utf8)
        } catch { throw fail("cannot write the dump to \(dump): \(InputFile.reason(error))") }
    }
}

/// The simulated STM32 a `--part` names (an ST line, a clone, a family).
func simulatedSTM32Model(_ part: String) throws -> SimulatedSTM32Model {
    guard let model = SimulatedSTM32Model.named(part) else {
        let names = SimulatedSTM32Model.all.map(\.part)
        throw fail("an ST-Link simulation needs an STM32 part (\(names.joined(separator: ", "))), not '\(part)'")
    }
    return model
}

func readBinary(_ path: String) throws -> [UInt8] {
    do { return try InputFile.contents(of: path, maximumSize: FirmwareFile.maximumFileSize) } catch {
        throw fail("cannot read \(path): \(error)")
    }
}

func parseFuses(_ text: String) throws -> FuseSet {
    let parts = text.split(separator: ":").map { HexByte(argument: String($0))?.value }
    guard (2...3).contains(parts.count), !parts.contains(where: { $0 == nil }) else {
        throw fail("--initial-fuses \(text) is not LOW:HIGH[:EXTENDED] in hex")
    }
    return FuseSet(low: parts[0], high: parts[1], extended: parts.count == 3 ? parts[2] : nil)
}

struct ProbeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "probe",
        abstract: "Show the programmer, the chip on its cable and the chip's fuses, changing nothing.")

    @OptionGroup var connection: ConnectionOptions

    @OptionGroup var output: OutputOptions

    func run() throws {
        let connection = try connection.open()
        defer { connection.close() }
        switch connection {
        case let .isp(isp): try printProbe(TargetProbe.run(isp), json: output.json)
        case let .swd(link): try printSTM32Probe(STM32Probe.run(link), json: output.json)
        }
    }
}

/// Prints an ST-Link probe; exits non-zero when it found no chip.
func printSTM32Probe(_ report: STM32ProbeReport, json: Bool) throws {
    if json {
        struct Out: Encodable {
            let programmer: String; let firmware: String?; let serial: String?; let targetVoltage: Double?
            let chipID: String?; let part: String?; let line: String?; let maker: String?; let flashSize: Int?; let readProtected: Bool?
            /// The clone's name when the chip is not ST's.
            let clone: String?
            /// The values that told the maker: SW-DP IDCODE, CPUID, the ROM table's JEP106 designer.
            let debugPortIDCode: String?; let cpuID: String?; let designer: String?
            let problem: String?
        }
        let target = report.target
        try printJSON(Out(programmer: report.programmer.name, firmware: report.programmer.firmware, serial: report.programmer.serialNumber,
                          targetVoltage: report.programmer.targetVoltage, chipID: target.map { String(cFormat: "0x%03X", $0.chipID) },
                          part: target?.partName, line: target?.chip.name, maker: target?.variant.maker, flashSize: target?.flashSize,
                          readProtected: report.readProtected, clone: target.flatMap { $0.variant.isGenuine ? nil : $0.variant.name },
                          debugPortIDCode: target.map { String(cFormat: "0x%08X", $0.identity.debugPortIDCode) },
                          cpuID: target.map { String(cFormat: "0x%08X", $0.identity.cpuID) },
                          designer: target?.identity.designer.map { String(cFormat: "0x%03X", $0) }, problem: report.problem?.description))
    } else {
        let p = report.programmer
        print("programmer: \(p.name)" + (p.serialNumber.map { ", serial \($0)" } ?? "") + (p.firmware.map { ", firmware \($0)" } ?? ""))
        if let v = p.targetVoltage { print(String(cFormat: "target voltage: %.2f V", v)) }
        if let target = report.target {
            print("chip: \(target.summary)")
            print("identity: \(target.identity.description) (\(target.variant.isGenuine ? "ST's own silicon" : "not ST's: \(target.variant.name)"))")
        }
        if let protected = report.readProtected { print("read protection: \(protected ? "active (flash cannot be read; unlocking erases it)" : "off")") }
    }
    if let problem = report.problem {
        if !json { printError("bootmedic: error: \(problem)") }
        throw ExitCode(problem.exitCode)
    }
}

/// Prints a probe report; exits non-zero when the probe found no chip.
func printProbe(_ report: ProbeReport, json: Bool) throws {
    if json {
        struct Out: Encodable {
            let programmer: String; let name: String; let firmware: String?; let serial: String?; let port: String?
            let sck: String?; let targetVoltage: Double?; let signature: String?; let part: String?
            let fuses: FuseSet?; let lock: UInt8?; let problem: String?
        }
        let p = report.programmer
        try printJSON(Out(programmer: p.linkName, name: p.name, firmware: p.firmware, serial: p.serialNumber, port: p.port,
                          sck: p.sck, targetVoltage: p.targetVoltage, signature: report.signature?.description, part: report.part?.id,
                          fuses: report.fuses, lock: report.lock, problem: report.problem?.description))
    } else {
        let p = report.programmer
        print("programmer: \(p.name)" + (p.port.map { " at \($0)" } ?? "") + (p.serialNumber.map { ", serial \($0)" } ?? ""))
        if let firmware = p.firmware { print("firmware: \(firmware)") }
        if let voltage = p.targetVoltage { print(String(cFormat: "target voltage: %.2f V", voltage)) }
        if let sck = p.sck { print("SCK: \(sck)") }
        if let signature = report.signature { print("signature: \(signature)" + (report.part.map { " (\($0.name))" } ?? "")) }
        if let part = report.part, let fuses = report.fuses {
            for line in part.describe(fuses).lines { print(line) }
        }
        if let lock = report.lock { print(String(cFormat: "lock: 0x%02X", lock)) }
    }
    if let problem = report.problem {
        if !json { printError("bootmedic: error: \(problem)") }
        throw ExitCode(problem.exitCode)
    }
}
