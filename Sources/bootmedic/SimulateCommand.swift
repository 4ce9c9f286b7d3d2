import ArgumentParser
import BenchModel
import Dispatch
import Foundation
import Parts
import Recovery
import Simulation
import Transport

struct SimulateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "simulate",
        abstract: "Serve a simulated programmer and chip: serial ones on a pseudo-terminal or gadget tty, USB ones as a FunctionFS gadget.",
        discussion: """
        Prints the pseudo-terminal's path as the first line of standard output, then serves until standard \
        input closes or SIGTERM/SIGINT arrives, and writes the chip's final state to --state DIR \
        (flash.bin, eeprom.bin, fuses.json, as `rehearse --dump` does). Any client can use the path: \
        bootmedic, or avrdude -c stk500v1 / -c avrisp / -c buspirate.
        """)

    @Option(help: "The programmer to simulate: stk500v1 (Arduino as ISP), avrisp (Pro Micro/Teensy ISP firmware) or buspirate.")
    var programmer: ProgrammerKind

    @OptionGroup var chipOptions: SimulatedChipOptions

    @Option(help: "Write the chip's final state here when done.")
    var state: String?

    @Option(help: "A fault on the serial line: \(SerialFault.allCases.map(\.rawValue).joined(separator: ", ")).")
    var fault: SerialFault?

    @Option(help: ArgumentHelp("Serve the serial programmer on this existing tty instead of a new pseudo-terminal: the gadget side of a USB CDC ACM function (/dev/ttyGS0), which the host sees as /dev/ttyACM0.", valueName: "path"))
    var tty: String?

    @Flag(help: "STM32: the chip starts read-protected (RDP level 1).")
    var readProtected = false

    @Option(help: ArgumentHelp("Serve a USB programmer (usbasp, usbtiny, stlink) as a real USB gadget through the FunctionFS mounted here, instead of a serial one on a pseudo-terminal; prints \"ready\" once the descriptors are in, when the gadget may be bound, and \"writing\" once the host has written a flash page.", valueName: "dir"))
    var functionfs: String?

    func validate() throws {
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
        let (flash, eeprom, fuses) = try chipOptions.contents()
        let chip = SimulatedAVR(part: try chipOptions.avrPart(), clock: VirtualClock(), flash: flash, eeprom: eeprom, fuses: fuses)
        if let functionfs { return try serveGadget(at: functionfs, chip: chip) }
        let server: SerialSimulatorServer
        do {
            server = try SerialSimulatorServer(simulator: makeSerialSimulator(programmer, chip: chip),
                                               line: tty.map(GadgetSerialLine.init(path:)))
        } catch { throw fail(error.description) }
        server.fault = fault
        // A gadget tty is USB CDC end to end; on a pty, ArduinoISP's line is a UART behind a USB bridge.
        server.line = programmer == .avrisp || tty != nil ? .usbCDC : .uart
        server.start()
        print(server.path)
        fflush(nil)

        let signals = TerminationSignals()
        signals.endWhenStandardInputCloses()
        signals.wait()
        server.stop()
        let summary = String(format: "{\"seconds\": %.6f, \"bytesFromHost\": %d, \"bytesToHost\": %d}\n",
                             chip.clock.seconds, server.bytesFromHost, server.bytesToHost)
        try finish(chip: chip, summary: summary)
    }

    /// The USB programmer's simulator behind a FunctionFS ep0: each control request the host sends
    /// through the real kernel reaches the simulator exactly as the in-process tests call it. The kernel
    /// carries the USB frames; the programmer's and the chip's own times (SPI bits, write waits) are
    /// served in real time, so a restore through the gadget takes as long as on the hardware.
    private func serveGadget(at directory: String, chip: SimulatedAVR) throws {
        let device: USBDevice
        if programmer == .usbasp {
            let usbasp = SimulatedUSBasp(chip: chip)
            usbasp.linkTiming = .carriedElsewhere
            device = usbasp
        } else {
            let usbtiny = SimulatedUSBtiny(chip: chip)
            usbtiny.linkTiming = .carriedElsewhere
            device = usbtiny
        }
        let pace = RealTimePacer(clock: chip.clock)
        let endpoint: FunctionFSEndpointZero
        do { endpoint = try FunctionFSEndpointZero(directory: directory) } catch { throw fail(error.description) }
        print("ready")
        fflush(nil)
        signal(SIGPIPE, SIG_IGN)   // a reader that went away must not take the gadget down
        let signals = TerminationSignals()
        signals.endWhenStandardInputCloses()
        var requests = 0
        let flashWrites = chip.pageWrites
        var announcedWriting = false
        do {
            try endpoint.serve(until: { signals.wait(until: .now()) }) { setup, data in
                requests += 1
                pace.catchUp()
                defer { pace.holdBack() }
                // For scripts that act mid-write (pull the programmer, say): one line when flash is first written.
                if !announcedWriting, chip.pageWrites > flashWrites {
                    announcedWriting = true
                    print("writing")
                    fflush(nil)
                }
                if setup.isDeviceToHost {
                    return try? device.controlIn(request: setup.request, value: setup.value, index: setup.index,
                                                 length: Int(setup.length), timeoutMilliseconds: 5000)
                }
                return (try? device.controlOut(request: setup.request, value: setup.value, index: setup.index,
                                               data: data, timeoutMilliseconds: 5000)).map { _ in [] }
            }
        } catch { throw fail(error.description) }
        try finish(chip: chip, summary: String(format: "{\"seconds\": %.6f, \"controlRequests\": %d}\n", chip.clock.seconds, requests))
    }

    /// An ST-Link/V2 (0483:3748's endpoints: commands and data on 0x02, replies on 0x81, trace on 0x83)
    /// behind FunctionFS, wired to a simulated STM32F103. Bulk transfers are served on their own thread;
    /// ep0 carries nothing vendor-specific.
    private func serveSTLinkGadget(at directory: String) throws {
        guard chipOptions.part.lowercased() == "stm32f103" else { throw fail("an ST-Link gadget serves an stm32f103, not \(chipOptions.part)") }
        let target = SimulatedSTM32F103(clock: VirtualClock(), flash: try chipOptions.initialFlash.map { try readBinary($0) },
                                        readProtected: readProtected)
        let stlink = SimulatedSTLink(target: target)
        stlink.carriesUSBTiming = false
        let endpoint: FunctionFSEndpointZero
        let session: STLinkGadgetSession
        do {
            endpoint = try FunctionFSEndpointZero(directory: directory, bulkEndpoints: [0x81, 0x02, 0x83])
            session = STLinkGadgetSession(stlink: stlink, commands: try endpoint.bulkEndpoint(0x02), replies: try endpoint.bulkEndpoint(0x81))
        } catch { throw fail(error.description) }
        print("ready")
        fflush(nil)
        signal(SIGPIPE, SIG_IGN)
        let signals = TerminationSignals()
        signals.endWhenStandardInputCloses()
        session.start()
        do { try endpoint.serve(until: { signals.wait(until: .now()) }) { _, _ in nil } } catch { throw fail(error.description) }
        let summary = session.withSimulator { _ in
            String(format: "{\"seconds\": %.6f, \"bulkTransfers\": %d, \"readProtected\": %@, \"massErases\": %d, \"pagesErased\": %d, \"halfWordsProgrammed\": %d}\n",
                   target.clock.seconds, stlink.transfers, target.isReadProtected ? "true" : "false", target.massErases,
                   target.pagesErased, target.halfWordsProgrammed)
        }
        printError("simulated: " + summary.trimmingCharacters(in: .whitespacesAndNewlines))
        guard let state else { return }
        do {
            try FileManager.default.createDirectory(atPath: state, withIntermediateDirectories: true)
            try Data(session.withSimulator { _ in target.flash }).write(to: URL(fileURLWithPath: state + "/flash.bin"))
            try summary.write(toFile: state + "/session.json", atomically: true, encoding: .utf8)
        } catch { throw fail("cannot write the state to \(state): \(error.localizedDescription)") }
    }

    /// Reports the session and writes the chip's state to --state.
    private func finish(chip: SimulatedAVR, summary: String) throws {
        printError("simulated: " + summary.trimmingCharacters(in: .whitespacesAndNewlines))
        guard let state else { return }
        do {
            try ChipState(flash: chip.flash, eeprom: chip.eeprom, fuses: chip.fuses, lock: chip.lock).write(to: state)
            try summary.write(toFile: state + "/session.json", atomically: true, encoding: .utf8)
        } catch { throw fail("cannot write the state to \(state): \(error.localizedDescription)") }
    }
}

/// The bulk side of an ST-Link gadget: takes each command (and the data a write command announced) from
/// the OUT endpoint, runs it on the simulator, and hands any reply to the IN endpoint. The simulator is
/// touched under a lock, so the main thread can read the chip's state once serving ends.
final class STLinkGadgetSession: @unchecked Sendable {
    private let stlink: SimulatedSTLink
    private let commands: FunctionFSBulkEndpoint
    private let replies: FunctionFSBulkEndpoint
    private let pace: RealTimePacer
    private let lock = NSLock()

    init(stlink: SimulatedSTLink, commands: FunctionFSBulkEndpoint, replies: FunctionFSBulkEndpoint) {
        self.stlink = stlink
        self.commands = commands
        self.replies = replies
        pace = RealTimePacer(clock: stlink.target.clock)
    }

    func withSimulator<T>(_ body: (SimulatedSTLink) -> T) -> T { lock.withLock { body(stlink) } }

    func start() {
        let thread = Thread { [self] in serve() }
        thread.stackSize = 1 << 20
        thread.start()
    }

    private func serve() {
        var announcedWriting = false
        while true {
            let data: [UInt8]
            do {
                // A command comes as one short packet; write data exactly as long as its command said.
                data = try commands.read(maximum: withSimulator { $0.awaitedDataBytes } ?? 64)
            } catch .disconnected {
                usleep(50_000)   // unbound or deconfigured: wait for the host to configure the gadget again
                continue
            } catch {
                printError("simulate: \(error)")
                return
            }
            let reply: [UInt8]? = withSimulator { stlink in
                pace.catchUp()
                defer { pace.holdBack() }
                _ = try? stlink.bulkWrite(endpoint: 0x02, data: data, timeoutMilliseconds: 5000)
                guard stlink.pendingReplyCount > 0 else { return nil }
                return try? stlink.bulkRead(endpoint: 0x81, length: stlink.pendingReplyCount, timeoutMilliseconds: 5000)
            }
            if !announcedWriting, withSimulator({ $0.target.halfWordsProgrammed > 0 }) {
                announcedWriting = true
                print("writing")
                fflush(nil)
            }
            if let reply { try? replies.write(reply) }
        }
    }
}

/// Keeps a simulated clock in step with the wall clock: time the host spends between requests passes
/// on the device too, and an answer the device needs simulated time for waits for it in real time.
struct RealTimePacer {
    let clock: VirtualClock
    private let start = DispatchTime.now().uptimeNanoseconds

    init(clock: VirtualClock) { self.clock = clock }

    private var elapsed: UInt64 { DispatchTime.now().uptimeNanoseconds - start }

    /// Before a request: the device has lived through the time the host took.
    func catchUp() { clock.advance(to: elapsed) }

    /// After a request: wait until real time has caught up with what the device spent.
    func holdBack() {
        let now = elapsed
        if clock.now > now { usleep(useconds_t((clock.now - now) / 1000)) }
    }
}

/// The simulator for a serial programmer kind.
func makeSerialSimulator(_ kind: ProgrammerKind, chip: SimulatedAVR) -> SerialProgrammerSimulator {
    kind == .buspirate ? SimulatedBusPirate(chip: chip) : SimulatedArduinoISP(chip: chip)
}

extension SerialFault: ExpressibleByArgument {
    public init?(argument: String) { self.init(rawValue: argument) }
    public static var allValueStrings: [String] { allCases.map(\.rawValue) }
}
