/// Why a USB transfer failed, in the terms a technician can act on.
public enum USBError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The device is gone: unplugged, or reset and re-enumerated.
    case noDevice
    /// The device did not answer within the timeout.
    case timeout(milliseconds: Int)
    /// The device stalled the request (it does not know it, or refused it).
    case stall(request: UInt8)
    /// The device node is not ours to open.
    case accessDenied(path: String)
    /// The device is claimed by another program or driver.
    case busy
    /// The device answered with fewer bytes than the protocol needs.
    case shortTransfer(expected: Int, actual: Int)
    /// Any other libusb failure, with its name.
    case other(String)

    public var description: String {
        switch self {
        case .noDevice: return "the USB device is gone (unplugged?)"
        case let .timeout(ms): return "the USB device did not answer within \(ms) ms"
        case let .stall(request): return "the USB device refused request \(request) (stall)"
        case let .accessDenied(path):
            return "permission denied on \(path): install bootmedic's udev rules (60-bootmedic.rules) or run as a member of the bootmedic group"
        case .busy: return "the USB device is in use by another program"
        case let .shortTransfer(expected, actual): return "the USB device sent \(actual) bytes where \(expected) were expected"
        case let .other(name): return "USB error \(name)"
        }
    }
}

/// What identifies a USB device on the bus.
public struct USBDeviceDescription: Hashable, Sendable, CustomStringConvertible {
    public var vendorID: UInt16
    public var productID: UInt16
    public var manufacturer: String?
    public var product: String?
    public var serialNumber: String?
    /// Firmware release from the device descriptor (bcdDevice).
    public var deviceRelease: UInt16
    public var busNumber: UInt8
    public var deviceAddress: UInt8
    /// Hub ports from the root, as udev's ID_PATH tail and `lsusb -t` show them ("1-2.3").
    public var portPath: String

    public init(vendorID: UInt16, productID: UInt16, manufacturer: String? = nil, product: String? = nil,
                serialNumber: String? = nil, deviceRelease: UInt16 = 0, busNumber: UInt8 = 0, deviceAddress: UInt8 = 0,
                portPath: String = "") {
        self.vendorID = vendorID
        self.productID = productID
        self.manufacturer = manufacturer
        self.product = product
        self.serialNumber = serialNumber
        self.deviceRelease = deviceRelease
        self.busNumber = busNumber
        self.deviceAddress = deviceAddress
        self.portPath = portPath
    }

    /// "16C0:05DC"
    public var ids: String { hex4(vendorID) + ":" + hex4(productID) }

    /// The usbfs node, "/dev/bus/usb/001/004".
    public var devicePath: String {
        func pad3(_ v: UInt8) -> String { let s = String(v); return String(repeating: "0", count: 3 - s.count) + s }
        return "/dev/bus/usb/\(pad3(busNumber))/\(pad3(deviceAddress))"
    }

    public var description: String {
        var text = ids
        if let product { text += " \"\(product)\"" }
        if let serialNumber { text += " serial \(serialNumber)" }
        if !portPath.isEmpty { text += " at \(portPath)" }
        return text
    }
}

func hex4(_ v: UInt16) -> String {
    let s = String(v, radix: 16, uppercase: true)
    return String(repeating: "0", count: 4 - s.count) + s
}

/// Which request space a control transfer addresses: bmRequestType's type and recipient (USB 2.0 §9.3.1).
/// Programmers speak vendor requests to the device; DFU and HID bootloaders class requests to an interface.
public struct USBControlTarget: Hashable, Sendable {
    public enum Kind: UInt8, Sendable { case standard = 0x00, `class` = 0x20, vendor = 0x40 }
    public enum Recipient: UInt8, Sendable { case device = 0, interface = 1, endpoint = 2 }

    public var kind: Kind
    public var recipient: Recipient

    public init(_ kind: Kind, to recipient: Recipient) {
        self.kind = kind
        self.recipient = recipient
    }

    public static let vendorDevice = USBControlTarget(.vendor, to: .device)
    public static let classInterface = USBControlTarget(.class, to: .interface)

    /// bmRequestType for a transfer whose data stage goes to the host (`deviceToHost`) or to the device.
    public func requestType(deviceToHost: Bool) -> UInt8 { (deviceToHost ? 0x80 : 0) | kind.rawValue | recipient.rawValue }

    /// The target a device-side setup packet addresses, if it is one of the three kinds.
    public init?(requestType: UInt8) {
        guard let kind = Kind(rawValue: requestType & 0x60), let recipient = Recipient(rawValue: requestType & 0x1F) else { return nil }
        self.init(kind, to: recipient)
    }
}

/// A USB device a driver talks to: a real one through libusb, or a simulated one speaking the same
/// requests. Only this seam differs between a bench and a rehearsal.
public protocol USBDevice: AnyObject {
    var description: USBDeviceDescription { get }

    /// A vendor control transfer to the device, data stage from device to host.
    func controlIn(request: UInt8, value: UInt16, index: UInt16, length: Int, timeoutMilliseconds: Int) throws(USBError) -> [UInt8]

    /// A vendor control transfer to the device, data stage from host to device. Returns the bytes sent.
    @discardableResult
    func controlOut(request: UInt8, value: UInt16, index: UInt16, data: [UInt8], timeoutMilliseconds: Int) throws(USBError) -> Int

    /// A bulk OUT transfer on `endpoint`.
    @discardableResult
    func bulkWrite(endpoint: UInt8, data: [UInt8], timeoutMilliseconds: Int) throws(USBError) -> Int

    /// A bulk IN transfer on `endpoint` of at most `length` bytes.
    func bulkRead(endpoint: UInt8, length: Int, timeoutMilliseconds: Int) throws(USBError) -> [UInt8]

    /// A control transfer to `target` (a class request to an interface, say), data stage to the host.
    func controlIn(to target: USBControlTarget, request: UInt8, value: UInt16, index: UInt16, length: Int, timeoutMilliseconds: Int) throws(USBError) -> [UInt8]

    /// A control transfer to `target`, data stage to the device. Returns the bytes sent.
    @discardableResult
    func controlOut(to target: USBControlTarget, request: UInt8, value: UInt16, index: UInt16, data: [UInt8], timeoutMilliseconds: Int) throws(USBError) -> Int

    /// Claims an interface before bulk transfers on it (`libusb_claim_interface` on a real device).
    func claimInterface(_ number: Int32) throws(USBError)

    /// Selects an alternate setting of a claimed interface (SET_INTERFACE).
    func selectAlternateSetting(_ setting: Int32, ofInterface number: Int32) throws(USBError)

    /// Resets the device's port (`libusb_reset_device`): a bootloader may take it as the end of a
    /// download and start the application; the device may then be gone.
    func resetDevice() throws(USBError)

    /// Releases the device; later calls fail with ``USBError/noDevice``.
    func close()
}

extension USBDevice {
    /// A simulated device has nothing to claim.
    public func claimInterface(_ number: Int32) throws(USBError) {}

    /// A device without alternate settings has only setting 0.
    public func selectAlternateSetting(_ setting: Int32, ofInterface number: Int32) throws(USBError) {
        guard setting == 0 else { throw .stall(request: 11) }
    }

    /// A device that cannot be reset.
    public func resetDevice() throws(USBError) { throw .other("this device cannot be reset") }

    /// A device that answers only vendor requests stalls every other kind.
    public func controlIn(to target: USBControlTarget, request: UInt8, value: UInt16, index: UInt16, length: Int, timeoutMilliseconds: Int) throws(USBError) -> [UInt8] {
        guard target == .vendorDevice else { throw .stall(request: request) }
        return try controlIn(request: request, value: value, index: index, length: length, timeoutMilliseconds: timeoutMilliseconds)
    }

    @discardableResult
    public func controlOut(to target: USBControlTarget, request: UInt8, value: UInt16, index: UInt16, data: [UInt8], timeoutMilliseconds: Int) throws(USBError) -> Int {
        guard target == .vendorDevice else { throw .stall(request: request) }
        return try controlOut(request: request, value: value, index: index, data: data, timeoutMilliseconds: timeoutMilliseconds)
    }
}
