import FirmwareImage
import Foundation
import TestSupport
import Testing

/// `bootmedic simulate` running in the background: its pseudo-terminal path, and its state when done.
final class SimulatorProcess {
    let process = Process()
    let input = Pipe()
    let output = Pipe()
    let state: URL
    private(set) var path = ""

    init(_ programmer: String, part: String, state: URL) throws {
        self.state = state
        process.executableURL = URL(fileURLWithPath: Fixtures.bootmedicBinary)
        process.arguments = ["simulate", "--programmer", programmer, "--part", part, "--state", state.path]
        process.standardInput = input
        process.standardOutput = output
        try process.run()
        var line = Data()
        while !line.contains(0x0A) {
            let chunk = output.fileHandleForReading.availableData
            guard !chunk.isEmpty else { break }
            line += chunk
        }
        path = String(decoding: line, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// Closes standard input, as the contract says, and waits for the state to be written.
    func finish() throws {
        try input.fileHandleForWriting.close()
        process.waitUntilExit()
    }
}

func avrdude(_ arguments: [String]) throws -> CommandResult {
    try run("/usr/bin/avrdude", arguments)
}

@Suite(.serialized) struct AvrdudeInteropTests {
    static let cases: [(programmer: [String], kind: String, part: String, avrPart: String, file: String, fuses: [(String, Int, Int)])] = [
        (["-c", "stk500v1", "-b", "19200"], "stk500v1", "atmega32u4", "m32u4", "Caterina-promicro16.hex", [("lfuse", 0xFF, 0xFF), ("hfuse", 0xD8, 0xD8), ("efuse", 0xCB, 0xCB)]),
        (["-c", "avrisp", "-b", "19200"], "avrisp", "atmega32a", "m32a", "bootloader_ps2avrgb_bootloadhid_1.0.1.hex", [("lfuse", 0x0F, 0x0F), ("hfuse", 0xD0, 0xD0)]),
        (["-c", "buspirate"], "buspirate", "atmega32u4", "m32u4", "bootloader_atmega32u4_1_0_0.hex", [("lfuse", 0x5E, 0x5E), ("hfuse", 0xD9, 0xD9), ("efuse", 0xF3, 0xC3)]),
        // The extended fuse's upper four bits do not exist on the ATmega32U4: this silicon reads them as 1100.
    ]

    @Test(.needsFirmware, arguments: cases)
    func avrdudeWritesVerifiesAndReadsBackThroughOurSimulator(_ c: (programmer: [String], kind: String, part: String, avrPart: String, file: String, fuses: [(String, Int, Int)])) throws {
        let dir = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let simulator = try SimulatorProcess(c.kind, part: c.part, state: dir.appendingPathComponent("state"))
        #expect(simulator.path.hasPrefix("/dev/pts/"))
        let base = c.programmer + ["-P", simulator.path, "-p", c.avrPart]

        let write = try avrdude(base + ["-U", "flash:w:\(Fixtures.firmware(c.file)):i"] + c.fuses.flatMap { ["-U", "\($0.0):w:0x\(String($0.1, radix: 16)):m"] })
        #expect(write.status == 0, "\(write.stderr)")
        #expect(write.stderr.lowercased().contains("device signature = 0x\(c.part == "atmega32a" ? "1e9502" : "1e9587")"), "\(write.stderr)")
        #expect(write.stderr.contains("bytes of flash verified"))
        for (fuse, _, _) in c.fuses { #expect(write.stderr.contains("1 byte of \(fuse) verified"), "\(fuse)") }

        let read = try avrdude(base + c.fuses.flatMap { ["-U", "\($0.0):r:-:h"] })
        #expect(read.status == 0, "\(read.stderr)")
        #expect(read.stdout.split(separator: "\n").map(String.init) == c.fuses.map { "0x" + String($0.2, radix: 16) })

        try simulator.finish()
        let flash = try Data(contentsOf: simulator.state.appendingPathComponent("flash.bin"))
        let image = try FirmwareFile(path: Fixtures.firmware(c.file)).image
        #expect([UInt8](flash) == image.bytes(in: 0..<UInt32(flash.count)), "the chip holds exactly what avrdude wrote")
        let fuses = try JSONSerialization.jsonObject(with: Data(contentsOf: simulator.state.appendingPathComponent("fuses.json"))) as? [String: Int]
        let names = ["lfuse": "low", "hfuse": "high", "efuse": "extended"]
        for (fuse, _, readBack) in c.fuses { #expect(fuses?[names[fuse]!] == readBack, "\(fuse)") }
    }
}
