import BenchModel
import Parts
import Transport

/// Atmel's DFU bootloader on the USB AVRs (ATmega16U2/32U4, AT90USB…), and LUFA's and QMK's that speak
/// the same FLIP commands: DFU 1.1 transfers whose DFU_DNLOAD payload is a command (Atmel's "USB DFU
/// Bootloader" datasheets, appendix A). Facts used:
/// - read configuration `05 d0 d1`, then one byte by DFU_UPLOAD: bootloader version `00 00`, the
///   signature bytes as manufacturer `01 30`, family `01 31` and product name `01 60`;
/// - select the 64 KiB flash page `06 03 00 p`;
/// - read `03 00 start end` (big-endian, end inclusive; `03 02` for EEPROM), then DFU_UPLOAD; with the security bit set the
///   upload stalls and the status is errFILE until the chip is erased;
/// - chip erase `04 00 FF` (the application section; the bootloader's stays), polled with DFU_GETSTATUS;
/// - program `01 00 start end` (`01 01` for EEPROM), zero-padded to a 32-byte control block, then the data and a 16-byte DFU
///   suffix, in one DFU_DNLOAD;
/// - start the application with a watchdog reset `04 03 00` and a zero-length DFU_DNLOAD.
public final class AtmelDFUBootloader: BootloaderSession {
    public let dfu: DFUInterface
    public var time: TimeSource { dfu.time }
    public private(set) var identity: ProgrammerIdentity
    private var part: AVRPart?
    /// Set while the bootloader refuses reads: a chip flashed and not erased since.
    private var isSecured = false
    private var selectedPage: Int?

    /// What one DFU_DNLOAD or DFU_UPLOAD carries at most (dfu-programmer's figure; Atmel's bootloaders
    /// take more, LUFA's exactly this).
    static let transferBytes = 1024
    static let controlBlockBytes = 32, suffixBytes = 16
    static let eraseMilliseconds = 10_000, writeMilliseconds = 2000

    public init(device: USBDevice, time: TimeSource, kind: BootloaderKind = .atmelDFU) {
        dfu = DFUInterface(device: device, time: time)
        identity = ProgrammerIdentity(bootloader: kind, on: device)
    }

    public var readRefusal: String? {
        isSecured ? "the Atmel DFU bootloader's security bit is set (the chip was flashed and not erased since): it reads nothing back until an erase" : nil
    }

    public func identify() throws(BootloaderError) -> BootloaderReport {
        do { try dfu.device.claimInterface(Int32(dfu.interface)) } catch .noDevice { throw .gone(operation: "claiming the DFU interface") } catch {
            throw .usb(error, operation: "claiming the DFU interface")
        }
        try dfu.returnToIdle()
        let version = try configuration(0x00, 0x00, "reading the bootloader version")
        let signature = Signature(try configuration(0x01, 0x30, "reading the manufacturer code"),
                                  try configuration(0x01, 0x31, "reading the family code"),
                                  try configuration(0x01, 0x60, "reading the product name"))
        part = PartCatalog.avrParts(withSignature: signature).first
        identity.firmware = String(cFormat: "Atmel DFU bootloader version 0x%02X", version)
        isSecured = try isReadRefused()
        return BootloaderReport(signature: signature, fuses: nil, lock: nil, software: identity.firmware ?? "Atmel DFU",
                                blockSize: part?.flash.pageSize ?? 128, bootloaderBytes: part?.bootSections.last?.size)
    }

    public func readFlash(at address: Int, count: Int, progress: (Int) -> Void) throws(BootloaderError) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(count)
        while out.count < count {
            let start = address + out.count
            let n = min(Self.transferBytes, count - out.count, 0x10000 - start % 0x10000)
            out += try readBlock(at: start, count: n)
            progress(out.count)
        }
        return out
    }

    public func eraseApplication() throws(BootloaderError) {
        try dfu.download([0x04, 0x00, 0xFF], "erasing the application")
        try dfu.awaitCompletion("erasing the application", limitMilliseconds: Self.eraseMilliseconds)
        isSecured = false
    }

    /// In transfers of up to 1 KiB that stay within a 64 KiB page; runs of pages still blank after the
    /// erase are skipped.
    public func writeFlash(at address: Int, _ bytes: [UInt8], progress: (Int) -> Void) throws(BootloaderError) {
        let page = part?.flash.pageSize ?? 128
        guard address % page == 0 else { throw .protocolViolation(String(cFormat: "a write at 0x%04X that starts no %d-byte page", UInt32(address), Int32(page))) }
        var data = bytes
        while data.count % page != 0 { data.append(0xFF) }
        var offset = 0
        while offset < data.count {
            if data[offset..<offset + page].allSatisfy({ $0 == 0xFF }) {
                offset += page
                progress(min(offset, bytes.count))
                continue
            }
            let start = address + offset
            var end = offset + page
            while end < data.count, end - offset < Self.transferBytes, (address + end) % 0x10000 != 0,
                  !data[end..<end + page].allSatisfy({ $0 == 0xFF }) { end += page }
            try select(pageOf: start)
            try program(Array(data[offset..<end]), at: start % 0x10000, memory: 0x00, "writing flash at " + String(cFormat: "0x%05X", UInt32(start)),
                        limitMilliseconds: Self.writeMilliseconds)
            offset = end
            progress(min(offset, bytes.count))
        }
    }

    /// EEPROM is read with memory 0x02 in the read command and written with memory 0x01 in the
    /// program command; it has no 64 KiB pages.
    public func readEEPROM(at address: Int, count: Int) throws(BootloaderError) -> [UInt8] {
        var out: [UInt8] = []
        while out.count < count {
            let n = min(Self.transferBytes, count - out.count)
            out += try readBlock(at: address + out.count, count: n, memory: 0x02)
        }
        return out
    }

    public func writeEEPROM(at address: Int, _ bytes: [UInt8]) throws(BootloaderError) {
        for offset in stride(from: 0, to: bytes.count, by: Self.transferBytes) {
            let chunk = Array(bytes[offset..<min(offset + Self.transferBytes, bytes.count)])
            // Each byte takes the EEPROM's write time (up to 9 ms on the 8-bit AVRs).
            try program(chunk, at: address + offset, memory: 0x01, "writing EEPROM at " + String(cFormat: "0x%04X", UInt32(address + offset)),
                        limitMilliseconds: Self.writeMilliseconds + 10 * chunk.count)
        }
    }

    public func startApplication() throws(BootloaderError) {
        try dfu.download([0x04, 0x03, 0x00], "asking for a reset into the application")
        // The zero-length download starts it; the device may be gone before it answers.
        do { try dfu.download([], "starting the application") } catch .gone {}
    }

    public func hasGone(withinMilliseconds milliseconds: Int) -> Bool { dfu.hasGone(withinMilliseconds: milliseconds) }

    public func close() { dfu.device.close() }

    // MARK: Commands

    /// The DFU suffix Atmel's bootloaders expect after the data: no CRC, "DFU" 1.1, any ids.
    static let suffix: [UInt8] = [0, 0, 0, 0, 16, UInt8(ascii: "D"), UInt8(ascii: "F"), UInt8(ascii: "U"), 0x01, 0x10,
                                  0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF]

    private func configuration(_ group: UInt8, _ item: UInt8, _ operation: String) throws(BootloaderError) -> UInt8 {
        try dfu.download([0x05, group, item], operation)
        try dfu.awaitCompletion(operation, limitMilliseconds: DFUInterface.requestMilliseconds)
        guard let byte = try dfu.upload(length: 1, operation).first else { throw .protocolViolation("no byte answered while \(operation)") }
        return byte
    }

    private func select(pageOf address: Int) throws(BootloaderError) {
        let page = address / 0x10000
        guard page != selectedPage else { return }
        // Parts of 64 KiB or less have one page, and the bootloader needs no selection.
        if page > 0 || (part?.flash.size ?? 0) > 0x10000 {
            try dfu.download([0x06, 0x03, 0x00, UInt8(page)], "selecting flash page \(page)")
        }
        selectedPage = page
    }

    /// The program command for `bytes` at `low` (an address within the selected page) of `memory`
    /// (0x00 flash, 0x01 EEPROM): control block, data and suffix in one download.
    private func program(_ bytes: [UInt8], at low: Int, memory: UInt8, _ operation: String, limitMilliseconds: Int) throws(BootloaderError) {
        let last = low + bytes.count - 1
        var message = [0x01, memory, UInt8(low >> 8), UInt8(low & 0xFF), UInt8(last >> 8), UInt8(last & 0xFF)]
        message += [UInt8](repeating: 0, count: Self.controlBlockBytes - message.count)
        message += bytes
        message += Self.suffix
        try dfu.download(message, operation)
        try dfu.awaitCompletion(operation, limitMilliseconds: limitMilliseconds)
    }

    /// A read of `memory` (0x00 flash, 0x02 EEPROM).
    private func readBlock(at start: Int, count: Int, memory: UInt8 = 0x00) throws(BootloaderError) -> [UInt8] {
        let low: Int
        if memory == 0x00 {
            try select(pageOf: start)
            low = start % 0x10000
        } else {
            low = start
        }
        let last = low + count - 1
        let operation = "reading \(memory == 0x00 ? "flash" : "EEPROM") at " + String(cFormat: "0x%05X", UInt32(start))
        try dfu.download([0x03, memory, UInt8(low >> 8), UInt8(low & 0xFF), UInt8(last >> 8), UInt8(last & 0xFF)], operation)
        let bytes: [UInt8]
        do { bytes = try dfu.upload(length: count, operation) } catch .usb(.stall, _) {
            let report = try dfu.status(operation)
            try? dfu.clearStatus("clearing the refused read")
            if report.status == .file {
                throw .refused("reading flash: the chip's security bit is set (it was flashed and not erased since), so the bootloader reads nothing back until an erase")
            }
            throw .refused("\(operation): \(report.status)")
        }
        guard bytes.count == count else { throw .protocolViolation("\(bytes.count) bytes answered for \(count) while \(operation)") }
        return bytes
    }

    /// Whether the bootloader refuses reads (its security bit): tried on the first bytes of flash.
    private func isReadRefused() throws(BootloaderError) -> Bool {
        do { _ = try readBlock(at: 0, count: 64) } catch .refused { return true }
        return false
    }
}
