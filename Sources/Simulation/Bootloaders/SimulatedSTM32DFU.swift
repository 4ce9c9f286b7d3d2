import Bootloaders
import Parts
import Transport

/// What the simulated STM32 DFU bootloaders (the STM32duino's Maple DFU, ST's DfuSe) share: a
/// full-speed device with standard descriptors (a DFU-mode interface whose alternate settings name
/// memories, and its functional descriptor), SET_INTERFACE, the DFU state and status, DFU_GETSTATE,
/// DFU_CLRSTATUS and DFU_ABORT, a USB reset, and the faults of a pulled board. Subclasses answer
/// DFU_DNLOAD, DFU_UPLOAD and what DFU_GETSTATUS sets going, on a ``SimulatedSTM32``.
public class SimulatedSTM32DFU: USBDevice {
    public let chip: SimulatedSTM32
    public let descriptors: SimulatedDescriptors
    let link: SimulatedUSBLink
    /// Whether the bootloader has started the application (the device is then gone).
    public internal(set) var hasLeft = false
    /// Blocks of flash written since the board enumerated.
    public internal(set) var blocksWritten = 0
    /// The alternate setting the host selected.
    public internal(set) var alternateSetting = 0
    var state = DFUState.idle
    var status = DFUStatus.ok

    init(chip: SimulatedSTM32, descriptors: SimulatedDescriptors) {
        self.chip = chip
        self.descriptors = descriptors
        link = SimulatedUSBLink(clock: chip.clock)
        link.timing = .fullSpeed
    }

    public var description: USBDeviceDescription { descriptors.description }

    public var faults: USBFaults {
        get { link.faults }
        set { link.faults = newValue }
    }

    public var linkTiming: USBWireTiming {
        get { link.timing }
        set { link.timing = newValue }
    }

    public var transferCount: Int { link.transferCount }

    /// The settings the DFU interface offers.
    var settingCount: Int { descriptors.interfaces.first?.settingNames.count ?? 1 }

    // MARK: What a dialect answers

    func download(block: UInt16, _ data: [UInt8], timeoutMilliseconds: Int) throws(USBError) { throw stall(DFURequest.download.rawValue) }
    func upload(block: UInt16, length: Int) throws(USBError) -> [UInt8] { throw stall(DFURequest.upload.rawValue) }
    /// DFU_GETSTATUS: where a dialect carries out what the last download asked.
    func statusRequested(timeoutMilliseconds: Int) throws(USBError) {}
    /// A USB reset (the host's, after a download): a dialect may reboot into the application.
    func busReset() {}

    // MARK: USBDevice

    public func controlIn(request: UInt8, value: UInt16, index: UInt16, length: Int, timeoutMilliseconds: Int) throws(USBError) -> [UInt8] {
        throw .stall(request: request)
    }

    public func controlOut(request: UInt8, value: UInt16, index: UInt16, data: [UInt8], timeoutMilliseconds: Int) throws(USBError) -> Int {
        throw .stall(request: request)
    }

    public func controlIn(to target: USBControlTarget, request: UInt8, value: UInt16, index: UInt16, length: Int, timeoutMilliseconds: Int) throws(USBError) -> [UInt8] {
        if hasLeft { throw .noDevice }
        try link.begin(request, timeoutMilliseconds: timeoutMilliseconds)
        let reply: [UInt8]
        switch (target.kind, request) {
        case (.standard, 0x06):
            guard let descriptor = descriptors.answer(descriptor: value) else { throw .stall(request: request) }
            reply = descriptor
        case (.standard, 0x0A) where target.recipient == .interface: reply = [UInt8(alternateSetting)]
        case (.standard, 0x08): reply = [1]
        case (.standard, 0x00): reply = [0, 0]
        case (.class, DFURequest.getStatus.rawValue) where target.recipient == .interface:
            // A bootloader that leaves here still answers this request first.
            try statusRequested(timeoutMilliseconds: timeoutMilliseconds)
            reply = DFUStatusReport(status: status, pollMilliseconds: 0, state: state).bytes
        case (.class, DFURequest.getState.rawValue) where target.recipient == .interface: reply = [state.rawValue]
        case (.class, DFURequest.upload.rawValue) where target.recipient == .interface: reply = try upload(block: value, length: length)
        default: throw .stall(request: request)
        }
        link.finish(dataBytes: min(length, reply.count))
        return Array(reply.prefix(length))
    }

    public func controlOut(to target: USBControlTarget, request: UInt8, value: UInt16, index: UInt16, data: [UInt8], timeoutMilliseconds: Int) throws(USBError) -> Int {
        if hasLeft { throw .noDevice }
        try link.begin(request, timeoutMilliseconds: timeoutMilliseconds)
        switch (target.kind, request) {
        case (.standard, 0x09), (.standard, 0x03), (.standard, 0x01): break   // SET_CONFIGURATION, SET/CLEAR_FEATURE
        case (.standard, 0x0B) where target.recipient == .interface:
            try selectAlternateSetting(Int32(value), ofInterface: Int32(index))
        case (.class, DFURequest.download.rawValue) where target.recipient == .interface:
            try download(block: value, data, timeoutMilliseconds: timeoutMilliseconds)
        case (.class, DFURequest.clearStatus.rawValue) where target.recipient == .interface:
            (state, status) = (.idle, .ok)
        case (.class, DFURequest.abort.rawValue) where target.recipient == .interface:
            guard state != .error else { throw stall(request) }
            aborted()
            state = .idle
        default: throw .stall(request: request)
        }
        link.finish(dataBytes: data.count)
        return data.count
    }

    /// What DFU_ABORT drops besides the state.
    func aborted() {}

    public func selectAlternateSetting(_ setting: Int32, ofInterface number: Int32) throws(USBError) {
        guard number == 0, setting >= 0, Int(setting) < settingCount else { throw .stall(request: 11) }
        // The DFU state stays: a host that selects setting 0 before a reset still ends its download.
        alternateSetting = Int(setting)
    }

    public func resetDevice() throws(USBError) {
        if hasLeft { throw .noDevice }
        busReset()
    }

    public func bulkWrite(endpoint: UInt8, data: [UInt8], timeoutMilliseconds: Int) throws(USBError) -> Int { throw .stall(request: 0) }
    public func bulkRead(endpoint: UInt8, length: Int, timeoutMilliseconds: Int) throws(USBError) -> [UInt8] { throw .stall(request: 0) }
    public func close() {}

    /// Pulls the board: every later request fails with ``USBError/noDevice``.
    public func unplug() { link.unplug() }

    /// A request the state machine does not allow: dfuERROR with `why`, and a stall.
    func stall(_ request: UInt8, _ why: DFUStatus = .stalledPacket) -> USBError {
        (status, state) = (why, .error)
        return .stall(request: request)
    }

    /// Goes to dfuERROR with `why` (the request itself completed; GETSTATUS tells the host).
    func fail(_ why: DFUStatus) { (status, state) = (why, .error) }
}
