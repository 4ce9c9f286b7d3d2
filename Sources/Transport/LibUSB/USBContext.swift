import CLibUSB

/// A libusb context: enumerates devices and opens them. Owns `libusb_context`; nothing of libusb leaves
/// this folder.
public final class USBContext {
    private var context: OpaquePointer?

    /// `libusb_init`.
    public init() throws(USBError) {
        let result = libusb_init(&context)
        guard result == 0 else { throw USBError(libusbCode: result, path: "") }
    }

    deinit { libusb_exit(context) }

    /// A device found on the bus, not yet opened.
    public struct Candidate {
        public let vendorID: UInt16
        public let productID: UInt16
        public let busNumber: UInt8
        public let deviceAddress: UInt8
        public let portPath: String
        fileprivate let device: OpaquePointer
    }

    /// Every device on the bus whose ids satisfy `filter` (`libusb_get_device_list`). Candidates stay valid
    /// for `body` only.
    public func withDevices<T>(matching filter: (UInt16, UInt16) -> Bool, _ body: ([Candidate]) throws -> T) throws -> T {
        var list: UnsafeMutablePointer<OpaquePointer?>?
        let count = libusb_get_device_list(context, &list)
        guard count >= 0 else { throw USBError(libusbCode: Int32(count), path: "") }
        defer { libusb_free_device_list(list, 1) }
        var candidates: [Candidate] = []
        for i in 0..<Int(count) {
            guard let device = list?[i] else { continue }
            var descriptor = libusb_device_descriptor()
            guard libusb_get_device_descriptor(device, &descriptor) == 0, filter(descriptor.idVendor, descriptor.idProduct) else { continue }
            var ports = [UInt8](repeating: 0, count: 8)
            let depth = libusb_get_port_numbers(device, &ports, Int32(ports.count))
            let bus = libusb_get_bus_number(device)
            let path = depth > 0 ? "\(bus)-" + ports.prefix(Int(depth)).map(String.init).joined(separator: ".") : "\(bus)"
            candidates.append(Candidate(vendorID: descriptor.idVendor, productID: descriptor.idProduct, busNumber: bus,
                                        deviceAddress: libusb_get_device_address(device), portPath: path, device: device))
        }
        return try body(candidates)
    }

    /// Opens a candidate (`libusb_open`) and reads its string descriptors.
    public func open(_ candidate: Candidate) throws(USBError) -> LibUSBDevice {
        var handle: OpaquePointer?
        let result = libusb_open(candidate.device, &handle)
        var description = USBDeviceDescription(vendorID: candidate.vendorID, productID: candidate.productID,
                                               busNumber: candidate.busNumber, deviceAddress: candidate.deviceAddress,
                                               portPath: candidate.portPath)
        guard result == 0, let handle else { throw USBError(libusbCode: result, path: description.devicePath) }
        var descriptor = libusb_device_descriptor()
        if libusb_get_device_descriptor(candidate.device, &descriptor) == 0 {
            description.deviceRelease = descriptor.bcdDevice
            description.manufacturer = Self.string(handle, descriptor.iManufacturer)
            description.product = Self.string(handle, descriptor.iProduct)
            description.serialNumber = Self.string(handle, descriptor.iSerialNumber)
        }
        return LibUSBDevice(handle: handle, description: description, context: self)
    }

    private static func string(_ handle: OpaquePointer, _ index: UInt8) -> String? {
        guard index != 0 else { return nil }
        var buffer = [UInt8](repeating: 0, count: 256)
        let n = libusb_get_string_descriptor_ascii(handle, index, &buffer, Int32(buffer.count))
        return n > 0 ? String(decoding: buffer.prefix(Int(n)), as: UTF8.self) : nil
    }
}

extension USBError {
    /// Maps a libusb error code.
    init(libusbCode code: Int32, path: String, request: UInt8 = 0, timeoutMilliseconds: Int = 0) {
        switch libusb_error(rawValue: code) {
        case LIBUSB_ERROR_NO_DEVICE, LIBUSB_ERROR_NOT_FOUND: self = .noDevice
        case LIBUSB_ERROR_TIMEOUT: self = .timeout(milliseconds: timeoutMilliseconds)
        case LIBUSB_ERROR_PIPE: self = .stall(request: request)
        case LIBUSB_ERROR_ACCESS: self = .accessDenied(path: path)
        case LIBUSB_ERROR_BUSY: self = .busy
        default:
            self = .other(libusb_error_name(code).map { String(cString: $0) } ?? "\(code)")
        }
    }
}
