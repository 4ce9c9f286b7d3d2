import Parts
import Transport

/// Why talking to the target through an ISP programmer failed, said so a technician knows what to check.
public enum ISPError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The programmer's USB link failed while doing `operation`.
    case usb(USBError, operation: String)
    /// Programming enable never echoed 0x53, at any SCK down to `slowestSCK`.
    case noTarget(slowestSCK: String, detail: String)
    /// The programmer cannot reach all of the part's flash.
    case flashBeyondReach(programmer: String, part: String, limit: Int, flash: Int)
    /// The programmer's firmware cannot do something bootmedic needs.
    case firmwareLimitation(String)
    /// RDY/BSY stayed busy past the datasheet's worst case.
    case stillBusy(operation: String, waitedMicroseconds: Int)
    /// The programmer answered something the protocol does not allow.
    case protocolViolation(String)
    /// The programmer's serial port failed while doing `operation` (the port's own error, kept whole).
    /// Boxed: stored inline, the larger payload made Swift 6.3's copies of a typed-thrown ISPError read a
    /// null pointer (a crash in DeviceTraceTests when a replay failed mid-write).
    indirect case serial(SerialError, operation: String?)
    /// The programmer on the serial line does not speak its protocol (no sync, no binary mode).
    case link(String)

    public var description: String {
        switch self {
        case let .usb(.noDevice, operation):
            return "the programmer disappeared from USB while \(operation) (unplugged?)"
        case let .usb(.timeout(ms), operation):
            return "the programmer stopped answering while \(operation) (no reply within \(ms) ms)"
        case let .usb(error, operation):
            return "\(error) while \(operation)"
        case let .noTarget(slowest, detail):
            return "no target answers: programming enable got no echo at any SCK down to \(slowest) (\(detail)); check the ISP cable (RESET, SCK, MOSI, MISO, GND), that the board is powered, and that nothing else drives RESET"
        case let .flashBeyondReach(programmer, part, limit, flash):
            return "\(programmer) addresses only the first \(limit / 1024) KiB of flash, and \(part) has \(flash / 1024) KiB: it would write the bootloader to the wrong place and fail verification; use a USBasp, an Arduino as ISP or a Bus Pirate"
        case let .firmwareLimitation(text):
            return text
        case let .stillBusy(operation, waited):
            return "the target stayed busy \(waited / 1000) ms after \(operation), beyond the datasheet's worst case"
        case let .protocolViolation(text):
            return "the programmer answered out of protocol: \(text)"
        case let .serial(error, operation):
            return operation.map { "\(error) while \($0)" } ?? error.description
        case let .link(text):
            return text
        }
    }

    /// A failure caught around serial I/O and protocol checks: the protocol's own errors as they are, the
    /// port's kept whole with the operation it interrupted.
    static func serialFailure(_ error: any Error, while operation: String) -> ISPError {
        switch error {
        case let error as ISPError: return error
        case let error as SerialError: return .serial(error, operation: operation)
        default: return .link("\(error) while \(operation)")
        }
    }
}
