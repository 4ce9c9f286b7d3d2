import BenchModel
import Parts
import Transport

/// STK500 version 1 over a serial port, as the ArduinoISP sketch (avrdude `-c stk500v1`) and the QMK ISP
/// firmware for Pro Micro and Teensy 2.0 (avrdude `-c avrisp`) speak it. Byte values are the STK500v1
/// protocol's (avrdude's stk500_private.h, Atmel AVR061).
public final class STK500v1: ISPProgrammer {
    /// Which firmware is on the other end: it decides how the port is opened.
    public enum Flavor: Sendable {
        /// An Arduino Uno/Nano (or Micro) running ArduinoISP: opening the port resets the board through
        /// DTR, so the driver waits for the sketch to start.
        case arduinoISP
        /// A native-USB AVR (Pro Micro, Teensy 2.0) running QMK's ISP firmware: no auto-reset.
        case avrisp
    }

    enum Command: UInt8 {
        case getSync = 0x30, signOn = 0x31, getParameter = 0x41, setDevice = 0x42, setDeviceExtended = 0x45
        case enterProgramming = 0x50, leaveProgramming = 0x51, loadAddress = 0x55, universal = 0x56
        case programPage = 0x64, readPage = 0x74, readSignature = 0x75
    }
    static let insync: UInt8 = 0x14, ok: UInt8 = 0x10, nosync: UInt8 = 0x15, eop: UInt8 = 0x20
    /// ArduinoISP keeps 256 bytes; a larger block would overrun it.
    static let blockSize = 256
    /// The sketch runs at 19200 baud; the QMK firmware ignores the rate (USB CDC), except 1200, which
    /// tells a Caterina board to jump to its bootloader and must never be used.
    public static let defaultBaudRate = 19200

    private let port: SerialLink
    public let flavor: Flavor
    public let time: TimeSource
    public private(set) var identity: ProgrammerIdentity
    public let flashAddressLimit: Int? = nil
    public let pollsReadyBusy = true
    /// The sketch runs its SPI at a fixed 125 kHz.
    public let adaptsSCK = false
    public var readBlockSize: Int { Self.blockSize }
    /// How long to keep trying to sync after opening (an Uno's bootloader runs for about a second first).
    public var syncWindowMilliseconds: Int
    public var replyTimeoutMilliseconds = 1000

    private var synced = false
    private var devicePart: AVRPart?

    /// Opens the port at `path` for an STK500v1 firmware; never at 1200 baud.
    public static func openPort(path: String, baudRate: Int = STK500v1.defaultBaudRate) throws(ISPError) -> SerialPort {
        guard baudRate != 1200 else {
            throw .firmwareLimitation("1200 baud makes a Caterina board (Pro Micro, Leonardo) jump to its bootloader; use 19200")
        }
        do { return try SerialPort(path: path, baudRate: baudRate) } catch { throw .serial(error, operation: nil) }
    }

    /// Opens `path` and prepares the link; nothing is sent until ``enterProgrammingMode()``.
    public convenience init(path: String, flavor: Flavor, baudRate: Int = STK500v1.defaultBaudRate, time: TimeSource) throws(ISPError) {
        self.init(link: try Self.openPort(path: path, baudRate: baudRate), flavor: flavor, time: time)
    }

    /// Drives the firmware on an open line; nothing is sent until ``enterProgrammingMode()``.
    public init(link: SerialLink, flavor: Flavor, time: TimeSource) {
        port = link
        self.flavor = flavor
        self.time = time
        syncWindowMilliseconds = flavor == .arduinoISP ? 3000 : 1000
        identity = ProgrammerIdentity(kind: flavor == .arduinoISP ? .stk500v1 : .avrisp,
                                      name: flavor == .arduinoISP ? "Arduino as ISP" : "AVRISP (Pro Micro/Teensy ISP firmware)",
                                      port: link.path)
    }

    deinit { port.close() }

    public func close() { port.close() }

    // MARK: Programming mode

    public func enterProgrammingMode() throws(ISPError) {
        if !synced { try synchronize() }
        try setDevice(devicePart)
        try expectEmpty(.enterProgramming, [], "entering programming mode")
        // ArduinoISP sends Programming Enable without checking the echo, so check the target by its
        // first signature byte: every AVR answers 0x1E; a missing target reads 0x00 or 0xFF.
        let first = try transfer(.readSignature(0))[3]
        if first == 0x00 || first == 0xFF {
            try? expectEmpty(.leaveProgramming, [], "leaving programming mode")
            throw .noTarget(slowestSCK: "the sketch's fixed SCK", detail: "the first signature byte reads 0x\(hex(first)); ArduinoISP runs SCK at 125 kHz, so a target clocked below 500 kHz cannot follow it")
        }
        identity.sck = "125 kHz (fixed by the sketch)"
    }

    public func leaveProgrammingMode() {
        try? expectEmpty(.leaveProgramming, [], "leaving programming mode")
    }

    /// The sketch has one SCK: a look is entering programming mode and leaving it.
    public func targetAnswers() throws(ISPError) -> Bool {
        do { try enterProgrammingMode() } catch {
            if case .noTarget = error { return false }
            throw error
        }
        leaveProgrammingMode()
        return true
    }

    public func transfer(_ instruction: ISPInstruction) throws(ISPError) -> [UInt8] {
        let answer = try exchange([Command.universal.rawValue] + instruction.bytes + [Self.eop], reply: 1, "sending \(instruction)")
        // The universal command returns only the fourth byte; the echo bytes are what a target echoes.
        return [0, instruction.bytes[0], instruction.bytes[1], answer[0]]
    }

    // MARK: Memories

    public func readFlash(from address: UInt32, count: Int, part: AVRPart) throws(ISPError) -> [UInt8] {
        // Word-addressed: read from the even address below and trim.
        let start = Int(address) & ~1
        let end = (Int(address) + count + 1) & ~1
        let bytes = try readPages(memory: "F", from: start, to: end, part: part)
        return Array(bytes[(Int(address) - start)..<(Int(address) - start + count)])
    }

    public func readEEPROM(from address: Int, count: Int, part: AVRPart) throws(ISPError) -> [UInt8] {
        // The sketch takes EEPROM addresses as words too (address × 2).
        let start = address & ~1
        let end = (address + count + 1) & ~1
        let bytes = try readPages(memory: "E", from: start, to: end, part: part)
        return Array(bytes[(address - start)..<(address - start + count)])
    }

    public func writeFlash(_ pages: [FlashPage], part: AVRPart, progress: (Int) -> Void) throws(ISPError) {
        try setDevice(part)
        var done = 0
        // Up to 256 bytes per command: the sketch commits each page as the address crosses into the
        // next, and waits for it before answering.
        for run in FlashPage.joiningContiguous(pages) {
            var offset = 0
            while offset < run.bytes.count {
                let n = min(Self.blockSize, run.bytes.count - offset)
                let address = Int(run.address) + offset
                try loadAddress(address / 2, flashOf: part)
                let block = Array(run.bytes[offset..<offset + n])
                try expectEmpty(.programPage, [UInt8(n >> 8), UInt8(n & 0xFF), UInt8(ascii: "F")] + block,
                                "writing flash at 0x\(String(address, radix: 16))")
                offset += n
                done += n
                progress(done)
            }
        }
    }

    public func writeEEPROM(_ bytes: [(address: Int, value: UInt8)], part: AVRPart) throws(ISPError) {
        // The sketch's own EEPROM write waits 45 ms a byte; page writes through the universal command,
        // polled, are several times faster.
        try writeEEPROMByPages(bytes, part: part)
    }

    // MARK: Protocol

    /// Gets in sync: for an Arduino, resets it through DTR/RTS and keeps trying while its bootloader
    /// runs; gives up after the sync window with what the line did say.
    private func synchronize() throws(ISPError) {
        if flavor == .arduinoISP {
            port.setModemLines(dtr: false, rts: false)
            time.sleep(microseconds: 100_000)
            port.setModemLines(dtr: true, rts: true)
        }
        let start = time.now
        var heard: [UInt8] = []
        repeat {
            do {
                try port.drain(quietMilliseconds: 10, limitMilliseconds: 200)
                try port.write([Command.getSync.rawValue, Self.eop])
                let answer = try port.read(count: 2, timeoutMilliseconds: 250)
                if answer == [Self.insync, Self.ok] {
                    synced = true
                    try port.drain(quietMilliseconds: 10, limitMilliseconds: 100)
                    readVersion()
                    return
                }
                heard += answer
            } catch .timeout(_, _, let received, _) {
                heard += received
            } catch {
                throw .serial(error, operation: "synchronising with the programmer")
            }
        } while time.elapsed(since: start) < UInt64(syncWindowMilliseconds) * 1_000_000
        let what = heard.isEmpty ? "nothing" : "only noise (" + heard.prefix(8).map { hex($0) }.joined(separator: " ") + ")"
        throw .link("the programmer at \(port.path) never answered the STK500 sync within \(syncWindowMilliseconds) ms (it sent \(what)); check that the ArduinoISP sketch (or the ISP firmware) is loaded and that the baud rate is 19200")
    }

    private func readVersion() {
        let major = try? exchange([Command.getParameter.rawValue, 0x81, Self.eop], reply: 1, "reading the firmware version")
        let minor = try? exchange([Command.getParameter.rawValue, 0x82, Self.eop], reply: 1, "reading the firmware version")
        if let major, let minor { identity.firmware = "STK500v1 firmware \(major[0]).\(minor[0])" }
    }

    /// Tells the firmware the part's page and memory sizes (STK_SET_DEVICE); ArduinoISP needs the page size
    /// to commit pages.
    private func setDevice(_ part: AVRPart?) throws(ISPError) {
        guard devicePart == nil || devicePart != part else { return }
        var parameters = [UInt8](repeating: 0, count: 20)
        parameters[4] = 1; parameters[5] = 1                       // polling, self-timed
        parameters[6] = 1; parameters[7] = UInt8(part?.fuseBytes.count ?? 3)
        parameters[8] = 0xFF; parameters[9] = 0xFF; parameters[10] = 0xFF; parameters[11] = 0xFF
        let page = part?.flash.pageSize ?? 128
        parameters[12] = UInt8(page >> 8); parameters[13] = UInt8(page & 0xFF)
        let eeprom = part?.eeprom.size ?? 1024
        parameters[14] = UInt8(eeprom >> 8); parameters[15] = UInt8(eeprom & 0xFF)
        let flash = part?.flash.size ?? 32768
        parameters[16] = UInt8(flash >> 24 & 0xFF); parameters[17] = UInt8(flash >> 16 & 0xFF)
        parameters[18] = UInt8(flash >> 8 & 0xFF); parameters[19] = UInt8(flash & 0xFF)
        try expectEmpty(.setDevice, parameters, "setting the device parameters")
        devicePart = part
    }

    /// Loads a word address. Above 128 KiB the 16-bit address of the protocol needs the chip's extended
    /// address byte too, sent through the universal command (the sketch passes it to the chip, whose
    /// flash instructions then use it), as avrdude does.
    private func loadAddress(_ word: Int, flashOf part: AVRPart? = nil) throws(ISPError) {
        if let part, part.needsExtendedAddress { _ = try transfer(.loadExtendedAddress(UInt8(word >> 16 & 0xFF))) }
        try expectEmpty(.loadAddress, [UInt8(word & 0xFF), UInt8(word >> 8 & 0xFF)], "loading the address 0x\(String(word * 2, radix: 16))")
    }

    private func readPages(memory: Character, from start: Int, to end: Int, part: AVRPart) throws(ISPError) -> [UInt8] {
        var out: [UInt8] = []
        var address = start
        while address < end {
            // A block stays inside one 128 KiB window: the sketch's word counter has 16 bits.
            let n = min(Self.blockSize, end - address, 0x20000 - address % 0x20000)
            try loadAddress(address / 2, flashOf: memory == "F" ? part : nil)
            out += try exchange([Command.readPage.rawValue, UInt8(n >> 8), UInt8(n & 0xFF), memory.asciiValue!, Self.eop],
                                reply: n, "reading \(memory == "F" ? "flash" : "EEPROM") at 0x\(String(address, radix: 16))")
            address += n
        }
        return out
    }

    /// Sends a command whose answer is INSYNC OK.
    private func expectEmpty(_ command: Command, _ arguments: [UInt8], _ operation: String) throws(ISPError) {
        _ = try exchange([command.rawValue] + arguments + [Self.eop], reply: 0, operation)
    }

    /// Sends a command and returns the `reply` bytes between INSYNC and OK.
    private func exchange(_ bytes: [UInt8], reply count: Int, _ operation: String) throws(ISPError) -> [UInt8] {
        do {
            try port.write(bytes)
            let first = try port.read(count: 1, timeoutMilliseconds: replyTimeoutMilliseconds)
            guard first[0] == Self.insync else {
                throw ISPError.protocolViolation(first[0] == Self.nosync
                    ? "the programmer lost sync while \(operation) (STK_NOSYNC)"
                    : "expected STK_INSYNC while \(operation), got 0x\(hex(first[0]))")
            }
            let rest = try port.read(count: count + 1, timeoutMilliseconds: replyTimeoutMilliseconds + count * 2)
            guard rest[count] == Self.ok else {
                throw ISPError.protocolViolation("expected STK_OK while \(operation), got 0x\(hex(rest[count]))")
            }
            return Array(rest.prefix(count))
        } catch let error as ISPError {
            throw error
        } catch {
            throw ISPError.serialFailure(error, while: operation)
        }
    }
}

extension STK500v1 {
    /// The harmless probe: an STK500 sync (`0x30 0x20`), which an ArduinoISP or avrisp firmware answers
    /// with `0x14 0x10`. Nothing reaches a target; an Arduino gets the time its bootloader needs after
    /// the reset that opening the port causes.
    public static func answersProbe(at path: String, flavor: Flavor) -> Bool {
        guard let port = try? SerialPort(path: path, baudRate: defaultBaudRate) else { return false }
        defer { port.close() }
        if flavor == .arduinoISP {
            port.setModemLines(dtr: true, rts: true)
        }
        for _ in 0..<(flavor == .arduinoISP ? 8 : 3) {
            _ = try? port.drain(quietMilliseconds: 10, limitMilliseconds: 200)
            guard (try? port.write([Command.getSync.rawValue, eop])) != nil else { return false }
            if (try? port.read(count: 2, timeoutMilliseconds: 250)) == [insync, ok] {
                _ = try? port.drain(quietMilliseconds: 10, limitMilliseconds: 100)
                return true
            }
        }
        return false
    }
}
