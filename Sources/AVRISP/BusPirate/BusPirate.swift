import BenchModel
import Parts
import Transport

/// The Bus Pirate (v3/v4) in its binary SPI mode: twenty 0x00 bytes enter raw bitbang mode ("BBIO1"),
/// 0x01 enters SPI ("SPI1"); peripherals (0x4x: power, pull-ups, AUX, CS), speed (0x6x), SPI setup
/// (0x8x), bulk transfers (0x1x) and write-then-read (0x05) follow the Bus Pirate's binary protocol
/// (as documented by Dangerous Prototypes and used by avrdude's buspirate.c). CS drives the target's
/// RESET. Leaving returns the Bus Pirate to its console so a person can use it afterwards.
public final class BusPirate: ISPProgrammer {
    /// SPI speeds of the 0b01100xxx command, fastest first: (setting, Hz).
    static let speeds: [(setting: UInt8, hertz: Double)] = [(5, 2_600_000), (4, 2_000_000), (3, 1_000_000), (2, 250_000), (1, 125_000), (0, 30_000)]
    public static let defaultBaudRate = 115_200

    private let port: SerialLink
    public let time: TimeSource
    public private(set) var identity: ProgrammerIdentity
    public let flashAddressLimit: Int? = nil
    /// A round trip is a few bytes at 115200 baud: cheap enough to poll.
    public let pollsReadyBusy = true
    public let adaptsSCK = true
    /// The AVR extension's bulk read, 1 KiB a request.
    public let readBlockSize = 1024
    public var replyTimeoutMilliseconds = 500

    private var inSPIMode = false
    private var workingSpeed: Int?
    private var hasWriteThenRead = false
    private var hasAVRExtensions = false
    /// Peripheral bits: 0x08 power on, 0x01 CS (RESET) high.
    private var peripherals: UInt8 = 0x40

    /// Opens the port at `path`.
    public static func openPort(path: String, baudRate: Int = BusPirate.defaultBaudRate) throws(ISPError) -> SerialPort {
        do { return try SerialPort(path: path, baudRate: baudRate) } catch { throw .serial(error, operation: nil) }
    }

    public convenience init(path: String, baudRate: Int = BusPirate.defaultBaudRate, time: TimeSource) throws(ISPError) {
        self.init(link: try Self.openPort(path: path, baudRate: baudRate), time: time)
    }

    /// Drives the Bus Pirate on an open line; nothing is sent until ``enterProgrammingMode()``.
    public init(link: SerialLink, time: TimeSource) {
        port = link
        self.time = time
        identity = ProgrammerIdentity(kind: .buspirate, name: "Bus Pirate", port: link.path)
    }

    deinit { close() }

    /// Returns the Bus Pirate to its console and closes the port.
    public func close() {
        leaveBinaryMode()
        port.close()
    }

    // MARK: Programming mode

    public func enterProgrammingMode() throws(ISPError) {
        if !inSPIMode { try enterSPIMode() }
        var tried: [String] = []
        // Down the speeds with a short RESET pulse each; only when none answers, once more with a long
        // one, for a target that lost sync (a chip too slow for a speed costs one try there, not two).
        for pulse in [1_000, 20_000] {
            for index in (workingSpeed ?? 0)..<Self.speeds.count {
                let speed = Self.speeds[index]
                if try enable(at: speed.setting, pulse: pulse) {
                    workingSpeed = index
                    identity.sck = formatFrequency(speed.hertz)
                    return
                }
                if pulse == 1_000 { tried.append(formatFrequency(speed.hertz)) }
            }
        }
        try? setPeripherals(power: true, resetReleased: true)
        throw .noTarget(slowestSCK: tried.last ?? "", detail: "tried \(tried.joined(separator: ", "))")
    }

    public func targetAnswers() throws(ISPError) -> Bool {
        if !inSPIMode { try enterSPIMode() }
        let answered = try enable(at: Self.speeds.last!.setting, pulse: 1_000)
        leaveProgrammingMode()
        return answered
    }

    /// Sets the SPI speed, pulses RESET (CS) high for `pulse` µs and holds it low for the datasheets'
    /// 20 ms, then sends Programming Enable; true when the target echoed.
    private func enable(at setting: UInt8, pulse: Int) throws(ISPError) -> Bool {
        try command([0x60 | setting], expect: [0x01], "setting the SPI speed")
        try setPeripherals(power: true, resetReleased: true)
        time.sleep(microseconds: pulse)
        try setPeripherals(power: true, resetReleased: false)
        time.sleep(microseconds: 20_000)
        return try transfer(.programmingEnable)[2] == 0x53
    }

    public func forgetTargetSpeed() { workingSpeed = nil }

    public func leaveProgrammingMode() {
        try? setPeripherals(power: true, resetReleased: true)
    }

    public func transfer(_ instruction: ISPInstruction) throws(ISPError) -> [UInt8] {
        try bulk([instruction])[0]
    }

    /// Up to four instructions in one bulk transfer (0x10 | count-1, then the bytes). The command and its
    /// bytes go out together: the Bus Pirate buffers them, so one round trip carries all four.
    private func bulk(_ instructions: [ISPInstruction]) throws(ISPError) -> [[UInt8]] {
        precondition((1...4).contains(instructions.count))
        let bytes = instructions.flatMap(\.bytes)
        do {
            try port.write([0x10 | UInt8(bytes.count - 1)] + bytes)
            let answer = try port.read(count: 1 + bytes.count, timeoutMilliseconds: replyTimeoutMilliseconds)
            guard answer[0] == 0x01 else {
                throw ISPError.protocolViolation("the Bus Pirate refused a bulk transfer (answered 0x\(hex(answer[0])))")
            }
            return (0..<instructions.count).map { Array(answer[1 + 4 * $0..<5 + 4 * $0]) }
        } catch let error as ISPError {
            throw error
        } catch {
            throw .serialFailure(error, while: "sending \(instructions[0])")
        }
    }

    // MARK: Memories

    public func readFlash(from address: UInt32, count: Int, part: AVRPart) throws(ISPError) -> [UInt8] {
        if part.needsExtendedAddress { return try readFlashAboveWindow(from: address, count: count) }
        guard hasAVRExtensions, address % 2 == 0 else {
            return try readFlashByInstructions(from: address, count: count, part: part)
        }
        // AVR extended command 0x02: bulk flash read from a word address.
        var out: [UInt8] = []
        var at = Int(address)
        while out.count < count {
            let n = min(1024, count - out.count)
            let word = at / 2
            let request: [UInt8] = [0x06, 0x02] + [24, 16, 8, 0].map { UInt8(word >> $0 & 0xFF) } + [24, 16, 8, 0].map { UInt8(n >> $0 & 0xFF) }
            do {
                try port.write(request)
                let acks = try port.read(count: 2, timeoutMilliseconds: replyTimeoutMilliseconds)
                guard acks == [0x01, 0x01] else { throw ISPError.protocolViolation("the bulk flash read was refused (answered \(acks.map { hex($0) }.joined(separator: " ")))") }
                out += try port.read(count: n, timeoutMilliseconds: replyTimeoutMilliseconds + n)
            } catch let error as ISPError {
                throw error
            } catch {
                throw .serialFailure(error, while: "reading flash at 0x\(String(at, radix: 16))")
            }
            at += n
        }
        return out
    }

    /// Above 128 KiB: the firmware's bulk read sends 16-bit word addresses of its own, so the reads go as
    /// raw instructions, four to a bulk transfer, with the extended address byte loaded for each 128 KiB window.
    private func readFlashAboveWindow(from address: UInt32, count: Int) throws(ISPError) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(count)
        var at = address
        let end = address + UInt32(count)
        while at < end {
            _ = try transfer(.loadExtendedAddress(UInt8(at >> 17)))
            let windowEnd = min(end, (at >> 17 + 1) << 17)
            while at < windowEnd {
                let n = min(4, Int(windowEnd - at))
                out += try bulk((0..<UInt32(n)).map { ISPInstruction.readFlash(byteAddress: at + $0) }).map { $0[3] }
                at += UInt32(n)
            }
        }
        return out
    }

    public func readEEPROM(from address: Int, count: Int, part: AVRPart) throws(ISPError) -> [UInt8] {
        var out: [UInt8] = []
        var at = address
        while at < address + count {
            let n = min(4, address + count - at)
            out += try bulk((at..<at + n).map { ISPInstruction.readEEPROM(UInt16($0)) }).map { $0[3] }
            at += n
        }
        return out
    }

    public func writeFlash(_ pages: [FlashPage], part: AVRPart, progress: (Int) -> Void) throws(ISPError) {
        guard hasWriteThenRead else {
            try writeFlashByInstructions(pages, part: part, progress: progress)
            return
        }
        var done = 0
        for page in pages {
            // The whole page buffer in one write-then-read (0x05, no chip select), then the page write.
            var load: [UInt8] = []
            for (offset, byte) in page.bytes.enumerated() {
                load += ISPInstruction.loadFlashPage(byteAddress: page.address + UInt32(offset), value: byte).bytes
            }
            let header: [UInt8] = [0x05, UInt8(load.count >> 8), UInt8(load.count & 0xFF), 0, 0]
            do {
                try port.write(header + load)
                let ack = try port.read(count: 1, timeoutMilliseconds: replyTimeoutMilliseconds + load.count)
                guard ack == [0x01] else { throw ISPError.protocolViolation("write-then-read answered 0x\(hex(ack[0]))") }
            } catch let error as ISPError {
                throw error
            } catch {
                throw .serialFailure(error, while: "loading the page at 0x\(String(page.address, radix: 16))")
            }
            // The page buffer takes the word's low bits only; the write takes the page's full address.
            if part.needsExtendedAddress { _ = try transfer(.loadExtendedAddress(UInt8(page.address >> 17))) }
            _ = try transfer(.writeFlashPage(byteAddress: page.address))
            try waitUntilReady(worstCaseMicroseconds: part.times.flashPageWrite, operation: "writing the flash page at 0x\(String(page.address, radix: 16))")
            done += page.bytes.count
            progress(done)
        }
    }

    public func writeEEPROM(_ bytes: [(address: Int, value: UInt8)], part: AVRPart) throws(ISPError) {
        try writeEEPROMByPages(bytes, part: part)
    }

    // MARK: Binary mode

    private func enterSPIMode() throws(ISPError) {
        do {
            // Two line ends leave any console menu; then twenty zeros enter binary mode.
            try port.write(Array("\n\n".utf8))
            try port.drain(quietMilliseconds: 20, limitMilliseconds: 500)
            try port.write([UInt8](repeating: 0, count: 20))
            var heard: [UInt8] = []
            let start = time.now
            while !heard.suffix(5).elementsEqual("BBIO1".utf8) {
                guard time.elapsed(since: start) < 1_000_000_000 else {
                    let text = printable(heard.prefix(40))
                    throw ISPError.link("the Bus Pirate at \(port.path) did not enter binary mode (it answered \(heard.isEmpty ? "nothing" : "\"\(text)\"")); check the port and that it runs firmware 5.x or later")
                }
                if let byte = try readByte() { heard.append(byte) }
            }
            try port.drain(quietMilliseconds: 20, limitMilliseconds: 300)   // extra BBIO1 if it was already in binary mode
            try port.write([0x01])
            let mode = try port.read(count: 4, timeoutMilliseconds: replyTimeoutMilliseconds)
            guard mode == Array("SPI1".utf8) else { throw ISPError.protocolViolation("SPI mode not confirmed (answered \(mode.map { hex($0) }.joined(separator: " ")))") }
        } catch let error as ISPError {
            throw error
        } catch {
            throw .serialFailure(error, while: "entering the Bus Pirate's binary mode")
        }
        inSPIMode = true
        identity.firmware = "binary SPI mode 1"
        try setPeripherals(power: true, resetReleased: true)
        time.sleep(microseconds: 50_000)   // let the target's supply settle
        // SPI: 3.3 V outputs, clock idle low, data on the trailing edge, sample in the middle.
        try command([0x8A], expect: [0x01], "configuring SPI")
        // Optional firmware features: write-then-read without CS (5.10+) and the AVR extended commands.
        hasWriteThenRead = (try? command([0x05, 0, 0, 0, 0], expect: [0x01], "probing write-then-read")) != nil
        if !hasWriteThenRead {
            _ = try? port.drain(quietMilliseconds: 20, limitMilliseconds: 300)
            try command([0x01], expect: Array("SPI1".utf8), "returning to SPI mode")
        }
        if (try? command([0x06], expect: [0x01], "probing the AVR extended commands")) != nil {
            hasAVRExtensions = (try? command([0x01], expect: [0x01, 0x00, 0x01], "reading the AVR extension version")) != nil
            if !hasAVRExtensions { _ = try? port.drain(quietMilliseconds: 20, limitMilliseconds: 200) }
        }
        if hasAVRExtensions { identity.firmware! += ", AVR extended commands" }
    }

    /// Powers the target down and returns the Bus Pirate to its console (0x00 to bitbang mode, then the
    /// 0x0F reset), so it is usable by hand afterwards.
    private func leaveBinaryMode() {
        guard inSPIMode else { return }
        inSPIMode = false
        _ = try? port.write([0x00])
        _ = try? port.read(count: 5, timeoutMilliseconds: replyTimeoutMilliseconds)   // BBIO1
        _ = try? port.write([0x80])                                                 // all pins off, power off
        _ = try? port.read(count: 1, timeoutMilliseconds: replyTimeoutMilliseconds)
        _ = try? port.write([0x0F])
        _ = try? port.drain(quietMilliseconds: 50, limitMilliseconds: 500)           // 0x01 and the banner
    }

    /// One byte within 200 ms, or nil if none came.
    private func readByte() throws(SerialError) -> UInt8? {
        do {
            return try port.read(count: 1, timeoutMilliseconds: 200).first
        } catch {
            if case .timeout = error { return nil }
            throw error
        }
    }

    private func setPeripherals(power: Bool, resetReleased: Bool) throws(ISPError) {
        peripherals = 0x40 | (power ? 0x08 : 0) | (resetReleased ? 0x01 : 0)
        try command([peripherals], expect: [0x01], "switching power and RESET")
    }

    private func command(_ bytes: [UInt8], expect: [UInt8], _ operation: String) throws(ISPError) {
        do {
            try port.write(bytes)
            let answer = try port.read(count: expect.count, timeoutMilliseconds: replyTimeoutMilliseconds)
            guard answer == expect else {
                throw ISPError.protocolViolation("the Bus Pirate answered \(answer.map { hex($0) }.joined(separator: " ")) while \(operation)")
            }
        } catch let error as ISPError {
            throw error
        } catch {
            throw .serialFailure(error, while: operation)
        }
    }
}

extension BusPirate {
    /// The harmless probe: binary-mode entry (twenty zero bytes, answered "BBIO1"), then at once the
    /// reset back to the console, where a person expects to find the Bus Pirate.
    public static func answersProbe(at path: String, time: TimeSource) -> Bool {
        guard let port = try? SerialPort(path: path, baudRate: defaultBaudRate) else { return false }
        defer { port.close() }
        _ = try? port.write(Array("\n\n".utf8))
        _ = try? port.drain(quietMilliseconds: 20, limitMilliseconds: 300)
        _ = try? port.write([UInt8](repeating: 0, count: 20))
        var heard: [UInt8] = []
        let start = time.now
        while time.elapsed(since: start) < 500_000_000, !heard.suffix(5).elementsEqual("BBIO1".utf8) {
            guard let byte = try? port.read(count: 1, timeoutMilliseconds: 100) else { continue }
            heard += byte
        }
        guard heard.suffix(5).elementsEqual("BBIO1".utf8) else { return false }
        _ = try? port.write([0x0F])   // straight back to the console
        _ = try? port.drain(quietMilliseconds: 50, limitMilliseconds: 500)
        return true
    }
}
