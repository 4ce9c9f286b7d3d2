import Parts
import Transport

/// A USBtinyISP (or SparkFun PocketAVR) answering the real vendor requests over a simulated low-speed
/// USB link, wired to a ``SimulatedAVR``. Like the firmware, it keeps a 16-bit byte address, so flash
/// beyond 64 KiB wraps around to the bottom: the cause of the verification failures the guide warns of.
public final class SimulatedUSBtiny: SimulatedControlDevice {

    private var sckPeriodMicroseconds = 10
    private var poll1: UInt8 = 0xFF, poll2: UInt8 = 0xFF

    public init(chip: SimulatedAVR, product: String = "USBtinyISP", portPath: String = "1-2") {
        super.init(chip: chip, description: USBDeviceDescription(
            vendorID: 0x1781, productID: 0x0C9F, manufacturer: "LadyAda", product: product,
            deviceRelease: 0x0104, busNumber: 1, deviceAddress: 5, portPath: portPath))
    }

    private var sckHertz: Double { 1_000_000 / Double(max(1, sckPeriodMicroseconds)) }

    public override func controlIn(request: UInt8, value: UInt16, index: UInt16, length: Int, timeoutMilliseconds: Int) throws(USBError) -> [UInt8] {
        try link.begin(request, timeoutMilliseconds: timeoutMilliseconds)
        var reply: [UInt8] = []
        switch request {
        case 0: reply = [0, 0, UInt8(value & 0xFF), UInt8(value >> 8), UInt8(index & 0xFF), UInt8(index >> 8), 0, 0]
        case 5:   // POWERUP: SCK period, RESET level
            sckPeriodMicroseconds = Int(value & 0xFF)
            chip.setReset(held: index == 0)
        case 6: chip.setReset(held: false)
        case 7: reply = spi([UInt8(value & 0xFF), UInt8(value >> 8), UInt8(index & 0xFF), UInt8(index >> 8)])
        case 8:
            poll1 = UInt8(value & 0xFF)
            poll2 = UInt8(value >> 8)
        case 9, 11:   // FLASH_READ, EEPROM_READ from a 16-bit address
            var address = index
            for _ in 0..<length {
                reply.append(spi(readInstruction(eeprom: request == 11, address: address))[3])
                address &+= 1
            }
        default: break
        }
        reply = Array(reply.prefix(length))
        link.finish(dataBytes: reply.count)
        return reply
    }

    public override func controlOut(request: UInt8, value: UInt16, index: UInt16, data: [UInt8], timeoutMilliseconds: Int) throws(USBError) -> Int {
        try link.begin(request, timeoutMilliseconds: timeoutMilliseconds)
        if request == 10 {
            try link.flashWrite(timeoutMilliseconds: timeoutMilliseconds)
        }
        if request == 10 || request == 12 {
            let eeprom = request == 12
            let timeout = Double(value)
            var address = index
            for byte in data {
                var write = readInstruction(eeprom: eeprom, address: address)
                write[0] = eeprom ? 0xC0 : (0x40 | write[0] & 0x08)
                write[3] = byte
                _ = spi(write)
                // With a timeout, poll the byte until it reads back as written.
                var waited = 0.0
                while waited < timeout {
                    let r = spi(readInstruction(eeprom: eeprom, address: address))[3]
                    if r == byte && r != poll1 && r != poll2 { break }
                    waited += 32 * Double(sckPeriodMicroseconds)
                }
                address &+= 1
            }
        }
        link.finish(dataBytes: data.count)
        return data.count
    }

    private func spi(_ bytes: [UInt8]) -> [UInt8] { chip.exchange(bytes, sckHertz: sckHertz) }

    /// The firmware's read instruction for a 16-bit address (EEPROM addresses are not split into words).
    private func readInstruction(eeprom: Bool, address: UInt16) -> [UInt8] {
        if eeprom { return [0xA0, UInt8(address >> 8), UInt8(address & 0xFF), 0] }
        return [0x20 | UInt8(address & 1) << 3, UInt8(address >> 9), UInt8(address >> 1 & 0xFF), 0]
    }
}
