import BenchModel
import Parts
import Transport

/// The STM32duino bootloader (LeafLabs' Maple DFU, 1EAF:0003) on an STM32F103: plain DFU 1.1. The
/// alternate setting named "… Upload to Flash 0x8002000" takes the application above the bootloader's
/// 8 KiB. A download always starts at that address and runs on block by block (the block number is
/// not an address), each block erasing the page it starts; an upload reads wLength-sized blocks from
/// the same address, the one past the end of flash coming back short — which tells the flash's size.
/// Leaving takes a USB reset outside dfuIDLE: the board reboots into the application.
public final class MapleDFUBootloader: BootloaderSession {
    public let device: USBDevice
    public let time: TimeSource
    public private(set) var identity: ProgrammerIdentity
    private var dfu: DFUInterface
    private var applicationStart: UInt32 = 0x0800_2000
    private var transferSize = 1024
    private var flashEnd: UInt32 = 0
    /// Where the open download continues, or nil when none is open.
    private var downloadNext: UInt32?
    private var downloadBlock: UInt16 = 0
    /// A page erase (20–40 ms on the F103) and a block's half-words: well within this.
    static let blockMilliseconds = 2000

    public init(device: USBDevice, time: TimeSource) {
        self.device = device
        self.time = time
        dfu = DFUInterface(device: device, time: time)
        identity = ProgrammerIdentity(bootloader: .stm32duino, on: device)
    }

    public var readRefusal: String? { nil }
    public var erasesAsItWrites: Bool { true }

    public func identify() throws(BootloaderError) -> BootloaderReport {
        let described = try DFUDeviceDescriptors.read(from: device)
        // The setting for the application above the bootloader's 8 KiB (generic_boot20); the older
        // 0x8005000 one only where it is the only flash setting.
        let flashSettings = described.settings.compactMap { setting in Self.flashAddress(in: setting.name).map { (setting, $0) } }
        guard let (setting, address) = flashSettings.first(where: { $0.1 == 0x0800_2000 }) ?? flashSettings.first else {
            throw .protocolViolation("no alternate setting uploads to flash (" + described.settings.map { "\"\($0.name)\"" }.joined(separator: ", ") + ")")
        }
        dfu = try DFUInterface.selecting(setting, on: device, time: time)
        applicationStart = address
        transferSize = described.functional?.transferSize ?? 1024
        flashEnd = try probeFlashEnd()
        let size = Int(flashEnd - STM32Chip.flashBase)
        identity.firmware = "STM32duino bootloader (\(setting.name.split(separator: " ").prefix(3).joined(separator: " ")), alternate setting \(setting.setting))"
        return BootloaderReport(signature: nil, fuses: nil, lock: nil, software: identity.firmware ?? "STM32duino", blockSize: transferSize,
                                stm32Flash: STM32BootloaderFlash(size: size, applicationStart: address,
                                                                 geometry: .pages(size: size > 128 * 1024 ? 2048 : 1024), family: .f1))
    }

    /// The address in "… Upload to Flash 0x8002000", if the name has one.
    static func flashAddress(in name: String) -> UInt32? {
        let text = Array(name), marker = Array("Flash 0x")
        guard text.count > marker.count, let at = (0...(text.count - marker.count)).first(where: { Array(text[$0..<$0 + marker.count]) == marker }) else { return nil }
        return UInt32(String(text[(at + marker.count)...].prefix { $0.isHexDigit }), radix: 16)
    }

    public func readFlash(at address: Int, count: Int, progress: (Int) -> Void) throws(BootloaderError) -> [UInt8] {
        let start = UInt32(address)
        guard start >= applicationStart, (start - applicationStart) % UInt32(transferSize) == 0 else {
            throw .protocolViolation(String(cFormat: "a read at 0x%08X: the bootloader reads whole blocks from 0x%08X", start, applicationStart))
        }
        try endDownload()
        var out: [UInt8] = []
        out.reserveCapacity(count)
        var block = UInt16((start - applicationStart) / UInt32(transferSize))
        while out.count < count {
            let bytes = try dfu.upload(length: transferSize, block: block, "reading flash at " + String(cFormat: "0x%08X", start + UInt32(out.count)))
            guard !bytes.isEmpty else { throw .protocolViolation("the bootloader ended the read at " + String(cFormat: "0x%08X", start + UInt32(out.count))) }
            out += bytes
            progress(min(out.count, count))
            block += 1
        }
        try dfu.returnToIdle()
        return Array(out.prefix(count))
    }

    public func eraseApplication() throws(BootloaderError) {
        throw .refused("an erase: the STM32duino bootloader erases each page as it writes it")
    }

    /// Continues the open download, or opens one at the application's start; a gap before `address`
    /// is written blank (the bootloader writes only in sequence).
    public func writeFlash(at address: Int, _ bytes: [UInt8], progress: (Int) -> Void) throws(BootloaderError) {
        let start = UInt32(address)
        let next = downloadNext ?? applicationStart
        guard start >= next else {
            throw .protocolViolation(String(cFormat: "a write at 0x%08X behind the download at 0x%08X: the bootloader writes only in sequence", start, next))
        }
        if downloadNext == nil { try dfu.returnToIdle() }
        let data = [UInt8](repeating: 0xFF, count: Int(start - next)) + bytes
        let lead = Int(start - next)
        for offset in stride(from: 0, to: data.count, by: transferSize) {
            var chunk = Array(data[offset..<min(offset + transferSize, data.count)])
            chunk += [UInt8](repeating: 0xFF, count: (4 - chunk.count % 4) % 4)
            let at = next + UInt32(offset)
            let operation = "writing flash at " + String(cFormat: "0x%08X", at)
            try dfu.download(chunk, block: downloadBlock, operation)
            try dfu.awaitCompletion(operation, limitMilliseconds: Self.blockMilliseconds)
            downloadBlock &+= 1
            downloadNext = at + UInt32(chunk.count)
            progress(max(0, offset + chunk.count - lead))
        }
    }

    public func readEEPROM(at address: Int, count: Int) throws(BootloaderError) -> [UInt8] { throw .refused("EEPROM access: an STM32 has none") }
    public func writeEEPROM(at address: Int, _ bytes: [UInt8]) throws(BootloaderError) { throw .refused("EEPROM access: an STM32 has none") }

    /// Out of dfuIDLE (one block read starts an upload), then a USB reset: the bootloader reboots the
    /// board, which runs the application.
    public func startApplication() throws(BootloaderError) {
        try endDownload()
        _ = try dfu.upload(length: transferSize, block: 0, "leaving the bootloader")
        do { try device.resetDevice() } catch .noDevice {} catch { throw .usb(error, operation: "resetting the board into its application") }
    }

    public func hasGone(withinMilliseconds milliseconds: Int) -> Bool { dfu.hasGone(withinMilliseconds: milliseconds) }

    public func close() { device.close() }

    // MARK: Maple

    /// Ends an open download (without its manifestation: the blocks are written already).
    private func endDownload() throws(BootloaderError) {
        guard downloadNext != nil else { return }
        downloadNext = nil
        downloadBlock = 0
        try dfu.returnToIdle()
    }

    /// Where flash ends: the first block an upload answers short, found by halving (a dozen requests).
    private func probeFlashEnd() throws(BootloaderError) -> UInt32 {
        func length(ofBlock block: Int) throws(BootloaderError) -> Int {
            // The first upload from dfuIDLE is answered whole: block 0 opens the upload, the probe follows.
            _ = try dfu.upload(length: transferSize, block: 0, "opening an upload")
            let count = try dfu.upload(length: transferSize, block: UInt16(block), "finding the end of flash").count
            try dfu.returnToIdle()
            return count
        }
        var low = 0, high = (1024 * 1024 - Int(applicationStart - STM32Chip.flashBase)) / transferSize   // blocks [0, low] are whole
        guard try length(ofBlock: 0) == transferSize else { throw .protocolViolation("the bootloader reads no flash at its application's start") }
        while high - low > 1 {
            let middle = (low + high) / 2
            if try length(ofBlock: middle) == transferSize { low = middle } else { high = middle }
        }
        let tail = try length(ofBlock: high)
        return applicationStart + UInt32(high * transferSize + tail)
    }
}
