import Dispatch
import Glibc
import Synchronization
import Transport

/// A simulated programmer on the far side of a serial line: bytes in, bytes out.
public protocol SerialProgrammerSimulator: AnyObject {
    /// Takes the bytes the host sent and returns what the programmer answers.
    func receive(_ bytes: [UInt8]) -> [UInt8]
    /// The chip on the programmer's cable.
    var chip: SimulatedAVR { get }
    /// Whether the device has left the line after its last answer (a bootloader that started the
    /// application detaches from USB): the server then closes the line.
    var hasHungUp: Bool { get }
}

extension SerialProgrammerSimulator {
    public var hasHungUp: Bool { false }
}

/// Faults on the serial line, injected between the host and the simulated programmer.
public enum SerialFault: String, CaseIterable, Sendable {
    /// The adapter is pulled: the pty closes.
    case cablePulled = "cable-pulled"
    /// The programmer never answers (no sketch loaded, wrong baud rate).
    case neverSyncs = "never-syncs"
    /// The programmer answers noise.
    case garbage
    /// The programmer answers, but later than any driver waits.
    case slowAnswer = "slow-answer"
}

/// How long bytes take on the simulated line.
public enum SerialLineTiming: Sendable {
    /// A UART at the baud rate the client set: 10 bit times a byte (8N1).
    case uart
    /// USB CDC on a full-speed native-USB AVR (Pro Micro, Teensy 2.0): the baud rate is ignored; each
    /// burst waits for the next 1 ms frame and moves 64-byte packets (USB 2.0 §5.8 bulk transfers).
    case usbCDC

    func carry(_ bytes: Int, on clock: VirtualClock, baudRate: Int) {
        guard bytes > 0 else { return }
        switch self {
        case .uart:
            clock.advance(nanoseconds: UInt64(bytes) * 10 * 1_000_000_000 / UInt64(max(baudRate, 1)))
        case .usbCDC:
            let frame: UInt64 = 1_000_000
            clock.advance(to: (clock.now + frame - 1) / frame * frame)
            // At most 19 64-byte bulk packets fit a full-speed frame; count each at 64 bytes of 12 Mbit/s plus overhead.
            clock.advance(nanoseconds: UInt64((bytes + 63) / 64) * 50_000)
        }
    }
}

/// The device end of a serial line a simulator serves: a pseudo-terminal's master, or the gadget side of
/// a real USB CDC ACM function.
public protocol SimulatorLine: AnyObject {
    /// The device path a client opens.
    var path: String { get }
    /// The descriptor the simulator reads and writes (non-blocking).
    var descriptor: CInt { get }
    /// The line speed the client set, in baud.
    var baudRate: Int { get }
    /// Closes the line: a client's next read or write fails as when a USB adapter is pulled.
    func close()
}

/// Serves a ``SerialProgrammerSimulator`` on a ``SimulatorLine`` from a background thread.
/// The simulator and its chip are touched only by that thread while it runs.
public final class SerialSimulatorServer: Sendable {
    /// The line and the simulator belong to the serving thread from ``start()`` until ``stop()`` has
    /// joined it; the caller may use them before and after (the join orders the accesses).
    public nonisolated(unsafe) let terminal: SimulatorLine
    public nonisolated(unsafe) let simulator: SerialProgrammerSimulator

    private struct Settings {
        var fault: SerialFault?
        var faultAfterPageWrites = 0
        var slowAnswerMilliseconds = 3000
        var line = SerialLineTiming.uart
        var onHangUp: (@Sendable () -> Void)?
    }
    private let settings = Mutex(Settings())
    private let fromHost = Atomic<Int>(0)
    private let toHost = Atomic<Int>(0)
    private let worker = Mutex<WorkerThread?>(nil)
    private let stopPipe: [CInt]

    public var fault: SerialFault? {
        get { settings.withCheckedLock { $0.fault } }
        set { settings.withCheckedLock { $0.fault = newValue } }
    }
    /// The fault strikes once the chip has committed this many flash pages (0: from the start).
    public var faultAfterPageWrites: Int {
        get { settings.withCheckedLock { $0.faultAfterPageWrites } }
        set { settings.withCheckedLock { $0.faultAfterPageWrites = newValue } }
    }
    /// For ``SerialFault/slowAnswer``: how late each answer comes.
    public var slowAnswerMilliseconds: Int {
        get { settings.withCheckedLock { $0.slowAnswerMilliseconds } }
        set { settings.withCheckedLock { $0.slowAnswerMilliseconds = newValue } }
    }
    /// How bytes cross the line, for the simulated time.
    public var line: SerialLineTiming {
        get { settings.withCheckedLock { $0.line } }
        set { settings.withCheckedLock { $0.line = newValue } }
    }
    /// Called on the serving thread when the device has left the line (a bootloader that started the
    /// application): a gadget's script unbinds it then, as the real board drops off USB.
    public var onHangUp: (@Sendable () -> Void)? {
        get { settings.withCheckedLock { $0.onHangUp } }
        set { settings.withCheckedLock { $0.onHangUp = newValue } }
    }

    /// Bytes that crossed the line in each direction.
    public var bytesFromHost: Int { fromHost.load(ordering: .acquiring) }
    public var bytesToHost: Int { toHost.load(ordering: .acquiring) }

    /// Serves on a new pseudo-terminal, or on `line`.
    public init(simulator: SerialProgrammerSimulator, line: SimulatorLine? = nil) throws(SimulationError) {
        if let line { terminal = line } else { terminal = try PseudoTerminal() }
        self.simulator = simulator
        var fds: [CInt] = [0, 0]
        guard pipe(&fds) == 0 else { throw .pseudoTerminal("cannot create a pipe") }
        stopPipe = fds
    }

    /// The device path clients open.
    public var path: String { terminal.path }

    /// Starts serving.
    public func start() {
        worker.withCheckedLock { $0 = WorkerThread(name: "serial simulator") { [self] _ in serve() } }
    }

    /// Stops serving and waits until the thread has let go of the simulator.
    public func stop() {
        guard let running = worker.withCheckedLock({ worker -> WorkerThread? in defer { worker = nil }; return worker }) else { return }
        var byte: UInt8 = 1
        _ = Glibc.write(stopPipe[1], &byte, 1)
        running.join()
    }

    deinit {
        stop()
        Glibc.close(stopPipe[0])
        Glibc.close(stopPipe[1])
    }

    private func serve() {
        var buffer = [UInt8](repeating: 0, count: 4096)
        var random = SystemRandomNumberGenerator()
        // Simulated time is the device's own (SPI bits, firmware delays, the line) plus the real time the
        // host spent between messages: a write the host waited 9 ms for has had its 9 ms on the chip too.
        // A message whose handling took longer in real time than in the model (a thread held back on a
        // loaded machine, or under ThreadSanitizer) counts its real time: the chip's clock never falls
        // behind the host's, so a host that waits out a datasheet bound never finds the chip still busy.
        let clock = simulator.chip.clock
        var lastReal = DispatchTime.now().uptimeNanoseconds
        while true {
            var fds = [pollfd(fd: terminal.descriptor, events: Int16(POLLIN), revents: 0),
                       pollfd(fd: stopPipe[0], events: Int16(POLLIN), revents: 0)]
            let ready = poll(&fds, 2, 1000)
            if ready < 0 && errno != EINTR { return }
            if fds[1].revents != 0 { return }
            guard fds[0].revents & Int16(POLLIN) != 0 else { continue }
            let n = buffer.withUnsafeMutableBytes { Glibc.read(terminal.descriptor, $0.baseAddress, $0.count) }
            guard n > 0 else { continue }
            let now = DispatchTime.now().uptimeNanoseconds
            clock.advance(nanoseconds: now - lastReal)
            let modelled = clock.now
            defer {
                lastReal = DispatchTime.now().uptimeNanoseconds
                let real = lastReal - now, simulated = clock.now - modelled
                if real > simulated { clock.advance(nanoseconds: real - simulated) }
            }
            let input = Array(buffer.prefix(n))
            let current = settings.withCheckedLock { $0 }
            fromHost.add(n, ordering: .releasing)
            current.line.carry(n, on: clock, baudRate: terminal.baudRate)
            let active = simulator.chip.pageWrites >= current.faultAfterPageWrites ? current.fault : nil
            switch active {
            case .neverSyncs?:
                continue
            case .garbage?:
                send((0..<input.count).map { _ in UInt8.random(in: 0...255, using: &random) | 0x80 })
                continue
            case .cablePulled?:
                terminal.close()
                waitForStop()
                return
            case .slowAnswer?:
                usleep(useconds_t(current.slowAnswerMilliseconds * 1000))
            case nil:
                break
            }
            let reply = simulator.receive(input)
            toHost.add(reply.count, ordering: .releasing)
            current.line.carry(reply.count, on: clock, baudRate: terminal.baudRate)
            send(reply)
            if simulator.hasHungUp {
                usleep(20_000)   // the host reads the last answer before the device goes, as a USB CDC one does
                terminal.close()
                current.onHangUp?()
                waitForStop()
                return
            }
        }
    }

    private func waitForStop() {
        var fd = pollfd(fd: stopPipe[0], events: Int16(POLLIN), revents: 0)
        while poll(&fd, 1, -1) < 0 && errno == EINTR {}
    }

    private func send(_ bytes: [UInt8]) {
        var offset = 0
        while offset < bytes.count {
            let n = bytes[offset...].withUnsafeBytes { Glibc.write(terminal.descriptor, $0.baseAddress, $0.count) }
            if n > 0 { offset += n; continue }
            if errno == EAGAIN || errno == EINTR {
                var fd = pollfd(fd: terminal.descriptor, events: Int16(POLLOUT), revents: 0)
                _ = poll(&fd, 1, 100)
                continue
            }
            return
        }
    }
}
