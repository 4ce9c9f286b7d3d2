import BenchModel
import DeviceCatalog
import FoundationEssentials
import Transport

/// Why an ST-Link operation failed.
public enum STLinkError: Error, Equatable, Sendable, CustomStringConvertible {
    case usb(USBError, operation: String)
    /// The firmware lacks a command bootmedic needs.
    case firmwareTooOld(version: String, needs: String)
    /// Nothing answers on SWD (or the chip id reads 0).
    case noTarget(detail: String)
    /// The target has no supply.
    case noPower(volts: Double)
    /// A memory access the target refused (read protection, unmapped address).
    case accessFault(address: UInt32, status: String)
    case protocolViolation(String)
    case timeout(String)

    public var description: String {
        switch self {
        case let .usb(.noDevice, operation): return "the ST-Link disappeared from USB while \(operation) (unplugged?)"
        case let .usb(error, operation): return "\(error) while \(operation)"
        case let .firmwareTooOld(version, needs):
            return "the ST-Link's firmware \(version) is too old: it lacks \(needs); update it with ST's STSW-LINK007 firmware updater"
        case let .noTarget(detail):
            return "no target answers on SWD (\(detail)): check the wiring (SWDIO, SWCLK, GND, 3.3V) and try swapping SWDIO and SWCLK, as some ST-Link dongles have them labelled the wrong way round"
        case let .noPower(volts):
            return String(cFormat: "the target has no power (%.2f V on the ST-Link's 3.3V pin): connect 3.3V and GND to the board", volts)
        case let .accessFault(address, status):
            return String(cFormat: "the target refused access to 0x%08X", address) + " (\(status))"
        case let .protocolViolation(text): return "the ST-Link answered out of protocol: \(text)"
        case let .timeout(text): return text
        }
    }
}

/// The ST-Link firmware version (GET_VERSION): "V2J37S7".
public struct STLinkVersion: Sendable, Hashable, CustomStringConvertible {
    public let stlink: Int
    public let jtag: Int
    public let swim: Int
    public let vendorID: UInt16
    public let productID: UInt16

    /// Decodes the six bytes of GET_VERSION: 4 bits ST-Link, 6 bits JTAG, 6 bits SWIM version, then VID, PID.
    init(_ b: [UInt8]) {
        stlink = Int(b[0] >> 4)
        jtag = Int(b[0] & 0x0F) << 2 | Int(b[1] >> 6)
        swim = Int(b[1] & 0x3F)
        vendorID = UInt16(b[2]) | UInt16(b[3]) << 8
        productID = UInt16(b[4]) | UInt16(b[5]) << 8
    }

    public var description: String { "V\(stlink)J\(jtag)" + (swim > 0 ? "S\(swim)" : "") }

    /// JTAG firmware versions from which the commands bootmedic needs exist (openocd's feature table).
    var hasSWDFrequency: Bool { stlink >= 3 || jtag >= 22 }
    var hasLastStatus2: Bool { stlink >= 3 || jtag >= 15 }
    var hasMemory16: Bool { stlink >= 3 || jtag >= 26 }
}

/// An ST-Link/V2, V2-1 or V3 over its bulk endpoints: the thin protocol layer (version, modes, target
/// voltage, SWD entry and clock, memory and debug-register access with the last transfer's status
/// checked, reset, run). Works on a real device through libusb or on a simulated one.
public final class STLink {
    /// The USB device it talks through.
    public let device: USBDevice
    public let time: TimeSource
    public private(set) var version: STLinkVersion?
    /// The SWD clock in use, kHz.
    public private(set) var swdKilohertz: Int?
    let outEndpoint: UInt8
    let inEndpoint: UInt8 = 0x81
    static let timeoutMilliseconds = 3000
    /// Largest memory transfer in one command.
    static let chunk = 1024

    /// "ST-Link/V2", "STLINK-V3": the device catalog's name for its ids.
    public var name: String {
        let d = device.description
        return DeviceCatalog.builtIn.entry(for: USBID(vendor: d.vendorID, product: d.productID), product: d.product)?.name ?? "ST-Link"
    }

    /// What the ST-Link says about itself, for `probe` and the journal.
    public var identity: ProgrammerIdentity {
        let d = device.description
        return ProgrammerIdentity(kind: .stlink, name: name, firmware: version?.description, serialNumber: d.serialNumber,
                                  port: d.portPath.isEmpty ? nil : d.portPath, sck: swdKilohertz.map { "SWD \($0) kHz" })
    }

    public init(device: USBDevice, time: TimeSource) {
        self.device = device
        self.time = time
        // The V2 takes commands on endpoint 2; V2-1 and V3 on endpoint 1.
        outEndpoint = device.description.productID == 0x3748 ? 0x02 : 0x01
    }

    // MARK: Connection

    /// Reads the version, leaves DFU or mass-storage mode, checks the target supply, enters SWD at the
    /// fastest clock the firmware offers, and reads the debug port's IDCODE.
    /// - Returns: the SW-DP IDCODE (e.g. 0x1BA01477 for a Cortex-M3).
    public func connect() throws(STLinkError) -> UInt32 {
        let v = STLinkVersion(try command([STLinkCommand.getVersion], reply: 6, "reading the version"))
        version = v
        let mode = try command([STLinkCommand.getCurrentMode], reply: 2, "reading the mode")[0]
        if mode == STLinkMode.dfu.rawValue { try send([STLinkCommand.dfu, STLinkCommand.dfuExit], "leaving DFU mode") }
        if mode == STLinkMode.debug.rawValue { try send([STLinkCommand.debug, STLinkCommand.exitDebug], "leaving debug mode") }
        let volts = try targetVoltage()
        if volts < 1.5 { throw .noPower(volts: volts) }
        if v.hasSWDFrequency {
            let divisor = swdFrequencies[0]
            try status([STLinkCommand.debug, STLinkCommand.setSWDFrequency] + littleEndian16(divisor.divisor), "setting the SWD clock")
            swdKilohertz = divisor.kilohertz
        } else {
            swdKilohertz = 1800   // the fixed clock of older firmware
        }
        let entered = try command([STLinkCommand.debug, STLinkCommand.enterV2, STLinkCommand.enterSWD], reply: 2, "entering SWD mode")
        guard entered[0] == STLinkStatus.ok else {
            throw .noTarget(detail: "entering SWD failed: \(STLinkStatus.describe(entered[0]))")
        }
        let ids = try command([STLinkCommand.debug, STLinkCommand.readIDCodes], reply: 12, "reading the IDCODE")
        let idcode = readLittleEndian32(ids, at: 4)
        if ids[0] != STLinkStatus.ok || idcode == 0 || idcode == 0xFFFF_FFFF {
            throw .noTarget(detail: String(cFormat: "the SW-DP IDCODE reads 0x%08X", idcode))
        }
        return idcode
    }

    /// The target's supply as the ST-Link measures it on its 3.3V pin (GET_TARGET_VOLTAGE).
    public func targetVoltage() throws(STLinkError) -> Double {
        let r = try command([STLinkCommand.getTargetVoltage], reply: 8, "reading the target voltage")
        let adc0 = Double(readLittleEndian32(r, at: 0)), adc1 = Double(readLittleEndian32(r, at: 4))
        return adc0 == 0 ? 0 : 2 * adc1 * 1.2 / adc0
    }

    /// Leaves debug mode so the target runs freely.
    public func disconnect() {
        _ = try? send([STLinkCommand.debug, STLinkCommand.exitDebug], "leaving debug mode")
    }

    // MARK: Memory

    /// Reads 32-bit-aligned memory.
    public func read32(_ address: UInt32, count: Int) throws(STLinkError) -> [UInt8] {
        var out: [UInt8] = []
        var at = address
        while out.count < count {
            let n = min(Self.chunk, count - out.count)
            out += try command([STLinkCommand.debug, STLinkCommand.readMemory32] + littleEndian32(at) + littleEndian16(UInt16(n)),
                               reply: n, "reading memory at 0x\(String(at, radix: 16))")
            try checkLastStatus(at)
            at += UInt32(n)
        }
        return out
    }

    /// Reads memory byte by byte (any alignment; at most 64 bytes per command, as V2 firmware allows).
    public func read8(_ address: UInt32, count: Int) throws(STLinkError) -> [UInt8] {
        var out: [UInt8] = []
        var at = address
        while out.count < count {
            let n = min(64, count - out.count)
            out += try command([STLinkCommand.debug, STLinkCommand.readMemory8] + littleEndian32(at) + littleEndian16(UInt16(n)),
                               reply: n, "reading memory at 0x\(String(at, radix: 16))")
            try checkLastStatus(at)
            at += UInt32(n)
        }
        return out
    }

    /// Writes memory byte by byte (at most 64 bytes per command).
    public func write8(_ address: UInt32, _ bytes: [UInt8]) throws(STLinkError) {
        try write(STLinkCommand.writeMemory8, address, bytes, chunk: 64)
    }

    /// Reads one 32-bit word.
    public func readWord(_ address: UInt32) throws(STLinkError) -> UInt32 { readLittleEndian32(try read32(address, count: 4)) }

    /// Writes 32-bit-aligned memory.
    public func write32(_ address: UInt32, _ bytes: [UInt8]) throws(STLinkError) {
        try write(STLinkCommand.writeMemory32, address, bytes, chunk: Self.chunk)
    }

    public func writeWord(_ address: UInt32, _ value: UInt32) throws(STLinkError) { try write32(address, littleEndian32(value)) }

    /// Whether the firmware can program STM32F1 flash (16-bit memory writes, firmware J26 or later).
    public var canWriteHalfWords: Bool { version?.hasMemory16 ?? false }

    /// Writes memory with 16-bit accesses (what STM32F1 flash programming needs). Needs firmware J26+.
    public func write16(_ address: UInt32, _ bytes: [UInt8]) throws(STLinkError) {
        guard let v = version, v.hasMemory16 else {
            throw .firmwareTooOld(version: version?.description ?? "?", needs: "16-bit memory writes (firmware J26 or later)")
        }
        try write(STLinkCommand.writeMemory16, address, bytes, chunk: Self.chunk)
    }

    private func write(_ sub: UInt8, _ address: UInt32, _ bytes: [UInt8], chunk: Int) throws(STLinkError) {
        var offset = 0
        while offset < bytes.count {
            let n = min(chunk, bytes.count - offset)
            let at = address + UInt32(offset)
            let operation = "writing memory at 0x\(String(at, radix: 16))"
            try send([STLinkCommand.debug, sub] + littleEndian32(at) + littleEndian16(UInt16(n)), operation)
            do {
                _ = try device.bulkWrite(endpoint: outEndpoint, data: Array(bytes[offset..<offset + n]), timeoutMilliseconds: Self.timeoutMilliseconds)
            } catch { throw .usb(error, operation: operation) }
            try checkLastStatus(at)
            offset += n
        }
    }

    /// GETLASTRWSTATUS2: fails with the refused address when the last memory access faulted.
    private func checkLastStatus(_ address: UInt32) throws(STLinkError) {
        guard let v = version, v.hasLastStatus2 else { return }
        let r = try command([STLinkCommand.debug, STLinkCommand.lastStatus2], reply: 12, "reading the transfer status")
        guard r[0] == STLinkStatus.ok else {
            let faultAddress = readLittleEndian32(r, at: 4)
            throw .accessFault(address: faultAddress != 0 ? faultAddress : address, status: STLinkStatus.describe(r[0]))
        }
    }

    // MARK: Core control

    /// DHCSR: debug key, C_HALT, C_DEBUGEN.
    public func halt() throws(STLinkError) {
        try status([STLinkCommand.debug, STLinkCommand.writeDebugRegister] + littleEndian32(0xE000_EDF0) + littleEndian32(0xA05F_0003), "halting the core")
    }

    /// Lets the core run.
    public func run() throws(STLinkError) {
        try status([STLinkCommand.debug, STLinkCommand.runCore], "starting the core")
    }

    /// System reset (RESETSYS), which also reloads an STM32F1's option bytes.
    public func resetSystem() throws(STLinkError) {
        try status([STLinkCommand.debug, STLinkCommand.resetSystem], "resetting the target")
    }

    // MARK: Transport

    private func send(_ bytes: [UInt8], _ operation: String) throws(STLinkError) {
        var block = bytes
        block += [UInt8](repeating: 0, count: 16 - block.count)
        do { _ = try device.bulkWrite(endpoint: outEndpoint, data: block, timeoutMilliseconds: Self.timeoutMilliseconds) } catch {
            throw .usb(error, operation: operation)
        }
    }

    private func command(_ bytes: [UInt8], reply count: Int, _ operation: String) throws(STLinkError) -> [UInt8] {
        try send(bytes, operation)
        let answer: [UInt8]
        do { answer = try device.bulkRead(endpoint: inEndpoint, length: count, timeoutMilliseconds: Self.timeoutMilliseconds) } catch {
            throw .usb(error, operation: operation)
        }
        guard answer.count == count else { throw .protocolViolation("\(operation): \(answer.count) bytes instead of \(count)") }
        return answer
    }

    /// A command whose two-byte reply starts with a status.
    private func status(_ bytes: [UInt8], _ operation: String) throws(STLinkError) {
        let r = try command(bytes, reply: 2, operation)
        guard r[0] == STLinkStatus.ok else { throw .protocolViolation("\(operation): \(STLinkStatus.describe(r[0]))") }
    }
}
