#if canImport(Glibc)
import Glibc
#endif

/// Why a serial port operation failed.
public enum SerialError: Error, Equatable, Sendable, CustomStringConvertible {
    case cannotOpen(path: String, reason: String)
    /// Another program (or another bootmedic job) has the port.
    case busy(path: String)
    /// The port went away: the USB serial adapter was unplugged or reset.
    case vanished(path: String)
    /// Fewer bytes than expected arrived within the time allowed.
    case timeout(path: String, expected: Int, received: [UInt8], milliseconds: Int)
    case unsupportedBaudRate(Int)
    case io(path: String, reason: String)

    public var description: String {
        switch self {
        case let .cannotOpen(path, reason): return "cannot open \(path): \(reason)"
        case let .busy(path): return "\(path) is in use by another program"
        case let .vanished(path): return "\(path) went away (the adapter was unplugged or reset)"
        case let .timeout(path, expected, received, ms):
            let got = received.isEmpty ? "nothing" : "\(received.count) byte\(received.count == 1 ? "" : "s") (" + received.prefix(8).map { hexByte($0) }.joined(separator: " ") + (received.count > 8 ? " …" : "") + ")"
            return "\(path) answered \(got) within \(ms) ms where \(expected) byte\(expected == 1 ? " was" : "s were") expected"
        case let .unsupportedBaudRate(rate): return "\(rate) baud is not a rate this serial driver supports"
        case let .io(path, reason): return "\(path): \(reason)"
        }
    }
}

func hexByte(_ b: UInt8) -> String {
    let s = String(b, radix: 16, uppercase: true)
    return s.count == 1 ? "0" + s : s
}

/// A serial port in raw mode: a thin owner of the file descriptor. Each call is one or a few system
/// calls; every wait is bounded by a timeout; a vanished device is reported as such.
public final class SerialPort {
    public let path: String
    private var fd: CInt

    /// Opens `path` (`open`), takes it exclusively (`TIOCEXCL` and an advisory `flock`, so two jobs never
    /// share a programmer), and sets raw 8N1 at `baudRate` (`tcsetattr`).
    public init(path: String, baudRate: Int) throws(SerialError) {
        self.path = path
        guard let speed = Self.speed(for: baudRate) else { throw .unsupportedBaudRate(baudRate) }
        fd = open(path, O_RDWR | O_NOCTTY | O_NONBLOCK | O_CLOEXEC)
        guard fd >= 0 else {
            let code = errno
            throw code == EBUSY ? .busy(path: path) : .cannotOpen(path: path, reason: String(cString: strerror(code)))
        }
        if flock(fd, LOCK_EX | LOCK_NB) != 0 {
            Glibc.close(fd)
            throw .busy(path: path)
        }
        _ = ioctl(fd, UInt(TIOCEXCL))
        var options = termios()
        guard tcgetattr(fd, &options) == 0 else {
            let reason = String(cString: strerror(errno))
            Glibc.close(fd)
            throw .cannotOpen(path: path, reason: "not a serial port (\(reason))")
        }
        cfmakeraw(&options)
        options.c_cflag |= tcflag_t(CLOCAL) | tcflag_t(CREAD)
        options.c_cflag &= ~(tcflag_t(CSTOPB) | tcflag_t(CRTSCTS))
        cfsetispeed(&options, speed)
        cfsetospeed(&options, speed)
        guard tcsetattr(fd, TCSANOW, &options) == 0 else {
            let reason = String(cString: strerror(errno))
            Glibc.close(fd)
            throw .cannotOpen(path: path, reason: reason)
        }
        tcflush(fd, TCIOFLUSH)
    }

    deinit { close() }

    /// Writes all of `bytes` (`write`, waiting with `poll` while the driver's buffer is full).
    public func write(_ bytes: [UInt8], timeoutMilliseconds: Int = 2000) throws(SerialError) {
        var offset = 0
        let deadline = Deadline(milliseconds: timeoutMilliseconds)
        while offset < bytes.count {
            guard fd >= 0 else { throw .vanished(path: path) }
            let n = bytes[offset...].withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
            if n > 0 { offset += n; continue }
            let code = errno
            if n < 0, code == EAGAIN || code == EINTR {
                try wait(for: Int16(POLLOUT), until: deadline, expected: bytes.count - offset, received: [])
                continue
            }
            throw error(for: code)
        }
    }

    /// Reads exactly `count` bytes, or fails with ``SerialError/timeout(path:expected:received:milliseconds:)``
    /// carrying what did arrive.
    public func read(count: Int, timeoutMilliseconds: Int) throws(SerialError) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(count)
        let deadline = Deadline(milliseconds: timeoutMilliseconds)
        var buffer = [UInt8](repeating: 0, count: max(count, 1))
        while out.count < count {
            guard fd >= 0 else { throw .vanished(path: path) }
            let want = count - out.count
            let n = buffer.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, want) }
            if n > 0 { out += buffer.prefix(n); continue }
            let code = errno
            if n == 0 { throw .vanished(path: path) }
            if code == EAGAIN || code == EINTR {
                try wait(for: Int16(POLLIN), until: deadline, expected: count, received: out)
                continue
            }
            throw error(for: code)
        }
        return out
    }

    /// Discards input until the line has been quiet for `quietMilliseconds` (at most `limitMilliseconds`).
    /// Returns what was discarded.
    @discardableResult
    public func drain(quietMilliseconds: Int = 20, limitMilliseconds: Int = 1000) throws(SerialError) -> [UInt8] {
        var discarded: [UInt8] = []
        let limit = Deadline(milliseconds: limitMilliseconds)
        var buffer = [UInt8](repeating: 0, count: 256)
        while !limit.passed {
            var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            let ready = poll(&pfd, 1, CInt(quietMilliseconds))
            if ready == 0 { break }
            if ready < 0 { if errno == EINTR { continue }; throw error(for: errno) }
            if pfd.revents & Int16(POLLHUP | POLLERR | POLLNVAL) != 0 && pfd.revents & Int16(POLLIN) == 0 { throw .vanished(path: path) }
            let n = buffer.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if n > 0 { discarded += buffer.prefix(n) } else if n == 0 { throw .vanished(path: path) }
        }
        return discarded
    }

    /// Sets the DTR and RTS lines (`TIOCMBIS`/`TIOCMBIC`). Returns false where the device has none
    /// (a pseudo-terminal, some CDC firmwares), which is not an error.
    @discardableResult
    public func setModemLines(dtr: Bool, rts: Bool) -> Bool {
        var set: CInt = (dtr ? TIOCM_DTR : 0) | (rts ? TIOCM_RTS : 0)
        var clear: CInt = (dtr ? 0 : TIOCM_DTR) | (rts ? 0 : TIOCM_RTS)
        let a = set == 0 ? 0 : ioctl(fd, UInt(TIOCMBIS), &set)
        let b = clear == 0 ? 0 : ioctl(fd, UInt(TIOCMBIC), &clear)
        return a == 0 && b == 0
    }

    /// The 1200-baud touch: opens the port at 1200 baud, drops DTR and closes it. An Arduino sketch's
    /// USB core (Leonardo, Micro, Pro Micro, any Caterina board) takes a line coding of 1200 baud with
    /// DTR down as its cue to reset into the bootloader; the port goes away then.
    public static func touch(_ path: String) throws(SerialError) {
        let port = try SerialPort(path: path, baudRate: 1200)
        // Closing drops DTR too (HUPCL), where the driver has DTR at all.
        port.setModemLines(dtr: false, rts: false)
        port.close()
    }

    /// Closes the descriptor (the lock goes with it).
    public func close() {
        guard fd >= 0 else { return }
        Glibc.close(fd)
        fd = -1
    }

    // MARK: Helpers

    private struct Deadline {
        let milliseconds: Int
        let end: UInt64
        init(milliseconds: Int) {
            self.milliseconds = milliseconds
            end = monotonicNanoseconds() + UInt64(max(0, milliseconds)) * 1_000_000
        }
        var remainingMilliseconds: Int {
            let now = monotonicNanoseconds()
            return now >= end ? 0 : Int((end - now + 999_999) / 1_000_000)
        }
        var passed: Bool { monotonicNanoseconds() >= end }
    }

    /// Waits with `poll` until the descriptor is ready for `events` or the deadline passes.
    private func wait(for events: Int16, until deadline: Deadline, expected: Int, received: [UInt8]) throws(SerialError) {
        let remaining = deadline.remainingMilliseconds
        guard remaining > 0 else { throw .timeout(path: path, expected: expected, received: received, milliseconds: deadline.milliseconds) }
        var pfd = pollfd(fd: fd, events: events, revents: 0)
        let ready = poll(&pfd, 1, CInt(remaining))
        if ready == 0 { throw .timeout(path: path, expected: expected, received: received, milliseconds: deadline.milliseconds) }
        if ready < 0 {
            if errno == EINTR { return }
            throw error(for: errno)
        }
        if pfd.revents & Int16(POLLHUP | POLLERR | POLLNVAL) != 0 && pfd.revents & events == 0 { throw .vanished(path: path) }
    }

    private func error(for code: CInt) -> SerialError {
        switch code {
        case EIO, ENXIO, ENODEV, EBADF: return .vanished(path: path)
        default: return .io(path: path, reason: String(cString: strerror(code)))
        }
    }

    static func speed(for rate: Int) -> speed_t? {
        let table: [Int: Int32] = [1200: B1200, 2400: B2400, 4800: B4800, 9600: B9600, 19200: B19200, 38400: B38400,
                                   57600: B57600, 115200: B115200, 230400: B230400, 460800: B460800,
                                   500000: B500000, 1_000_000: B1000000, 2_000_000: B2000000]
        return table[rate].map { speed_t($0) }
    }
}

func monotonicNanoseconds() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
}
