import BenchModel
import Parts
import Transport

/// The USBtinyISP and SparkFun PocketAVR (1781:0C9F) over vendor control requests (request numbers as
/// in the USBtiny firmware and avrdude's usbtiny.h). Its firmware carries 16-bit byte addresses, so it
/// cannot reach flash beyond 64 KiB.
public final class USBtinyISP: ISPProgrammer {
    enum Request: UInt8 {
        case powerUp = 5, powerDown = 6, spi = 7, pollBytes = 8, flashRead = 9, flashWrite = 10, eepromRead = 11, eepromWrite = 12
    }

    /// RESET level on power-up.
    static let resetLow: UInt16 = 0, resetHigh: UInt16 = 1
    /// The firmware's largest transfer (CHUNK_SIZE).
    static let chunkSize = 128
    /// The firmware answers within milliseconds; avrdude allows 500 ms. A loaded bench PC (or the virtual
    /// bench's emulated CPU) can hold a transfer back longer than that, so allow 2 s before calling the
    /// programmer hung.
    static let timeoutMilliseconds = 2000
    /// SCK half-period settings to try, in microseconds (SCK ≈ 1 MHz / period), fastest first.
    static let sckPeriods = [1, 2, 3, 4, 5, 10, 25, 50, 100, 250]

    private let device: USBDevice
    public let time: TimeSource
    public private(set) var identity: ProgrammerIdentity
    public let flashAddressLimit: Int? = 0x10000
    public let pollsReadyBusy = true
    public let adaptsSCK = true
    public var readBlockSize: Int { Self.chunkSize }
    private var workingPeriod: Int?
    private var pollBytesSet = false

    /// Wraps an open device that the device catalog says is a USBtinyISP.
    public init(device: USBDevice, time: TimeSource) {
        self.device = device
        self.time = time
        let d = device.description
        identity = ProgrammerIdentity(kind: .usbtiny, name: d.product ?? "USBtinyISP",
                                      firmware: "USBtiny firmware \(d.deviceRelease >> 8).\(String(cFormat: "%02x", d.deviceRelease & 0xFF))",
                                      serialNumber: d.serialNumber, port: d.portPath.isEmpty ? nil : d.portPath)
    }

    public func enterProgrammingMode() throws(ISPError) {
        var tried: [String] = []
        let start = workingPeriod.flatMap { Self.sckPeriods.firstIndex(of: $0) } ?? 0
        for period in Self.sckPeriods[start...] {
            let sck = formatFrequency(1_000_000 / Double(period))
            // Two tries per speed, pulsing RESET in between to resynchronise the target's serial interface.
            if try enable(period: period, tries: 2) {
                workingPeriod = period
                identity.sck = sck
                return
            }
            tried.append(sck)
        }
        try? control(.powerDown, operation: "powering down")
        throw .noTarget(slowestSCK: tried.last ?? "", detail: "tried \(tried.joined(separator: ", "))")
    }

    public func targetAnswers() throws(ISPError) -> Bool {
        let answered = try enable(period: Self.sckPeriods.last!, tries: 1)
        leaveProgrammingMode()
        return answered
    }

    /// Powers the target's lines up with RESET low at the SCK `period`, waits the datasheets' 20 ms and
    /// sends Programming Enable, up to `tries` times with a RESET pulse between; true when it echoed.
    private func enable(period: Int, tries: Int) throws(ISPError) -> Bool {
        try control(.powerUp, value: UInt16(period), index: Self.resetLow, operation: "powering up the target")
        time.sleep(microseconds: 20_000)
        for attempt in 0..<tries {
            if attempt > 0 {
                try control(.powerUp, value: UInt16(period), index: Self.resetHigh, operation: "pulsing RESET")
                time.sleep(microseconds: 1_000)
                try control(.powerUp, value: UInt16(period), index: Self.resetLow, operation: "pulsing RESET")
                time.sleep(microseconds: 20_000)
            }
            if try transfer(.programmingEnable)[2] == 0x53 { return true }
        }
        return false
    }

    public func forgetTargetSpeed() { workingPeriod = nil }

    public func leaveProgrammingMode() {
        try? control(.powerDown, operation: "releasing the target")
    }

    public func close() { device.close() }

    public func transfer(_ instruction: ISPInstruction) throws(ISPError) -> [UInt8] {
        let b = instruction.bytes
        let answer = try controlIn(.spi, value: UInt16(b[1]) << 8 | UInt16(b[0]), index: UInt16(b[3]) << 8 | UInt16(b[2]),
                                   length: 4, operation: "sending \(instruction)")
        guard answer.count == 4 else { throw .protocolViolation("SPI returned \(answer.count) bytes instead of 4") }
        return answer
    }

    public func readFlash(from address: UInt32, count: Int, part: AVRPart) throws(ISPError) -> [UInt8] {
        try checkReach(address, count, part)
        return try readChunks(.flashRead, from: Int(address), count: count, what: "flash")
    }

    public func readEEPROM(from address: Int, count: Int, part: AVRPart) throws(ISPError) -> [UInt8] {
        try readChunks(.eepromRead, from: address, count: count, what: "EEPROM")
    }

    public func writeFlash(_ pages: [FlashPage], part: AVRPart, progress: (Int) -> Void) throws(ISPError) {
        var done = 0
        for page in pages {
            try checkReach(page.address, page.bytes.count, part)
            // Fill the page buffer in chunks, then commit the page with the ISP instruction.
            let chunk = min(Self.chunkSize, part.flash.pageSize)
            var offset = 0
            while offset < page.bytes.count {
                let n = min(chunk, page.bytes.count - offset)
                let address = page.address + UInt32(offset)
                try controlOut(.flashWrite, value: 0, index: UInt16(address), data: Array(page.bytes[offset..<offset + n]),
                               operation: "loading the page buffer at 0x\(String(address, radix: 16))")
                offset += n
            }
            _ = try transfer(.writeFlashPage(byteAddress: page.address))
            try waitUntilReady(worstCaseMicroseconds: part.times.flashPageWrite, operation: "writing the flash page at 0x\(String(page.address, radix: 16))")
            done += page.bytes.count
            progress(done)
        }
    }

    public func writeEEPROM(_ bytes: [(address: Int, value: UInt8)], part: AVRPart) throws(ISPError) {
        if !pollBytesSet {
            // Erased EEPROM reads 0xFF: the firmware polls each byte until it reads back written.
            try control(.pollBytes, value: 0xFFFF, operation: "setting the poll bytes")
            pollBytesSet = true
        }
        for run in FlashPage.joiningContiguous(bytes.map { FlashPage(address: UInt32($0.address), bytes: [$0.value]) }) {
            var offset = 0
            while offset < run.bytes.count {
                let n = min(Self.chunkSize, run.bytes.count - offset)
                let address = Int(run.address) + offset
                try controlOut(.eepromWrite, value: UInt16(part.times.eepromWrite), index: UInt16(address),
                               data: Array(run.bytes[offset..<offset + n]), operation: "writing EEPROM at 0x\(String(address, radix: 16))",
                               timeoutMilliseconds: Self.timeoutMilliseconds + n * (part.times.eepromWrite / 1000 + 1))
                offset += n
            }
        }
    }

    // MARK: Requests

    private func checkReach(_ address: UInt32, _ count: Int, _ part: AVRPart) throws(ISPError) {
        if Int(address) + count > 0x10000 {
            throw .flashBeyondReach(programmer: "USBtinyISP", part: part.name, limit: 0x10000, flash: part.flash.size)
        }
    }

    private func readChunks(_ request: Request, from address: Int, count: Int, what: String) throws(ISPError) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(count)
        while out.count < count {
            let n = min(Self.chunkSize, count - out.count)
            let at = address + out.count
            let block = try controlIn(request, value: 0, index: UInt16(at), length: n, operation: "reading \(what) at 0x\(String(at, radix: 16))")
            guard block.count == n else { throw .protocolViolation("reading \(what) returned \(block.count) of \(n) bytes") }
            out += block
        }
        return out
    }

    private func control(_ request: Request, value: UInt16 = 0, index: UInt16 = 0, operation: String) throws(ISPError) {
        _ = try controlIn(request, value: value, index: index, length: 0, operation: operation)
    }

    private func controlIn(_ request: Request, value: UInt16, index: UInt16, length: Int, operation: String) throws(ISPError) -> [UInt8] {
        do {
            return try device.controlIn(request: request.rawValue, value: value, index: index, length: length, timeoutMilliseconds: Self.timeoutMilliseconds)
        } catch {
            throw .usb(error, operation: operation)
        }
    }

    private func controlOut(_ request: Request, value: UInt16, index: UInt16, data: [UInt8], operation: String,
                            timeoutMilliseconds: Int = USBtinyISP.timeoutMilliseconds) throws(ISPError) {
        let sent: Int
        do {
            sent = try device.controlOut(request: request.rawValue, value: value, index: index, data: data, timeoutMilliseconds: timeoutMilliseconds)
        } catch {
            throw .usb(error, operation: operation)
        }
        guard sent == data.count else { throw .protocolViolation("the programmer took \(sent) of \(data.count) bytes") }
    }
}
