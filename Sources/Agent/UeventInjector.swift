import FoundationEssentials
import Glibc

/// Sends libudev-format uevents on the netlink "udev" multicast group, as udevd does after processing a
/// kernel event (systemd's device-monitor.c wire format: a "libudev" header with magic 0xfeedcafe in
/// network byte order, the header and property offsets, MurmurHash2 hashes of subsystem and devtype for
/// the receivers' socket filters, then NUL-separated KEY=value properties). Used to prove the
/// DeviceWatcher against real netlink inside a private network namespace.
public final class UeventInjector {
    private let fd: CInt

    public init() throws {
        fd = socket(AF_NETLINK, Int32(SOCK_RAW.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 15 /* NETLINK_KOBJECT_UEVENT */)
        guard fd >= 0 else { throw DeviceWatcherError.udev("netlink socket: \(String(cString: strerror(errno)))") }
        let address = Self.address(groups: 0)
        let bound = address.withUnsafeBytes { bind(fd, $0.baseAddress!.assumingMemoryBound(to: sockaddr.self), socklen_t($0.count)) }
        guard bound == 0 else { throw DeviceWatcherError.udev("netlink bind: \(String(cString: strerror(errno)))") }
    }

    deinit { close(fd) }

    /// struct sockaddr_nl (linux/netlink.h): family, pad, pid, groups.
    private static func address(groups: UInt32) -> [UInt8] {
        withUnsafeBytes(of: UInt16(AF_NETLINK)) { Array($0) } + [0, 0] + [0, 0, 0, 0] + withUnsafeBytes(of: groups) { Array($0) }
    }

    /// Sends one event with `properties` (ACTION, DEVPATH, SUBSYSTEM, DEVTYPE … are the caller's).
    public func send(_ properties: [(String, String)]) throws {
        var body: [UInt8] = []
        for (key, value) in properties { body += Array("\(key)=\(value)".utf8) + [0] }
        let subsystem = properties.first { $0.0 == "SUBSYSTEM" }?.1 ?? ""
        let devtype = properties.first { $0.0 == "DEVTYPE" }?.1
        var header = Array("libudev".utf8) + [0]
        func host32(_ v: UInt32) -> [UInt8] { withUnsafeBytes(of: v) { Array($0) } }
        func network32(_ v: UInt32) -> [UInt8] { withUnsafeBytes(of: v.bigEndian) { Array($0) } }
        let headerSize: UInt32 = 40
        header += network32(0xFEED_CAFE) + host32(headerSize) + host32(headerSize) + host32(UInt32(body.count))
        header += network32(murmurHash2(Array(subsystem.utf8))) + network32(devtype.map { murmurHash2(Array($0.utf8)) } ?? 0)
        header += network32(0) + network32(0)
        let message = header + body
        let destination = Self.address(groups: 2)   // the udev group
        let sent = message.withUnsafeBytes { bytes in
            destination.withUnsafeBytes { sendto(fd, bytes.baseAddress, bytes.count, 0, $0.baseAddress!.assumingMemoryBound(to: sockaddr.self), socklen_t($0.count)) }
        }
        guard sent == message.count else { throw DeviceWatcherError.udev("netlink send: \(String(cString: strerror(errno)))") }
    }
}

/// MurmurHash2 with seed 0, as systemd's string_hash32 computes the filter hashes.
func murmurHash2(_ data: [UInt8]) -> UInt32 {
    let m: UInt32 = 0x5BD1_E995
    var h = UInt32(data.count)
    var i = 0
    while i + 4 <= data.count {
        var k = UInt32(data[i]) | UInt32(data[i + 1]) << 8 | UInt32(data[i + 2]) << 16 | UInt32(data[i + 3]) << 24
        k = k &* m
        k ^= k >> 24
        k = k &* m
        h = h &* m
        h ^= k
        i += 4
    }
    switch data.count - i {
    case 3:
        h ^= UInt32(data[i + 2]) << 16
        fallthrough
    case 2:
        h ^= UInt32(data[i + 1]) << 8
        fallthrough
    case 1:
        h ^= UInt32(data[i])
        h = h &* m
    default:
        break
    }
    h ^= h >> 13
    h = h &* m
    h ^= h >> 15
    return h
}
