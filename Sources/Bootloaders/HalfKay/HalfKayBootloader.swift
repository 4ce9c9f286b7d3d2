import BenchModel
import Parts
import Transport

/// The Teensy boards HalfKay runs on, told apart by the size of its one output report: the block it
/// writes plus its address (PJRC's teensy_loader_cli; the Teensy 3 and 4 are ARM and not flashed here).
public struct HalfKayModel: Sendable, Equatable {
    public let board: String
    /// The part's id in the part table.
    public let part: String
    /// Bytes one report writes.
    public let blockSize: Int
    /// The application's room: HalfKay keeps the rest of flash.
    public let codeSize: Int
    /// Whether a block's address goes in the report as `addr >> 8` (over 64 KiB of 256-byte blocks).
    public let addressesInPages: Bool
    /// The fuses PJRC ships: BOOTSZ=11, the smallest boot section, which HalfKay fills.
    public var fuses: FuseSet { FuseSet(low: 0x5F, high: 0xDF, extended: 0xF4) }

    public var reportBytes: Int { blockSize + 2 }

    public static let all: [HalfKayModel] = [
        HalfKayModel(board: "Teensy 2.0", part: "atmega32u4", blockSize: 128, codeSize: 0x7E00, addressesInPages: false),
        HalfKayModel(board: "Teensy++ 2.0", part: "at90usb1286", blockSize: 256, codeSize: 0x1FC00, addressesInPages: true),
    ]

    /// The model whose output report is `bytes` long.
    public static func model(reportBytes bytes: Int) -> HalfKayModel? { all.first { $0.reportBytes == bytes } }
}

/// PJRC's HalfKay bootloader on the Teensy 2.0 and ++ 2.0: HID output reports by SET_REPORT (class
/// request 9, report type output, wValue 0x0200) to interface 0, each a block's address (low byte
/// first, or in 256-byte pages on the Teensy++) and the block. The first report after it enumerates
/// erases the application area; a report addressed 0xFFFF starts the application. It reads nothing
/// back and has no EEPROM access; the report descriptor's output size tells the board.
public final class HalfKayBootloader: BootloaderSession {
    public let device: USBDevice
    public let time: TimeSource
    public private(set) var identity: ProgrammerIdentity
    public private(set) var model: HalfKayModel?
    static let requestMilliseconds = 500, eraseMilliseconds = 5000
    /// One try of a block's report: a page write takes milliseconds, a busy board is asked again.
    static let attemptMilliseconds = 200
    private var erased = false, wroteSinceErase = false

    public init(device: USBDevice, time: TimeSource) {
        self.device = device
        self.time = time
        identity = ProgrammerIdentity(bootloader: .halfkay, on: device)
    }

    public var readRefusal: String? { "HalfKay cannot read flash back (its protocol only writes)" }

    public func identify() throws(BootloaderError) -> BootloaderReport {
        do { try device.claimInterface(0) } catch .noDevice { throw .gone(operation: "claiming the HID interface") } catch {
            throw .usb(error, operation: "claiming the HID interface")
        }
        let descriptor = try reportDescriptor()
        guard let bytes = Self.outputReportBytes(in: descriptor) else { throw .protocolViolation("a HID report descriptor without an output report") }
        guard let found = HalfKayModel.model(reportBytes: bytes), let part = PartCatalog.avrParts.first(where: { $0.id == found.part }) else {
            throw .refused("a HalfKay with \(bytes)-byte reports (a Teensy 3 or 4?): only the AVR Teensys are flashed")
        }
        model = found
        identity.firmware = "HalfKay on a \(found.board) (\(bytes)-byte reports)"
        // The signature is the part the report size implies, not one read from the chip.
        return BootloaderReport(signature: part.signature, fuses: nil, lock: nil, software: identity.firmware ?? "HalfKay",
                                blockSize: found.blockSize, bootloaderBytes: part.flash.size - found.codeSize)
    }

    public func readFlash(at address: Int, count: Int, progress: (Int) -> Void) throws(BootloaderError) -> [UInt8] {
        throw .refused("reading flash: \(readRefusal ?? "")")
    }

    /// HalfKay erases on the first report it takes: a blank first block.
    public func eraseApplication() throws(BootloaderError) {
        let model = try identified()
        try report(address: 0, [UInt8](repeating: 0xFF, count: model.blockSize), "erasing the application", within: Self.eraseMilliseconds)
        erased = true
    }

    public func writeFlash(at address: Int, _ bytes: [UInt8], progress: (Int) -> Void) throws(BootloaderError) {
        let model = try identified()
        guard address % model.blockSize == 0 else { throw .protocolViolation(String(cFormat: "a write at 0x%05X that starts no block", UInt32(address))) }
        for offset in stride(from: 0, to: bytes.count, by: model.blockSize) {
            var block = Array(bytes[offset..<min(offset + model.blockSize, bytes.count)])
            defer { progress(min(offset + model.blockSize, bytes.count)) }
            if block.allSatisfy({ $0 == 0xFF }) && erased { continue }
            block += [UInt8](repeating: 0xFF, count: model.blockSize - block.count)
            // The first block after the erase may wait for it to finish.
            try report(address: address + offset, block, "writing flash at " + String(cFormat: "0x%05X", UInt32(address + offset)),
                       within: wroteSinceErase ? 2 * Self.requestMilliseconds : Self.eraseMilliseconds)
            erased = true
            wroteSinceErase = true
        }
    }

    public func readEEPROM(at address: Int, count: Int) throws(BootloaderError) -> [UInt8] { throw .refused("EEPROM access: HalfKay has none") }
    public func writeEEPROM(at address: Int, _ bytes: [UInt8]) throws(BootloaderError) { throw .refused("EEPROM access: HalfKay has none") }

    /// The report addressed 0xFFFF; the board may be gone before the request completes.
    public func startApplication() throws(BootloaderError) {
        let model = try identified()
        var boot = [UInt8](repeating: 0, count: model.reportBytes)
        boot[0] = 0xFF; boot[1] = 0xFF; boot[2] = 0xFF
        do { try send(boot, "starting the application") } catch .gone {} catch .usb(.timeout, _) {}
    }

    public func hasGone(withinMilliseconds milliseconds: Int) -> Bool {
        pollUntilGone(within: milliseconds, on: time) { () throws(BootloaderError) in _ = try reportDescriptor() }
    }

    public func close() { device.close() }

    // MARK: Reports

    private func identified() throws(BootloaderError) -> HalfKayModel {
        guard let model else { throw .protocolViolation("the board was not identified") }
        return model
    }

    /// A block's report, sent again while the board is still busy (its first report's erase may outlast
    /// one request's bound) until `milliseconds` have passed; writing a block twice leaves the same bytes.
    private func report(address: Int, _ block: [UInt8], _ operation: String, within milliseconds: Int) throws(BootloaderError) {
        let model = try identified()
        let header = model.addressesInPages ? [UInt8(address >> 8 & 0xFF), UInt8(address >> 16 & 0xFF)] : [UInt8(address & 0xFF), UInt8(address >> 8 & 0xFF)]
        let start = time.now
        while true {
            do { return try send(header + block, operation, within: min(milliseconds, Self.attemptMilliseconds)) } catch .usb(.timeout, _) {
                guard time.elapsed(since: start) < UInt64(milliseconds) * 1_000_000 else {
                    throw .usb(.timeout(milliseconds: milliseconds), operation: operation)
                }
                time.sleep(microseconds: 10_000)
            }
        }
    }

    private func send(_ report: [UInt8], _ operation: String, within milliseconds: Int = requestMilliseconds) throws(BootloaderError) {
        do { try device.controlOut(to: .classInterface, request: 0x09, value: 0x0200, index: 0, data: report, timeoutMilliseconds: milliseconds) }
        catch .noDevice { throw .gone(operation: operation) } catch { throw .usb(error, operation: operation) }
    }

    /// GET_DESCRIPTOR (report) from interface 0.
    private func reportDescriptor() throws(BootloaderError) -> [UInt8] {
        do {
            return try device.controlIn(to: USBControlTarget(.standard, to: .interface), request: 0x06, value: 0x2200, index: 0, length: 256,
                                        timeoutMilliseconds: Self.requestMilliseconds)
        } catch .noDevice { throw .gone(operation: "reading the HID report descriptor") } catch {
            throw .usb(error, operation: "reading the HID report descriptor")
        }
    }

    /// The output report's size in bytes: Report Size × Report Count in force at the Output item.
    public static func outputReportBytes(in descriptor: [UInt8]) -> Int? {
        var i = 0, size = 0, count = 0
        while i < descriptor.count {
            let prefix = descriptor[i], length = [0, 1, 2, 4][Int(prefix & 3)]
            guard i + length < descriptor.count else { return nil }
            var value = 0
            for k in 0..<length { value |= Int(descriptor[i + 1 + k]) << (8 * k) }
            switch prefix & 0xFC {
            case 0x74: size = value                       // Report Size
            case 0x94: count = value                      // Report Count
            case 0x90: return size * count / 8            // Output
            default: break
            }
            i += 1 + length
        }
        return nil
    }
}
