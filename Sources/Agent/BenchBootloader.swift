import Bootloaders
import FoundationEssentials
import Recovery
import Rules
import Transport

/// A board waiting in its bootloader on the bench, as udev reported it, and how to open a session to it.
public struct BenchBootloader: Sendable {
    /// The udev syspath (the USB device's, or the tty's for a serial bootloader).
    public let id: String
    public let kind: BootloaderKind
    public let usb: USBID
    /// udev's ID_PATH: the board's USB socket.
    public let port: String?
    public let open: @Sendable () throws -> BootloaderSession

    public init(id: String, kind: BootloaderKind, usb: USBID, port: String?, open: @escaping @Sendable () throws -> BootloaderSession) {
        self.id = id
        self.kind = kind
        self.usb = usb
        self.port = port
        self.open = open
    }

    /// The bootloaders the agent flashes through, and the udev subsystem each one is reached on. Not
    /// USBaspLoader: a USBasp clone with its own product string looks the same, and driving a programmer
    /// as the loader would ISP-erase the board's bootloader; a person says which it is (`flash --bootloader`).
    static let subsystems: [BootloaderKind: String] = [.atmelDFU: "usb", .halfkay: "usb", .bootloadhid: "usb", .stm32DFU: "usb", .stm32duino: "usb", .caterina: "tty"]

    /// The bootloader udev reported: a USB one opened through libusb by bus and address, Caterina on its tty.
    public static func udev(_ device: UdevDevice, kind: BootloaderKind) -> BenchBootloader? {
        let usb = USBID(vendor: device.vendorID, product: device.productID)
        switch kind {
        case .caterina:
            guard let path = device.devnode else { return nil }
            return BenchBootloader(id: device.syspath, kind: kind, usb: usb, port: device.idPath) {
                AVR109Bootloader(line: try SerialPort(path: path, baudRate: 57600), time: SystemTimeSource(), kind: kind, serialNumber: device.serial, usb: usb)
            }
        default:
            return BenchBootloader(id: device.syspath, kind: kind, usb: usb, port: device.idPath) {
                let opened = try device.openUSB()
                guard let session = kind.session(on: opened, time: SystemTimeSource()) else {
                    opened.close()
                    throw USBError.other("bootmedic does not flash through \(kind.description)")
                }
                return session
            }
        }
    }

    /// Flashes the rule's application through the bootloader as job `job` (a new one, or the ISP restore's
    /// that made the bootloader), journalled under that job; `ruleName` pins the rule the restore used.
    func flash(job: String, ruleName: String?, rules: RuleSet, backups: BackupStore?, journal: JournalWriter,
               shouldStop: @escaping @Sendable () -> Bool) -> RecoveryResult? {
        var fields = ["BOOTMEDIC_JOB": job, "BOOTMEDIC_BOOTLOADER": kind.rawValue, "BOOTMEDIC_USB_ID": usb.description]
        if let port { fields["BOOTMEDIC_PORT"] = port }
        let session: BootloaderSession
        do { session = try open() } catch {
            journal.write(JournalEntry(.failed, "job \(job): the \(kind.description) bootloader at \(port ?? id) cannot be opened: \(error)", fields: fields))
            return nil
        }
        var identity = session.identity
        identity.port = port ?? identity.port
        let recovery = RecoveryJob(bootloader: session, rules: rules, ruleName: ruleName, backups: backups,
                                   sink: JobJournal(job: job, programmer: identity, writer: journal))
        recovery.jobID = job
        recovery.benchPort = port
        recovery.shouldStop = shouldStop
        return recovery.run()
    }
}

extension UdevDevice {
    /// The USB device udev reported, opened through libusb by its bus and address.
    func openUSB() throws -> LibUSBDevice {
        let context = try USBContext()
        let opened: LibUSBDevice? = try context.withDevices(matching: { $0 == vendorID && $1 == productID }) { candidates in
            guard let match = candidates.first(where: { $0.busNumber == busNumber && $0.deviceAddress == deviceAddress }) else { return nil }
            return try context.open(match)
        }
        guard let opened else { throw USBError.noDevice }
        return opened
    }
}
