/// The kind of clock the CKSEL fuses select, at the level a board design fixes it.
public enum ClockSource: String, Hashable, Sendable, Codable, CaseIterable, CustomStringConvertible {
    /// A crystal or ceramic resonator on XTAL1/XTAL2 (low-power or full-swing amplifier).
    case crystal
    /// A 32.768 kHz watch crystal.
    case lowFrequencyCrystal = "low-frequency-crystal"
    /// The calibrated internal RC oscillator.
    case internalRC = "internal-rc"
    /// The 128 kHz internal oscillator.
    case internal128kHz = "internal-128khz"
    /// An external RC network on XTAL1.
    case externalRC = "external-rc"
    /// A clock signal fed into XTAL1 (CLKI on the ATtinys).
    case externalClock = "external-clock"
    /// The PLL clock that multiplies the internal RC oscillator (ATtiny25/45/85: 16 MHz, Digispark boards).
    case pll
    /// A CKSEL value the datasheet reserves.
    case reserved

    public var description: String {
        switch self {
        case .crystal: return "crystal or resonator"
        case .lowFrequencyCrystal: return "low-frequency (32.768 kHz) crystal"
        case .internalRC: return "calibrated internal RC oscillator"
        case .internal128kHz: return "internal 128 kHz oscillator"
        case .externalRC: return "external RC oscillator"
        case .externalClock: return "external clock on XTAL1"
        case .pll: return "PLL clock"
        case .reserved: return "reserved CKSEL value"
        }
    }
}

/// The clock a low fuse byte selects.
public struct ClockSetting: Hashable, Sendable, CustomStringConvertible {
    public let source: ClockSource
    /// A finer description: "low-power crystal oscillator, 8–16 MHz".
    public let detail: String
    /// The CKSEL bits' value.
    public let cksel: UInt8
    /// The SUT bits' value.
    public let sut: UInt8
    /// CKDIV8 programmed; nil on parts without it.
    public let dividedBy8: Bool?
    /// The RC oscillator's frequency where the setting selects one, in hertz.
    public let internalHertz: Double?
    let ckselWidth: Int
    let sutWidth: Int

    public var description: String {
        var text = "\(detail) (CKSEL=\(bits(cksel, ckselWidth)), SUT=\(bits(sut, sutWidth)))"
        if let divided = dividedBy8 {
            text += divided ? ", divided by 8 at start-up (CKDIV8 programmed)" : ", not divided (CKDIV8 unprogrammed)"
        }
        return text
    }
}

func bits(_ value: UInt8, _ width: Int) -> String {
    let text = String(value, radix: 2)
    return String(repeating: "0", count: max(0, width - text.count)) + text
}

extension AVRPart {
    /// The clock `low` selects on this part; nil for a part without named fuse semantics.
    public func clock(low: UInt8) -> ClockSetting? {
        guard let family = clockFamily, let ckselField = field("CKSEL"), let sutField = field("SUT") else { return nil }
        let cksel = ckselField.value(in: low), sut = sutField.value(in: low)
        let divided = field("CKDIV8").map { $0.isProgrammed(in: low) }
        let (source, detail, hertz) = Self.decodeCKSEL(cksel, family: family)
        return ClockSetting(source: source, detail: detail, cksel: cksel, sut: sut, dividedBy8: divided, internalHertz: hertz,
                            ckselWidth: ckselField.mask.nonzeroBitCount, sutWidth: sutField.mask.nonzeroBitCount)
    }

    private static func decodeCKSEL(_ cksel: UInt8, family: ClockFamily) -> (ClockSource, String, Double?) {
        let reserved = (ClockSource.reserved, "reserved", Double?.none)
        let external = (ClockSource.externalClock, "external clock on CLKI", Double?.none)
        let crystalRanges = ["0.4–0.9 MHz (ceramic resonator only)", "0.9–3 MHz", "3–8 MHz", "8–16 MHz"]
        switch family {
        case .usbMega, .usbMegaU2, .mega328:
            switch cksel {
            case 0x8...0xF: return (.crystal, "low-power crystal oscillator, " + crystalRanges[Int(cksel >> 1) - 4], nil)
            case 0x6, 0x7: return family == .mega328 ? (.crystal, "full-swing crystal oscillator, 0.4–20 MHz", nil) : reserved
            case 0x4, 0x5: return family == .usbMegaU2 ? reserved : (.lowFrequencyCrystal, "low-frequency crystal oscillator, 32.768 kHz", nil)
            case 0x3: return family == .mega328 ? (.internal128kHz, "internal 128 kHz oscillator", 128_000) : reserved
            case 0x2: return (.internalRC, "calibrated internal RC oscillator, 8 MHz", 8e6)
            case 0x0: return (.externalClock, "external clock on XTAL1", nil)
            default: return reserved
            }
        case .mega32:
            switch cksel {
            case 0xA...0xF:
                let ranges = ["0.4–0.9 MHz", "0.9–3 MHz", "3–8 MHz (up to 16 MHz with CKOPT programmed)"]
                return (.crystal, "external crystal or resonator, " + ranges[Int(cksel >> 1) - 5], nil)
            case 0x9: return (.lowFrequencyCrystal, "external low-frequency crystal, 32.768 kHz", nil)
            case 0x5...0x8: return (.externalRC, "external RC oscillator", nil)
            case 0x1...0x4:
                let megahertz = [1, 2, 4, 8][Int(cksel) - 1]
                return (.internalRC, "calibrated internal RC oscillator, \(megahertz) MHz", Double(megahertz) * 1e6)
            default: return (.externalClock, "external clock on XTAL1", nil)
            }
        case .tiny13:
            switch cksel {
            case 0x0: return (.externalClock, "external clock on CLKI", nil)
            case 0x1: return (.internalRC, "calibrated internal RC oscillator, 4.8 MHz", 4.8e6)
            case 0x2: return (.internalRC, "calibrated internal RC oscillator, 9.6 MHz", 9.6e6)
            default: return (.internal128kHz, "internal 128 kHz oscillator", 128_000)
            }
        case .tiny85, .tiny84:
            switch cksel {
            case 0x8...0xF: return (.crystal, "crystal oscillator, " + crystalRanges[Int(cksel >> 1) - 4], nil)
            case 0x6: return (.lowFrequencyCrystal, "low-frequency crystal oscillator, 32.768 kHz", nil)
            case 0x4: return (.internal128kHz, "internal 128 kHz oscillator", 128_000)
            case 0x2: return (.internalRC, "calibrated internal RC oscillator, 8 MHz", 8e6)
            case 0x0: return external
            case 0x1 where family == .tiny85: return (.pll, "PLL clock from the internal RC oscillator, 16 MHz", 16e6)
            case 0x3 where family == .tiny85: return (.internalRC, "internal RC oscillator, 6.4 MHz (ATtiny15 compatibility mode)", 6.4e6)
            default: return reserved
            }
        case .tiny2313:
            switch cksel {
            case 0x8...0xF: return (.crystal, "crystal oscillator, " + crystalRanges[Int(cksel >> 1) - 4], nil)
            case 0x6: return (.internal128kHz, "internal 128 kHz oscillator", 128_000)
            // CKSEL0 only lengthens the start-up of the two RC settings.
            case 0x4, 0x5: return (.internalRC, "calibrated internal RC oscillator, 8 MHz", 8e6)
            case 0x2, 0x3: return (.internalRC, "calibrated internal RC oscillator, 4 MHz", 4e6)
            case 0x0: return external
            default: return reserved
            }
        }
    }
}
