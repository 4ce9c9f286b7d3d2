import Glibc

/// The device side of a USB device on the kernel's virtual host controller, vhci_hcd (USB/IP,
/// Documentation/usb/usbip_protocol.rst): one end of a stream socket pair is handed to the kernel
/// through `/sys/devices/platform/vhci_hcd.0/attach` (port, socket fd, device id, speed), and the kernel
/// then sends each URB for the device as USBIP_CMD_SUBMIT — a 48-byte big-endian header (the setup
/// packet in its last 8 bytes for endpoint 0) and the OUT data — answered with USBIP_RET_SUBMIT (status,
/// actual length, the IN data); USBIP_CMD_UNLINK gets USBIP_RET_UNLINK. Unlike a FunctionFS gadget the
/// device supplies every descriptor itself (a DFU functional descriptor, alternate settings) and sees
/// every standard request but SET_ADDRESS, which the kernel handles. Closing the socket unplugs it.
public final class USBIPAttachment {
    /// USB_SPEED_FULL in the kernel's numbering.
    public static let fullSpeed: UInt32 = 2
    private var socket: CInt
    public let port: Int
    private static let controller = "/sys/devices/platform/vhci_hcd.0"

    /// Attaches a device of `speed` to the first free USB 2.0 port of vhci_hcd.
    public init(speed: UInt32 = fullSpeed, deviceID: UInt32 = 0x0001_0001) throws(GadgetError) {
        let status = try Self.readText(Self.controller + "/status")
        // "hs  0000 004 000 00000000 000000 0-0": hub, port, state (4: free), …
        let rows: [[Substring]] = status.split(separator: "\n").map { $0.split(separator: " ") }
        let free = rows.first { row in row.count >= 3 && row[0] == "hs" && row[2] == "004" }
        guard let free, let port = Int(free[1]) else {
            throw .virtualBus(reason: "no free USB 2.0 port on vhci_hcd (\(Self.controller)/status)")
        }
        var pair: [CInt] = [0, 0]
        guard socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0, &pair) == 0 else { throw .virtualBus(reason: "socketpair: " + String(cString: strerror(errno))) }
        let request = "\(port) \(pair[1]) \(deviceID) \(speed)"
        let fd = open(Self.controller + "/attach", O_WRONLY)
        guard fd >= 0 else {
            close(pair[0]); close(pair[1])
            throw .virtualBus(reason: Self.controller + "/attach: " + String(cString: strerror(errno)) + " (is vhci_hcd loaded, and are we root?)")
        }
        let written = request.withCString { write(fd, $0, strlen($0)) }
        let failure = errno
        close(fd)
        // The kernel holds its own reference to its end.
        close(pair[1])
        guard written >= 0 else {
            close(pair[0])
            throw .virtualBus(reason: "attaching to vhci_hcd port \(port): " + String(cString: strerror(failure)))
        }
        socket = pair[0]
        self.port = port
        // The kernel sends whole PDUs; a read that stalls mid-PDU ends in an error, not a hang.
        var bound = timeval(tv_sec: 5, tv_usec: 0)
        setsockopt(socket, SOL_SOCKET, SO_RCVTIMEO, &bound, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(socket, SOL_SOCKET, SO_SNDTIMEO, &bound, socklen_t(MemoryLayout<timeval>.size))
    }

    deinit { unplug() }

    /// Unplugs the device (the kernel sees the connection close).
    public func unplug() {
        guard socket >= 0 else { return }
        close(socket)
        socket = -1
    }

    /// Answers the kernel's URBs for endpoint 0 with `handler` (nil: a stall) until `shouldStop`, the
    /// device is unplugged or the kernel lets go. Other endpoints' URBs stall.
    public func serve(until shouldStop: () -> Bool, _ handler: (SetupPacket, [UInt8]) -> [UInt8]?) throws(GadgetError) {
        while socket >= 0, !shouldStop() {
            var poller = pollfd(fd: socket, events: Int16(POLLIN), revents: 0)
            let ready = poll(&poller, 1, 200)
            if ready < 0 && errno != EINTR { throw .virtualBus(reason: String(cString: strerror(errno))) }
            guard ready > 0 else { continue }
            guard let header = try receive(48) else { return }
            let command = word(header, 0), sequence = word(header, 4), direction = word(header, 12), endpoint = word(header, 16)
            switch command {
            case 1:   // USBIP_CMD_SUBMIT
                let length = Int(word(header, 24))
                let outData = direction == 0 && length > 0 ? try receive(length) ?? [] : []
                let setup = SetupPacket(requestType: header[40], request: header[41], value: UInt16(header[42]) | UInt16(header[43]) << 8,
                                        index: UInt16(header[44]) | UInt16(header[45]) << 8, length: UInt16(header[46]) | UInt16(header[47]) << 8)
                let reply = endpoint == 0 ? handler(setup, outData) : nil
                let inData = direction == 1 ? Array((reply ?? []).prefix(length)) : []
                let status: Int32 = reply == nil ? -EPIPE : 0
                let actual = direction == 1 ? inData.count : (reply == nil ? 0 : outData.count)
                try send(Self.header(3, sequence, [UInt32(bitPattern: status), UInt32(actual), 0, 0, 0]) + inData)
            case 2:   // USBIP_CMD_UNLINK: every submit is answered before the next is read
                try send(Self.header(4, sequence, [0, 0, 0, 0, 0]))
            default:
                throw .virtualBus(reason: "command \(command) from the kernel")
            }
        }
    }

    /// A reply header: the basic part (command, sequence number, device id, direction, endpoint all 0
    /// but the first two), then five words, then padding to 48 bytes.
    private static func header(_ command: UInt32, _ sequence: UInt32, _ words: [UInt32]) -> [UInt8] {
        var out: [UInt8] = []
        for value in [command, sequence, 0, 0, 0] + words { out += [UInt8(value >> 24), UInt8(value >> 16 & 0xFF), UInt8(value >> 8 & 0xFF), UInt8(value & 0xFF)] }
        return out + [UInt8](repeating: 0, count: 48 - out.count)
    }

    private func word(_ bytes: [UInt8], _ at: Int) -> UInt32 {
        UInt32(bytes[at]) << 24 | UInt32(bytes[at + 1]) << 16 | UInt32(bytes[at + 2]) << 8 | UInt32(bytes[at + 3])
    }

    /// Exactly `count` bytes, or nil when the kernel closed its end.
    private func receive(_ count: Int) throws(GadgetError) -> [UInt8]? {
        var out = [UInt8](repeating: 0, count: count)
        var done = 0
        while done < count {
            let n = out.withUnsafeMutableBytes { recv(socket, $0.baseAddress! + done, count - done, 0) }
            if n < 0 && errno == EINTR { continue }
            if n == 0 { return nil }
            guard n > 0 else { throw .virtualBus(reason: String(cString: strerror(errno))) }
            done += n
        }
        return out
    }

    private func send(_ bytes: [UInt8]) throws(GadgetError) {
        var done = 0
        while done < bytes.count {
            let n = bytes.withUnsafeBytes { Glibc.send(socket, $0.baseAddress! + done, bytes.count - done, Int32(MSG_NOSIGNAL)) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { throw .virtualBus(reason: String(cString: strerror(errno))) }
            done += n
        }
    }

    private static func readText(_ path: String) throws(GadgetError) -> String {
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else { throw .virtualBus(reason: path + ": " + String(cString: strerror(errno)) + " (is vhci_hcd loaded?)") }
        defer { close(fd) }
        var text: [UInt8] = [], buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            guard n > 0 else { break }
            text += buffer[0..<n]
        }
        return String(decoding: text, as: UTF8.self)
    }
}
