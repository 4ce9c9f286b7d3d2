import BenchModel
import Parts
import Transport

/// obdev's BootloadHID (V-USB boards such as the PS2AVRGB keyboards, 16C0:05DF "HIDBoot"): two HID
/// feature reports on interface 0. Report 1 (GET_REPORT) tells the flash page size (2 bytes) and the
/// flash size (4 bytes, little-endian); report 2 (SET_REPORT) carries a 3-byte address and 128 bytes,
/// the bootloader erasing each page as a write reaches its start and programming it at its end; report 1
/// sent (SET_REPORT) leaves for the application. There is no erase, no read and no EEPROM access, and
/// no signature: the part is the one whose flash the sizes describe.
public final class BootloadHIDBootloader: BootloaderSession {
    public let device: USBDevice
    public let time: TimeSource
    public private(set) var identity: ProgrammerIdentity
    static let requestMilliseconds = 1000
    /// The bytes one data report carries.
    public static let blockSize = 128

    public init(device: USBDevice, time: TimeSource) {
        self.device = device
        self.time = time
        identity = ProgrammerIdentity(bootloader: .bootloadhid, on: device)
    }

    public var readRefusal: String? { "BootloadHID cannot read flash back (its protocol only writes)" }
    public var erasesAsItWrites: Bool { true }

    public func identify() throws(BootloaderError) -> BootloaderReport {
        do { try device.claimInterface(0) } catch .noDevice { throw .gone(operation: "claiming the HID interface") } catch {
            throw .usb(error, operation: "claiming the HID interface")
        }
        let info = try deviceInfo()
        guard info.count >= 7 else { throw .protocolViolation("a device info report of \(info.count) bytes (7 expected)") }
        let page = Int(info[1]) | Int(info[2]) << 8
        let flash = (0..<4).reduce(0) { $0 | Int(info[3 + $1]) << (8 * $1) }
        guard page > 0, page <= 1024, flash >= 1024, flash <= 0x40000, flash % page == 0 else {
            throw .protocolViolation("a device info report of \(flash) bytes of flash in \(page)-byte pages")
        }
        identity.firmware = "BootloadHID (\(flash / 1024) KiB of flash, \(page)-byte pages)"
        return BootloaderReport(signature: nil, fuses: nil, lock: nil, software: identity.firmware ?? "BootloadHID", blockSize: Self.blockSize,
                                flashGeometry: MemoryGeometry(size: flash, pageSize: page))
    }

    public func readFlash(at address: Int, count: Int, progress: (Int) -> Void) throws(BootloaderError) -> [UInt8] {
        throw .refused("reading flash: \(readRefusal ?? "")")
    }

    /// BootloadHID has no erase: each page is erased as it is written (see ``erasesAsItWrites``).
    public func eraseApplication() throws(BootloaderError) {
        throw .refused("an erase: BootloadHID erases each page as it is written")
    }

    /// Every block is sent, blank ones too: a page the bootloader is not sent keeps what it held.
    public func writeFlash(at address: Int, _ bytes: [UInt8], progress: (Int) -> Void) throws(BootloaderError) {
        guard address % Self.blockSize == 0 else { throw .protocolViolation(String(cFormat: "a write at 0x%05X that starts no block", UInt32(address))) }
        for offset in stride(from: 0, to: bytes.count, by: Self.blockSize) {
            let at = address + offset
            let block = Array(bytes[offset..<min(offset + Self.blockSize, bytes.count)])
            let report = [2, UInt8(at & 0xFF), UInt8(at >> 8 & 0xFF), UInt8(at >> 16 & 0xFF)] + block
                + [UInt8](repeating: 0xFF, count: Self.blockSize - block.count)
            try setFeature(report, "writing flash at " + String(cFormat: "0x%05X", UInt32(at)))
            progress(offset + block.count)
        }
    }

    public func readEEPROM(at address: Int, count: Int) throws(BootloaderError) -> [UInt8] { throw .refused("EEPROM access: BootloadHID has none") }
    public func writeEEPROM(at address: Int, _ bytes: [UInt8]) throws(BootloaderError) { throw .refused("EEPROM access: BootloadHID has none") }

    /// Report 1 sent; the board may reboot before the request completes.
    public func startApplication() throws(BootloaderError) {
        do { try setFeature([1, 0, 0, 0, 0, 0, 0], "starting the application") } catch .gone {} catch .usb(.timeout, _) {} catch .usb(.stall, _) {}
    }

    public func hasGone(withinMilliseconds milliseconds: Int) -> Bool {
        pollUntilGone(within: milliseconds, on: time) { () throws(BootloaderError) in _ = try deviceInfo() }
    }

    public func close() { device.close() }

    // MARK: Reports

    /// GET_REPORT (feature, id 1).
    private func deviceInfo() throws(BootloaderError) -> [UInt8] {
        do {
            return try device.controlIn(to: .classInterface, request: 0x01, value: 0x0301, index: 0, length: 7, timeoutMilliseconds: Self.requestMilliseconds)
        } catch .noDevice { throw .gone(operation: "reading the device info report") } catch {
            throw .usb(error, operation: "reading the device info report")
        }
    }

    /// SET_REPORT (feature) of `report`, whose first byte is its id.
    private func setFeature(_ report: [UInt8], _ operation: String) throws(BootloaderError) {
        do {
            try device.controlOut(to: .classInterface, request: 0x09, value: 0x0300 | UInt16(report[0]), index: 0, data: report,
                                  timeoutMilliseconds: Self.requestMilliseconds)
        } catch .noDevice { throw .gone(operation: operation) } catch { throw .usb(error, operation: operation) }
    }
}
