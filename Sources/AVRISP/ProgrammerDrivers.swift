import BenchModel
import Transport

/// Opens the driver for a programmer kind over the link it uses.
public enum ProgrammerDrivers {
    /// A USB programmer's driver around an open device.
    public static func open(_ kind: ProgrammerKind, device: USBDevice, time: TimeSource) throws(ISPError) -> ISPProgrammer {
        switch kind {
        case .usbasp: return try USBasp(device: device, time: time)
        case .usbtiny: return try USBtinyISP(device: device, time: time)
        default: throw .firmwareLimitation("\(kind) is not a USB ISP programmer")
        }
    }

    /// A serial programmer's driver on the port at `path`.
    public static func open(_ kind: ProgrammerKind, serialPath path: String, baudRate: Int? = nil, time: TimeSource) throws(ISPError) -> ISPProgrammer {
        switch kind {
        case .stk500v1: return try STK500v1(path: path, flavor: .arduinoISP, baudRate: baudRate ?? STK500v1.defaultBaudRate, time: time)
        case .avrisp: return try STK500v1(path: path, flavor: .avrisp, baudRate: baudRate ?? STK500v1.defaultBaudRate, time: time)
        case .buspirate: return try BusPirate(path: path, baudRate: baudRate ?? BusPirate.defaultBaudRate, time: time)
        default: throw .firmwareLimitation("\(kind) is not a serial programmer; it is found on USB, without --port")
        }
    }
}
