import BenchModel
import Parts
import Transport

/// ST's system bootloader (and APM32's) in DFU mode: DfuSe, DFU 1.1 with ST's extensions (UM0424,
/// AN3156). The internal flash is the alternate setting whose interface string describes it
/// ("@Internal Flash /0x08000000/…"); commands go in DFU_DNLOAD block 0 — Set Address Pointer 0x21,
/// Erase 0x41 with a unit's address — and data blocks from 2 land at the pointer plus (block − 2) ×
/// wTransferSize, uploads likewise. Each download completes at DFU_GETSTATUS (the busy poll). The
/// bootloader is in ROM: all of flash is the application's. A zero-length download after pointing at
/// the flash base leaves for the application.
public final class DfuSeBootloader: BootloaderSession {
    public let device: USBDevice
    public let time: TimeSource
    public private(set) var identity: ProgrammerIdentity
    private var dfu: DFUInterface
    private var layout: DfuSeMemoryLayout?
    private var transferSize = 2048
    private var protected = false
    /// The makers whose system bootloader answers with their own vendor id (Geehy's APM32: 314B:0106);
    /// ST's (0483) is any of ST's lines.
    static let siliconByVendor: [UInt16: String] = [0x314B: "apm32f103"]
    /// A 128 KiB sector takes up to 4 s on the F4 (RM0368 tERASE128KB); the bound is twice that.
    static let eraseMilliseconds = 8000, writeMilliseconds = 2000

    public init(device: USBDevice, time: TimeSource, kind: BootloaderKind = .stm32DFU) {
        self.device = device
        self.time = time
        dfu = DFUInterface(device: device, time: time)
        identity = ProgrammerIdentity(bootloader: kind, on: device)
    }

    public var readRefusal: String? {
        protected ? "the chip is read-protected: the system bootloader reads, erases and writes its flash only after a read unprotect, which mass-erases it" : nil
    }

    public func identify() throws(BootloaderError) -> BootloaderReport {
        let described = try DFUDeviceDescriptors.read(from: device)
        guard let flash = described.settings.first(where: { DfuSeMemoryLayout($0.name)?.name.lowercased().contains("flash") == true }),
              let found = DfuSeMemoryLayout(flash.name) else {
            throw .protocolViolation("no alternate setting describes the internal flash (" + described.settings.map { "\"\($0.name)\"" }.joined(separator: ", ") + ")")
        }
        dfu = try DFUInterface.selecting(flash, on: device, time: time)
        layout = found
        transferSize = described.functional?.transferSize ?? 2048
        // A read-protected chip refuses the first read.
        do { _ = try read(at: found.base, count: 4) } catch .refused { protected = true; try dfu.returnToIdle() }
        let release = device.description.deviceRelease
        identity.firmware = "STM32 system bootloader (DfuSe, " + String(cFormat: "version %X.%X", Int32(release >> 12 & 0xF), Int32(release >> 8 & 0xF)) + ")"
        return BootloaderReport(signature: nil, fuses: nil, lock: nil, software: identity.firmware ?? "DfuSe", blockSize: transferSize,
                                stm32Flash: STM32BootloaderFlash(base: found.base, size: found.size, applicationStart: found.base, geometry: found.geometry,
                                                                 variant: Self.siliconByVendor[device.description.vendorID]))
    }

    public func readFlash(at address: Int, count: Int, progress: (Int) -> Void) throws(BootloaderError) -> [UInt8] {
        try read(at: UInt32(address), count: count, progress: progress)
    }

    /// Every erasable unit of the flash (all of it is the application's), those already blank spared.
    public func eraseApplication() throws(BootloaderError) { try eraseApplication(sparing: { _ in false }) }

    public func eraseApplication(sparing isBlank: (Range<Int>) -> Bool) throws(BootloaderError) {
        guard let layout else { throw .protocolViolation("the flash was not described") }
        for unit in layout.units where unit.erasable && !isBlank(Int(unit.address)..<Int(unit.address) + unit.size) {
            try command([0x41] + Self.littleEndian(unit.address), "erasing " + String(cFormat: "0x%08X", unit.address), within: Self.eraseMilliseconds)
        }
    }

    public func writeFlash(at address: Int, _ bytes: [UInt8], progress: (Int) -> Void) throws(BootloaderError) {
        try setPointer(UInt32(address))
        for (i, offset) in stride(from: 0, to: bytes.count, by: transferSize).enumerated() {
            let chunk = Array(bytes[offset..<min(offset + transferSize, bytes.count)])
            let operation = "writing flash at " + String(cFormat: "0x%08X", UInt32(address + offset))
            try dfu.download(chunk, block: UInt16(2 + i), operation)
            try dfu.awaitCompletion(operation, limitMilliseconds: Self.writeMilliseconds)
            progress(offset + chunk.count)
        }
    }

    public func readEEPROM(at address: Int, count: Int) throws(BootloaderError) -> [UInt8] { throw .refused("EEPROM access: an STM32 has none") }
    public func writeEEPROM(at address: Int, _ bytes: [UInt8]) throws(BootloaderError) { throw .refused("EEPROM access: an STM32 has none") }

    /// Points at the flash base and sends the zero-length download: the bootloader jumps there.
    public func startApplication() throws(BootloaderError) {
        guard let layout else { throw .protocolViolation("the flash was not described") }
        try setPointer(layout.base)
        do {
            try dfu.download([], block: 2, "starting the application")
            _ = try dfu.status("starting the application")
        } catch .gone {} catch .usb(.stall, _) {} catch .usb(.timeout, _) {}
    }

    public func hasGone(withinMilliseconds milliseconds: Int) -> Bool { dfu.hasGone(withinMilliseconds: milliseconds) }

    public func close() { device.close() }

    // MARK: DfuSe

    private func setPointer(_ address: UInt32) throws(BootloaderError) {
        try command([0x21] + Self.littleEndian(address), "setting the address pointer to " + String(cFormat: "0x%08X", address), within: Self.writeMilliseconds)
    }

    /// A command in block 0, carried out at the status poll.
    private func command(_ bytes: [UInt8], _ operation: String, within milliseconds: Int) throws(BootloaderError) {
        try dfu.download(bytes, block: 0, operation)
        try dfu.awaitCompletion(operation, limitMilliseconds: milliseconds)
    }

    /// Uploads from dfuIDLE: the pointer set, the transfer aborted back to idle, blocks from 2.
    private func read(at address: UInt32, count: Int, progress: (Int) -> Void = { _ in }) throws(BootloaderError) -> [UInt8] {
        try setPointer(address)
        try dfu.abort("ending the address command")
        var out: [UInt8] = []
        out.reserveCapacity(count)
        var block: UInt16 = 2
        while out.count < count {
            let operation = "reading flash at " + String(cFormat: "0x%08X", address + UInt32(out.count))
            let bytes: [UInt8]
            // Always whole blocks: the block number and wLength together make the address.
            do { bytes = try dfu.upload(length: transferSize, block: block, operation) }
            catch .usb(.stall, _) {
                let report = try? dfu.status(operation)
                try? dfu.clearStatus("clearing the error")
                throw .refused("\(operation): \(report.map { "\($0.status)" } ?? "stalled")")
            }
            guard !bytes.isEmpty else { throw .protocolViolation("the bootloader ended the read at " + String(cFormat: "0x%08X", address + UInt32(out.count))) }
            out += bytes
            progress(out.count)
            block += 1
        }
        try dfu.abort("ending the read")
        return Array(out.prefix(count))
    }

    static func littleEndian(_ value: UInt32) -> [UInt8] { (0..<4).map { UInt8(value >> (8 * UInt32($0)) & 0xFF) } }
}
