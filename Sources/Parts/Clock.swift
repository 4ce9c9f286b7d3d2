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
    /// A clock signal fed into XTAL1.
    case externalClock = "external-clock"
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
        case .reserved: return "reserved CKSEL value"
        }
    }
}

/// The clock a low fuse byte selects.
public struct ClockSetting: Hashable, Sendable, CustomStringConvertible {
    public let source: ClockSource
    /// A finer description: "low-power crystal oscillator, 8–16 MHz".
    public let detail: String
    /// CKSEL3..0.
    public let cksel: UInt8
    /// SUT1..0.
    public let sut: UInt8
    /// CKDIV8 programmed; nil on parts without it.
    public let dividedBy8: Bool?

    public var description: String {
        var text = "\(detail) (CKSEL=\(bits(cksel, 4)), SUT=\(bits(sut, 2)))"
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
    /// The clock `low` selects on this part.
    public func clock(low: UInt8) -> ClockSetting {
        let cksel = low & 0x0F, sut = (low >> 4) & 0x03
        let divided: Bool? = clockFamily == .mega32 ? nil : (low & 0x80 == 0)
        let (source, detail) = Self.decodeCKSEL(cksel, family: clockFamily)
        return ClockSetting(source: source, detail: detail, cksel: cksel, sut: sut, dividedBy8: divided)
    }

    private static func decodeCKSEL(_ cksel: UInt8, family: ClockFamily) -> (ClockSource, String) {
        switch family {
        case .usbMega, .mega328:
            switch cksel {
            case 0x8...0xF:
                let ranges = ["0.4–0.9 MHz (ceramic resonator only)", "0.9–3 MHz", "3–8 MHz", "8–16 MHz"]
                return (.crystal, "low-power crystal oscillator, " + ranges[Int(cksel >> 1) - 4])
            case 0x6, 0x7:
                return family == .mega328 ? (.crystal, "full-swing crystal oscillator, 0.4–20 MHz") : (.reserved, "reserved")
            case 0x4, 0x5: return (.lowFrequencyCrystal, "low-frequency crystal oscillator, 32.768 kHz")
            case 0x3: return family == .mega328 ? (.internal128kHz, "internal 128 kHz oscillator") : (.reserved, "reserved")
            case 0x2: return (.internalRC, "calibrated internal RC oscillator, 8 MHz")
            case 0x0: return (.externalClock, "external clock on XTAL1")
            default: return (.reserved, "reserved")
            }
        case .mega32:
            switch cksel {
            case 0xA...0xF:
                let ranges = ["0.4–0.9 MHz", "0.9–3 MHz", "3–8 MHz (up to 16 MHz with CKOPT programmed)"]
                return (.crystal, "external crystal or resonator, " + ranges[Int(cksel >> 1) - 5])
            case 0x9: return (.lowFrequencyCrystal, "external low-frequency crystal, 32.768 kHz")
            case 0x5...0x8: return (.externalRC, "external RC oscillator")
            case 0x1...0x4: return (.internalRC, "calibrated internal RC oscillator, \([1, 2, 4, 8][Int(cksel) - 1]) MHz")
            default: return (.externalClock, "external clock on XTAL1")
            }
        }
    }
}
