import DeviceCatalog
import DeviceTrace
import Transport

/// Why no programmer could be opened.
public enum LocatorError: Error, Sendable, CustomStringConvertible {
    /// Nothing of the kinds asked for; `leftAlone` names the devices the catalog keeps away from (bootloaders).
    case noneFound(kinds: [ProgrammerKind], port: String?, leftAlone: [String])
    case several([String])
    case serialNeedsPort(ProgrammerKind)
    /// A serial port was named without saying which programmer is on it.
    case serialNeedsKind(String)
    case usb(USBError)
    case open(ProgrammerOpenError)

    public var description: String {
        switch self {
        case let .noneFound(kinds, port, leftAlone):
            var text = "no \(kinds.map(\.description).joined(separator: " or ")) programmer is plugged in"
            if let port { text += " at USB port \(port)" }
            if !leftAlone.isEmpty {
                text += "; left alone: " + leftAlone.joined(separator: ", ") + " (a board in its bootloader is waiting to be flashed, not a programmer)"
            }
            return text
        case let .several(found):
            return "several programmers are plugged in (\(found.joined(separator: "; "))); choose one with --port"
        case let .serialNeedsPort(kind):
            return "\(kind) is a serial programmer: give its device with --port /dev/ttyACM0"
        case let .serialNeedsKind(port):
            return "\(port) is a serial port: say which programmer is on it with --programmer stk500v1, avrisp or buspirate"
        case let .usb(error): return error.description
        case let .open(error): return error.description
        }
    }
}

/// Finds the one programmer a command line names — a serial one at its port, or a USB one on the bus,
/// classified by the device catalog — and opens its driver from the registry.
public struct ProgrammerLocator {
    public let catalog: DeviceCatalog

    public init(catalog: DeviceCatalog) { self.catalog = catalog }

    /// Opens the programmer of `kind` (any USB AVR programmer if nil) at `port`: a serial device path, or
    /// a USB port path such as "1-2.3".
    /// With `trace`, everything the programmer is sent and answers is recorded there.
    public func open(kind: ProgrammerKind?, port: String?, baudRate: Int? = nil, time: TimeSource,
                     trace: TraceRecorder? = nil) throws(LocatorError) -> ProgrammerConnection {
        if let kind, ProgrammerRegistry.driver(for: kind).isSerial {
            guard let port else { throw .serialNeedsPort(kind) }
            do { return try ProgrammerRegistry.driver(for: kind).open(serialPath: port, baudRate: baudRate, time: time, trace: trace) } catch { throw .open(error) }
        }
        if kind == nil, let port, port.hasPrefix("/dev/") { throw .serialNeedsKind(port) }
        let wanted = kind.map { [$0] } ?? ProgrammerRegistry.drivers.filter { !$0.isSerial && $0.kind.programsAVR }.map(\.kind)
        let context: USBContext
        do { context = try USBContext() } catch { throw .usb(error) }
        var opened: [(kind: ProgrammerKind, device: LibUSBDevice)] = []
        var leftAlone: [String] = []
        // A device that would not open (no access: udev's rules grant it to programmers only) is reported
        // only if no programmer turns up.
        var unopened: [USBError] = []
        do {
            try context.withDevices(matching: { catalog.mayBeUSBProgrammer(USBID(vendor: $0, product: $1)) }) { candidates in
                for candidate in candidates where port == nil || candidate.portPath == port {
                    let device: LibUSBDevice
                    do throws(USBError) { device = try context.open(candidate) } catch { unopened.append(error); continue }
                    let d = device.description
                    switch catalog.entry(for: USBID(vendor: d.vendorID, product: d.productID), product: d.product)?.role {
                    case let .programmer(found)? where wanted.contains(found):
                        opened.append((found, device))
                    case let .bootloader(name)?:
                        leftAlone.append("\(d) (\(name))")
                        device.close()
                    default:
                        device.close()
                    }
                }
            }
        } catch let error as USBError {
            throw .usb(error)
        } catch {
            throw .usb(.other("\(error)"))
        }
        if opened.isEmpty, let failure = unopened.first { throw .usb(failure) }
        guard let (found, device) = opened.first else { throw .noneFound(kinds: wanted, port: port, leftAlone: leftAlone) }
        guard opened.count == 1 else {
            let names = opened.map { "\($0.device.description)" }
            opened.forEach { $0.device.close() }
            throw .several(names)
        }
        let traced = trace.map { $0.recording(device) } ?? device
        do { return try ProgrammerRegistry.driver(for: found).open(usb: traced, time: time) } catch { throw .open(error) }
    }
}
