import ArgumentParser
import BenchModel
import Dispatch
import Foundation
import Parts
import Recovery
import Simulation

struct SimulateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "simulate",
        abstract: "Serve a simulated serial programmer and chip on a pseudo-terminal.",
        discussion: """
        Prints the pseudo-terminal's path as the first line of standard output, then serves until standard \
        input closes or SIGTERM/SIGINT arrives, and writes the chip's final state to --state DIR \
        (flash.bin, eeprom.bin, fuses.json, as `rehearse --dump` does). Any client can use the path: \
        bootmedic, or avrdude -c stk500v1 / -c avrisp / -c buspirate.
        """)

    @Option(help: "The programmer to simulate: stk500v1 (Arduino as ISP), avrisp (Pro Micro/Teensy ISP firmware) or buspirate.")
    var programmer: ProgrammerKind

    @Option(help: "The simulated chip, e.g. atmega32u4.")
    var part: String

    @Option(help: "Start the chip with this flash content (raw binary from address 0).")
    var initialFlash: String?

    @Option(help: "Start the chip with these fuses, LOW:HIGH[:EXTENDED] in hex (default: the part's factory fuses).")
    var initialFuses: String?

    @Option(help: "Write the chip's final state here when done.")
    var state: String?

    @Option(help: "A fault on the serial line: \(SerialFault.allCases.map(\.rawValue).joined(separator: ", ")).")
    var fault: SerialFault?

    func validate() throws {
        guard [.stk500v1, .avrisp, .buspirate].contains(programmer) else {
            throw ValidationError("simulate serves serial programmers: stk500v1, avrisp or buspirate")
        }
    }

    func run() throws {
        guard case let .avr(avr)? = PartCatalog.part(named: part) else {
            throw fail("unknown AVR part '\(part)'; bootmedic knows \(PartCatalog.avrParts.map(\.id).joined(separator: ", "))")
        }
        let chip = SimulatedAVR(part: avr, clock: VirtualClock(), flash: try initialFlash.map { try readBinary($0) },
                                fuses: try initialFuses.map { try parseFuses($0) })
        let server: SerialSimulatorServer
        do {
            server = try SerialSimulatorServer(simulator: makeSerialSimulator(programmer, chip: chip))
        } catch { throw fail(error.description) }
        server.fault = fault
        server.line = programmer == .avrisp ? .usbCDC : .uart
        server.start()
        print(server.path)
        fflush(nil)

        let signals = TerminationSignals()
        let stdinReader = Thread {
            var buffer = [UInt8](repeating: 0, count: 256)
            while buffer.withUnsafeMutableBytes({ read(STDIN_FILENO, $0.baseAddress, $0.count) }) > 0 {}
            signals.end()
        }
        stdinReader.start()
        signals.wait()
        server.stop()
        let summary = String(format: "{\"seconds\": %.6f, \"bytesFromHost\": %d, \"bytesToHost\": %d}\n",
                             chip.clock.seconds, server.bytesFromHost, server.bytesToHost)
        printError("simulated: " + summary.trimmingCharacters(in: .whitespacesAndNewlines))
        if let state {
            do {
                try ChipState(flash: chip.flash, eeprom: chip.eeprom, fuses: chip.fuses, lock: chip.lock).write(to: state)
                try summary.write(toFile: state + "/session.json", atomically: true, encoding: .utf8)
            } catch { throw fail("cannot write the state to \(state): \(error.localizedDescription)") }
        }
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
