import AVRISP
import Rules
import STLink
import Transport

/// Which USB devices are programmers, and of which kind: data, not code. A workshop can put its own
/// entries in front (a USBasp clone with other strings, say).
public struct ProgrammerCatalog: Sendable {
    public struct Entry: Sendable, Equatable {
        public var vendorID: UInt16
        public var productID: UInt16
        /// If set, the USB product string must equal this.
        public var product: String?
        /// nil: a device to leave alone (a bootloader that looks like a programmer).
        public var kind: ProgrammerKind?
        public var note: String

        public init(_ vendorID: UInt16, _ productID: UInt16, product: String? = nil, _ kind: ProgrammerKind?, _ note: String) {
            self.vendorID = vendorID
            self.productID = productID
            self.product = product
            self.kind = kind
            self.note = note
        }
    }

    public var entries: [Entry]

    public static let standard = ProgrammerCatalog(entries: [
        Entry(0x16C0, 0x05DC, product: "USBasp", .usbasp, "USBasp"),
        Entry(0x16C0, 0x05DC, nil, "USBaspLoader or another V-USB device sharing the USBasp ids: left alone"),
        Entry(0x1781, 0x0C9F, .usbtiny, "USBtinyISP / SparkFun PocketAVR"),
    ] + STLink.productIDs.sorted { $0.key < $1.key }.map { Entry(STLink.vendorID, $0.key, .stlink, $0.value) })

    /// The standard table with a workshop's `[[programmer]]` declarations in front.
    public static func standard(with declarations: [ProgrammerDeclaration]) -> ProgrammerCatalog {
        ProgrammerCatalog(entries: declarations.map {
            Entry($0.id.vendor, $0.id.product, product: $0.product, $0.kind, "declared in the config")
        } + standard.entries)
    }

    /// The first entry for `device`'s ids (and product string, where the entry names one).
    private func entry(for device: UdevDevice) -> Entry? {
        entries.first { entry in
            entry.vendorID == device.vendorID && entry.productID == device.productID
                && (entry.product == nil || entry.product == device.product)
        }
    }

    /// The kind of USB programmer `device` is, or nil (serial ports are the serial catalog's business).
    public func kind(of device: UdevDevice) -> ProgrammerKind? {
        guard device.subsystem == "usb", let kind = entry(for: device)?.kind, !kind.isSerial else { return nil }
        return kind
    }

    /// Whether an entry says to leave `device` alone: never opened, never probed.
    public func ignores(_ device: UdevDevice) -> Bool {
        guard let entry = entry(for: device) else { return false }
        return entry.kind == nil
    }

    /// For a USB serial port the config declares: the serial kind to probe for, instead of the
    /// serial catalog's guesses.
    public func declaredSerialKind(of device: UdevDevice) -> ProgrammerKind? {
        guard device.subsystem == "tty", let kind = entry(for: device)?.kind, kind.isSerial else { return nil }
        return kind
    }

    /// A bench programmer for a udev device, opened through libusb by its bus and address.
    public func programmer(for device: UdevDevice) -> BenchProgrammer? {
        guard let kind = kind(of: device) else { return nil }
        return BenchProgrammer(id: device.syspath, kind: kind, serial: device.serial, port: device.idPath) {
            let context = try USBContext()
            let opened: LibUSBDevice? = try context.withDevices(matching: { $0 == device.vendorID && $1 == device.productID }) { candidates in
                guard let match = candidates.first(where: { $0.busNumber == device.busNumber && $0.deviceAddress == device.deviceAddress }) else { return nil }
                return try context.open(match)
            }
            guard let usb = opened else { throw USBError.noDevice }
            if kind == .stlink {
                try usb.claimInterface(0)
                return .stlink(STLink(device: usb, time: SystemTimeSource()))
            }
            return .isp(try ProgrammerDrivers.open(kind, device: usb, time: SystemTimeSource()))
        }
    }
}

extension SerialProgrammerCatalog {
    /// For a USB serial port: the programmer the harmless probe finds on it, as a bench programmer, or nil.
    /// Nothing but the probe is ever sent to a port the catalog does not nominate.
    /// `declared`: the kind a `[[programmer]]` entry names for this adapter, probed instead of the catalog's guesses.
    public func programmer(for device: UdevDevice, declared: ProgrammerKind? = nil) -> BenchProgrammer? {
        guard device.subsystem == "tty", let path = device.devnode else { return nil }
        let info = SerialDeviceInfo(vendorID: device.vendorID, productID: device.productID, product: device.product, path: path)
        var candidates: [ProgrammerKind]
        if let declared {
            candidates = [declared]
        } else if case let .candidate(kinds) = recognize(info) {
            candidates = kinds
        } else {
            return nil
        }
        guard let kind = SerialProgrammerProbe.identify(path: path, candidates: candidates, time: SystemTimeSource()) else { return nil }
        return BenchProgrammer(id: device.syspath, kind: kind, serial: device.serial, port: device.idPath) {
            .isp(try ProgrammerDrivers.open(kind, serialPath: path, time: SystemTimeSource()))
        }
    }
}
