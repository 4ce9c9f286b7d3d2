import BenchModel
import Parts
import Transport

/// A bootloader speaking Atmel's AVR109 self-programming protocol over a serial line: Arduino's Caterina
/// on the 32U4 boards (over USB CDC), and the butterfly-style bootloaders avrdude's `-c avr109` drives.
/// One-letter commands (AVR109 application note, §"Commands"): 'S' software id, 'V' version, 'b' block
/// support, 's' signature (last byte first), 'F'/'N'/'Q'/'r' fuses and lock, 'A' address (words for
/// flash), 'B'/'g' block write and read, 'e' erase of the application section, 'L' leave programming
/// mode, 'E' exit to the application. Each write command is acknowledged with a carriage return.
public final class AVR109Bootloader: BootloaderSession {
    public let line: SerialLink
    public let time: TimeSource
    public private(set) var identity: ProgrammerIdentity
    private var blockSize = 128
    /// Long enough for a page write and a USB frame on the slowest board; the erase gets its own.
    static let answerMilliseconds = 1000
    static let eraseMilliseconds = 10_000

    /// `usb`: the ids the board's CDC function enumerated with, where known (a rule's `match.usb`).
    public init(line: SerialLink, time: TimeSource, kind: BootloaderKind = .caterina, serialNumber: String? = nil, usb: USBID? = nil) {
        self.line = line
        self.time = time
        identity = ProgrammerIdentity(bootloader: kind, name: kind.description, serialNumber: serialNumber, port: line.path)
        identity.usb = usb
    }

    public var readRefusal: String? { nil }

    public func identify() throws(BootloaderError) -> BootloaderReport {
        // ESC leaves any half-typed command; what it may echo is drained.
        try send([0x1B], "synchronising")
        _ = try? line.drain(quietMilliseconds: 20, limitMilliseconds: 200)
        let software = String(decoding: try ask([UInt8(ascii: "S")], answer: 7, "reading the software id"), as: UTF8.self)
        guard software.unicodeScalars.allSatisfy({ $0.value >= 0x20 && $0.value < 0x7F }) else {
            throw .protocolViolation("the software id is not text: \(software.debugDescription)")
        }
        let version = String(decoding: try ask([UInt8(ascii: "V")], answer: 2, "reading the version"), as: UTF8.self)
        let block = try ask([UInt8(ascii: "b")], answer: 3, "asking for block support")
        guard block[0] == UInt8(ascii: "Y") else { throw .refused("block transfers, which bootmedic needs") }
        blockSize = Int(block[1]) << 8 | Int(block[2])
        guard blockSize > 0, blockSize % 2 == 0 else { throw .protocolViolation("a block size of \(blockSize) bytes") }
        try acknowledged([UInt8(ascii: "P")], "entering programming mode")
        let s = try ask([UInt8(ascii: "s")], answer: 3, "reading the signature")
        let fuses = try ask([UInt8(ascii: "F")], answer: 1, "reading the low fuse")[0]
        let high = try ask([UInt8(ascii: "N")], answer: 1, "reading the high fuse")[0]
        let extended = try ask([UInt8(ascii: "Q")], answer: 1, "reading the extended fuse")[0]
        let lock = try ask([UInt8(ascii: "r")], answer: 1, "reading the lock bits")[0]
        identity.firmware = "\(software) \(version.first.map(String.init) ?? "?").\(version.dropFirst())"
        return BootloaderReport(signature: Signature(s[2], s[1], s[0]), fuses: FuseSet(low: fuses, high: high, extended: extended), lock: lock,
                                software: identity.firmware ?? software, blockSize: blockSize)
    }

    public func readFlash(at address: Int, count: Int, progress: (Int) -> Void) throws(BootloaderError) -> [UInt8] {
        try setAddress(words: address / 2)
        var out: [UInt8] = []
        out.reserveCapacity(count)
        while out.count < count {
            let n = min(blockSize, count - out.count)
            out += try ask([UInt8(ascii: "g"), UInt8(n >> 8), UInt8(n & 0xFF), UInt8(ascii: "F")], answer: n,
                           "reading flash at " + String(cFormat: "0x%04X", UInt32(address + out.count)))
            progress(out.count)
        }
        return out
    }

    public func eraseApplication() throws(BootloaderError) {
        try acknowledged([UInt8(ascii: "e")], "erasing the application", within: Self.eraseMilliseconds)
    }

    /// Block by block from `address`, which must start a block; a block that is all 0xFF after the erase
    /// is skipped, and the address set again after it.
    public func writeFlash(at address: Int, _ bytes: [UInt8], progress: (Int) -> Void) throws(BootloaderError) {
        guard address % blockSize == 0 else { throw .protocolViolation("a write at \(String(cFormat: "0x%04X", UInt32(address))) that starts no \(blockSize)-byte block") }
        var data = bytes
        while data.count % blockSize != 0 { data.append(0xFF) }
        var needsAddress = true
        for offset in stride(from: 0, to: data.count, by: blockSize) {
            let block = Array(data[offset..<offset + blockSize])
            defer { progress(min(offset + blockSize, bytes.count)) }
            if block.allSatisfy({ $0 == 0xFF }) { needsAddress = true; continue }
            if needsAddress { try setAddress(words: (address + offset) / 2); needsAddress = false }
            try acknowledged([UInt8(ascii: "B"), UInt8(blockSize >> 8), UInt8(blockSize & 0xFF), UInt8(ascii: "F")] + block,
                             "writing flash at " + String(cFormat: "0x%04X", UInt32(address + offset)))
        }
    }

    /// EEPROM addresses go to 'A' as bytes (the bootloader halves its word address for EEPROM).
    public func readEEPROM(at address: Int, count: Int) throws(BootloaderError) -> [UInt8] {
        try setAddress(words: address)
        var out: [UInt8] = []
        while out.count < count {
            let n = min(blockSize, count - out.count)
            out += try ask([UInt8(ascii: "g"), UInt8(n >> 8), UInt8(n & 0xFF), UInt8(ascii: "E")], answer: n,
                           "reading EEPROM at " + String(cFormat: "0x%04X", UInt32(address + out.count)))
        }
        return out
    }

    /// Each byte takes the chip's EEPROM write time: a block of them gets the time of all.
    public func writeEEPROM(at address: Int, _ bytes: [UInt8]) throws(BootloaderError) {
        try setAddress(words: address)
        for offset in stride(from: 0, to: bytes.count, by: blockSize) {
            let block = Array(bytes[offset..<min(offset + blockSize, bytes.count)])
            try acknowledged([UInt8(ascii: "B"), UInt8(block.count >> 8), UInt8(block.count & 0xFF), UInt8(ascii: "E")] + block,
                             "writing EEPROM at " + String(cFormat: "0x%04X", UInt32(address + offset)), within: Self.answerMilliseconds + 10 * block.count)
        }
    }

    public func startApplication() throws(BootloaderError) {
        try acknowledged([UInt8(ascii: "L")], "leaving programming mode")
        // A bootloader that detaches before its answer reaches the host has done what was asked.
        do { try acknowledged([UInt8(ascii: "E")], "starting the application") } catch .gone {}
    }

    /// A CDC ACM bootloader that starts the application detaches from USB: its tty reports an error.
    public func hasGone(withinMilliseconds milliseconds: Int) -> Bool {
        let start = time.now
        while time.elapsed(since: start) < UInt64(milliseconds) * 1_000_000 {
            do { _ = try line.read(count: 1, timeoutMilliseconds: 50) } catch {
                if case .timeout = error { continue }
                return true
            }
        }
        return false
    }

    public func close() { line.close() }

    // MARK: Commands

    private func setAddress(words: Int) throws(BootloaderError) {
        try acknowledged([UInt8(ascii: "A"), UInt8(words >> 8 & 0xFF), UInt8(words & 0xFF)], "setting the address " + String(cFormat: "0x%04X", UInt32(words * 2)))
    }

    private func send(_ bytes: [UInt8], _ operation: String) throws(BootloaderError) {
        do { try line.write(bytes) } catch { throw failure(error, operation) }
    }

    private func ask(_ command: [UInt8], answer count: Int, _ operation: String, within milliseconds: Int = answerMilliseconds) throws(BootloaderError) -> [UInt8] {
        try send(command, operation)
        let answer: [UInt8]
        do { answer = try line.read(count: count, timeoutMilliseconds: milliseconds) } catch { throw failure(error, operation) }
        if count == 1 || answer.first != UInt8(ascii: "?") || command[0] == UInt8(ascii: "g") { return answer }
        throw .refused(operation)
    }

    /// A command answered with a carriage return ('?' when the bootloader does not know it).
    private func acknowledged(_ command: [UInt8], _ operation: String, within milliseconds: Int = answerMilliseconds) throws(BootloaderError) {
        let answer = try ask(command, answer: 1, operation, within: milliseconds)[0]
        if answer == UInt8(ascii: "?") { throw .refused(operation) }
        guard answer == 0x0D else { throw .protocolViolation("\(operation): \(String(cFormat: "0x%02X", answer)) instead of a carriage return") }
    }

    private func failure(_ error: SerialError, _ operation: String) -> BootloaderError {
        if case .vanished = error { return .gone(operation: operation) }
        return .serial(error, operation: operation)
    }
}
