#if canImport(Glibc)
import Glibc
#endif
import Synchronization

/// Where drivers get the time and wait: the monotonic clock on a bench, a virtual clock in a simulation.
/// Drivers never call `usleep` themselves, so a rehearsal runs at full speed yet reports the time the
/// hardware would have taken.
public protocol TimeSource: AnyObject {
    /// Nanoseconds on a monotonic clock.
    var now: UInt64 { get }
    /// Waits `nanoseconds`.
    func sleep(nanoseconds: UInt64)
}

extension TimeSource {
    /// Waits `microseconds`.
    public func sleep(microseconds: Int) { sleep(nanoseconds: UInt64(max(0, microseconds)) * 1000) }

    /// Nanoseconds since `start`.
    public func elapsed(since start: UInt64) -> UInt64 { now &- start }
}

/// The machine's monotonic clock (`clock_gettime(CLOCK_MONOTONIC)`, `nanosleep`).
public final class SystemTimeSource: TimeSource {
    public init() {}

    public var now: UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
    }

    public func sleep(nanoseconds: UInt64) {
        var request = timespec(tv_sec: Int(nanoseconds / 1_000_000_000), tv_nsec: Int(nanoseconds % 1_000_000_000))
        var remaining = timespec()
        while nanosleep(&request, &remaining) == -1 && errno == EINTR { request = remaining }
    }
}

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
