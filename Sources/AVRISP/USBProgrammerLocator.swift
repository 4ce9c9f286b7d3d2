import BenchModel
import Transport

/// Why no USB programmer could be opened.
public enum LocatorError: Error, Sendable, CustomStringConvertible {
    case noneFound(kind: ProgrammerKind?, port: String?, bootloaders: [String])
    case several([String])
    case usb(USBError)
    case notUSB(ProgrammerKind)

    public var description: String {
        switch self {
        case let .noneFound(kind, port, bootloaders):
            var text = "no \(kind.map(\.description) ?? "USBasp or USBtinyISP") programmer is plugged in"
            if let port { text += " at USB port \(port)" }
            if !bootloaders.isEmpty {
                text += "; left alone: " + bootloaders.joined(separator: ", ") + " (a USBaspLoader bootloader is a board waiting to be flashed, not a programmer)"
            }
            return text
        case let .several(found):
            return "several programmers are plugged in (\(found.joined(separator: "; "))); choose one with --port"
        case let .usb(error):
            return error.description
        case let .notUSB(kind):
            return "\(kind) is not a USB ISP programmer; give its serial port with --port"
        }
    }
}

/// Finds USBasp and USBtinyISP programmers on the bus with libusb and opens the driver for one.
public struct USBProgrammerLocator {
    private let context: USBContext

    public init(context: USBContext) { self.context = context }

    /// Opens the one programmer of `kind` (any USB ISP kind if nil), at `port` (a USB port path such as
    /// "1-2.3") if given.
    public func open(kind: ProgrammerKind?, port: String?, time: TimeSource) throws(LocatorError) -> ISPProgrammer {
        if let kind, kind != .usbasp, kind != .usbtiny { throw .notUSB(kind) }
        let wanted: [(UInt16, UInt16)] = [(USBasp.vendorID, USBasp.productID), (USBtinyISP.vendorID, USBtinyISP.productID)]
        var opened: [LibUSBDevice] = []
        var bootloaders: [String] = []
        do {
            try context.withDevices(matching: { vid, pid in wanted.contains { $0 == (vid, pid) } }) { candidates in
                for candidate in candidates where port == nil || candidate.portPath == port {
                    let device = try context.open(candidate)
                    let d = device.description
                    if USBasp.isUSBaspLoader(d) { bootloaders.append("\(d)"); device.close(); continue }
                    let isUSBasp = USBasp.isProgrammer(d), isTiny = USBtinyISP.isProgrammer(d)
                    if (kind == nil && (isUSBasp || isTiny)) || (kind == .usbasp && isUSBasp) || (kind == .usbtiny && isTiny) {
                        opened.append(device)
                    } else {
                        device.close()
                    }
                }
            }
        } catch let error as USBError {
            throw .usb(error)
        } catch {
            throw .usb(.other("\(error)"))
        }
        guard let device = opened.first else { throw .noneFound(kind: kind, port: port, bootloaders: bootloaders) }
        guard opened.count == 1 else {
            let names = opened.map { "\($0.description)" }
            opened.forEach { $0.close() }
            throw .several(names)
        }
        do {
            if USBasp.isProgrammer(device.description) { return try USBasp(device: device, time: time) }
            return try USBtinyISP(device: device, time: time)
        } catch {
            throw .usb(.other(error.description))
        }
    }
}
