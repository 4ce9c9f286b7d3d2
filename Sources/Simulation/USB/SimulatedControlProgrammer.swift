import Transport

/// What the USBasp and USBtinyISP simulators share: a programmer that speaks only vendor control
/// requests over a simulated low-speed USB link, wired to a ``SimulatedAVR``. Subclasses answer the
/// requests; everything else (faults, timing, the stalled bulk endpoints, unplugging) lives here.
public class SimulatedControlProgrammer: USBDevice {
    public let description: USBDeviceDescription
    public let chip: SimulatedAVR
    let clock: VirtualClock
    let link: SimulatedUSBLink

    init(chip: SimulatedAVR, description: USBDeviceDescription) {
        self.chip = chip
        self.description = description
        clock = chip.clock
        link = SimulatedUSBLink(clock: chip.clock)
    }

    /// Faults that strike on the USB side after a number of flash writes.
    public var faults: USBFaults {
        get { link.faults }
        set { link.faults = newValue }
    }

    /// How long the USB side takes; ``USBWireTiming/carriedElsewhere`` when a real bus carries it.
    public var linkTiming: USBWireTiming {
        get { link.timing }
        set { link.timing = newValue }
    }

    /// Control transfers answered.
    public var transferCount: Int { link.transferCount }

    public func controlIn(request: UInt8, value: UInt16, index: UInt16, length: Int, timeoutMilliseconds: Int) throws(USBError) -> [UInt8] {
        throw .stall(request: request)
    }

    public func controlOut(request: UInt8, value: UInt16, index: UInt16, data: [UInt8], timeoutMilliseconds: Int) throws(USBError) -> Int {
        throw .stall(request: request)
    }

    /// V-USB programmers have no bulk endpoints.
    public func bulkWrite(endpoint: UInt8, data: [UInt8], timeoutMilliseconds: Int) throws(USBError) -> Int { throw .stall(request: 0) }
    public func bulkRead(endpoint: UInt8, length: Int, timeoutMilliseconds: Int) throws(USBError) -> [UInt8] { throw .stall(request: 0) }

    public func close() {}

    /// Unplugs the programmer: every later request fails with ``USBError/noDevice``.
    public func unplug() { link.unplug() }
}
