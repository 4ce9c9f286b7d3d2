import ArgumentParser
import BenchModel
import Dispatch
import FirmwareImage
import FoundationEssentials
import Glibc
import Parts
import Recovery
import Simulation
import Transport

struct SimulateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "simulate",
        abstract: "Serve a simulated programmer and chip: serial ones on a pseudo-terminal or gadget tty, USB ones as a FunctionFS gadget.",
        discussion: """
        Prints the pseudo-terminal's path (or the --tty, or "ready" for a --functionfs gadget) as the first \
        line of standard output, then serves until standard input closes or SIGTERM/SIGINT arrives, and \
        writes the chip's final state to --state DIR (flash.bin, eeprom.bin, fuses.json, as `rehearse --dump` \
        does; for an stm32f103, flash.bin), with session.json. Any client can use the path: bootmedic, or \
        avrdude -c stk500v1 / -c avrisp / -c buspirate; gadgets serve avrdude -c usbasp / -c usbtiny and st-flash.
        """)

    @Option(help: "The programmer to simulate: stk500v1 (Arduino as ISP), avrisp (Pro Micro/Teensy ISP firmware) or buspirate.")
    var programmer: ProgrammerKind?

    @Option(help: "Instead of a programmer: a board waiting in this bootloader (caterina on a serial line; atmel-dfu, usbasploader, halfkay or bootloadhid with --functionfs; stm32duino or stm32-dfu with --usbip), its chip holding --initial-flash (Arduino's lock 0x2F); prints \"left\" when told to start the application.")
    var bootloader: BootloaderKind?

    @OptionGroup var chipOptions: SimulatedChipOptions

    @Option(help: "Write the chip's final state here when done.")
    var state: String?

    @Option(help: "A fault on the serial line: \(SerialFault.allCases.map(\.rawValue).joined(separator: ", ")).")
    var fault: SerialFault?

    @Option(help: ArgumentHelp("Serve the serial programmer on this existing tty instead of a new pseudo-terminal: the gadget side of a USB CDC ACM function (/dev/ttyGS0), which the host sees as /dev/ttyACM0.", valueName: "path"))
    var tty: String?

    @Flag(help: "STM32: the chip starts read-protected (RDP level 1). Atmel DFU: the bootloader's security bit is set.")
    var readProtected = false

    @Option(help: ArgumentHelp("Serve a USB programmer (usbasp, usbtiny, stlink) as a real USB gadget through the FunctionFS mounted here, instead of a serial one on a pseudo-terminal; prints \"ready\" once the descriptors are in, when the gadget may be bound, and \"writing\" once the host has written a flash page.", valueName: "dir"))
    var functionfs: String?

    @Flag(help: "Serve the STM32 bootloader (stm32duino, stm32-dfu) or Caterina on the kernel's virtual host controller (vhci_hcd, USB/IP), with its own descriptors; prints \"ready\" once attached.")
    var usbip = false

    @Flag(help: "Caterina on --usbip: the board first runs a sketch (a Leonardo, 2341:8036) and goes to Caterina (2341:0036) on the 1200-baud touch; prints \"touched\", \"bootloader\", \"writing\" and \"left\" (the sketch runs again, and takes the touch again).")
    var runningSketch = false

    func validate() throws {
        if let bootloader {
            guard programmer == nil else { throw ValidationError("give --bootloader or --programmer, not both") }
            guard BootloaderKind.flashable.contains(bootloader) else {
                throw ValidationError("--bootloader \(bootloader.rawValue) has no simulator yet; \(BootloaderKind.flashable.map(\.rawValue).joined(separator: " and ")) have")
            }
            if bootloader.isSTM32, !usbip { throw ValidationError("--bootloader \(bootloader.rawValue) is served with --usbip") }
            if usbip, !bootloader.isSTM32, bootloader != .caterina { throw ValidationError("--usbip serves the STM32 bootloaders (stm32duino, stm32-dfu) and caterina") }
            if runningSketch, !(usbip && bootloader == .caterina) { throw ValidationError("--running-sketch is for --bootloader caterina --usbip: a Leonardo running a sketch") }
            if usbip { return }
            if bootloader.isSerial, functionfs != nil { throw ValidationError("--bootloader \(bootloader.rawValue) is served on a serial line (--tty), not --functionfs") }
            if !bootloader.isSerial, functionfs == nil { throw ValidationError("--bootloader \(bootloader.rawValue) is a USB device: give --functionfs DIR") }
            return
        }
        guard let programmer else { throw ValidationError("give --programmer or --bootloader") }
        if functionfs != nil {
            guard [.usbasp, .usbtiny, .stlink].contains(programmer) else {
                throw ValidationError("--functionfs serves USB programmers: usbasp, usbtiny or stlink")
            }
            guard tty == nil else { throw ValidationError("--tty serves serial programmers; --functionfs USB ones") }
        } else if !programmer.isSerial {
            throw ValidationError("simulate serves serial programmers (stk500v1, avrisp, buspirate), or usbasp, usbtiny and stlink with --functionfs")
        }
    }

    func run() throws {
        if programmer == .stlink, let functionfs { return try serveSTLinkGadget(at: functionfs) }
        if let bootloader, bootloader.isSTM32 { return try serveOnVirtualBus(bootloader) }
        let (flash, eeprom, fuses) = try chipOptions.contents()
        let chip = SimulatedAVR(part: try chipOptions.avrPart(), clock: VirtualClock(), flash: flash, eeprom: eeprom, fuses: fuses,
                                lock: bootloader == nil ? nil : 0x2F)
        if usbip { return try serveCaterinaOnVirtualBus(chip: chip) }
        if let functionfs {
            if let bootloader { return try serveBootloaderGadget(bootloader, at: functionfs, chip: chip) }
            return try serveGadget(at: functionfs, chip: chip)
        }
        let simulator: SerialProgrammerSimulator = bootloader == nil ? simulatedSerialProgrammer(programmer!, chip: chip) : SimulatedCaterina(chip: chip)
        let server: SerialSimulatorServer
        do {
            server = try SerialSimulatorServer(simulator: simulator, line: tty.map(GadgetSerialLine.init(path:)))
        } catch { throw fail(error.description) }
        server.fault = fault
        // A gadget tty is USB CDC end to end; on a pty, ArduinoISP's line is a UART behind a USB bridge.
        server.line = programmer == .avrisp || tty != nil || bootloader != nil ? .usbCDC : .uart
        server.onHangUp = {
            print("left")
            fflush(nil)
        }
        server.start()
        announce(server.path).wait()
        server.stop()
        let summary = String(cFormat: "{\"seconds\": %.6f, \"bytesFromHost\": %d, \"bytesToHost\": %d}\n",
                             chip.clock.seconds, server.bytesFromHost, server.bytesToHost)
        try finish(chip: chip, summary: summary)
    }

    /// Prints the first line a script waits for (the path to open, or "ready"), then returns the signals
    /// that end serving: SIGTERM, SIGINT, or standard input closing. A reader gone from standard output
    /// must not take the simulator down (SIGPIPE ignored).
    func announce(_ line: String) -> TerminationSignals {
        print(line)
        fflush(nil)
        signal(SIGPIPE, SIG_IGN)
        let signals = TerminationSignals()
        signals.endWhenStandardInputCloses()
        return signals
    }

    /// Reports the session and writes the chip's state to --state.
    func finish(chip: SimulatedAVR, summary: String) throws {
        printError("simulated: " + summary.trimmingWhitespace)
        guard let state else { return }
        do {
            try ChipState(flash: chip.flash, eeprom: chip.eeprom, fuses: chip.fuses, lock: chip.lock).write(to: state)
            try summary.write(toFile: state + "/session.json", atomically: true, encoding: .utf8)
        } catch { throw fail("cannot write the state to \(state): \(InputFile.reason(error))") }
    }
}

extension SerialFault: ExpressibleByArgument {
    public init?(argument: String) { self.init(rawValue: argument) }
    public static var allValueStrings: [String] { allCases.map(\.rawValue) }
}
