import Parts
import Transport

/// USBaspLoader on a simulated ATmega8/88/168/328 (V-USB, low speed): the USBasp requests as the
/// bootloader answers them — the signature and the chip erase emulated in TRANSMIT, every other ISP
/// instruction answered 0, flash written through SPM page by page (the page buffer filled by WRITEFLASH
/// and programmed at the page's end or the last block's), EEPROM byte by byte, and DISCONNECT leaving
/// for the application (the device is then gone).
public final class SimulatedUSBaspLoader: SimulatedControlDevice {
    /// Whether the host told it to start the application.
    public private(set) var hasLeft = false
    /// WRITEFLASH requests answered.
    public private(set) var flashWrites = 0
    private var address = 0
    private var pageBuffer: [Int: UInt8] = [:]

    public init(chip: SimulatedAVR, product: String = "USBaspLoader") {
        super.init(chip: chip, description: USBDeviceDescription(vendorID: 0x16C0, productID: 0x05DC, manufacturer: "www.fischl.de",
                                                                 product: product, deviceRelease: 0x0102))
    }

    public override func controlIn(request: UInt8, value: UInt16, index: UInt16, length: Int, timeoutMilliseconds: Int) throws(USBError) -> [UInt8] {
        if hasLeft { throw .noDevice }
        try link.begin(request, timeoutMilliseconds: timeoutMilliseconds)
        var reply: [UInt8] = []
        switch request {
        case 3:   // TRANSMIT: the signature and the chip erase; 0 for the rest
            var result: UInt8 = 0
            if value & 0xFF == 0x30 { result = chip.part.signature.bytes[Int(index & 3) % 3] }
            if value == 0x80AC {
                let size = chip.part.flash.pageSize
                for page in stride(from: 0, to: chip.part.flash.size - 2048, by: size) { chip.selfProgramPage(at: page, []) }
            }
            reply = [0, 0, 0, result]
        case 5: reply = [0]
        case 4, 7:
            address = Int(value) | (address & ~0xFFFF)
            for _ in 0..<(length & 0xFF) {
                reply.append(request == 4 ? chip.flash[address % chip.flash.count] : chip.eeprom[address % max(1, chip.eeprom.count)])
                address += 1
            }
        case 9:
            address = Int(value) | Int(index) << 16
            reply = [0, 0, 0, 0]
        case 2:
            hasLeft = true
            reply = [0, 0, 0, 0]
        default:   // CONNECT and the rest: nothing to do
            reply = [0, 0, 0, 0]
        }
        link.finish(dataBytes: reply.count)
        return Array(reply.prefix(length))
    }

    public override func controlOut(request: UInt8, value: UInt16, index: UInt16, data: [UInt8], timeoutMilliseconds: Int) throws(USBError) -> Int {
        if hasLeft { throw .noDevice }
        try link.begin(request, timeoutMilliseconds: timeoutMilliseconds)
        switch request {
        case 6:
            try link.flashWrite(timeoutMilliseconds: timeoutMilliseconds)
            flashWrites += 1
            address = Int(value) | (address & ~0xFFFF)
            let size = chip.part.flash.pageSize, isLastBlock = index & 0x0200 != 0
            for (i, byte) in data.enumerated() {
                pageBuffer[address % size] = byte
                address += 1
                if address % size == 0 || (isLastBlock && i == data.count - 1) { programPage(at: (address - 1) / size * size) }
            }
        case 8:
            chip.selfWriteEEPROM(at: Int(value), data)
        default:
            throw .stall(request: request)
        }
        link.finish(dataBytes: data.count)
        return data.count
    }

    /// SPM's page write of the filled buffer (bytes not filled stay 0xFF).
    private func programPage(at start: Int) {
        let size = chip.part.flash.pageSize
        chip.selfProgramPage(at: start, (0..<size).map { pageBuffer[$0] ?? 0xFF })
        pageBuffer = [:]
    }
}
