import AVRISP
import DeviceCatalog
import DeviceTrace
import STLink
import Transport

/// Why a programmer could not be opened.
public enum ProgrammerOpenError: Error, Sendable, CustomStringConvertible {
    case isp(ISPError)
    case usb(USBError, operation: String)
    /// The kind is reached another way (a serial kind over USB, or the other way round).
    case wrongLink(ProgrammerKind, String)

    public var description: String {
        switch self {
        case let .isp(error): return error.description
        case let .usb(error, operation): return "\(error) while \(operation)"
        case let .wrongLink(_, text): return text
        }
    }
}

/// How one kind of programmer is reached, opened and recognised. Adding a kind adds its driver, its
/// simulator and one entry in ``ProgrammerRegistry``.
public struct ProgrammerDriver: Sendable {
    public enum Link: Sendable {
        /// A USB device driven through libusb; `claimInterface` is claimed first (bulk endpoints).
        case usb(claimInterface: Int32?, open: @Sendable (USBDevice, TimeSource) -> ProgrammerConnection)
        /// A serial port: `openPort` opens it as the firmware needs, `make` drives a line, `probe` is the
        /// harmless check that the firmware answers there.
        case serial(defaultBaudRate: Int, openPort: @Sendable (String, Int) throws(ISPError) -> SerialLink,
                    make: @Sendable (SerialLink, TimeSource) -> ProgrammerConnection, probe: @Sendable (String, TimeSource) -> Bool)
    }

    public let kind: ProgrammerKind
    public let link: Link

    public var isSerial: Bool {
        if case .serial = link { return true }
        return false
    }

    /// Opens the driver around a USB device the device catalog says is of this kind.
    public func open(usb device: USBDevice, time: TimeSource) throws(ProgrammerOpenError) -> ProgrammerConnection {
        guard case let .usb(interface, open) = link else {
            throw .wrongLink(kind, "\(kind) is a serial programmer: give its device with --port /dev/ttyACM0")
        }
        if let interface {
            do { try device.claimInterface(interface) } catch { throw .usb(error, operation: "claiming the \(kind)'s interface") }
        }
        return open(device, time)
    }

    /// Opens the driver on the serial port at `path`; with `trace`, everything that crosses the line is
    /// recorded there.
    public func open(serialPath path: String, baudRate: Int? = nil, time: TimeSource, trace: TraceRecorder? = nil) throws(ProgrammerOpenError) -> ProgrammerConnection {
        guard case let .serial(defaultBaudRate, openPort, make, _) = link else {
            throw .wrongLink(kind, "\(kind) is a USB programmer; it is found on USB, without --port /dev/…")
        }
        let port: SerialLink
        do { port = try openPort(path, baudRate ?? defaultBaudRate) } catch { throw .isp(error) }
        return make(trace?.recording(port, label: kind.rawValue) ?? port, time)
    }

    /// Drives a line that is already open (a replayed one).
    public func open(serialLink: SerialLink, time: TimeSource) throws(ProgrammerOpenError) -> ProgrammerConnection {
        guard case let .serial(_, _, make, _) = link else { throw .wrongLink(kind, "\(kind) is a USB programmer, not a serial one") }
        return make(serialLink, time)
    }
}

/// Every programmer kind bootmedic drives, and how (the behaviour beside the device catalog's data).
public enum ProgrammerRegistry {
    public static let drivers: [ProgrammerDriver] = [
        ProgrammerDriver(kind: .usbasp, link: .usb(claimInterface: nil) { .isp(USBasp(device: $0, time: $1)) }),
        ProgrammerDriver(kind: .usbtiny, link: .usb(claimInterface: nil) { .isp(USBtinyISP(device: $0, time: $1)) }),
        ProgrammerDriver(kind: .stlink, link: .usb(claimInterface: 0) { .swd(STLink(device: $0, time: $1)) }),
        ProgrammerDriver(kind: .stk500v1, link: .serial(
            defaultBaudRate: STK500v1.defaultBaudRate,
            openPort: { (path, baud) throws(ISPError) in try STK500v1.openPort(path: path, baudRate: baud) },
            make: { .isp(STK500v1(link: $0, flavor: .arduinoISP, time: $1)) },
            probe: { path, _ in STK500v1.answersProbe(at: path, flavor: .arduinoISP) })),
        ProgrammerDriver(kind: .avrisp, link: .serial(
            defaultBaudRate: STK500v1.defaultBaudRate,
            openPort: { (path, baud) throws(ISPError) in try STK500v1.openPort(path: path, baudRate: baud) },
            make: { .isp(STK500v1(link: $0, flavor: .avrisp, time: $1)) },
            probe: { path, _ in STK500v1.answersProbe(at: path, flavor: .avrisp) })),
        ProgrammerDriver(kind: .buspirate, link: .serial(
            defaultBaudRate: BusPirate.defaultBaudRate,
            openPort: { (path, baud) throws(ISPError) in try BusPirate.openPort(path: path, baudRate: baud) },
            make: { .isp(BusPirate(link: $0, time: $1)) },
            probe: { path, time in BusPirate.answersProbe(at: path, time: time) })),
    ]

    /// The driver of `kind`.
    public static func driver(for kind: ProgrammerKind) -> ProgrammerDriver {
        guard let driver = drivers.first(where: { $0.kind == kind }) else { preconditionFailure("no driver registered for \(kind)") }
        return driver
    }

    /// Which of `candidates` answers its harmless probe on the serial port at `path`, trying them in
    /// order; nil when none does. Nothing but the probes is ever sent.
    public static func identifySerialProgrammer(at path: String, candidates: [ProgrammerKind], time: TimeSource) -> ProgrammerKind? {
        candidates.first { kind in
            guard case let .serial(_, _, _, probe) = driver(for: kind).link else { return false }
            return probe(path, time)
        }
    }
}
