/// The udev rules file that gives the service and the person at the seat access to the catalog's
/// programmers, tags each with its kind, and keeps ModemManager off the serial devices that may carry
/// programmer firmware. Generated, never edited: `bootmedic devices udev-rules` writes it, the shipped
/// `udev-rules/60-bootmedic.rules` is this function's output for the built-in catalog (a test holds
/// them equal), and a workshop's `[[programmer]]` entries come out in front.
public enum UdevRules {
    public static func render(_ catalog: DeviceCatalog) -> String {
        var out = """
        # bootmedic: give the bootmedic group (the service) and the person at the seat access to ISP and SWD
        # programmers and to the bootloaders it flashes through, tag each with its kind so `udevadm info` and
        # the agent show it, and keep ModemManager off the serial devices that may carry programmer firmware
        # or a Caterina bootloader (its AT probes break an STK500 sync and AVR109).
        # Generated from bootmedic's device catalog by `bootmedic devices udev-rules`; do not edit. The first
        # matching line wins, as in the catalog: a line that only jumps to the end shadows the lines after it.

        SUBSYSTEM!="usb", GOTO="bootmedic_usb_end"
        ENV{DEVTYPE}!="usb_device", GOTO="bootmedic_usb_end"


        """
        let entries = relevant(catalog.entries)
        for entry in entries {
            out += "# \(entry.name)\(entry.declared ? " (declared in the rules file)" : "")\n"
            let match = "ATTR{idVendor}==\"\(hex(entry.usb.vendor))\", ATTR{idProduct}==\"\(hex(entry.usb.product))\""
                + (entry.product.map { ", ATTR{product}==\"\($0)\"" } ?? "")
            switch entry.role {
            case let .programmer(kind):
                out += "\(match), ENV{BOOTMEDIC_PROGRAMMER}=\"\(kind.rawValue)\", GOTO=\"bootmedic_access\"\n"
            case .serialCandidate:
                out += "\(match), ENV{ID_MM_DEVICE_IGNORE}=\"1\", GOTO=\"bootmedic_usb_end\"\n"
            case let .bootloader(kind) where BootloaderKind.flashable.contains(kind):
                // The service flashes through it; ModemManager's AT probes would break a Caterina's AVR109.
                out += "\(match), ENV{BOOTMEDIC_BOOTLOADER}=\"\(kind.rawValue)\", ENV{ID_MM_DEVICE_IGNORE}=\"1\", GOTO=\"bootmedic_access\"\n"
            case .bootloader, .ignore:
                out += "\(match), GOTO=\"bootmedic_usb_end\"\n"
            }
        }
        out += """

        GOTO="bootmedic_usb_end"
        LABEL="bootmedic_access"
        MODE="0660", GROUP="bootmedic", TAG+="uaccess", TAG+="bootmedic"
        LABEL="bootmedic_usb_end"

        # The serial ports of USB-serial devices that may carry programmer firmware (Arduino as ISP, Pro
        # Micro/Teensy ISP firmware, Bus Pirate): the service reaches them through the dialout group and
        # probes them before use; ModemManager must leave them alone.
        SUBSYSTEM!="tty", GOTO="bootmedic_end"


        """
        for (index, entry) in entries.enumerated() {
            let match = "SUBSYSTEMS==\"usb\", ATTRS{idVendor}==\"\(hex(entry.usb.vendor))\", ATTRS{idProduct}==\"\(hex(entry.usb.product))\""
                + (entry.product.map { ", ATTRS{product}==\"\($0)\"" } ?? "")
            switch entry.role {
            case .serialCandidate:
                out += "\(match), ENV{ID_MM_DEVICE_IGNORE}=\"1\", GOTO=\"bootmedic_end\"\n"
            case let .bootloader(kind) where kind.isSerial && BootloaderKind.flashable.contains(kind):
                out += "\(match), ENV{ID_MM_DEVICE_IGNORE}=\"1\", GOTO=\"bootmedic_end\"\n"
            case .programmer, .bootloader, .ignore:
                if shadows(index, in: entries, where: isSerialCandidate) { out += "\(match), GOTO=\"bootmedic_end\"\n" }
            }
        }
        out += "\nLABEL=\"bootmedic_end\"\n"
        return out
    }

    /// The entries that change what udev does: every programmer and serial candidate, every bootloader
    /// bootmedic flashes through, and another bootloader or an ignored device only where it shadows one
    /// of those further down (the USBaspLoader under the
    /// USBasp's ids; a workshop's `ignore` of an adapter the built-in table would probe).
    static func relevant(_ entries: [DeviceEntry]) -> [DeviceEntry] {
        entries.indices.filter { index in
            actsOnDevice(entries[index]) || shadows(index, in: entries, where: actsOnDevice)
        }.map { entries[$0] }
    }

    /// Whether a later entry that `wanted` picks has the ids of the entry at `index`, and would match
    /// whatever that entry matches.
    private static func shadows(_ index: Int, in entries: [DeviceEntry], where wanted: (DeviceEntry) -> Bool) -> Bool {
        let entry = entries[index]
        return entries[(index + 1)...].contains { later in
            later.usb == entry.usb && (entry.product == nil || later.product == entry.product) && wanted(later)
        }
    }

    private static func actsOnDevice(_ entry: DeviceEntry) -> Bool {
        switch entry.role {
        case .programmer, .serialCandidate: return true
        case let .bootloader(kind): return BootloaderKind.flashable.contains(kind)
        case .ignore: return false
        }
    }

    private static func isSerialCandidate(_ entry: DeviceEntry) -> Bool {
        if case .serialCandidate = entry.role { return true }
        return false
    }

    private static func hex(_ value: UInt16) -> String {
        let digits = String(value, radix: 16)
        return String(repeating: "0", count: 4 - digits.count) + digits
    }
}
