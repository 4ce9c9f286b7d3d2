import Transport

/// What the USBasp, USBtinyISP and Atmel DFU simulators share: a device that speaks only control
/// requests over a simulated USB link (low speed unless told otherwise), wired to a ``SimulatedAVR``.
/// Subclasses answer the requests (vendor ones, or class requests to an interface); everything else
/// (faults, timing, the stalled bulk endpoints, unplugging) lives here.
public class SimulatedControlDevice: USBDevice {
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

    /// Vendor requests to the device go to the methods above; a subclass answers other kinds.
    public func controlIn(to target: USBControlTarget, request: UInt8, value: UInt16, index: UInt16, length: Int, timeoutMilliseconds: Int) throws(USBError) -> [UInt8] {
        guard target == .vendorDevice else { throw .stall(request: request) }
        return try controlIn(request: request, value: value, index: index, length: length, timeoutMilliseconds: timeoutMilliseconds)
    }

    public func controlOut(to target: USBControlTarget, request: UInt8, value: UInt16, index: UInt16, data: [UInt8], timeoutMilliseconds: Int) throws(USBError) -> Int {
        guard target == .vendorDevice else { throw .stall(request: request) }
        return try controlOut(request: request, value: value, index: index, data: data, timeoutMilliseconds: timeoutMilliseconds)
    }

    /// V-USB programmers and DFU bootloaders have no bulk endpoints.
    public func bulkWrite(endpoint: UInt8, data: [UInt8], timeoutMilliseconds: Int) throws(USBError) -> Int { throw .stall(request: 0) }
    public func bulkRead(endpoint: UInt8, length: Int, timeoutMilliseconds: Int) throws(USBError) -> [UInt8] { throw .stall(request: 0) }

    public func close() {}

    /// Unplugs the programmer: every later request fails with ``USBError/noDevice``.
    public func unplug() { link.unplug() }
}
