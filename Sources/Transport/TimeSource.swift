#if canImport(Glibc)
import Glibc
#endif

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
