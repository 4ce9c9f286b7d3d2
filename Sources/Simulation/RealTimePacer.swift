import Dispatch
import Glibc
import Transport

/// Keeps a simulated clock in step with the wall clock, for a simulator behind a real interface (a USB
/// gadget) whose host waits in real time: time the host spends between requests passes on the device
/// too, and an answer the device needs simulated time for is held back until that time has passed.
public struct RealTimePacer: Sendable {
    public let clock: VirtualClock
    private let start = DispatchTime.now().uptimeNanoseconds

    public init(clock: VirtualClock) { self.clock = clock }

    private var elapsed: UInt64 { DispatchTime.now().uptimeNanoseconds - start }

    /// Before a request: the device has lived through the time the host took.
    public func catchUp() { clock.advance(to: elapsed) }

    /// After a request: wait until real time has caught up with what the device spent.
    public func holdBack() {
        let now = elapsed
        if clock.now > now { usleep(useconds_t((clock.now - now) / 1000)) }
    }
}
