import Bootloaders
import Parts
import Transport

/// Atmel's DFU bootloader (FLIP commands over DFU 1.1) running on a simulated USB AVR, as the host sees
/// it through control transfers to interface 0: the DFU state machine (dfuIDLE, dfuDNLOAD-IDLE,
/// dfuUPLOAD-IDLE, dfuERROR with its status), the configuration reads (version, the signature), 64 KiB
/// page selection, flash reads (refused with errFILE while the security bit is set), the blank check,
/// the chip erase of the application section, programming through SPM page by page (so the boot
/// section stays as the lock bits keep it), EEPROM reads and writes, and the watchdog reset into the
/// application, which takes the device off the bus.
/// Like Atmel's own, it answers DFU_UPLOAD after a read command in dfuDNLOAD-IDLE.
public final class SimulatedAtmelDFU: SimulatedControlDevice {
    /// The security bit: set after programming on Atmel's bootloader; here as the rehearsal asks.
    public var isSecured: Bool
    /// Whether the host told it to start the application (the device is then gone).
    public private(set) var hasLeft = false
    /// DFU_DNLOAD requests that carried flash data.
    public private(set) var programCommands = 0
    public static let version: UInt8 = 0x10

    private var state = DFUState.idle
    private var status = DFUStatus.ok
    private var page = 0
    private var pendingRead: ClosedRange<Int>?
    private var readsEEPROM = false
    private var pendingConfiguration: UInt8?
    private var resetRequested = false

    public init(chip: SimulatedAVR, productID: UInt16, secured: Bool = false) {
        isSecured = secured
        super.init(chip: chip, description: USBDeviceDescription(vendorID: 0x03EB, productID: productID, manufacturer: "ATMEL",
                                                                 product: "DFU bootloader", serialNumber: "1.0.0", deviceRelease: 0x0000))
        link.timing = .fullSpeed
    }

    public override func controlIn(to target: USBControlTarget, request: UInt8, value: UInt16, index: UInt16, length: Int, timeoutMilliseconds: Int) throws(USBError) -> [UInt8] {
        try begin(target, request, index: index, timeoutMilliseconds: timeoutMilliseconds)
        let reply: [UInt8]
        switch DFURequest(rawValue: request) {
        case .getStatus: reply = DFUStatusReport(status: status, pollMilliseconds: 0, state: state).bytes
        case .getState: reply = [state.rawValue]
        case .upload: reply = try upload(length: length)
        default: throw stall(request)
        }
        link.finish(dataBytes: reply.count)
        return Array(reply.prefix(length))
    }

    public override func controlOut(to target: USBControlTarget, request: UInt8, value: UInt16, index: UInt16, data: [UInt8], timeoutMilliseconds: Int) throws(USBError) -> Int {
        try begin(target, request, index: index, timeoutMilliseconds: timeoutMilliseconds)
        switch DFURequest(rawValue: request) {
        case .download: try download(data, timeoutMilliseconds: timeoutMilliseconds)
        case .clearStatus:
            status = .ok
            state = .idle
        case .abort:
            guard state != .error else { throw stall(request) }
            pendingRead = nil
            pendingConfiguration = nil
            state = .idle
        default: throw stall(request)
        }
        link.finish(dataBytes: data.count)
        return data.count
    }

    private func begin(_ target: USBControlTarget, _ request: UInt8, index: UInt16, timeoutMilliseconds: Int) throws(USBError) {
        if hasLeft { throw .noDevice }
        try link.begin(request, timeoutMilliseconds: timeoutMilliseconds)
        guard target == .classInterface, index == 0 else { throw .stall(request: request) }
    }

    /// A request the state machine does not allow: dfuERROR with errSTALLEDPKT, and a stall.
    private func stall(_ request: UInt8, _ why: DFUStatus = .stalledPacket) -> USBError {
        status = why
        state = .error
        return .stall(request: request)
    }

    private func download(_ data: [UInt8], timeoutMilliseconds: Int) throws(USBError) {
        guard [.idle, .downloadIdle].contains(state) else { throw stall(DFURequest.download.rawValue) }
        if data.isEmpty {
            // The end of a download: a requested reset runs the application.
            if resetRequested { hasLeft = true; return }
            state = .idle
            return
        }
        pendingRead = nil
        pendingConfiguration = nil
        state = .downloadIdle
        func word(_ at: Int) -> Int { data.count > at + 1 ? Int(data[at]) << 8 | Int(data[at + 1]) : 0 }
        switch (data[0], data.count > 1 ? data[1] : 0) {
        case (0x01, 0x00):
            try link.flashWrite(timeoutMilliseconds: timeoutMilliseconds)
            try program(from: page * 0x10000 + word(2), through: page * 0x10000 + word(4), data)
        case (0x01, 0x01):
            let start = word(2), end = word(4), payload = Array(data.dropFirst(32))
            guard start <= end, end < chip.part.eeprom.size, payload.count >= end - start + 1 else { throw stall(DFURequest.download.rawValue, .address) }
            chip.selfWriteEEPROM(at: start, Array(payload[0...(end - start)]))
        case (0x03, 0x00):
            guard data.count >= 6 else { throw stall(DFURequest.download.rawValue, .target) }
            pendingRead = page * 0x10000 + word(2)...page * 0x10000 + word(4)
            readsEEPROM = false
        case (0x03, 0x02):
            guard data.count >= 6, word(2) <= word(4) else { throw stall(DFURequest.download.rawValue, .target) }
            pendingRead = word(2)...word(4)
            readsEEPROM = true
        case (0x03, 0x01):
            // Blank check: the status says whether the range is erased.
            guard data.count >= 6 else { throw stall(DFURequest.download.rawValue, .target) }
            let range = page * 0x10000 + word(2)...min(page * 0x10000 + word(4), chip.part.flash.size - 1)
            if !range.allSatisfy({ chip.flash[$0] == 0xFF }) {
                status = .checkErased
                state = .error
            }
        case (0x04, 0x00):
            chip.selfEraseApplication()
            isSecured = false
        case (0x04, 0x03):
            resetRequested = true
        case (0x05, let group):
            guard data.count >= 3 else { throw stall(DFURequest.download.rawValue, .target) }
            switch (group, data[2]) {
            case (0x00, 0x00): pendingConfiguration = Self.version
            case (0x00, 0x01), (0x00, 0x02): pendingConfiguration = 0xDC
            case (0x01, 0x30): pendingConfiguration = chip.part.signature.bytes[0]
            case (0x01, 0x31): pendingConfiguration = chip.part.signature.bytes[1]
            case (0x01, 0x60): pendingConfiguration = chip.part.signature.bytes[2]
            case (0x01, 0x61): pendingConfiguration = 0x00
            default: throw stall(DFURequest.download.rawValue, .target)
            }
        case (0x06, 0x03):
            guard data.count >= 4, Int(data[3]) * 0x10000 < chip.part.flash.size else { throw stall(DFURequest.download.rawValue, .address) }
            page = Int(data[3])
        default:
            throw stall(DFURequest.download.rawValue, .target)
        }
    }

    /// The data sits after the 32-byte control block; the range is written page by page, bytes outside
    /// it left erased.
    private func program(from start: Int, through end: Int, _ message: [UInt8]) throws(USBError) {
        let payload = Array(message.dropFirst(32))
        let size = chip.part.flash.pageSize
        guard start <= end, end < chip.part.flash.size, payload.count >= end - start + 1 else {
            throw stall(DFURequest.download.rawValue, .address)
        }
        if end >= chip.bootSectionStart { throw stall(DFURequest.download.rawValue, .address) }
        programCommands += 1
        for pageStart in stride(from: start / size * size, through: end, by: size) {
            let bytes = (pageStart..<pageStart + size).map { $0 >= start && $0 <= end ? payload[$0 - start] : 0xFF }
            chip.selfProgramPage(at: pageStart, bytes)
        }
    }

    private func upload(length: Int) throws(USBError) -> [UInt8] {
        if let byte = pendingConfiguration {
            pendingConfiguration = nil
            state = .idle
            return [byte]
        }
        guard let read = pendingRead else { throw stall(DFURequest.upload.rawValue) }
        if isSecured { throw stall(DFURequest.upload.rawValue, .file) }
        let memory = readsEEPROM ? chip.eeprom : chip.flash
        guard read.upperBound < memory.count else { throw stall(DFURequest.upload.rawValue, .address) }
        pendingRead = nil
        state = .idle
        return read.prefix(length).map { memory[$0] }
    }
}
