import Parts
import Transport

/// A USBasp with its 2011 firmware, answering the real vendor requests over a simulated low-speed USB
/// link, wired to a ``SimulatedAVR``. The firmware's behaviour is reproduced: 32 programming-enable tries,
/// SETLONGADDRESS "new mode" addressing, the page counter with first/last block flags, a 4.8 ms wait
/// after a page whose last byte is 0xFF and flash polling otherwise, byte-wise EEPROM writes with a
/// 9.6 ms wait each.
public final class SimulatedUSBasp: SimulatedControlDevice {
    /// Firmware that answers GETCAPABILITIES and SETISPSCK (2011 and later).
    public var hasSCKSetting = true

    // Firmware state.
    private var sckHertz: Double = 375_000
    private var address: UInt32 = 0
    private var newAddressMode = false
    private var pageSize = 0
    private var pageCounter = 0
    private var extendedAddress: UInt32 = 0xFF

    /// Firmware SCK table (id → Hz); "auto" runs at 375 kHz.
    static let sckTable: [UInt8: Double] = [
        0: 375_000, 1: 500, 2: 1_000, 3: 2_000, 4: 4_000, 5: 8_000, 6: 16_000, 7: 32_000,
        8: 93_750, 9: 187_500, 10: 375_000, 11: 750_000, 12: 1_500_000,
    ]

    public init(chip: SimulatedAVR, product: String = "USBasp", serialNumber: String? = nil, portPath: String = "1-1") {
        super.init(chip: chip, description: USBDeviceDescription(
            vendorID: 0x16C0, productID: 0x05DC, manufacturer: "www.fischl.de", product: product, serialNumber: serialNumber,
            deviceRelease: 0x0107, busNumber: 1, deviceAddress: 4, portPath: portPath))
    }

    public override func controlIn(request: UInt8, value: UInt16, index: UInt16, length: Int, timeoutMilliseconds: Int) throws(USBError) -> [UInt8] {
        try link.begin(request, timeoutMilliseconds: timeoutMilliseconds)
        var reply: [UInt8] = []
        switch request {
        case 1:   // CONNECT: RESET low, SCK as set
            extendedAddress = 0xFF
            chip.setReset(held: true)
        case 2:   // DISCONNECT
            chip.setReset(held: false)
        case 3:   // TRANSMIT
            reply = spi([UInt8(value & 0xFF), UInt8(value >> 8), UInt8(index & 0xFF), UInt8(index >> 8)])
        case 4, 7:   // READFLASH, READEEPROM
            // V-USB without long transfers keeps only wLength's low byte, and 255 is its "no reply" mark:
            // the host hears nothing and times out.
            if length & 0xFF == 0xFF {
                clock.advance(nanoseconds: UInt64(timeoutMilliseconds) * 1_000_000)
                throw .timeout(milliseconds: timeoutMilliseconds)
            }
            if !newAddressMode { address = UInt32(value) }
            for _ in 0..<(length & 0xFF) {
                reply.append(request == 4 ? readFlashByte(address) : spi([0xA0, UInt8(address >> 8 & 0xFF), UInt8(address & 0xFF), 0])[3])
                address += 1
            }
        case 5:   // ENABLEPROG: up to 32 tries, pulsing SCK between them
            var answered = false
            for _ in 0..<32 where !answered { answered = spi([0xAC, 0x53, 0, 0])[2] == 0x53 }
            reply = [answered ? 0 : 1]
        case 9:   // SETLONGADDRESS
            newAddressMode = true
            address = UInt32(value) | UInt32(index) << 16
        case 10 where hasSCKSetting:
            sckHertz = Self.sckTable[UInt8(value & 0xFF)] ?? 375_000
            reply = [0]
        case 127 where hasSCKSetting:
            reply = [0, 0, 0, 0]
        default:
            break
        }
        reply = Array(reply.prefix(length))
        link.finish(dataBytes: reply.count)
        return reply
    }

    public override func controlOut(request: UInt8, value: UInt16, index: UInt16, data: [UInt8], timeoutMilliseconds: Int) throws(USBError) -> Int {
        try link.begin(request, timeoutMilliseconds: timeoutMilliseconds)
        switch request {
        case 6:   // WRITEFLASH
            try link.flashWrite(timeoutMilliseconds: timeoutMilliseconds)
            if !newAddressMode { address = UInt32(value) }
            pageSize = Int(index & 0xFF) + (Int(index >> 8) & 0xF0) << 4
            let flags = UInt8(index >> 8) & 0x0F
            if flags & 1 != 0 { pageCounter = pageSize }
            for (i, byte) in data.enumerated() {
                if pageSize == 0 {
                    // Unpaged parts: write and poll each byte (not used by the parts bootmedic knows).
                    _ = spi([0x40 | UInt8(address & 1) << 3, UInt8(address >> 9 & 0xFF), UInt8(address >> 1 & 0xFF), byte])
                } else {
                    _ = spi([0x40 | UInt8(address & 1) << 3, UInt8(address >> 9 & 0xFF), UInt8(address >> 1 & 0xFF), byte])
                    pageCounter -= 1
                    if pageCounter == 0 {
                        flushPage(address, lastByte: byte)
                        pageCounter = pageSize
                    }
                }
                if i == data.count - 1, flags & 2 != 0, pageCounter != pageSize { flushPage(address, lastByte: byte) }
                address += 1
            }
        case 8:   // WRITEEEPROM: one byte at a time, 9.6 ms each (the firmware's clockWait(30))
            if !newAddressMode { address = UInt32(value) }
            for byte in data {
                _ = spi([0xC0, UInt8(address >> 8 & 0xFF), UInt8(address & 0xFF), byte])
                clock.advance(nanoseconds: 9_600_000)
                address += 1
            }
        default:
            break
        }
        link.finish(dataBytes: data.count)
        return data.count
    }

    // MARK: Firmware internals

    private func spi(_ bytes: [UInt8]) -> [UInt8] { chip.exchange(bytes, sckHertz: sckHertz) }

    private func readFlashByte(_ address: UInt32) -> UInt8 {
        // Load the extended address byte whenever the 128 KiB window changes.
        if address >> 17 != extendedAddress {
            extendedAddress = address >> 17
            _ = spi([0x4D, 0, UInt8(extendedAddress & 0xFF), 0])
        }
        return spi([0x20 | UInt8(address & 1) << 3, UInt8(address >> 9 & 0xFF), UInt8(address >> 1 & 0xFF), 0])[3]
    }

    private func flushPage(_ address: UInt32, lastByte: UInt8) {
        _ = spi([0x4C, UInt8(address >> 9 & 0xFF), UInt8(address >> 1 & 0xFF), 0])
        if lastByte == 0xFF {
            clock.advance(nanoseconds: 4_800_000)   // clockWait(15): 15 × 320 µs
        } else {
            // Poll the last byte until it no longer reads 0xFF, for at most 30 × 4.8 ms.
            let deadline = clock.now + 30 * 4_800_000
            while readFlashByte(address) == 0xFF && clock.now < deadline {}
        }
    }
}
