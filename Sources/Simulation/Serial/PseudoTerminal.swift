#if canImport(Glibc)
import Glibc
#endif

/// A pseudo-terminal pair: the master side a simulated programmer serves, and the slave device a client
/// (bootmedic's serial drivers, avrdude) opens like any `/dev/ttyACM0`.
public final class PseudoTerminal: SimulatorLine {
    /// The device path a client opens, e.g. "/dev/pts/3".
    public let path: String
    private let master: CInt
    /// Held open so the master never sees a hang-up between clients, and so the line starts raw.
    private let heldSlave: CInt

    public init() throws(SimulationError) {
        (master, path) = try Self.openMaster(flags: 0)
        heldSlave = open(path, O_RDWR | O_NOCTTY | O_CLOEXEC)
        guard heldSlave >= 0 else {
            let reason = String(cString: strerror(errno))
            Glibc.close(master)
            throw .pseudoTerminal(reason)
        }
        // Raw from the start: no echo of what the simulator sends, no line editing.
        var options = termios()
        tcgetattr(heldSlave, &options)
        cfmakeraw(&options)
        tcsetattr(heldSlave, TCSANOW, &options)
        _ = fcntl(master, F_SETFL, fcntl(master, F_GETFL) | O_NONBLOCK)
    }

    deinit { close() }

    // <asm-generic/ioctls.h>: TIOCSPTLCK = _IOW('T', 0x31, int), TIOCGPTN = _IOR('T', 0x30, unsigned int).
    private static let unlock: UInt = 0x4004_5431
    private static let getNumber: UInt = 0x8004_5430

    /// A new pseudo-terminal's master (opened with `flags` beside read-write), unlocked, and its slave's path.
    static func openMaster(flags: CInt) throws(SimulationError) -> (CInt, String) {
        let master = open("/dev/ptmx", O_RDWR | O_NOCTTY | O_CLOEXEC | flags)
        guard master >= 0 else { throw .pseudoTerminal(String(cString: strerror(errno))) }
        var zero: CInt = 0
        var number: CUnsignedInt = 0
        guard ioctl(master, unlock, &zero) == 0, ioctl(master, getNumber, &number) == 0 else {
            let reason = String(cString: strerror(errno))
            Glibc.close(master)
            throw .pseudoTerminal(reason)
        }
        return (master, "/dev/pts/\(number)")
    }

    public var descriptor: CInt { master }

    /// The line speed the client set (`cfgetospeed` on the shared terminal), in baud.
    public var baudRate: Int { closed ? 0 : lineSpeed(of: heldSlave) }

    private var closed = false

    /// Closes both sides: a client's next read or write fails as when a USB adapter is pulled.
    public func close() {
        guard !closed else { return }
        closed = true
        Glibc.close(heldSlave)
        Glibc.close(master)
    }
}

/// The output speed set on a terminal, in baud (9600 when it is not one of the usual rates).
func lineSpeed(of descriptor: CInt) -> Int {
    var options = termios()
    tcgetattr(descriptor, &options)
    let table: [speed_t: Int] = [speed_t(B1200): 1200, speed_t(B2400): 2400, speed_t(B4800): 4800, speed_t(B9600): 9600,
                                 speed_t(B19200): 19200, speed_t(B38400): 38400, speed_t(B57600): 57600,
                                 speed_t(B115200): 115_200, speed_t(B230400): 230_400, speed_t(B460800): 460_800,
                                 speed_t(B500000): 500_000, speed_t(B1000000): 1_000_000]
    return table[cfgetospeed(&options)] ?? 9600
}
