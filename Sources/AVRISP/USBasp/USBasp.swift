import BenchModel
import Parts
import Transport

/// Thomas Fischl's USBasp (16C0:05DC, product "USBasp", and its clones) over vendor control requests.
/// Request numbers, block sizes and SCK ids are the USBasp firmware's (see avrdude's usbasp.h).
public final class USBasp: ISPProgrammer {
    /// Vendor request numbers of the USBasp firmware.
    enum Request: UInt8 {
        case connect = 1, disconnect = 2, transmit = 3, readFlash = 4, enableProgramming = 5, writeFlash = 6
        case readEEPROM = 7, writeEEPROM = 8, setLongAddress = 9, setSCK = 10, getCapabilities = 127
    }

    /// First/last block flags of WRITEFLASH: the first resets the firmware's page counter, the last
    /// flushes a partly filled page.
    static let firstBlock: UInt8 = 1, lastBlock: UInt8 = 2
    /// The largest read/write block: V-USB without long transfers (the USBasp firmware's build) takes a
    /// read's length from the low byte of wLength, and 255 means "no reply" to it, so 254 is the most
    /// one request can carry (avrdude stays at 200). Fewer requests, fewer 1 ms frames waited for.
    static let blockSize = 254
    /// Capability bit of firmwares that can run SCK at 3 MHz.
    static let capability3MHz: UInt32 = 1 << 24
    static let timeoutMilliseconds = 5000

    /// SCK settings of the firmware, fastest first: (id, Hz).
    static let sckOptions: [(id: UInt8, hertz: Double)] = [
        (13, 3_000_000), (12, 1_500_000), (11, 750_000), (10, 375_000), (9, 187_500), (8, 93_750),
        (7, 32_000), (6, 16_000), (5, 8_000), (4, 4_000),
    ]

    private let device: USBDevice
    public let time: TimeSource
    public private(set) var identity: ProgrammerIdentity
    public let flashAddressLimit: Int? = nil
    public let pollsReadyBusy = true
    /// Firmware before 2011 runs at its jumper's speed.
    public var adaptsSCK: Bool { canSetSCK }
    public var readBlockSize: Int { Self.blockSize }

    private var capabilities: UInt32?
    private var canSetSCK = true
    /// The SCK option the target last answered at; tried first next time (e.g. after a chip erase).
    private var workingSCK: Int?

    /// Wraps an open device that the device catalog says is a USBasp (the genuine firmware or a clone
    /// declared with its own product string).
    public init(device: USBDevice, time: TimeSource) {
        let d = device.description
        self.device = device
        self.time = time
        let release = "\(d.deviceRelease >> 8).\(String(cFormat: "%02x", d.deviceRelease & 0xFF))"
        identity = ProgrammerIdentity(kind: .usbasp, name: d.product.map { $0 == "USBasp" ? $0 : "USBasp (\($0))" } ?? "USBasp", firmware: "USBasp firmware \(release)",
                                      serialNumber: d.serialNumber, port: d.portPath.isEmpty ? nil : d.portPath)
    }

    // MARK: Programming mode

    public func enterProgrammingMode() throws(ISPError) {
        let options = availableSCKs()
        // Try the last speed that worked first, then fall back through slower ones.
        var tried: [String] = []
        for index in (workingSCK ?? 0)..<options.count {
            let option = options[index]
            let answered = try enable(at: option)
            let sckText = canSetSCK ? formatFrequency(option.hertz) : "the firmware's fixed SCK"
            if answered {
                workingSCK = index
                identity.sck = sckText
                return
            }
            tried.append(sckText)
            _ = try? control(.disconnect, length: 4, operation: "releasing the target")
            if !canSetSCK { break }
        }
        throw .noTarget(slowestSCK: tried.last ?? "the firmware's SCK", detail: "tried \(tried.joined(separator: ", "))")
    }

    public func targetAnswers() throws(ISPError) -> Bool {
        let answered = try enable(at: availableSCKs().last!)
        leaveProgrammingMode()
        return answered
    }

    /// The firmware's SCK settings, fastest first (3 MHz only where it says it has it).
    private func availableSCKs() -> [(id: UInt8, hertz: Double)] {
        if capabilities == nil {
            // Old firmware does not know GETCAPABILITIES and answers nothing.
            let answer = (try? device.controlIn(request: Request.getCapabilities.rawValue, value: 0, index: 0, length: 4, timeoutMilliseconds: Self.timeoutMilliseconds)) ?? []
            capabilities = answer.count == 4 ? answer.enumerated().reduce(UInt32(0)) { $0 | UInt32($1.element) << (8 * UInt32($1.offset)) } : 0
            if let caps = capabilities, caps & Self.capability3MHz != 0 { identity.firmware? += ", 3 MHz SCK" }
        }
        return capabilities! & Self.capability3MHz != 0 ? Self.sckOptions : Array(Self.sckOptions.dropFirst())
    }

    /// Sets the SCK (where the firmware can), holds RESET low for the datasheets' 20 ms and sends
    /// Programming Enable; true when the target echoed.
    private func enable(at option: (id: UInt8, hertz: Double)) throws(ISPError) -> Bool {
        if canSetSCK {
            let answer = try control(.setSCK, value: UInt16(option.id), length: 4, operation: "setting the SCK")
            if answer.count != 1 || answer[0] != 0 {
                // Firmware before 2011 has no SCK setting: it runs at its jumper's speed.
                canSetSCK = false
                identity.firmware? += " (no SCK setting: update the firmware, or use its slow-SCK jumper)"
            }
        }
        _ = try control(.connect, length: 4, operation: "connecting to the target")
        time.sleep(microseconds: 20_000)   // the datasheets' 20 ms after RESET goes low
        let enable = try control(.enableProgramming, length: 4, operation: "entering programming mode")
        return enable.count == 1 && enable[0] == 0
    }

    public func forgetTargetSpeed() { workingSCK = nil }

    public func leaveProgrammingMode() {
        _ = try? control(.disconnect, length: 4, operation: "releasing the target")
    }

    public func close() { device.close() }

    public func transfer(_ instruction: ISPInstruction) throws(ISPError) -> [UInt8] {
        let b = instruction.bytes
        let answer = try control(.transmit, value: UInt16(b[1]) << 8 | UInt16(b[0]), index: UInt16(b[3]) << 8 | UInt16(b[2]),
                                 length: 4, operation: "sending \(instruction)")
        guard answer.count == 4 else { throw .protocolViolation("TRANSMIT returned \(answer.count) bytes instead of 4") }
        return answer
    }

    // MARK: Memories

    public func readFlash(from address: UInt32, count: Int, part: AVRPart) throws(ISPError) -> [UInt8] {
        try readBlocks(.readFlash, from: address, count: count, what: "flash")
    }

    public func readEEPROM(from address: Int, count: Int, part: AVRPart) throws(ISPError) -> [UInt8] {
        try readBlocks(.readEEPROM, from: UInt32(address), count: count, what: "EEPROM")
    }

    public func writeFlash(_ pages: [FlashPage], part: AVRPart, progress: (Int) -> Void) throws(ISPError) {
        var done = 0
        for run in FlashPage.joiningContiguous(pages) {
            try setLongAddress(run.address, what: "flash")
            var offset = 0
            while offset < run.bytes.count {
                let count = min(Self.blockSize, run.bytes.count - offset)
                let address = run.address + UInt32(offset)
                var flags: UInt8 = offset == 0 ? Self.firstBlock : 0
                if offset + count == run.bytes.count { flags |= Self.lastBlock }
                let pageSize = part.flash.pageSize
                let index = UInt16(pageSize & 0xFF) | UInt16(flags & 0x0F | UInt8((pageSize & 0xF00) >> 4)) << 8
                let sent = try controlOut(.writeFlash, value: UInt16(address & 0xFFFF), index: index,
                                          data: Array(run.bytes[offset..<offset + count]),
                                          operation: "writing flash at 0x\(String(address, radix: 16))")
                guard sent == count else { throw .protocolViolation("WRITEFLASH took \(sent) of \(count) bytes") }
                offset += count
                done += count
                progress(done)
            }
        }
    }

    public func writeEEPROM(_ bytes: [(address: Int, value: UInt8)], part: AVRPart) throws(ISPError) {
        // The firmware writes EEPROM byte by byte and waits out each write itself.
        for run in FlashPage.joiningContiguous(bytes.map { FlashPage(address: UInt32($0.address), bytes: [$0.value]) }) {
            try setLongAddress(run.address, what: "EEPROM")
            var offset = 0
            while offset < run.bytes.count {
                let count = min(Self.blockSize, run.bytes.count - offset)
                let address = run.address + UInt32(offset)
                let flags = (offset == 0 ? Self.firstBlock : 0) | (offset + count == run.bytes.count ? Self.lastBlock : 0)
                _ = try controlOut(.writeEEPROM, value: UInt16(address & 0xFFFF), index: UInt16(flags) << 8,
                                   data: Array(run.bytes[offset..<offset + count]), operation: "writing EEPROM at 0x\(String(address, radix: 16))")
                offset += count
            }
        }
    }

    // MARK: Requests

    private func readBlocks(_ request: Request, from address: UInt32, count: Int, what: String) throws(ISPError) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(count)
        try setLongAddress(address, what: what)
        while out.count < count {
            let n = min(Self.blockSize, count - out.count)
            let at = address + UInt32(out.count)
            // Firmware that knows SETLONGADDRESS continues from its own counter; older firmware takes
            // the 16-bit address from wValue.
            let block = try control(request, value: UInt16(at & 0xFFFF), length: n, operation: "reading \(what) at 0x\(String(at, radix: 16))")
            guard block.count == n else { throw .protocolViolation("reading \(what) returned \(block.count) of \(n) bytes") }
            out += block
        }
        return out
    }

    private func setLongAddress(_ address: UInt32, what: String) throws(ISPError) {
        _ = try control(.setLongAddress, value: UInt16(address & 0xFFFF), index: UInt16(address >> 16), length: 4,
                        operation: "setting the \(what) address")
    }

    private func control(_ request: Request, value: UInt16 = 0, index: UInt16 = 0, length: Int, operation: String) throws(ISPError) -> [UInt8] {
        do {
            return try device.controlIn(request: request.rawValue, value: value, index: index, length: length, timeoutMilliseconds: Self.timeoutMilliseconds)
        } catch {
            throw .usb(error, operation: operation)
        }
    }

    private func controlOut(_ request: Request, value: UInt16, index: UInt16, data: [UInt8], operation: String) throws(ISPError) -> Int {
        do {
            return try device.controlOut(request: request.rawValue, value: value, index: index, data: data, timeoutMilliseconds: Self.timeoutMilliseconds)
        } catch {
            throw .usb(error, operation: operation)
        }
    }
}
