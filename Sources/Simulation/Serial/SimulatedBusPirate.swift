/// A Bus Pirate v3 with firmware 6.x: its text console, the raw bitbang binary mode entered with twenty
/// 0x00 bytes ("BBIO1"), the binary SPI mode ("SPI1") with peripheral, speed and SPI configuration,
/// bulk transfers, write-then-read without chip select, the AVR extended commands (bulk flash read),
/// and the 0x0F reset back to the console. CS drives the target's RESET (low = held in reset), and
/// the power supplies feed the target.
public final class SimulatedBusPirate: SerialProgrammerSimulator {
    public let chip: SimulatedAVR

    enum Mode { case console, bitbang, spi }
    private var mode = Mode.console
    private var zeros = 0
    private var input: [UInt8] = []
    /// A command byte already acknowledged whose arguments are still arriving (bulk transfer, AVR commands).
    private var awaiting: UInt8?
    /// SPI speeds of the `0b01100xxx` command.
    static let speeds: [Double] = [30_000, 125_000, 250_000, 1_000_000, 2_000_000, 2_600_000, 4_000_000, 8_000_000]
    public private(set) var sckHertz: Double = 30_000
    public private(set) var poweredOn = false
    /// Whether the console is usable again (the host left binary mode properly).
    public var isAtConsole: Bool { mode == .console }

    static let banner = Array("Bus Pirate v3.5\r\nFirmware v6.1 r1676  Bootloader v4.4\r\nDEVID:0x0447 REVID:0x3046 (24FJ64GA002 B8)\r\nhttp://dangerousprototypes.com\r\nHiZ>".utf8)

    /// The target is wired to the Bus Pirate's supply pins, so it starts unpowered.
    public init(chip: SimulatedAVR) {
        self.chip = chip
        chip.isPowered = false
    }

    public func receive(_ bytes: [UInt8]) -> [UInt8] {
        input += bytes
        var out: [UInt8] = []
        while let (consumed, reply) = step() {
            input.removeFirst(consumed)
            out += reply
        }
        return out
    }

    private func step() -> (Int, [UInt8])? {
        guard let c = input.first else { return nil }
        switch mode {
        case .console:
            if c == 0x00 {
                zeros += 1
                if zeros == 20 { zeros = 0; mode = .bitbang; return (1, Array("BBIO1".utf8)) }
                return (1, [])
            }
            zeros = 0
            if c == UInt8(ascii: "#") { return (1, Array("#\r\nRESET\r\n\r\n".utf8) + Self.banner) }
            if c == UInt8(ascii: "\n") || c == UInt8(ascii: "\r") { return (1, Array("\r\nHiZ>".utf8)) }
            return (1, [c])   // console echo
        case .bitbang:
            switch c {
            case 0x00: return (1, Array("BBIO1".utf8))
            case 0x01: mode = .spi; return (1, Array("SPI1".utf8))
            case 0x0F:
                mode = .console
                setPower(false)
                return (1, [0x01] + Self.banner)
            default:
                if c & 0x80 != 0 { setPower(c & 0x40 != 0); chip.setReset(held: c & 0x01 == 0 && poweredOn); return (1, [c & 0x7F]) }
                return (1, [0x01])   // pin directions: answers the pin states (CS idles high)
            }
        case .spi:
            switch c {
            case 0x00: mode = .bitbang; return (1, Array("BBIO1".utf8))
            case 0x01: return (1, Array("SPI1".utf8))
            case 0x02: chip.setReset(held: poweredOn); return (1, [0x01])           // CS low
            case 0x03: chip.setReset(held: false); return (1, [0x01])               // CS high
            case 0x05, 0x04:                                                        // write then read
                guard input.count >= 5 else { return nil }
                let writeCount = Int(input[1]) << 8 | Int(input[2])
                let readCount = Int(input[3]) << 8 | Int(input[4])
                guard writeCount <= 4096, readCount <= 4096 else { return (5, [0x00]) }
                guard input.count >= 5 + writeCount else { return nil }
                let data = Array(input[5..<5 + writeCount])
                var out: [UInt8] = []
                // SPI here runs in four-byte instructions, which is all an AVR takes.
                for i in stride(from: 0, to: data.count - data.count % 4, by: 4) { _ = chip.exchange(Array(data[i..<i + 4]), sckHertz: sckHertz) }
                for _ in 0..<readCount / 4 { out += chip.exchange([0, 0, 0, 0], sckHertz: sckHertz) }
                return (5 + writeCount, [0x01] + out)
            case 0x06:
                // AVR extended commands: the command byte is acknowledged at once, its sub-command follows.
                if awaiting == nil { awaiting = 0x06; return (0, [0x01]) }
                return avrExtendedCommand()
            default:
                if c & 0xF0 == 0x10 {                                               // bulk transfer, 1–16 bytes
                    // Acknowledged at once; the bytes shifted out come back once all have arrived.
                    if awaiting == nil { awaiting = c; return (0, [0x01]) }
                    let n = Int(c & 0x0F) + 1
                    guard input.count >= 1 + n else { return nil }
                    awaiting = nil
                    let data = Array(input[1...n])
                    var out: [UInt8] = []
                    for i in stride(from: 0, to: n - n % 4, by: 4) { out += chip.exchange(Array(data[i..<i + 4]), sckHertz: sckHertz) }
                    out += [UInt8](repeating: 0xFF, count: n % 4)
                    return (1 + n, out)
                }
                if c & 0xF0 == 0x40 {                                               // peripherals: power, pull-ups, AUX, CS
                    setPower(c & 0x08 != 0)
                    chip.setReset(held: c & 0x01 == 0 && poweredOn)
                    return (1, [0x01])
                }
                if c & 0xF8 == 0x60 { sckHertz = Self.speeds[Int(c & 0x07)]; return (1, [0x01]) }
                if c & 0xF0 == 0x80 { return (1, [0x01]) }                          // SPI configuration
                return (1, [0x00])
            }
        }
    }

    /// The sub-commands after 0x06 (the first input byte is still the acknowledged 0x06).
    private func avrExtendedCommand() -> (Int, [UInt8])? {
        guard input.count >= 2 else { return nil }
        switch input[1] {
        case 0x00:
            awaiting = nil
            return (2, [0x01])
        case 0x01:
            awaiting = nil
            return (2, [0x01, 0x00, 0x01])   // version 1
        case 0x02:                           // bulk flash read: word address, byte count (32-bit, big-endian)
            guard input.count >= 10 else { return nil }
            awaiting = nil
            let word = input[2..<6].reduce(0) { $0 << 8 | Int($1) }
            let count = input[6..<10].reduce(0) { $0 << 8 | Int($1) }
            var data: [UInt8] = []
            for i in 0..<count {
                let byteAddress = word * 2 + i
                let w = byteAddress >> 1
                data.append(chip.exchange([byteAddress & 1 == 0 ? 0x20 : 0x28, UInt8(w >> 8 & 0xFF), UInt8(w & 0xFF), 0], sckHertz: sckHertz)[3])
            }
            return (10, [0x01] + data)
        default:
            awaiting = nil
            return (2, [0x00])
        }
    }

    private func setPower(_ on: Bool) {
        poweredOn = on
        chip.isPowered = on
        if !on { chip.setReset(held: false) }
    }
}
