@_exported import BenchModel

/// What bootmedic does with a USB device it sees on the bench.
public enum DeviceRole: Sendable, Hashable {
    /// An ISP or SWD programmer, opened over libusb by its kind's driver.
    case programmer(ProgrammerKind)
    /// A USB-serial device that may carry one of these programmer firmwares: a harmless probe of its tty
    /// decides, and nothing else is ever sent to it.
    case serialCandidate([ProgrammerKind])
    /// A board waiting in its bootloader: the ISP side never opens it; a rule may flash it through it.
    case bootloader(BootloaderKind)
    /// Never opened, never probed.
    case ignore

    /// The programmer kind, for a programmer driven over USB.
    public var programmerKind: ProgrammerKind? {
        if case let .programmer(kind) = self { return kind }
        return nil
    }

    /// The words a rules file and `bootmedic devices` use for the role.
    public var label: String {
        switch self {
        case let .programmer(kind): return kind.rawValue
        case let .serialCandidate(kinds): return "probe:" + kinds.map(\.rawValue).joined(separator: ",")
        case .bootloader: return "leave-alone"
        case .ignore: return "ignore"
        }
    }
}

/// One line of the device catalog: USB ids (and, where ids are shared, the product string) and what
/// they mean on a bench.
public struct DeviceEntry: Sendable, Hashable {
    public var usb: USBID
    /// If set, the USB product string must equal this exactly (V-USB ids are shared by many devices).
    public var product: String?
    public var role: DeviceRole
    /// What the device is, for people: "USBasp", "ST-Link/V2", "Arduino Uno (ATmega16U2)".
    public var name: String
    /// Whether a workshop's `[[programmer]]` entry put it there (rather than the built-in table).
    public var declared: Bool
    /// For a board running a sketch on a Caterina-style bootloader: the ids that bootloader enumerates
    /// with after the 1200-baud touch (2341:8036, a Leonardo's sketch, comes back as 2341:0036).
    public var bootloaderAfterTouch: USBID?

    public init(_ usb: USBID, product: String? = nil, _ role: DeviceRole, _ name: String, declared: Bool = false,
                bootloaderAfterTouch: USBID? = nil) {
        self.usb = usb
        self.product = product
        self.role = role
        self.name = name
        self.declared = declared
        self.bootloaderAfterTouch = bootloaderAfterTouch
    }

    /// Whether a device with these ids and product string is this entry.
    public func matches(_ usb: USBID, product: String?) -> Bool {
        self.usb == usb && (self.product == nil || self.product == product)
    }
}

/// Every USB device a bench may see, as data (fwupd's quirks play this part there): programmers,
/// USB-serial adapters that may carry programmer firmware, and boards in their bootloaders. The first
/// matching entry wins, as in udev; a workshop's own entries go in front. The agent, the command line's
/// programmer search and the udev rules all read their verdicts from here, and drivers trust them.
public struct DeviceCatalog: Sendable {
    public var entries: [DeviceEntry]

    public init(entries: [DeviceEntry]) { self.entries = entries }

    /// The built-in table with `declared` entries (a rules file's `[[programmer]]`) in front.
    public static func standard(with declared: [DeviceEntry] = []) -> DeviceCatalog {
        DeviceCatalog(entries: declared + builtIn.entries)
    }

    /// The entry that decides what a device with these ids and product string is, if any.
    public func entry(for usb: USBID, product: String?) -> DeviceEntry? {
        entries.first { $0.matches(usb, product: product) }
    }

    /// Whether any entry for these ids names a programmer that is driven over USB: the devices worth
    /// opening when looking for a programmer on the bus.
    public func mayBeUSBProgrammer(_ usb: USBID) -> Bool {
        entries.contains { $0.usb == usb && $0.role.programmerKind != nil }
    }
}
