/// Command and status bytes of the ST-Link USB protocol (stlink-org/stlink commands.h, openocd's
/// stlink_usb.c). Every command is a 16-byte block on the OUT endpoint; replies come on the IN endpoint.
enum STLinkCommand {
    static let getVersion: UInt8 = 0xF1
    static let debug: UInt8 = 0xF2
    static let dfu: UInt8 = 0xF3
    static let getCurrentMode: UInt8 = 0xF5
    static let getTargetVoltage: UInt8 = 0xF7
    static let getVersionV3: UInt8 = 0xFB

    static let dfuExit: UInt8 = 0x07

    // Debug sub-commands.
    static let readMemory32: UInt8 = 0x07
    static let writeMemory32: UInt8 = 0x08
    static let runCore: UInt8 = 0x09
    static let readMemory8: UInt8 = 0x0C
    static let writeMemory8: UInt8 = 0x0D
    static let exitDebug: UInt8 = 0x21
    static let enterV2: UInt8 = 0x30
    static let readIDCodes: UInt8 = 0x31
    static let resetSystem: UInt8 = 0x32
    static let writeDebugRegister: UInt8 = 0x35
    static let readDebugRegister: UInt8 = 0x36
    static let driveNRST: UInt8 = 0x3C
    static let lastStatus2: UInt8 = 0x3E
    static let setSWDFrequency: UInt8 = 0x43
    static let readMemory16: UInt8 = 0x47
    static let writeMemory16: UInt8 = 0x48
    static let enterSWD: UInt8 = 0xA3
}

/// Modes an ST-Link can be in (GET_CURRENT_MODE).
public enum STLinkMode: UInt8, Sendable {
    case dfu = 0x00, massStorage = 0x01, debug = 0x02, swim = 0x03, bootloader = 0x04
}

/// Status codes of the last debug transfer.
enum STLinkStatus {
    static let ok: UInt8 = 0x80
    static let fault: UInt8 = 0x81
    static let apWait: UInt8 = 0x10
    static let apFault: UInt8 = 0x11
    static let apError: UInt8 = 0x12
    static let dpWait: UInt8 = 0x14
    static let dpFault: UInt8 = 0x15
    static let dpError: UInt8 = 0x16

    static func describe(_ code: UInt8) -> String {
        switch code {
        case ok: return "OK"
        case fault: return "debug fault"
        case apWait: return "access port wait"
        case apFault: return "access port fault (the target refused the access)"
        case apError: return "access port error"
        case dpWait: return "debug port wait"
        case dpFault: return "debug port fault"
        case dpError: return "debug port error (no answer on SWD)"
        default: return "status 0x" + String(code, radix: 16)
        }
    }
}

/// SWD clock settings of ST-Link/V2 firmware (divisor → kHz), fastest first.
let swdFrequencies: [(divisor: UInt16, kilohertz: Int)] = [
    (0, 4000), (1, 1800), (2, 1200), (3, 950), (7, 480), (15, 240), (31, 125), (40, 100), (79, 50), (158, 25), (265, 15), (798, 5),
]

func littleEndian32(_ value: UInt32) -> [UInt8] { [UInt8(value & 0xFF), UInt8(value >> 8 & 0xFF), UInt8(value >> 16 & 0xFF), UInt8(value >> 24)] }
func littleEndian16(_ value: UInt16) -> [UInt8] { [UInt8(value & 0xFF), UInt8(value >> 8)] }
func readLittleEndian32(_ bytes: [UInt8], at offset: Int = 0) -> UInt32 {
    UInt32(bytes[offset]) | UInt32(bytes[offset + 1]) << 8 | UInt32(bytes[offset + 2]) << 16 | UInt32(bytes[offset + 3]) << 24
}
