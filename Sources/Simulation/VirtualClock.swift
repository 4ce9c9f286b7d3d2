import Foundation
import Synchronization
import Transport

/// Simulated time: every simulated wire, chip and wait advances it, nothing waits for real. A rehearsal
/// of a 30-second restore finishes in milliseconds yet reports the 30 seconds the hardware would take.
///
/// Thread-safe: a pseudo-terminal server's thread and the tests' thread may both look at it.
public final class VirtualClock: TimeSource, Sendable {
    private let nanoseconds = Atomic<UInt64>(0)

    public init() {}

    public var now: UInt64 { nanoseconds.load(ordering: .acquiring) }

    /// Moves time forward by `nanoseconds`.
    public func advance(nanoseconds delta: UInt64) { nanoseconds.add(delta, ordering: .acquiringAndReleasing) }

    /// Moves time forward to `instant` if it lies ahead.
    public func advance(to instant: UInt64) { nanoseconds.max(instant, ordering: .acquiringAndReleasing) }

    /// A driver's wait is simulated time passing.
    public func sleep(nanoseconds: UInt64) { advance(nanoseconds: nanoseconds) }

    /// Seconds since the clock started.
    public var seconds: Double { Double(now) / 1e9 }
}

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
