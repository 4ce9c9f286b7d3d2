import Bootloaders
import Parts
import Transport

/// PJRC's HalfKay on a simulated Teensy 2.0 (ATmega32U4) or ++ 2.0 (AT90USB1286): a HID interface
/// whose report descriptor has one vendor-defined output report of the block size plus two address
/// bytes; SET_REPORT writes a block (the first one after enumeration erases the application area
/// first), a report addressed 0xFFFF starts the application (the device is then gone). SET_IDLE, which
/// the kernel's HID driver sends, is acknowledged; nothing reads flash.
public final class SimulatedHalfKay: SimulatedControlDevice {
    public let model: HalfKayModel
    public private(set) var hasLeft = false
    public private(set) var blocksWritten = 0
    private var erased = false

    public init(chip: SimulatedAVR) throws(SimulationError) {
        guard let model = HalfKayModel.all.first(where: { $0.part == chip.part.id }) else {
            throw .bootloaderNotOnPart("HalfKay runs on the Teensy 2.0 (atmega32u4) and ++ 2.0 (at90usb1286), not on \(chip.part.name)")
        }
        self.model = model
        super.init(chip: chip, description: USBDeviceDescription(vendorID: 0x16C0, productID: 0x0478, deviceRelease: 0x0100))
        link.timing = .fullSpeed
    }

    /// The report descriptor: vendor page 0xFF9C, one output report of `reportBytes` bytes.
    public var reportDescriptor: [UInt8] {
        let n = model.reportBytes
        return [0x06, 0x9C, 0xFF, 0x09, 0x19, 0xA1, 0x01, 0x75, 0x08, 0x15, 0x00, 0x26, 0xFF, 0x00,
                0x96, UInt8(n & 0xFF), UInt8(n >> 8), 0x09, 0x01, 0x91, 0x02, 0xC0]
    }

    public override func controlIn(to target: USBControlTarget, request: UInt8, value: UInt16, index: UInt16, length: Int, timeoutMilliseconds: Int) throws(USBError) -> [UInt8] {
        if hasLeft { throw .noDevice }
        try link.begin(request, timeoutMilliseconds: timeoutMilliseconds)
        guard target == USBControlTarget(.standard, to: .interface), request == 0x06, value == 0x2200 else { throw .stall(request: request) }
        link.finish(dataBytes: reportDescriptor.count)
        return Array(reportDescriptor.prefix(length))
    }

    public override func controlOut(to target: USBControlTarget, request: UInt8, value: UInt16, index: UInt16, data: [UInt8], timeoutMilliseconds: Int) throws(USBError) -> Int {
        if hasLeft { throw .noDevice }
        try link.begin(request, timeoutMilliseconds: timeoutMilliseconds)
        guard target == .classInterface else { throw .stall(request: request) }
        switch request {
        case 0x0A: break   // SET_IDLE
        case 0x09 where value == 0x0200 && data.count == model.reportBytes:
            try block(data, timeoutMilliseconds: timeoutMilliseconds)
        default:
            throw .stall(request: request)
        }
        link.finish(dataBytes: data.count)
        return data.count
    }

    private func block(_ report: [UInt8], timeoutMilliseconds: Int) throws(USBError) {
        if report[0] == 0xFF && report[1] == 0xFF && (model.addressesInPages || report[2] == 0xFF) {
            hasLeft = true
            return
        }
        try link.flashWrite(timeoutMilliseconds: timeoutMilliseconds)
        let address = model.addressesInPages ? Int(report[0]) << 8 | Int(report[1]) << 16 : Int(report[0]) | Int(report[1]) << 8
        guard address + model.blockSize <= model.codeSize else { return }   // HalfKay ignores its own area
        if !erased {
            let page = chip.part.flash.pageSize
            for start in stride(from: 0, to: model.codeSize, by: page) { chip.selfProgramPage(at: start, []) }
            erased = true
        }
        blocksWritten += 1
        let page = chip.part.flash.pageSize
        for start in stride(from: address, to: address + model.blockSize, by: page) {
            chip.selfProgramPage(at: start, Array(report[(2 + start - address)..<min(2 + start - address + page, report.count)]))
        }
    }
}
