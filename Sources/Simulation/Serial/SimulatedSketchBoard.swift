import Glibc
import Synchronization
import Transport

/// A Caterina board (a Leonardo, a Pro Micro) running an Arduino sketch, on a pseudo-terminal: the
/// sketch's USB core watches the line, and when the host lets go of the port with the line at 1200 baud
/// (DTR dropped as the port closes: the 1200-baud touch) the chip resets into its bootloader and the
/// sketch's port goes away. Whatever else the host sends is read and ignored, as a sketch that never
/// reads its serial port does.
///
/// A pseudo-terminal has no DTR: its close is the drop, as a USB CDC port's close is (HUPCL). The master
/// sees the line's termios, and a hang-up once the host's last descriptor closes.
public final class SimulatedSketchBoard: Sendable {
    /// The port a client opens.
    public let path: String
    private let master: CInt
    private let touches = Atomic<Int>(0)
    private let worker = Mutex<WorkerThread?>(nil)

    /// Opens a new pseudo-terminal for the sketch's port.
    public init() throws(SimulationError) {
        (master, path) = try PseudoTerminal.openMaster(flags: O_NONBLOCK)
    }

    deinit {
        stop()
        Glibc.close(master)
    }

    /// How many times the board was sent to its bootloader.
    public var touchCount: Int { touches.load(ordering: .acquiring) }

    /// Serves the port on a thread; `onTouch` runs on it when the touch comes, and serving ends then
    /// (the sketch's USB device is gone; the caller brings up the bootloader).
    public func start(onTouch: @escaping @Sendable () -> Void) {
        let thread = WorkerThread(name: "sketch board") { [self] thread in
            if serve(until: { thread.isStopRequested }) {
                touches.add(1, ordering: .releasing)
                onTouch()
            }
        }
        worker.withLock { $0 = thread }
    }

    /// Stops serving (without a touch) and waits for the thread.
    public func stop() {
        worker.withLock { worker in
            worker?.stop()
            worker = nil
        }
    }

    /// True when the touch came, false when told to stop.
    private func serve(until stopped: () -> Bool) -> Bool {
        var buffer = [UInt8](repeating: 0, count: 512)
        while !stopped() {
            var poller = pollfd(fd: master, events: Int16(POLLIN), revents: 0)
            let ready = poll(&poller, 1, 50)
            guard ready > 0 else { continue }
            if poller.revents & Int16(POLLIN) != 0, buffer.withUnsafeMutableBytes({ read(master, $0.baseAddress, $0.count) }) > 0 { continue }
            guard poller.revents & Int16(POLLHUP) != 0 else { continue }
            // The host's last descriptor closed: at 1200 baud that is the touch; at any other speed the
            // sketch runs on, and the hang-up stands until the port is opened again.
            if lineSpeed(of: master) == 1200 { return true }
            usleep(20_000)
        }
        return false
    }
}
