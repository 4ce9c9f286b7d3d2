import Glibc

/// A control request as the device side receives it (USB 2.0 §9.3).
public struct SetupPacket: Sendable, Equatable {
    public let requestType: UInt8
    public let request: UInt8
    public let value: UInt16
    public let index: UInt16
    public let length: UInt16

    /// Device to host: the handler's reply is the data stage.
    public var isDeviceToHost: Bool { requestType & 0x80 != 0 }
}

/// What can go wrong serving a gadget.
public enum GadgetError: Error, CustomStringConvertible {
    case cannotOpen(path: String, reason: String)
    case descriptorsRefused(reason: String)
    case io(reason: String)
    /// The gadget was unbound, or the host deconfigured it.
    case disconnected
    /// Attaching to, or talking with, the kernel's virtual host controller (USB/IP).
    case virtualBus(reason: String)

    public var description: String {
        switch self {
        case let .cannotOpen(path, reason): return "\(path): \(reason) (is FunctionFS mounted there?)"
        case let .descriptorsRefused(reason): return "FunctionFS refused the descriptors: \(reason)"
        case let .io(reason): return "FunctionFS: \(reason)"
        case .disconnected: return "FunctionFS: the host let go of the gadget"
        case let .virtualBus(reason): return "USB/IP: \(reason)"
        }
    }
}

/// An interface's class, subclass and protocol (bInterfaceClass, bInterfaceSubClass, bInterfaceProtocol).
public struct USBInterfaceClass: Sendable, Equatable {
    public var code: UInt8, subclass: UInt8, `protocol`: UInt8

    public init(_ code: UInt8, subclass: UInt8, protocol: UInt8) {
        self.code = code
        self.subclass = subclass
        self.protocol = `protocol`
    }

    public static let vendorSpecific = USBInterfaceClass(0xFF, subclass: 0xFF, protocol: 0xFF)
    /// DFU 1.1 in DFU mode (application-specific class 0xFE, subclass 1, protocol 2).
    public static let dfuMode = USBInterfaceClass(0xFE, subclass: 0x01, protocol: 0x02)
    /// HID without a boot protocol.
    public static let hid = USBInterfaceClass(0x03, subclass: 0x00, protocol: 0x00)
}

/// The device side of a USB function served from user space through the kernel's FunctionFS
/// (Documentation/usb/functionfs.rst): one interface (vendor-specific unless told otherwise; no
/// class-specific descriptors, which Linux 6.1's FunctionFS refuses for any class but HID and CCID),
/// with bulk endpoints if asked for, and
/// every control request, device-recipient ones included (FUNCTIONFS_ALL_CTRL_RECIP), handed to Swift.
/// The device descriptor (ids, strings) is the configfs gadget's; this owns the ep0 file, and the bulk
/// endpoints' files are opened with ``bulkEndpoint(_:)``.
public final class FunctionFSEndpointZero {
    private let fd: CInt
    private let directory: String
    /// The endpoint addresses asked for, in the order FunctionFS numbers their files (ep1, ep2, …).
    public let endpointAddresses: [UInt8]

    // linux/usb/functionfs.h
    private static let descriptorsMagicV2: UInt32 = 3, stringsMagic: UInt32 = 2
    private static let hasFullSpeed: UInt32 = 1, hasHighSpeed: UInt32 = 2, allControlRecipients: UInt32 = 64
    private static let eventSetup: UInt8 = 4, eventUnbind: UInt8 = 1

    /// Opens `directory/ep0` and writes the descriptors — an interface of `interfaceClass` with a bulk
    /// endpoint for each of `bulkEndpoints` (bit 7: IN), 64-byte packets at full speed and 512 at high
    /// speed; with `hidReportDescriptorLength`, a HID interface with its HID descriptor and the interrupt
    /// IN endpoint (0x81 after the bulk ones) HID requires — and (empty) strings: the function is then
    /// ready for the gadget to be bound to a UDC.
    public init(directory: String, interfaceClass: USBInterfaceClass = .vendorSpecific, bulkEndpoints: [UInt8] = [],
                hidReportDescriptorLength: Int? = nil) throws(GadgetError) {
        self.directory = directory
        endpointAddresses = bulkEndpoints
        let path = directory + "/ep0"
        fd = open(path, O_RDWR | O_CLOEXEC)
        guard fd >= 0 else { throw .cannotOpen(path: path, reason: String(cString: strerror(errno))) }
        let kind = hidReportDescriptorLength == nil ? interfaceClass : .hid
        let interrupt = hidReportDescriptorLength == nil ? 0 : 1
        let interface: [UInt8] = [9, 4, 0, 0, UInt8(bulkEndpoints.count + interrupt), kind.code, kind.subclass, kind.protocol, 0]
        // HID 1.11 §6.2.1: one report descriptor of this length.
        let hid: [UInt8] = hidReportDescriptorLength.map { [9, 0x21, 0x11, 0x01, 0, 1, 0x22, UInt8($0 & 0xFF), UInt8($0 >> 8)] } ?? []
        func endpoints(packet: UInt16) -> [UInt8] {
            bulkEndpoints.flatMap { [7, 5, $0, 2, UInt8(packet & 0xFF), UInt8(packet >> 8), 0] } + (interrupt == 1 ? [7, 5, 0x81, 3, 64, 0, 1] : [])
        }
        let fullSpeed = interface + hid + endpoints(packet: 64), highSpeed = interface + hid + endpoints(packet: 512)
        let count = UInt32(1 + (hid.isEmpty ? 0 : 1) + bulkEndpoints.count + interrupt)
        var descriptors: [UInt8] = []
        let flags = Self.hasFullSpeed | Self.hasHighSpeed | Self.allControlRecipients
        let length = UInt32(12 + 8 + fullSpeed.count + highSpeed.count)
        for word in [Self.descriptorsMagicV2, length, flags, count, count] { descriptors += Self.littleEndian(word) }
        descriptors += fullSpeed + highSpeed
        var strings: [UInt8] = []
        for word in [Self.stringsMagic, 16, 0, 0] as [UInt32] { strings += Self.littleEndian(word) }
        for blob in [descriptors, strings] {
            guard blob.withUnsafeBytes({ write(fd, $0.baseAddress, $0.count) }) == blob.count else {
                let reason = String(cString: strerror(errno))
                close(fd)
                throw .descriptorsRefused(reason: reason)
            }
        }
    }

    /// Opens the file of the bulk endpoint asked for as `address`.
    public func bulkEndpoint(_ address: UInt8) throws(GadgetError) -> FunctionFSBulkEndpoint {
        guard let index = endpointAddresses.firstIndex(of: address) else {
            throw .cannotOpen(path: directory, reason: "no endpoint 0x\(String(address, radix: 16, uppercase: true)) among the descriptors")
        }
        return try FunctionFSBulkEndpoint(path: directory + "/ep\(index + 1)")
    }

    deinit { close(fd) }

    /// Serves control requests until `shouldStop` says so (checked every 200 ms) or the gadget is unbound.
    /// `handler` gets the request and, for host-to-device requests, its data stage; it returns the reply
    /// (device-to-host) or nil to stall the request.
    public func serve(until shouldStop: () -> Bool, _ handler: (SetupPacket, [UInt8]) -> [UInt8]?) throws(GadgetError) {
        var event = [UInt8](repeating: 0, count: 12)
        while !shouldStop() {
            var poller = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            let ready = poll(&poller, 1, 200)
            if ready < 0 && errno != EINTR { throw .io(reason: "ep0: " + String(cString: strerror(errno))) }
            guard ready > 0 else { continue }
            let n = event.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n < 0 && (errno == EINTR || errno == EAGAIN) { continue }
            // The host gave up on the request before we answered (its timeout, or its process died
            // mid-transfer): serve the next one.
            if n < 0 && Self.isCancellation(errno) { continue }
            guard n == 12 else { throw .io(reason: "ep0: " + (n < 0 ? String(cString: strerror(errno)) : "short event (\(n) bytes)")) }
            if event[8] == Self.eventUnbind { return }
            guard event[8] == Self.eventSetup else { continue }
            let setup = SetupPacket(requestType: event[0], request: event[1], value: UInt16(event[2]) | UInt16(event[3]) << 8,
                                    index: UInt16(event[4]) | UInt16(event[5]) << 8, length: UInt16(event[6]) | UInt16(event[7]) << 8)
            try answer(setup, handler)
        }
    }

    private func answer(_ setup: SetupPacket, _ handler: (SetupPacket, [UInt8]) -> [UInt8]?) throws(GadgetError) {
        if setup.isDeviceToHost {
            guard let reply = handler(setup, []) else { return stall(setup) }
            let bytes = Array(reply.prefix(Int(setup.length)))
            guard bytes.withUnsafeBytes({ write(fd, $0.baseAddress, $0.count) }) >= 0 || Self.isCancellation(errno) else {
                throw .io(reason: "ep0: " + String(cString: strerror(errno)))
            }
        } else {
            var data = [UInt8](repeating: 0, count: Int(setup.length))
            let n = data.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            guard n >= 0 else {
                if Self.isCancellation(errno) { return }   // cancelled by the host, as above
                throw .io(reason: "ep0: " + String(cString: strerror(errno)))
            }
            if handler(setup, Array(data.prefix(n))) == nil { stall(setup) }
        }
    }

    /// How FunctionFS reports a control request the host abandoned: EIDRM when a new setup replaced it,
    /// and the request's own status when the host side cut it off mid-transfer (a killed client's URB,
    /// unlinked, completes with EOVERFLOW, ECONNRESET or ESHUTDOWN on dummy_hcd). A real programmer
    /// shrugs these off and answers the next request, and so does the simulator.
    private static func isCancellation(_ code: Int32) -> Bool {
        [EIDRM, EOVERFLOW, ECONNRESET, ESHUTDOWN, EPIPE, EL2HLT].contains(code)
    }

    /// FunctionFS stalls ep0 when the data stage is moved the wrong way.
    private func stall(_ setup: SetupPacket) {
        var byte: UInt8 = 0
        if setup.isDeviceToHost { _ = read(fd, &byte, 0) } else { _ = write(fd, &byte, 0) }
    }

    private static func littleEndian(_ value: UInt32) -> [UInt8] { (0..<4).map { UInt8(value >> (8 * $0) & 0xFF) } }
}

/// One bulk endpoint of a FunctionFS function. Reads and writes block until the host moves the data;
/// they end with ``GadgetError/disconnected`` when the gadget is unbound or the host deconfigures it.
public final class FunctionFSBulkEndpoint: Sendable {
    private let fd: CInt
    public let path: String

    init(path: String) throws(GadgetError) {
        self.path = path
        fd = open(path, O_RDWR | O_CLOEXEC)
        guard fd >= 0 else { throw .cannotOpen(path: path, reason: String(cString: strerror(errno))) }
    }

    deinit { close(fd) }

    /// Takes one transfer from the host (OUT): up to `maximum` bytes, fewer when a short packet ends it.
    public func read(maximum: Int) throws(GadgetError) -> [UInt8] {
        var buffer = [UInt8](repeating: 0, count: maximum)
        while true {
            let n = buffer.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if n >= 0 { return Array(buffer.prefix(n)) }
            if errno == EINTR { continue }
            throw failure()
        }
    }

    /// Hands `bytes` to the host (IN) once it asks for them.
    public func write(_ bytes: [UInt8]) throws(GadgetError) {
        while true {
            let n = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
            if n >= 0 { return }
            if errno == EINTR { continue }
            throw failure()
        }
    }

    private func failure() -> GadgetError {
        errno == ESHUTDOWN || errno == ENODEV ? .disconnected : .io(reason: "\(path): \(String(cString: strerror(errno)))")
    }
}
