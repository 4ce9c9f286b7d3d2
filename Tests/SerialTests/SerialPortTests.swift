import Foundation
import Parts
import Simulation
import Testing
import Transport

/// Echoes every byte back, doubled: enough to see both directions of a real pty.
final class Doubler: SerialProgrammerSimulator {
    let chip = SimulatedAVR(part: PartCatalog.avrParts[1], clock: VirtualClock())
    func receive(_ bytes: [UInt8]) -> [UInt8] { bytes.flatMap { [$0, $0] } }
}

@Suite struct SerialPortTests {
    @Test func talksRawOverARealPseudoTerminal() throws {
        let server = try SerialSimulatorServer(simulator: Doubler())
        server.start()
        defer { server.stop() }
        let port = try SerialPort(path: server.path, baudRate: 19200)
        // Bytes a cooked terminal would eat or translate pass untouched.
        try port.write([0x00, 0x03, 0x0A, 0x0D, 0x11, 0x13, 0x7F, 0xFF])
        #expect(try port.read(count: 16, timeoutMilliseconds: 1000) == [0x00, 0x00, 0x03, 0x03, 0x0A, 0x0A, 0x0D, 0x0D, 0x11, 0x11, 0x13, 0x13, 0x7F, 0x7F, 0xFF, 0xFF])
    }

    @Test func aReadThatTimesOutSaysWhatArrived() throws {
        let server = try SerialSimulatorServer(simulator: Doubler())
        server.start()
        defer { server.stop() }
        let port = try SerialPort(path: server.path, baudRate: 19200)
        try port.write([0x41])
        let start = Date()
        #expect(throws: SerialError.timeout(path: server.path, expected: 3, received: [0x41, 0x41], milliseconds: 200)) {
            try port.read(count: 3, timeoutMilliseconds: 200)
        }
        #expect(Date().timeIntervalSince(start) < 1.0, "the wait is bounded")
        #expect(SerialError.timeout(path: "/dev/pts/9", expected: 3, received: [0x41, 0x41], milliseconds: 200).description
                == "/dev/pts/9 answered 2 bytes (41 41) within 200 ms where 3 bytes were expected")
    }

    @Test func aPulledAdapterIsReportedAsGone() throws {
        let server = try SerialSimulatorServer(simulator: Doubler())
        server.fault = .cablePulled
        server.start()
        defer { server.stop() }
        let port = try SerialPort(path: server.path, baudRate: 19200)
        try port.write([0x01])
        #expect(throws: SerialError.vanished(path: server.path)) {
            try port.read(count: 1, timeoutMilliseconds: 2000)
        }
    }

    @Test func aSecondJobCannotTakeThePort() throws {
        let server = try SerialSimulatorServer(simulator: Doubler())
        server.start()
        defer { server.stop() }
        let first = try SerialPort(path: server.path, baudRate: 19200)
        #expect(throws: SerialError.busy(path: server.path)) { try SerialPort(path: server.path, baudRate: 19200) }
        first.close()
        _ = try SerialPort(path: server.path, baudRate: 19200)
    }

    @Test func refusesWhatIsNotASerialPort() {
        #expect(throws: SerialError.cannotOpen(path: "/nonexistent/ttyACM0", reason: "No such file or directory")) {
            try SerialPort(path: "/nonexistent/ttyACM0", baudRate: 19200)
        }
        #expect(throws: SerialError.unsupportedBaudRate(12345)) { try SerialPort(path: "/dev/null", baudRate: 12345) }
    }
}
