import Transport

/// DFU 1.1's class requests (USB Device Firmware Upgrade 1.1, §3 and §6), sent to the DFU interface.
public enum DFURequest: UInt8, Sendable {
    case detach = 0, download, upload, getStatus, clearStatus, getState, abort
}

/// Where a DFU device's state machine stands (DFU 1.1 §6.1.2, Figure A.1).
public enum DFUState: UInt8, Sendable, CustomStringConvertible {
    case applicationIdle = 0, applicationDetach, idle, downloadSync, downloadBusy, downloadIdle
    case manifestSync, manifest, manifestWaitReset, uploadIdle, error

    public var description: String {
        ["appIDLE", "appDETACH", "dfuIDLE", "dfuDNLOAD-SYNC", "dfuDNBUSY", "dfuDNLOAD-IDLE", "dfuMANIFEST-SYNC",
         "dfuMANIFEST", "dfuMANIFEST-WAIT-RESET", "dfuUPLOAD-IDLE", "dfuERROR"][Int(rawValue)]
    }
}

/// What a DFU device says went wrong with the last request (DFU 1.1 §6.1.2, bStatus).
public enum DFUStatus: UInt8, Sendable, CustomStringConvertible {
    case ok = 0, target, file, write, erase, checkErased, program, verify, address, notDone, firmware, vendor
    case usbReset, powerOnReset, unknown, stalledPacket

    public var description: String {
        switch self {
        case .ok: return "OK"
        case .target: return "errTARGET (the file is not for this device)"
        case .file: return "errFILE (the device refused it: read-protected, or the wrong file)"
        case .write: return "errWRITE (the memory cannot be written: write-protected?)"
        case .erase: return "errERASE (the memory erase failed)"
        case .checkErased: return "errCHECK_ERASED (the memory is not blank)"
        case .program: return "errPROG (programming the memory failed)"
        case .verify: return "errVERIFY (the programmed memory failed its check)"
        case .address: return "errADDRESS (an address outside the memory)"
        case .notDone: return "errNOTDONE (the download ended early)"
        case .firmware: return "errFIRMWARE (the firmware is corrupt)"
        case .vendor: return "errVENDOR (a vendor-specific error)"
        case .usbReset: return "errUSBR (an unexpected USB reset)"
        case .powerOnReset: return "errPOR (an unexpected power-on reset)"
        case .unknown: return "errUNKNOWN"
        case .stalledPacket: return "errSTALLEDPKT (the device stalled an unexpected request)"
        }
    }
}

/// One DFU_GETSTATUS answer.
public struct DFUStatusReport: Sendable, Equatable {
    public var status: DFUStatus
    /// How long the host waits before the next DFU_GETSTATUS (bwPollTimeout).
    public var pollMilliseconds: Int
    public var state: DFUState

    public init(status: DFUStatus, pollMilliseconds: Int, state: DFUState) {
        self.status = status
        self.pollMilliseconds = pollMilliseconds
        self.state = state
    }

    /// The six bytes a device answers.
    public var bytes: [UInt8] {
        [status.rawValue, UInt8(pollMilliseconds & 0xFF), UInt8(pollMilliseconds >> 8 & 0xFF), UInt8(pollMilliseconds >> 16 & 0xFF), state.rawValue, 0]
    }
}

/// The DFU interface of a device in DFU mode: the class requests, the status poll and the way back to
/// dfuIDLE, which every DFU dialect (Atmel's FLIP commands, ST's DfuSe, Maple) shares. Each request has
/// a bound; the busy poll honours bwPollTimeout and ends at its own limit.
public final class DFUInterface {
    public let device: USBDevice
    public let interface: UInt16
    public let time: TimeSource
    /// The bound of one request: a flash block's write is acknowledged well within it.
    static let requestMilliseconds = 5000

    public init(device: USBDevice, interface: UInt16 = 0, time: TimeSource) {
        self.device = device
        self.interface = interface
        self.time = time
    }

    /// Claims the interface of `setting`, selects the setting (SET_INTERFACE) and brings it to dfuIDLE:
    /// what DfuSe and Maple do first, each memory being a setting.
    public static func selecting(_ setting: DFUAlternateSetting, on device: USBDevice, time: TimeSource) throws(BootloaderError) -> DFUInterface {
        do {
            try device.claimInterface(Int32(setting.interface))
            try device.selectAlternateSetting(Int32(setting.setting), ofInterface: Int32(setting.interface))
        } catch .noDevice { throw .gone(operation: "selecting alternate setting \(setting.setting)") } catch {
            throw .usb(error, operation: "selecting alternate setting \(setting.setting)")
        }
        let dfu = DFUInterface(device: device, interface: UInt16(setting.interface), time: time)
        try dfu.returnToIdle()
        return dfu
    }

    /// DFU_DNLOAD of `data` as block `block` (a zero-length one ends a download).
    public func download(_ data: [UInt8], block: UInt16 = 0, _ operation: String) throws(BootloaderError) {
        try usb(operation) { () throws(USBError) in
            try device.controlOut(to: .classInterface, request: DFURequest.download.rawValue, value: block, index: interface,
                                  data: data, timeoutMilliseconds: Self.requestMilliseconds)
        }
    }

    /// DFU_UPLOAD of at most `length` bytes as block `block`.
    public func upload(length: Int, block: UInt16 = 0, _ operation: String) throws(BootloaderError) -> [UInt8] {
        try usb(operation) { () throws(USBError) in
            try device.controlIn(to: .classInterface, request: DFURequest.upload.rawValue, value: block, index: interface,
                                 length: length, timeoutMilliseconds: Self.requestMilliseconds)
        }
    }

    /// DFU_GETSTATUS.
    public func status(_ operation: String) throws(BootloaderError) -> DFUStatusReport {
        let bytes = try usb(operation) { () throws(USBError) in
            try device.controlIn(to: .classInterface, request: DFURequest.getStatus.rawValue, value: 0, index: interface,
                                 length: 6, timeoutMilliseconds: Self.requestMilliseconds)
        }
        guard bytes.count == 6 else { throw .protocolViolation("a DFU status of \(bytes.count) bytes while \(operation)") }
        guard let status = DFUStatus(rawValue: bytes[0]), let state = DFUState(rawValue: bytes[4]) else {
            throw .protocolViolation(String(cFormat: "DFU status 0x%02X in state %d while ", bytes[0], Int32(bytes[4])) + operation)
        }
        return DFUStatusReport(status: status, pollMilliseconds: Int(bytes[1]) | Int(bytes[2]) << 8 | Int(bytes[3]) << 16, state: state)
    }

    /// DFU_CLRSTATUS: dfuERROR back to dfuIDLE.
    public func clearStatus(_ operation: String) throws(BootloaderError) {
        try request(.clearStatus, operation)
    }

    /// DFU_ABORT: any idle state back to dfuIDLE.
    public func abort(_ operation: String) throws(BootloaderError) {
        try request(.abort, operation)
    }

    /// DFU_GETSTATE: whether the device still answers.
    public func state(_ operation: String) throws(BootloaderError) -> DFUState {
        let bytes = try usb(operation) { () throws(USBError) in
            try device.controlIn(to: .classInterface, request: DFURequest.getState.rawValue, value: 0, index: interface,
                                 length: 1, timeoutMilliseconds: Self.requestMilliseconds)
        }
        guard let byte = bytes.first, let state = DFUState(rawValue: byte) else { throw .protocolViolation("a DFU state of \(bytes) while \(operation)") }
        return state
    }

    /// Brings the device to dfuIDLE from wherever an earlier client left it (an error cleared, an
    /// unfinished download or upload aborted).
    public func returnToIdle() throws(BootloaderError) {
        for _ in 0..<3 {
            let report = try status("asking the DFU state")
            switch report.state {
            case .idle: return
            case .error: try clearStatus("clearing an earlier error")
            case .downloadIdle, .uploadIdle, .downloadSync, .manifestSync: try abort("ending an earlier transfer")
            case .applicationIdle, .applicationDetach:
                throw .protocolViolation("the device runs its application (\(report.state)), not its DFU bootloader")
            case .downloadBusy, .manifest, .manifestWaitReset:
                time.sleep(microseconds: max(report.pollMilliseconds, 10) * 1000)
            }
        }
        throw .protocolViolation("the DFU device does not return to dfuIDLE")
    }

    /// Polls DFU_GETSTATUS after a download until the device is done with it (no longer busy), waiting
    /// bwPollTimeout between polls and at most `limitMilliseconds` in all. A status other than OK is
    /// cleared and thrown as a refusal naming `operation`.
    @discardableResult
    public func awaitCompletion(_ operation: String, limitMilliseconds: Int) throws(BootloaderError) -> DFUStatusReport {
        let start = time.now
        while true {
            let report = try status(operation)
            if report.status != .ok {
                try? clearStatus("clearing the error")
                throw .refused("\(operation): \(report.status)")
            }
            guard [.downloadBusy, .downloadSync, .manifest, .manifestSync].contains(report.state) else { return report }
            guard time.elapsed(since: start) < UInt64(limitMilliseconds) * 1_000_000 else {
                throw .protocolViolation("the device was still busy (\(report.state)) \(limitMilliseconds) ms after \(operation)")
            }
            time.sleep(microseconds: max(report.pollMilliseconds, 1) * 1000)
        }
    }

    /// Whether the device is gone from the bus within `milliseconds` (it left for the application).
    public func hasGone(withinMilliseconds milliseconds: Int) -> Bool {
        pollUntilGone(within: milliseconds, on: time) { () throws(BootloaderError) in _ = try state("seeing whether the bootloader left") }
    }

    private func request(_ request: DFURequest, _ operation: String) throws(BootloaderError) {
        try usb(operation) { () throws(USBError) in
            try device.controlOut(to: .classInterface, request: request.rawValue, value: 0, index: interface, data: [],
                                  timeoutMilliseconds: Self.requestMilliseconds)
        }
    }

    /// A vanished device is the board gone; any other USB failure names the operation.
    @discardableResult
    private func usb<T>(_ operation: String, _ body: () throws(USBError) -> T) throws(BootloaderError) -> T {
        do { return try body() } catch .noDevice { throw .gone(operation: operation) } catch { throw .usb(error, operation: operation) }
    }
}
