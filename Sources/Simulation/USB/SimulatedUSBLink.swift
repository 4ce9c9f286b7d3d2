import Transport

/// The USB side every simulated programmer shares: counting requests, the low-speed timing, and the
/// faults (unplugged, hung) that strike after a number of flash writes.
final class SimulatedUSBLink {
    let clock: VirtualClock
    var timing = USBWireTiming()
    var faults = USBFaults()
    private(set) var transfers: [UInt8: Int] = [:]
    private var flashWrites = 0
    private(set) var unplugged = false
    private var hung = false

    init(clock: VirtualClock) { self.clock = clock }

    var transferCount: Int { transfers.values.reduce(0, +) }

    /// Starts a control transfer: fails if the device is gone or hung, else waits for the frame and SETUP.
    func begin(_ request: UInt8, timeoutMilliseconds: Int) throws(USBError) {
        if unplugged { throw .noDevice }
        if hung {
            clock.advance(nanoseconds: UInt64(timeoutMilliseconds) * 1_000_000)
            throw .timeout(milliseconds: timeoutMilliseconds)
        }
        transfers[request, default: 0] += 1
        timing.beginTransfer(on: clock)
    }

    /// Ends a control transfer with its data and status stages.
    func finish(dataBytes: Int) { timing.finishTransfer(on: clock, dataBytes: dataBytes) }

    /// Counts a flash-write request and lets a scheduled fault strike.
    func flashWrite(timeoutMilliseconds: Int) throws(USBError) {
        flashWrites += 1
        if let limit = faults.unplugAfterFlashWrites, flashWrites > limit { unplugged = true; throw .noDevice }
        if let limit = faults.hangAfterFlashWrites, flashWrites > limit { hung = true; throw .timeout(milliseconds: timeoutMilliseconds) }
    }

    func unplug() { unplugged = true }
}
