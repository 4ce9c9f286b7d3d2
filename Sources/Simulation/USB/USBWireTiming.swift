import Transport

/// Time on the wire for a USB device's control transfers: by default a low-speed (1.5 Mbit/s) one
/// such as a V-USB programmer; ``fullSpeed`` for a USB AVR's or an STM32's bootloader.
///
/// A control transfer submitted by the host driver starts at the next 1 ms frame (USB 2.0 §5.5.4:
/// control transfers are scheduled per frame; a new request issued after the previous one completed
/// waits for the next frame). It then takes a SETUP transaction, one transaction per 8-byte data packet
/// (the low-speed maximum packet size, §5.5.3), and a status transaction. Bit time 1/1.5 MHz = 667 ns;
/// an 8-byte IN/OUT transaction is token (35 bits) + data (99 bits) + handshake (19 bits) plus bus
/// turnarounds, about 107 µs; a zero-length one about 45 µs.
public struct USBWireTiming: Sendable {
    public var frameNanoseconds: UInt64 = 1_000_000
    public var dataTransactionNanoseconds: UInt64 = 107_000
    public var zeroLengthTransactionNanoseconds: UInt64 = 45_000
    public var packetSize = 8

    public init() {}

    /// A full-speed (12 Mbit/s) device with 64-byte control packets: a 64-byte transaction is token,
    /// data (about 570 bits with stuffing) and handshake, about 55 µs; a zero-length one about 8 µs.
    public static let fullSpeed: USBWireTiming = {
        var timing = USBWireTiming()
        timing.dataTransactionNanoseconds = 55_000
        timing.zeroLengthTransactionNanoseconds = 8_000
        timing.packetSize = 64
        return timing
    }()

    /// No time at all: for a simulator behind a real USB stack (a gadget), where the kernel's host and
    /// device controllers carry the frames and packets.
    public static let carriedElsewhere: USBWireTiming = {
        var timing = USBWireTiming()
        timing.frameNanoseconds = 1
        timing.dataTransactionNanoseconds = 0
        timing.zeroLengthTransactionNanoseconds = 0
        return timing
    }()

    /// Waits for the next frame and carries the SETUP stage.
    public func beginTransfer(on clock: VirtualClock) {
        let next = (clock.now + frameNanoseconds - 1) / frameNanoseconds * frameNanoseconds
        clock.advance(to: next)
        clock.advance(nanoseconds: dataTransactionNanoseconds)
    }

    /// Carries `bytes` of data stage and the status stage.
    public func finishTransfer(on clock: VirtualClock, dataBytes bytes: Int) {
        let packets = (bytes + packetSize - 1) / packetSize
        clock.advance(nanoseconds: UInt64(packets) * dataTransactionNanoseconds + zeroLengthTransactionNanoseconds)
    }
}

/// Faults a simulated programmer can show on its USB side.
public struct USBFaults: Sendable {
    /// The programmer is unplugged after this many flash-write requests.
    public var unplugAfterFlashWrites: Int?
    /// The programmer stops answering (every request times out) after this many flash-write requests.
    public var hangAfterFlashWrites: Int?

    public init() {}
}
