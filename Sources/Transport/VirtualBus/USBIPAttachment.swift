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

    /// Attaches a device of `speed` to the first free USB 2.0 port of vhci_hcd, or to `port` once it is
    /// free (a device that re-enumerates in the same socket; the kernel frees a port a moment after the
    /// last device on it was unplugged, and this waits for that at most `waitSeconds`).
    public init(speed: UInt32 = fullSpeed, deviceID: UInt32 = 0x0001_0001, port wanted: Int? = nil, waitSeconds: Double = 5) throws(GadgetError) {
        var port: Int?
        let deadline = monotonicNanoseconds() + UInt64(waitSeconds * 1e9)
        repeat {
            // "hs  0000 004 000 00000000 000000 0-0": hub, port, state (4: free), …
            let rows: [[Substring]] = try Self.readText(Self.controller + "/status").split(separator: "\n").map { $0.split(separator: " ") }
            port = rows.first { row in row.count >= 3 && row[0] == "hs" && row[2] == "004" && (wanted == nil || Int(row[1]) == wanted) }.flatMap { Int($0[1]) }
            if port == nil { usleep(20_000) }
        } while port == nil && wanted != nil && monotonicNanoseconds() < deadline
        guard let port else {
            throw .virtualBus(reason: wanted.map { "vhci_hcd port \($0) is not free" } ?? "no free USB 2.0 port on vhci_hcd (\(Self.controller)/status)")
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
        try serve(until: shouldStop, control: handler, outTransfer: { _, _ in false }, inTransfer: { _, _ in .stall })
    }

    /// What a device answers an IN transfer on one of its other endpoints with.
    public enum EndpointAnswer {
        case data([UInt8])
        /// Nothing to send yet: the URB waits (as a host's read of a serial port's bulk IN endpoint does)
        /// until a later `send` has data, or the kernel unlinks it.
        case hold
        case stall
    }

    /// Answers endpoint 0 with `control`, OUT transfers on other endpoints with `outTransfer` (the data
    /// and the endpoint number; false stalls) and IN transfers with `inTransfer` (the endpoint address
    /// and the most the URB takes). Held IN URBs are offered again, in order, after every request and every
    /// 10 ms; an unlinked one is given back as cancelled.
    public func serve(until shouldStop: () -> Bool, control: (SetupPacket, [UInt8]) -> [UInt8]?,
                      outTransfer: (_ data: [UInt8], _ endpoint: UInt8) -> Bool,
                      inTransfer: (_ endpoint: UInt8, _ maximum: Int) -> EndpointAnswer) throws(GadgetError) {
        var held: [(sequence: UInt32, endpoint: UInt8, length: Int)] = []
        func offerHeld() throws(GadgetError) {
            var waiting: [(sequence: UInt32, endpoint: UInt8, length: Int)] = []
            for urb in held {
                switch inTransfer(urb.endpoint, urb.length) {
                case .hold: waiting.append(urb)
                case let .data(bytes): try reply(urb.sequence, status: 0, inData: Array(bytes.prefix(urb.length)))
                case .stall: try reply(urb.sequence, status: -EPIPE, inData: [])
                }
            }
            held = waiting
        }
        while socket >= 0, !shouldStop() {
            var poller = pollfd(fd: socket, events: Int16(POLLIN), revents: 0)
            let ready = poll(&poller, 1, held.isEmpty ? 200 : 10)
            if ready < 0 && errno != EINTR { throw .virtualBus(reason: String(cString: strerror(errno))) }
            guard ready > 0 else { try offerHeld(); continue }
            guard let header = try receive(48) else { return }
            let command = word(header, 0), sequence = word(header, 4), direction = word(header, 12), endpoint = word(header, 16)
            switch command {
            case 1:   // USBIP_CMD_SUBMIT
                let length = Int(word(header, 24))
                let outData = direction == 0 && length > 0 ? try receive(length) ?? [] : []
                if endpoint == 0 {
                    let setup = SetupPacket(requestType: header[40], request: header[41], value: UInt16(header[42]) | UInt16(header[43]) << 8,
                                            index: UInt16(header[44]) | UInt16(header[45]) << 8, length: UInt16(header[46]) | UInt16(header[47]) << 8)
                    let answer = control(setup, outData)
                    let inData = direction == 1 ? Array((answer ?? []).prefix(length)) : []
                    try reply(sequence, status: answer == nil ? -EPIPE : 0, inData: inData, outLength: answer == nil ? 0 : outData.count)
                } else if direction == 0 {
                    let taken = outTransfer(outData, UInt8(endpoint & 0x0F))
                    try reply(sequence, status: taken ? 0 : -EPIPE, inData: [], outLength: taken ? outData.count : 0)
                } else {
                    held.append((sequence, UInt8(endpoint & 0x0F) | 0x80, length))
                }
                try offerHeld()
            case 2:   // USBIP_CMD_UNLINK: the URB it names is held (cancelled now) or was answered (status 0)
                let target = word(header, 20)
                let wasHeld = held.contains { $0.sequence == target }
                held.removeAll { $0.sequence == target }
                try send(Self.header(4, sequence, [UInt32(bitPattern: wasHeld ? -ECONNRESET : 0), 0, 0, 0, 0]))
            default:
                throw .virtualBus(reason: "command \(command) from the kernel")
            }
        }
    }

    /// USBIP_RET_SUBMIT for URB `sequence`: its status, and the IN data or how much OUT data was taken.
    private func reply(_ sequence: UInt32, status: Int32, inData: [UInt8], outLength: Int = 0) throws(GadgetError) {
        let actual = inData.isEmpty ? outLength : inData.count
        try send(Self.header(3, sequence, [UInt32(bitPattern: status), UInt32(actual), 0, 0, 0]) + inData)
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
