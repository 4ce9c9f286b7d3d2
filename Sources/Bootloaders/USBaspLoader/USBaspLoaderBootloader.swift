import BenchModel
import Parts
import Transport

/// USBaspLoader (obdev's V-USB bootloader for the ATmega8/88/168/328 and kin): the USBasp programmer's
/// vendor requests, answered by the bootloader itself (its `main.c`): CONNECT (1) and ENABLEPROG (5,
/// one byte, 0 = ready); TRANSMIT (3) emulating the ISP instructions it knows — read signature `30 00 i`
/// and chip erase `AC 80` (every page below the last 2 KiB) — and answering 0 to the rest; READFLASH (4)
/// and WRITEFLASH (6) at the byte address in wValue (SETLONGADDRESS, 9, above 64 KiB), up to 255 bytes
/// each, a page programmed when the write crosses its end or the last block (wIndex bit 9) ends;
/// READEEPROM/WRITEEEPROM (7/8); DISCONNECT (2) leaves for the application.
public final class USBaspLoaderBootloader: BootloaderSession {
    public let device: USBDevice
    public let time: TimeSource
    public private(set) var identity: ProgrammerIdentity
    private var part: AVRPart?
    /// One request's bound; the chip erase of the application section gets its own.
    static let requestMilliseconds = 2000, eraseMilliseconds = 10_000

    public init(device: USBDevice, time: TimeSource) {
        self.device = device
        self.time = time
        identity = ProgrammerIdentity(bootloader: .usbasploader, on: device)
    }

    public var readRefusal: String? { nil }

    public func identify() throws(BootloaderError) -> BootloaderReport {
        _ = try request(1, length: 4, "connecting")
        guard try request(5, length: 1, "entering programming mode").first == 0 else { throw .refused("programming mode") }
        var bytes: [UInt8] = []
        for i in 0..<3 {
            let reply = try request(3, value: 0x0030, index: UInt16(i), length: 4, "reading signature byte \(i)")
            guard reply.count == 4 else { throw .protocolViolation("\(reply.count) bytes answered to a TRANSMIT") }
            bytes.append(reply[3])
        }
        let signature = Signature(bytes[0], bytes[1], bytes[2])
        part = PartCatalog.avrParts(withSignature: signature).first
        identity.firmware = "USBaspLoader (" + (device.description.product ?? "no product string") + ")"
        return BootloaderReport(signature: signature, fuses: nil, lock: nil, software: identity.firmware ?? "USBaspLoader",
                                blockSize: part?.flash.pageSize ?? 64, bootloaderBytes: part?.bootSections.last?.size)
    }

    public func readFlash(at address: Int, count: Int, progress: (Int) -> Void) throws(BootloaderError) -> [UInt8] {
        var out: [UInt8] = []
        while out.count < count {
            let at = address + out.count, n = min(128, count - out.count)
            try setLongAddress(at)
            let bytes = try request(4, value: UInt16(at & 0xFFFF), length: n, "reading flash at " + String(cFormat: "0x%05X", UInt32(at)))
            guard bytes.count == n else { throw .protocolViolation("\(bytes.count) bytes answered for \(n) while reading flash") }
            out += bytes
            progress(out.count)
        }
        return out
    }

    public func eraseApplication() throws(BootloaderError) {
        _ = try request(3, value: 0x80AC, index: 0, length: 4, "erasing the application", within: Self.eraseMilliseconds)
    }

    /// Page by page, each its own request flagged as the last block (so that a partial page is programmed
    /// too); pages still blank after the erase are skipped.
    public func writeFlash(at address: Int, _ bytes: [UInt8], progress: (Int) -> Void) throws(BootloaderError) {
        let page = part?.flash.pageSize ?? 64
        for offset in stride(from: 0, to: bytes.count, by: page) {
            let chunk = Array(bytes[offset..<min(offset + page, bytes.count)])
            defer { progress(offset + chunk.count) }
            if chunk.allSatisfy({ $0 == 0xFF }) { continue }
            let at = address + offset
            try setLongAddress(at)
            try send(6, value: UInt16(at & 0xFFFF), index: 0x0300 | UInt16(page & 0xFF), chunk, "writing flash at " + String(cFormat: "0x%05X", UInt32(at)))
        }
    }

    public func readEEPROM(at address: Int, count: Int) throws(BootloaderError) -> [UInt8] {
        var out: [UInt8] = []
        while out.count < count {
            let n = min(128, count - out.count)
            out += try request(7, value: UInt16(address + out.count), length: n, "reading EEPROM at " + String(cFormat: "0x%04X", UInt32(address + out.count)))
        }
        return out
    }

    public func writeEEPROM(at address: Int, _ bytes: [UInt8]) throws(BootloaderError) {
        for offset in stride(from: 0, to: bytes.count, by: 128) {
            let chunk = Array(bytes[offset..<min(offset + 128, bytes.count)])
            try send(8, value: UInt16(address + offset), index: 0, chunk, "writing EEPROM at " + String(cFormat: "0x%04X", UInt32(address + offset)),
                     within: Self.requestMilliseconds + 10 * chunk.count)
        }
    }

    public func startApplication() throws(BootloaderError) {
        // The loader answers, then leaves; a device already gone has done what was asked.
        do { _ = try request(2, length: 4, "starting the application") } catch .gone {}
    }

    /// A read of one byte until the device is gone (a CONNECT would keep the loader waiting).
    public func hasGone(withinMilliseconds milliseconds: Int) -> Bool {
        pollUntilGone(within: milliseconds, on: time) { () throws(BootloaderError) in _ = try request(4, value: 0, length: 1, "seeing whether the bootloader left") }
    }

    public func close() { device.close() }

    // MARK: Requests

    private func setLongAddress(_ address: Int) throws(BootloaderError) {
        guard (part?.flash.size ?? 0) > 0x10000 else { return }
        _ = try request(9, value: UInt16(address & 0xFFFF), index: UInt16(address >> 16), length: 4, "setting the address")
    }

    private func request(_ request: UInt8, value: UInt16 = 0, index: UInt16 = 0, length: Int, _ operation: String,
                         within milliseconds: Int = requestMilliseconds) throws(BootloaderError) -> [UInt8] {
        do { return try device.controlIn(request: request, value: value, index: index, length: length, timeoutMilliseconds: milliseconds) }
        catch .noDevice { throw .gone(operation: operation) } catch { throw .usb(error, operation: operation) }
    }

    private func send(_ request: UInt8, value: UInt16, index: UInt16, _ data: [UInt8], _ operation: String,
                      within milliseconds: Int = requestMilliseconds) throws(BootloaderError) {
        do { try device.controlOut(request: request, value: value, index: index, data: data, timeoutMilliseconds: milliseconds) }
        catch .noDevice { throw .gone(operation: operation) } catch { throw .usb(error, operation: operation) }
    }
}
