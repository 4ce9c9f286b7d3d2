import Agent
import ArgumentParser
import Bootloaders
import DeviceCatalog
import FirmwareImage
import FoundationEssentials
import Parts
import Recovery
import Rules
import Simulation
import Synchronization
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
        as `restore`. With FILE, that file is flashed instead of the rule's application; with FILE and no \
        --rules, on whatever part the bootloader reports, if it fits below the bootloader. A serial \
        bootloader (Caterina) is reached through --port; a Caterina board running a sketch there is sent \
        to its bootloader first (the 1200-baud touch) when the rule says use_1200bps_touch, or with \
        --touch, and flashed where the bootloader comes up in the same USB socket; a USB one (Atmel DFU, USBaspLoader, HalfKay, BootloadHID) is found on \
        the bus by the device catalog's ids and product string, or at --port BUS-PORTS ("1-2.3").
        """)

    @OptionGroup var options: RestoreOptions

    @Option(help: "Caterina: the board's serial port (/dev/ttyACM*). A USB bootloader: its place on the bus (\"1-2.3\") when several are plugged in.")
    var port: String?

    @Argument(help: ArgumentHelp("An application to flash (Intel HEX, or a raw binary from address 0) instead of the rule's.", valueName: "file"))
    var file: String?

    @Option(help: "The bootloader the board waits in (caterina, atmel-dfu, usbasploader, halfkay, bootloadhid); by default the one a USB bootloader on the bus is, else caterina.")
    var bootloader: BootloaderKind?

    @Flag(help: "The board at --port runs a sketch: send it to its Caterina bootloader with the 1200-baud touch first (a rule with use_1200bps_touch does this without the flag).")
    var touch = false

    @Flag(help: "With FILE and no --rules: flash without backing up the application section first (HalfKay and BootloadHID read nothing back); with --rules, the rule's backup key decides.")
    var noBackup = false

    func validate() throws {
        if let bootloader, !BootloaderKind.flashable.contains(bootloader) {
            throw ValidationError("--bootloader \(bootloader.rawValue) cannot be flashed yet; \(BootloaderKind.flashable.map(\.rawValue).joined(separator: " and ")) can")
        }
        if options.rule != nil, options.rules == nil { throw ValidationError("--rule names a rule of the --rules file") }
        if noBackup, options.rules != nil { throw ValidationError("--no-backup is for FILE without --rules; a rule says backup = false") }
        if bootloader?.isSerial == true, port == nil { throw ValidationError("--bootloader \(bootloader!.rawValue) needs --port, the board's serial port") }
        if touch, port?.hasPrefix("/") != true { throw ValidationError("--touch needs --port, the serial port of the board running a sketch") }
    }

    func run() throws {
        let set: RuleSet
        switch (options.rules, file) {
        case (nil, nil): throw fail("give the application to flash, or the rules that name it (--rules FILE)", code: FailureClass.refused.rawValue)
        case let (nil, file?): set = RuleSet.flashing(absolutePath(file), backupDirectory: RulesFile.defaultBackupDirectory, backup: !noBackup)
        case let (_, file?): set = try options.loadRules().flashing(absolutePath(file))
        case (_, nil): set = try options.loadRules()
        }
        let session: BootloaderSession
        // The rule that asked for the touch names the board by its sketch's ids, not its bootloader's.
        var ruleName = options.rule
        if let port, bootloader?.isSerial ?? port.hasPrefix("/") {
            if let (touched, touchRule) = try touchedBootloader(at: port, rules: set) {
                ruleName = ruleName ?? touchRule?.name
                do { session = try touched.open() } catch { throw fail("\(touched.kind.description) at \(touched.port ?? touched.id): \(error)", code: FailureClass.programmerFailed.rawValue) }
            } else {
                let line: SerialPort
                do { line = try SerialPort(path: port, baudRate: 57600) } catch { throw fail(error.description, code: FailureClass.programmerFailed.rawValue) }
                session = AVR109Bootloader(line: line, time: SystemTimeSource(), kind: bootloader ?? .caterina)
            }
        } else {
            session = try openUSBBootloader()
        }
        let backups = BackupStore(directory: options.backupDir ?? set.backupDirectory)
        let result = RecoveryJob(bootloader: session, rules: set, ruleName: ruleName, backups: backups, sink: ConsoleSink(quiet: options.json)).run()
        try finish(result, json: options.json)
    }

    /// The board at `port` in its bootloader after the 1200-baud touch, and the rule for it (--rule, else
    /// the first whose `match.usb` names the board's ids), when --touch or that rule asks for the touch;
    /// nil when neither does. The bootloader is the serial one that comes up in the board's USB socket
    /// (udev's view).
    private func touchedBootloader(at port: String, rules: RuleSet) throws -> (BenchBootloader, rule: Rule?)? {
        let watcher = try? DeviceWatcher()
        let resolved = URL(fileURLWithPath: port).resolvingSymlinksInPath().path
        let device = watcher?.enumerate().first { $0.subsystem == "tty" && $0.devnode == resolved }
        let rule = options.rule.flatMap(rules.rule(named:))
            ?? device.flatMap { rules.touchRule(for: USBID(vendor: $0.vendorID, product: $0.productID), serial: $0.serial, port: $0.idPath) }
        guard touch || rule?.usesTouch == true else { return nil }
        guard let watcher, let device, let path = device.devnode, device.idPath != nil else {
            throw fail("\(port) is not a USB serial port udev knows: the 1200-baud touch needs the board's USB socket to find its bootloader", code: FailureClass.refused.rawValue)
        }
        let sketch = BenchSketch(id: device.syspath, path: path, usb: USBID(vendor: device.vendorID, product: device.productID), port: device.idPath)
        if !options.json { printError("bootmedic: sending \(sketch.name) at \(port) to its bootloader (1200-baud touch)") }
        let catalog = rules.deviceCatalog
        do {
            return try (sketch.enterBootloader(timeout: 10) {
                // The bootloader's tty often has the sketch's name and syspath (same socket, same
                // interface): the ids tell them apart.
                watcher.enumerate().lazy.filter { $0.subsystem == "tty" }.compactMap { other -> BenchBootloader? in
                    let usb = USBID(vendor: other.vendorID, product: other.productID)
                    guard usb != sketch.usb else { return nil }
                    // A bootloader the catalog does not know, in the board's own socket, is taken for Caterina.
                    if case let .bootloader(kind)? = catalog.entry(for: usb, product: other.product)?.role {
                        return kind.isSerial ? BenchBootloader.udev(other, kind: kind) : nil
                    }
                    return BenchBootloader.udev(other, kind: .caterina)
                }.first(where: sketch.isSameBoard)
            }, rule)
        } catch {
            throw fail("\(sketch.name) at \(port): \(error)", code: (error.isMissing ? FailureClass.noTarget : .programmerFailed).rawValue)
        }
    }

    /// The one board on the bus that the catalog knows, by its ids and product string, as a USB
    /// bootloader bootmedic flashes through (at --port, if given; USBaspLoader only when --bootloader names it).
    private func openUSBBootloader() throws -> BootloaderSession {
        let catalog = DeviceCatalog.builtIn
        // A USBaspLoader only when named: a USBasp clone with its own product string looks the same,
        // and driving a programmer as the loader would ISP-erase the board's bootloader.
        func flashable(_ entry: DeviceEntry) -> BootloaderKind? {
            guard case let .bootloader(kind) = entry.role, !kind.isSerial, BootloaderKind.flashable.contains(kind),
                  bootloader == kind || (bootloader == nil && kind != .usbasploader) else { return nil }
            return kind
        }
        let ids = Set(catalog.entries.filter { flashable($0) != nil }.map(\.usb))
        do {
            let context = try USBContext()
            return try context.withDevices(matching: { ids.contains(USBID(vendor: $0, product: $1)) }) { candidates -> BootloaderSession in
                // The product string tells a USBaspLoader from a USBasp programmer with the same ids.
                var found: [(device: LibUSBDevice, kind: BootloaderKind)] = []
                for candidate in candidates where port == nil || candidate.portPath == port {
                    guard let device = try? context.open(candidate) else { continue }
                    let usb = USBID(vendor: candidate.vendorID, product: candidate.productID)
                    if let entry = catalog.entry(for: usb, product: device.description.product), let kind = flashable(entry) {
                        found.append((device, kind))
                    } else {
                        device.close()
                    }
                }
                guard let chosen = found.first, let session = chosen.kind.session(on: chosen.device, time: SystemTimeSource()) else {
                    throw fail("no board in a USB bootloader bootmedic flashes" + (port.map { " at \($0)" } ?? "")
                               + " (Atmel DFU: 03EB:2FEE–2FFB; HalfKay: 16C0:0478; BootloadHID: 16C0:05DF \"HIDBoot\"; USBaspLoader, with --bootloader usbasploader: 16C0:05DC)", code: FailureClass.noTarget.rawValue)
                }
                guard found.count == 1 else {
                    found.forEach { $0.device.close() }
                    throw fail("\(found.count) boards wait in a bootloader (at " + found.map(\.device.description.portPath).joined(separator: ", ")
                               + "): say which with --port", code: FailureClass.refused.rawValue)
                }
                return session
            }
        } catch let error as USBError {
            throw fail(error.description, code: FailureClass.programmerFailed.rawValue)
        }
    }
}

extension RehearseCommand {
    /// A board in its bootloader: the simulated chip holds the rule's bootloader (at its section, with the
    /// rule's fuses and Arduino's lock 0x2F) unless --initial-* say otherwise. Caterina is served on a
    /// pseudo-terminal with USB CDC timing; Atmel DFU answers control transfers with full-speed timing,
    /// USBaspLoader with V-USB's low-speed timing.
    func rehearseBootloader() throws {
        let kind = bootloader ?? .caterina
        if kind == .stm32duino || kind == .stm32DFU { return try rehearseSTM32Bootloader(kind) }
        let avr = try chip.avrPart()
        let set = try options.loadRules()
        let chosen = options.rule.flatMap(set.rule(named:)) ?? (runningSketch ? set.rules.first(where: \.usesTouch) : nil)
            ?? set.firstMatch(for: TargetContext(avrPart: avr, signature: avr.signature, bootloader: kind))
        var (flash, eeprom, fuses) = try chip.contents()
        var lock: UInt8?
        if flash == nil, let rule = chosen, let image = try? rule.loadFirmware().bootloader?.image, let span = image.span {
            flash = image.bytes(in: 0..<UInt32(span.upperBound))
            fuses = fuses ?? rule.fuses
            lock = rule.lock ?? 0x2F
        }
        // A Teensy's own fuses: HalfKay in the smallest boot section.
        if kind == .halfkay, fuses == nil { fuses = HalfKayModel.all.first { $0.part == avr.id }?.fuses }
        let clock = VirtualClock()
        let simulated = SimulatedAVR(part: avr, clock: clock, flash: flash, eeprom: eeprom, fuses: fuses, lock: lock)
        let session: BootloaderSession
        var server: SerialSimulatorServer?
        var usbDevice: SimulatedControlDevice?
        var ruleName = options.rule
        switch kind {
        case .atmelDFU:
            guard let productID = DeviceCatalog.atmelDFUProductID(for: avr.id) else {
                throw fail("Atmel's DFU bootloader runs on the USB AVRs (\(DeviceCatalog.atmelDFUProducts.flatMap(\.parts).joined(separator: ", "))), not on \(avr.name)")
            }
            let device = SimulatedAtmelDFU(chip: simulated, productID: productID, secured: protected)
            // The board pulled mid-flash: its device goes once two blocks are written.
            if fault.contains(.programmerUnplugged) { device.faults.unplugAfterFlashWrites = 2 }
            usbDevice = device
            session = AtmelDFUBootloader(device: try trace.recorder()?.recording(device, time: clock) ?? device, time: clock)
        case .halfkay:
            let device: SimulatedHalfKay
            do { device = try SimulatedHalfKay(chip: simulated) } catch { throw fail(error.description) }
            if fault.contains(.programmerUnplugged) { device.faults.unplugAfterFlashWrites = 2 }
            usbDevice = device
            session = HalfKayBootloader(device: try trace.recorder()?.recording(device, time: clock) ?? device, time: clock)
        case .bootloadhid:
            let device = SimulatedBootloadHID(chip: simulated)
            if fault.contains(.programmerUnplugged) { device.faults.unplugAfterFlashWrites = 2 }
            usbDevice = device
            session = BootloadHIDBootloader(device: try trace.recorder()?.recording(device, time: clock) ?? device, time: clock)
        case .usbasploader:
            let device = SimulatedUSBaspLoader(chip: simulated)
            if fault.contains(.programmerUnplugged) { device.faults.unplugAfterFlashWrites = 2 }
            usbDevice = device
            session = USBaspLoaderBootloader(device: try trace.recorder()?.recording(device, time: clock) ?? device, time: clock)
        default:
            let served: SerialSimulatorServer
            do { served = try SerialSimulatorServer(simulator: SimulatedCaterina(chip: simulated)) } catch { throw fail(error.description) }
            served.line = .usbCDC
            // The board pulled mid-flash: its port goes once two pages are written.
            if fault.contains(.programmerUnplugged) {
                served.fault = .cablePulled
                served.faultAfterPageWrites = 2
            }
            server = served
            if runningSketch {
                (session, ruleName) = try touchIntoCaterina(served, rules: set)
            } else {
                served.start()
                let line: SerialPort
                do { line = try SerialPort(path: served.path, baudRate: 57600) } catch { throw fail(error.description) }
                session = AVR109Bootloader(line: line, time: SystemTimeSource())
            }
        }
        let result = runRehearsal(through: session, rules: set, ruleName: ruleName, clock: clock)
        server?.stop()
        if let dump {
            do {
                try ChipState(flash: simulated.flash, eeprom: simulated.eeprom, fuses: simulated.fuses, lock: simulated.lock).write(to: dump)
            } catch { throw fail("cannot write the dump to \(dump): \(InputFile.reason(error))") }
        }
        try finish(result, json: options.json, simulation: .init(seconds: clock.seconds, usbTransfers: usbDevice?.transferCount))
    }
}

/// `path` from the working directory, as a rule's firmware path is resolved.
private func absolutePath(_ path: String) -> String {
    path.hasPrefix("/") ? path : FileManager.default.currentDirectoryPath + "/" + path
}

extension RehearseCommand {
    /// An STM32 board in its bootloader: the STM32duino's Maple DFU on an F103, its chip holding the
    /// rule's bootloader at 0x08000000 unless --initial-flash says otherwise; or ST's system bootloader
    /// (DfuSe, in ROM) on any simulated STM32. Both answer control transfers with full-speed timing.
    func rehearseSTM32Bootloader(_ kind: BootloaderKind) throws {
        let model = try simulatedSTM32Model(chip.part)
        if kind == .stm32duino, model.family.id != .f1 { throw fail("the STM32duino bootloader runs on the STM32F1, not on \(model.description)") }
        let set = try options.loadRules()
        var flash = try chip.initialFlash.map { try readBinary($0) }
        let chosen = options.rule.flatMap(set.rule(named:)) ?? set.rules.first { $0.bootloader != nil }
        if flash == nil, kind == .stm32duino, let image = try? chosen?.loadFirmware().bootloader?.image, let span = image.span {
            flash = image.bytes(in: STM32Chip.flashBase..<UInt32(span.upperBound))
        }
        let clock = VirtualClock()
        let simulated = SimulatedSTM32(model: model, clock: clock, flash: flash, readProtected: protected)
        let device: SimulatedSTM32DFU = kind == .stm32duino ? SimulatedMapleDFU(chip: simulated) : SimulatedDfuSe(chip: simulated)
        // The board pulled mid-flash: its device goes once two blocks are written.
        if fault.contains(.programmerUnplugged) { device.faults.unplugAfterFlashWrites = 2 }
        let recorded = try trace.recorder()?.recording(device, time: clock) ?? device
        guard let session = kind.session(on: recorded, time: clock) else { throw fail("no session for \(kind.description)") }
        let result = runRehearsal(through: session, rules: set, clock: clock)
        try dump(simulated)
        try finish(result, json: options.json, simulation: .init(seconds: clock.seconds, usbTransfers: device.transferCount))
    }
}

extension RehearseCommand {
    /// `--running-sketch`: the board first runs a sketch on a pseudo-terminal of its own, with the ids the
    /// touch rule's `match.usb` gives (--rule, else the first rule with use_1200bps_touch); the same touch
    /// as on a bench sends it to Caterina, which `caterina` then serves. The session, and the rule it is for.
    func touchIntoCaterina(_ caterina: SerialSimulatorServer, rules: RuleSet) throws -> (BootloaderSession, String) {
        guard let rule = options.rule.flatMap(rules.rule(named:)) ?? rules.rules.first(where: \.usesTouch), rule.usesTouch, let usb = rule.match.usb else {
            throw fail("--running-sketch needs a rule with use_1200bps_touch (and match.usb, the board's ids while it runs the sketch)", code: FailureClass.refused.rawValue)
        }
        let board: SimulatedSketchBoard
        do { board = try SimulatedSketchBoard() } catch { throw fail(error.description) }
        let started = Atomic<Bool>(false)
        board.start {
            caterina.start()
            started.store(true, ordering: .releasing)
        }
        defer { board.stop() }
        let socket = "simulated-usb-0:1:1.0"
        let sketch = BenchSketch(id: "simulated sketch", path: board.path, usb: usb, port: socket)
        if !options.json { printError("bootmedic: sending \(sketch.name) at \(board.path) to its bootloader (1200-baud touch)") }
        let found: BenchBootloader
        do {
            found = try sketch.enterBootloader(timeout: 10) {
                guard started.load(ordering: .acquiring) else { return nil }
                let path = caterina.path
                return BenchBootloader(id: path, kind: .caterina, usb: DeviceCatalog.builtIn.entry(for: usb, product: nil)?.bootloaderAfterTouch ?? usb, port: socket) {
                    AVR109Bootloader(line: try SerialPort(path: path, baudRate: 57600), time: SystemTimeSource())
                }
            }
        } catch { throw fail("\(sketch.name): \(error)", code: FailureClass.noTarget.rawValue) }
        do { return (try found.open(), rule.name) } catch { throw fail("Caterina at \(caterina.path): \(error)", code: FailureClass.programmerFailed.rawValue) }
    }

    /// The flash job through a simulated bootloader, on the simulator's clock, backups in a throwaway folder
    /// unless --backup-dir says otherwise.
    func runRehearsal(through session: BootloaderSession, rules: RuleSet, ruleName: String? = nil, clock: VirtualClock) -> RecoveryResult {
        let backupDir = options.backupDir ?? temporaryDirectory() + "bootmedic-rehearsal-backups"
        let job = RecoveryJob(bootloader: session, rules: rules, ruleName: ruleName ?? options.rule,
                              backups: BackupStore(directory: backupDir), sink: ConsoleSink(quiet: options.json))
        job.stepClock = clock
        defer { session.close() }
        return job.run()
    }
}
