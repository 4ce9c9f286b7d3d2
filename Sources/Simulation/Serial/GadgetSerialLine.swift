#if canImport(Glibc)
import Glibc
#endif

/// The gadget side of a USB CDC ACM function (`/dev/ttyGS0`): what a simulated serial programmer serves
/// when a real kernel presents it to the host as `/dev/ttyACM0`, as an Arduino or a Pro Micro would be.
public final class GadgetSerialLine: SimulatorLine {
    public let path: String
    public let descriptor: CInt
    private var closed = false

    /// Opens the gadget tty raw and non-blocking.
    public init(path: String) throws(SimulationError) {
        self.path = path
        descriptor = open(path, O_RDWR | O_NOCTTY | O_NONBLOCK | O_CLOEXEC)
        guard descriptor >= 0 else { throw .serialLine("\(path): \(String(cString: strerror(errno)))") }
        var options = termios()
        tcgetattr(descriptor, &options)
        cfmakeraw(&options)
        tcsetattr(descriptor, TCSANOW, &options)
    }

    deinit { close() }

    /// What the gadget's own termios says; the USB CDC line carries bytes at bus speed whatever the host set.
    public var baudRate: Int { closed ? 0 : lineSpeed(of: descriptor) }

    public func close() {
        guard !closed else { return }
        closed = true
        Glibc.close(descriptor)
    }
}
