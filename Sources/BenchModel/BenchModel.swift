// The shared vocabulary of a repair bench: what kinds of programmer exist and how USB ids are written.
// Rules, drivers and the agent all speak it, and show outside text in messages the same way; it knows nothing else.

/// The kinds of programmer bootmedic drives. The raw values are the names rules and the command line use
/// (avrdude's `-c` names, plus `stlink`).
public enum ProgrammerKind: String, CaseIterable, Sendable, Codable, CustomStringConvertible {
    case usbasp, usbtiny, stk500v1, avrisp, buspirate, stlink

    /// Whether the programmer speaks AVR ISP (all but the ST-Link).
    public var programsAVR: Bool { self != .stlink }

    /// Whether it is reached through a serial port (a tty) rather than libusb.
    public var isSerial: Bool { [.stk500v1, .avrisp, .buspirate].contains(self) }

    public var description: String {
        switch self {
        case .usbasp: return "USBasp"
        case .usbtiny: return "USBtinyISP"
        case .stk500v1: return "Arduino as ISP (STK500v1)"
        case .avrisp: return "AVRISP-compatible (STK500v1)"
        case .buspirate: return "Bus Pirate"
        case .stlink: return "ST-Link"
        }
    }

    /// The largest flash the programmer can address, if it has a limit: USBtinyISP carries 16-bit byte
    /// addresses, so it cannot reach past 64 KiB (the seed's AT90USB128 warning).
    public var flashAddressLimit: Int? { self == .usbtiny ? 0x10000 : nil }
}

/// The bootloaders a board may wait in, which bootmedic flashes an application through. The raw values
/// are the names `rehearse --bootloader` and the journal use.
public enum BootloaderKind: String, CaseIterable, Sendable, Codable, CustomStringConvertible {
    /// Atmel's (and LUFA's, QMK's) DFU bootloader with the FLIP commands, on the USB AVRs.
    case atmelDFU = "atmel-dfu"
    /// Arduino's Caterina on the 32U4 boards: AVR109 over USB CDC.
    case caterina
    /// PJRC's HalfKay on the Teensy: HID reports.
    case halfkay
    /// BootloadHID on V-USB boards: HID feature reports.
    case bootloadhid
    /// USBaspLoader on V-USB boards: the USBasp protocol.
    case usbasploader
    /// The STM32duino (Maple) DFU bootloader.
    case stm32duino
    /// The STM32 (and APM32) system bootloader: DfuSe.
    case stm32DFU = "stm32-dfu"

    public var description: String {
        switch self {
        case .atmelDFU: return "Atmel DFU"
        case .caterina: return "Caterina"
        case .halfkay: return "HalfKay"
        case .bootloadhid: return "BootloadHID"
        case .usbasploader: return "USBaspLoader"
        case .stm32duino: return "STM32duino (Maple DFU)"
        case .stm32DFU: return "STM32 DFU (DfuSe)"
        }
    }

    /// Whether it is reached through a serial port (a CDC ACM tty).
    public var isSerial: Bool { self == .caterina }

    /// Whether it runs on an STM32 (its files are raw binaries at flash addresses).
    public var isSTM32: Bool { self == .stm32duino || self == .stm32DFU }

    /// Whether the board comes back on the bus in this bootloader for a while after it was reset into
    /// its application (the STM32duino bootloader waits a second for DFU after every reset).
    public var comesBackAfterReset: Bool { self == .stm32duino }

    /// The bootloaders bootmedic flashes through (`flash`, the agent, the simulators).
    public static let flashable: [BootloaderKind] = [.caterina, .atmelDFU, .usbasploader, .halfkay, .bootloadhid, .stm32duino, .stm32DFU]
}

/// A USB vendor and product id, as `expect_usb = "1B4F:9205"` writes it.
public struct USBID: Hashable, Sendable, Codable, CustomStringConvertible {
    public let vendor: UInt16
    public let product: UInt16

    public init(vendor: UInt16, product: UInt16) {
        self.vendor = vendor
        self.product = product
    }

    /// Parses "VVVV:PPPP" (hex); nil for anything else.
    public init?(_ text: String) {
        let parts = text.split(separator: ":", omittingEmptySubsequences: false)
        guard parts.count == 2, parts.allSatisfy({ $0.count == 4 }),
              let v = UInt16(parts[0], radix: 16), let p = UInt16(parts[1], radix: 16) else { return nil }
        self.init(vendor: v, product: p)
    }

    public var description: String {
        func hex4(_ v: UInt16) -> String {
            let s = String(v, radix: 16, uppercase: true)
            return String(repeating: "0", count: 4 - s.count) + s
        }
        return "\(hex4(vendor)):\(hex4(product))"
    }
}


/// What a programmer says about itself, for `probe` and the journal.
public struct ProgrammerIdentity: Sendable, Hashable {
    /// The programmer's kind; nil when the board is programmed through its own bootloader.
    public var kind: ProgrammerKind?
    /// The bootloader the board is programmed through, when it is.
    public var bootloader: BootloaderKind?
    /// "USBasp", "USBtinyISP", …
    public var name: String
    public var firmware: String?
    public var serialNumber: String?
    /// udev's ID_PATH-like location, or the serial port.
    public var port: String?
    /// The USB ids a board's bootloader enumerates with (what a rule's `match.usb` names).
    public var usb: USBID?
    /// The SCK the target answered at, e.g. "375 kHz".
    public var sck: String?
    public var targetVoltage: Double?

    public init(kind: ProgrammerKind, name: String, firmware: String? = nil, serialNumber: String? = nil, port: String? = nil,
                sck: String? = nil, targetVoltage: Double? = nil) {
        self.init(name: name, firmware: firmware, serialNumber: serialNumber, port: port, sck: sck, targetVoltage: targetVoltage)
        self.kind = kind
    }

    /// A board's own bootloader, as the link a job programs through.
    public init(bootloader: BootloaderKind, name: String, firmware: String? = nil, serialNumber: String? = nil, port: String? = nil) {
        self.init(name: name, firmware: firmware, serialNumber: serialNumber, port: port, sck: nil, targetVoltage: nil)
        self.bootloader = bootloader
    }

    private init(name: String, firmware: String?, serialNumber: String?, port: String?, sck: String?, targetVoltage: Double?) {
        self.name = name
        self.firmware = firmware
        self.serialNumber = serialNumber
        self.port = port
        self.sck = sck
        self.targetVoltage = targetVoltage
    }

    /// The programmer kind's or the bootloader's name, as the journal's BOOTMEDIC_PROGRAMMER gives it.
    public var linkName: String { kind?.rawValue ?? bootloader?.rawValue ?? "unknown" }

    /// For people: "USBasp", "Caterina".
    public var linkDescription: String { kind?.description ?? bootloader?.description ?? name }
}

