import BenchModel
import Transport

/// What the USB side of a serial port says about itself (udev's ID_VENDOR_ID, ID_MODEL_ID, strings).
public struct SerialDeviceInfo: Sendable, Hashable {
    public var vendorID: UInt16
    public var productID: UInt16
    public var manufacturer: String?
    public var product: String?
    public var path: String

    public init(vendorID: UInt16, productID: UInt16, manufacturer: String? = nil, product: String? = nil, path: String) {
        self.vendorID = vendorID
        self.productID = productID
        self.manufacturer = manufacturer
        self.product = product
        self.path = path
    }
}

/// How a serial device is treated.
public enum SerialRecognition: Sendable, Equatable {
    /// Its ids belong to boards that may carry one of these programmer firmwares: a harmless probe decides.
    case candidate([ProgrammerKind])
    /// A board's bootloader or something else that must never be sent anything.
    case leaveAlone(String)
    /// Nothing bootmedic knows.
    case unknown
}

/// Which serial devices may be programmers. VID:PID alone is ambiguous (an FTDI or CH340 id belongs to
/// thousands of things, an Arduino id to any sketch), so the catalog only nominates candidates, and a
/// harmless probe (``SerialProgrammerProbe``) decides; nothing else is sent to a device the probe has
/// not recognised.
public struct SerialProgrammerCatalog: Sendable {
    public struct Entry: Sendable, Equatable {
        public var vendorID: UInt16
        public var productID: UInt16
        /// If set, the USB product string must contain this (case-insensitive).
        public var productContains: String?
        public var recognition: SerialRecognition
        public var note: String

        public init(_ vendorID: UInt16, _ productID: UInt16, productContains: String? = nil, _ recognition: SerialRecognition, _ note: String) {
            self.vendorID = vendorID
            self.productID = productID
            self.productContains = productContains
            self.recognition = recognition
            self.note = note
        }
    }

    public var entries: [Entry]

    public init(entries: [Entry]) { self.entries = entries }

    /// The built-in table; a workshop's config can add entries in front of it.
    public static let standard = SerialProgrammerCatalog(entries: [
        // Caterina bootloaders enumerate as serial ports for a few seconds: boards waiting to be flashed.
        Entry(0x2341, 0x0036, .leaveAlone("Arduino Leonardo bootloader (Caterina)"), "Caterina"),
        Entry(0x2341, 0x0037, .leaveAlone("Arduino Micro bootloader (Caterina)"), "Caterina"),
        Entry(0x1B4F, 0x9203, .leaveAlone("SparkFun Pro Micro 3V3 bootloader (Caterina)"), "Caterina"),
        Entry(0x1B4F, 0x9205, .leaveAlone("SparkFun Pro Micro 5V bootloader (Caterina)"), "Caterina"),
        Entry(0x1B4F, 0x9207, .leaveAlone("LilyPadUSB bootloader (Caterina)"), "Caterina"),
        Entry(0x239A, 0x000C, .leaveAlone("Adafruit Feather 32U4 bootloader (Caterina)"), "Caterina"),
        Entry(0x1FFB, 0x0101, .leaveAlone("Pololu A-Star 32U4 bootloader (Caterina)"), "Caterina"),
        // Boards that run ArduinoISP, and the QMK ISP firmwares.
        Entry(0x2341, 0x0043, .candidate([.stk500v1]), "Arduino Uno (ATmega16U2)"),
        Entry(0x2341, 0x0001, .candidate([.stk500v1]), "Arduino Uno (ATmega8U2)"),
        Entry(0x2341, 0x0243, .candidate([.stk500v1]), "Arduino Uno R3 (ATmega16U2)"),
        Entry(0x2A03, 0x0043, .candidate([.stk500v1]), "Arduino Uno (arduino.org)"),
        Entry(0x2341, 0x8036, .candidate([.stk500v1]), "Arduino Leonardo running a sketch"),
        Entry(0x2341, 0x8037, .candidate([.stk500v1]), "Arduino Micro running a sketch"),
        Entry(0x1B4F, 0x9204, .candidate([.avrisp, .stk500v1]), "SparkFun Pro Micro 3V3 running a sketch"),
        Entry(0x1B4F, 0x9206, .candidate([.avrisp, .stk500v1]), "SparkFun Pro Micro 5V running a sketch"),
        Entry(0x16C0, 0x0483, .candidate([.avrisp]), "Teensy USB serial / QMK ISP firmware"),
        Entry(0x1A86, 0x7523, .candidate([.stk500v1]), "CH340 USB serial (clone Uno, Nano)"),
        Entry(0x0403, 0x6001, .candidate([.stk500v1, .buspirate]), "FTDI FT232R (Bus Pirate v3, FTDI Arduinos)"),
        Entry(0x04D8, 0xFB00, .candidate([.buspirate]), "Bus Pirate v4"),
    ])

    /// How `device` is treated: the first matching entry wins.
    public func recognize(_ device: SerialDeviceInfo) -> SerialRecognition {
        for entry in entries where entry.vendorID == device.vendorID && entry.productID == device.productID {
            if let needle = entry.productContains, !(device.product ?? "").lowercased().contains(needle.lowercased()) { continue }
            return entry.recognition
        }
        return .unknown
    }
}

/// The harmless probe that tells which programmer firmware, if any, answers on a candidate port: an
/// STK500 sync (`0x30 0x20`, which an ArduinoISP or avrisp firmware answers with `0x14 0x10`), and the
/// Bus Pirate's binary-mode entry followed at once by its reset back to the console.
public enum SerialProgrammerProbe {
    public static func identify(path: String, candidates: [ProgrammerKind], time: TimeSource) -> ProgrammerKind? {
        for kind in candidates {
            switch kind {
            case .stk500v1, .avrisp:
                guard let port = try? SerialPort(path: path, baudRate: STK500v1.defaultBaudRate) else { continue }
                defer { port.close() }
                if kind == .stk500v1 {
                    // Opening reset the Arduino: give its bootloader time to hand over to the sketch.
                    port.setModemLines(dtr: true, rts: true)
                }
                for _ in 0..<(kind == .stk500v1 ? 8 : 3) {
                    _ = try? port.drain(quietMilliseconds: 10, limitMilliseconds: 200)
                    guard (try? port.write([0x30, 0x20])) != nil else { break }
                    if (try? port.read(count: 2, timeoutMilliseconds: 250)) == [0x14, 0x10] {
                        _ = try? port.drain(quietMilliseconds: 10, limitMilliseconds: 100)
                        return kind
                    }
                }
            case .buspirate:
                guard let port = try? SerialPort(path: path, baudRate: BusPirate.defaultBaudRate) else { continue }
                defer { port.close() }
                _ = try? port.write(Array("\n\n".utf8))
                _ = try? port.drain(quietMilliseconds: 20, limitMilliseconds: 300)
                _ = try? port.write([UInt8](repeating: 0, count: 20))
                var heard: [UInt8] = []
                let start = time.now
                while time.elapsed(since: start) < 500_000_000, !heard.suffix(5).elementsEqual("BBIO1".utf8) {
                    guard let byte = try? port.read(count: 1, timeoutMilliseconds: 100) else { continue }
                    heard += byte
                }
                if heard.suffix(5).elementsEqual("BBIO1".utf8) {
                    _ = try? port.write([0x0F])   // straight back to the console
                    _ = try? port.drain(quietMilliseconds: 50, limitMilliseconds: 500)
                    return .buspirate
                }
            default:
                continue
            }
        }
        return nil
    }
}
