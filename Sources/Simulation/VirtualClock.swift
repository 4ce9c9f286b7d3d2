import Transport

/// Simulated time: every simulated wire, chip and wait advances it, nothing waits for real. A rehearsal
/// of a 30-second restore finishes in milliseconds yet reports the 30 seconds the hardware would take.
public final class VirtualClock: TimeSource {
    public private(set) var now: UInt64 = 0

    public init() {}

    /// Moves time forward by `nanoseconds`.
    public func advance(nanoseconds: UInt64) { now += nanoseconds }

    /// Moves time forward to `instant` if it lies ahead.
    public func advance(to instant: UInt64) { now = max(now, instant) }

    /// A driver's wait is simulated time passing.
    public func sleep(nanoseconds: UInt64) { advance(nanoseconds: nanoseconds) }

    /// Seconds since the clock started.
    public var seconds: Double { Double(now) / 1e9 }
}
