import Bootloaders
import Parts
import Transport

/// obdev's BootloadHID on a simulated V-USB board (16C0:05DF, "HIDBoot", low speed): a HID interface
/// whose report descriptor has two vendor-defined feature reports. GET_REPORT of report 1 answers the
/// page size and flash size; SET_REPORT of report 2 (a 3-byte address and 128 bytes) fills the page
/// buffer, the page erased and programmed once its last byte arrives (SPM, with the chip's timing); a
/// SET_REPORT of report 1 leaves for the application (the device is then gone). SET_IDLE, which the
/// kernel's HID driver sends, is acknowledged.
public final class SimulatedBootloadHID: SimulatedControlDevice {
    public private(set) var hasLeft = false
    private var pageStart = -1
    private var pageBuffer: [UInt8] = []

    public init(chip: SimulatedAVR) {
        super.init(chip: chip, description: USBDeviceDescription(vendorID: 0x16C0, productID: 0x05DF, manufacturer: "obdev.at",
                                                                 product: "HIDBoot", deviceRelease: 0x0102))
    }

    /// The data report's length: its id, a 3-byte address and a block.
    static let dataReportBytes = 4 + BootloadHIDBootloader.blockSize

    /// The report descriptor: vendor page 0xFF00; feature report 1 (6 bytes), feature report 2 (131 bytes).
    public var reportDescriptor: [UInt8] {
        let data = Self.dataReportBytes - 1
        return [0x06, 0x00, 0xFF, 0x09, 0x01, 0xA1, 0x01, 0x15, 0x00, 0x26, 0xFF, 0x00, 0x75, 0x08,
                0x85, 0x01, 0x95, 0x06, 0x09, 0x00, 0xB2, 0x02, 0x01,
                0x85, 0x02, 0x96, UInt8(data & 0xFF), UInt8(data >> 8), 0x09, 0x00, 0xB2, 0x02, 0x01, 0xC0]
    }

    public override func controlIn(to target: USBControlTarget, request: UInt8, value: UInt16, index: UInt16, length: Int, timeoutMilliseconds: Int) throws(USBError) -> [UInt8] {
        if hasLeft { throw .noDevice }
        try link.begin(request, timeoutMilliseconds: timeoutMilliseconds)
        let reply: [UInt8]
        switch (target, request, value) {
        case (USBControlTarget(.standard, to: .interface), 0x06, 0x2200):
            reply = reportDescriptor
        case (.classInterface, 0x01, 0x0301):
            let page = chip.part.flash.pageSize, flash = chip.part.flash.size
            reply = [1, UInt8(page & 0xFF), UInt8(page >> 8)] + (0..<4).map { UInt8(flash >> (8 * $0) & 0xFF) }
        default:
            throw .stall(request: request)
        }
        link.finish(dataBytes: min(length, reply.count))
        return Array(reply.prefix(length))
    }

    public override func controlOut(to target: USBControlTarget, request: UInt8, value: UInt16, index: UInt16, data: [UInt8], timeoutMilliseconds: Int) throws(USBError) -> Int {
        if hasLeft { throw .noDevice }
        try link.begin(request, timeoutMilliseconds: timeoutMilliseconds)
        guard target == .classInterface else { throw .stall(request: request) }
        switch (request, value) {
        case (0x0A, _): break   // SET_IDLE
        case (0x09, 0x0301) where data.first == 1:
            hasLeft = true
        case (0x09, 0x0302) where data.count == Self.dataReportBytes && data[0] == 2:
            try write(data, timeoutMilliseconds: timeoutMilliseconds)
        default:
            throw .stall(request: request)
        }
        link.finish(dataBytes: data.count)
        return data.count
    }

    /// The bytes of a data report, one by one as the bootloader takes them: a page is begun at its first
    /// byte and programmed at its last.
    private func write(_ report: [UInt8], timeoutMilliseconds: Int) throws(USBError) {
        let page = chip.part.flash.pageSize
        var address = Int(report[1]) | Int(report[2]) << 8 | Int(report[3]) << 16
        for byte in report[4...] {
            if address % page == 0 { (pageStart, pageBuffer) = (address, []) }
            if pageStart >= 0 { pageBuffer.append(byte) }
            address += 1
            if address % page == 0, pageStart >= 0 {
                try link.flashWrite(timeoutMilliseconds: timeoutMilliseconds)
                chip.selfProgramPage(at: pageStart, pageBuffer)
                pageStart = -1
            }
        }
    }
}
