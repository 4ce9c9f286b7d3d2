import BenchModel
import Parts
import Transport

/// Why talking to a board's bootloader failed.
public enum BootloaderError: Error, Equatable, Sendable, CustomStringConvertible {
    case serial(SerialError, operation: String)
    case usb(USBError, operation: String)
    /// The bootloader answered something its protocol does not allow.
    case protocolViolation(String)
    /// The bootloader refused a command (AVR109's '?').
    case refused(String)
    /// The bootloader's device is gone (the board was pulled, or it left the bootloader).
    case gone(operation: String)

    public var description: String {
        switch self {
        case let .serial(error, operation): return "\(error) while \(operation)"
        case let .usb(error, operation): return "\(error) while \(operation)"
        case let .protocolViolation(text): return "the bootloader answered out of protocol: \(text)"
        case let .refused(text): return "the bootloader refused \(text)"
        case let .gone(operation): return "the board's bootloader went away while \(operation) (unplugged, or it reset)"
        }
    }
}

/// What a bootloader says about the chip it runs on.
public struct BootloaderReport: Sendable, Equatable {
    /// The signature, where the protocol reads it (AVR109 does; HalfKay does not).
    public var signature: Signature?
    /// The fuses and lock, where the protocol reads them.
    public var fuses: FuseSet?
    public var lock: UInt8?
    /// The bootloader's own name and version ("CATERIN 1.0").
    public var software: String
    /// The unit a block write takes, bytes.
    public var blockSize: Int
    /// How many bytes at the top of flash the bootloader keeps, where its kind tells and the fuses are
    /// not read (Atmel's DFU bootloaders fill the largest boot section).
    public var bootloaderBytes: Int?
    /// The flash's size and page size, where the protocol tells them instead of a signature (BootloadHID):
    /// the part is then one whose flash has them.
    public var flashGeometry: MemoryGeometry?
    /// An STM32's flash as its bootloader tells it (no signature: the part is one with this flash).
    public var stm32Flash: STM32BootloaderFlash?

    public init(signature: Signature?, fuses: FuseSet?, lock: UInt8?, software: String, blockSize: Int, bootloaderBytes: Int? = nil,
                flashGeometry: MemoryGeometry? = nil, stm32Flash: STM32BootloaderFlash? = nil) {
        self.signature = signature
        self.fuses = fuses
        self.lock = lock
        self.software = software
        self.blockSize = blockSize
        self.bootloaderBytes = bootloaderBytes
        self.flashGeometry = flashGeometry
        self.stm32Flash = stm32Flash
    }
}

/// An STM32's flash as a bootloader on it describes it: where it is, how big, how it erases, and where
/// applications go (above the STM32duino bootloader's own pages; at the base for ST's, which is in ROM).
public struct STM32BootloaderFlash: Sendable, Equatable {
    public var base: UInt32
    public var size: Int
    public var applicationStart: UInt32
    public var geometry: FlashGeometry
    /// The family, where the bootloader's kind tells it (the STM32duino bootloader runs on the F1).
    public var family: STM32Family.ID?
    /// Whose silicon it is (an ``STM32Variant`` id), where the bootloader's USB ids tell it.
    public var variant: String?

    public init(base: UInt32 = STM32Chip.flashBase, size: Int, applicationStart: UInt32, geometry: FlashGeometry,
                family: STM32Family.ID? = nil, variant: String? = nil) {
        self.base = base
        self.size = size
        self.applicationStart = applicationStart
        self.geometry = geometry
        self.family = family
        self.variant = variant
    }

    public var end: UInt32 { base + UInt32(size) }
}

/// A board's own bootloader, driven to flash an application: the seam between the flash job and each
/// bootloader's protocol (AVR109, DFU, HalfKay, …). The job owns the order and the checks; a session
/// only knows its protocol's commands.
public protocol BootloaderSession: AnyObject {
    /// The bootloader as the journal names it (kind, port, serial).
    var identity: ProgrammerIdentity { get }
    var time: TimeSource { get }
    /// Opens the session and reads what the bootloader says of itself and the chip.
    func identify() throws(BootloaderError) -> BootloaderReport
    /// Why flash cannot be read back now (for the backup, the health check and the verify), or nil
    /// when it can: the protocol has no read (HalfKay), or the bootloader refuses it until an erase.
    var readRefusal: String? { get }
    func readFlash(at address: Int, count: Int, progress: (Int) -> Void) throws(BootloaderError) -> [UInt8]
    /// Whether the bootloader erases each page as it writes it and has no erase of its own
    /// (BootloadHID): the application section is then cleared by writing blank pages.
    var erasesAsItWrites: Bool { get }
    /// Erases the application section (never the bootloader's own).
    func eraseApplication() throws(BootloaderError)
    /// Erases the application section, sparing the erase units `isBlank` says are blank already (what
    /// the backup read), where the bootloader erases unit by unit.
    func eraseApplication(sparing isBlank: (Range<Int>) -> Bool) throws(BootloaderError)
    /// Writes `bytes` at `address` (block-aligned) into the erased application section.
    func writeFlash(at address: Int, _ bytes: [UInt8], progress: (Int) -> Void) throws(BootloaderError)
    /// Reads `count` bytes of EEPROM from `address`.
    func readEEPROM(at address: Int, count: Int) throws(BootloaderError) -> [UInt8]
    /// Writes `bytes` into the EEPROM at `address`.
    func writeEEPROM(at address: Int, _ bytes: [UInt8]) throws(BootloaderError)
    /// Leaves the bootloader so the application starts.
    func startApplication() throws(BootloaderError)
    /// Whether the bootloader's device is gone (the application runs), waiting at most `milliseconds`.
    func hasGone(withinMilliseconds milliseconds: Int) -> Bool
    func close()
}

extension ProgrammerIdentity {
    /// A USB bootloader of `kind` on `device`: its serial number, its place on the bus, its ids.
    init(bootloader kind: BootloaderKind, on device: USBDevice) {
        let d = device.description
        self.init(bootloader: kind, name: kind.description, serialNumber: d.serialNumber, port: d.portPath.isEmpty ? d.ids : d.portPath)
        usb = USBID(vendor: d.vendorID, product: d.productID)
    }
}

extension BootloaderSession {
    public var erasesAsItWrites: Bool { false }
    public func eraseApplication(sparing isBlank: (Range<Int>) -> Bool) throws(BootloaderError) { try eraseApplication() }
}

extension BootloaderKind {
    /// The session that flashes through a USB bootloader of this kind on `device`; nil for a serial one
    /// (Caterina opens a tty).
    public func session(on device: USBDevice, time: TimeSource) -> BootloaderSession? {
        switch self {
        case .atmelDFU: return AtmelDFUBootloader(device: device, time: time, kind: self)
        case .usbasploader: return USBaspLoaderBootloader(device: device, time: time)
        case .halfkay: return HalfKayBootloader(device: device, time: time)
        case .bootloadhid: return BootloadHIDBootloader(device: device, time: time)
        case .stm32DFU: return DfuSeBootloader(device: device, time: time)
        case .stm32duino: return MapleDFUBootloader(device: device, time: time)
        default: return nil
        }
    }
}

/// Polls `probe` (a harmless request) every 50 ms until it says the device is gone, for at most
/// `milliseconds`: whether the bootloader's device left.
func pollUntilGone(within milliseconds: Int, on time: TimeSource, probe: () throws(BootloaderError) -> Void) -> Bool {
    let start = time.now
    repeat {
        do { try probe() } catch .gone { return true } catch {}
        time.sleep(microseconds: 50_000)
    } while time.elapsed(since: start) < UInt64(milliseconds) * 1_000_000
    return false
}
