@_exported import BenchModel
import Parts
import Transport

/// One page-aligned flash page to program.
public struct FlashPage: Hashable, Sendable {
    public let address: UInt32
    public let bytes: [UInt8]

    public init(address: UInt32, bytes: [UInt8]) {
        self.address = address
        self.bytes = bytes
    }

    /// Address-ordered pages joined wherever one ends where the next begins, so a driver can stream them.
    public static func joiningContiguous(_ pages: [FlashPage]) -> [FlashPage] {
        var runs: [FlashPage] = []
        for page in pages {
            if let last = runs.last, last.address + UInt32(last.bytes.count) == page.address {
                runs[runs.count - 1] = FlashPage(address: last.address, bytes: last.bytes + page.bytes)
            } else {
                runs.append(page)
            }
        }
        return runs
    }
}

/// An AVR in-system programmer: the seam between the recovery pipeline and a device (USBasp, USBtinyISP,
/// an STK500v1 sketch, a Bus Pirate). Drivers implement the link and whatever block operations their
/// firmware offers; the serial-programming instructions on top are shared (``ISPCommands``).
public protocol ISPProgrammer: AnyObject {
    var identity: ProgrammerIdentity { get }

    /// The flash size the programmer can address, if limited (USBtinyISP: 64 KiB).
    var flashAddressLimit: Int? { get }

    /// The clock that waits go through: real time on a bench, virtual time in a rehearsal.
    var time: TimeSource { get }

    /// Holds RESET low and enters serial programming mode, checking the 0x53 echo, pulsing RESET
    /// and falling back to slower SCK when the target does not answer.
    func enterProgrammingMode() throws(ISPError)

    /// Looks for a chip on the cable at the least cost: one Programming Enable at the programmer's slowest
    /// SCK, which a chip at any clock follows, with RESET released again afterwards. True when a chip
    /// echoed. What an idle bench slot asks several times a second.
    func targetAnswers() throws(ISPError) -> Bool

    /// Forgets the SCK the last target answered at, so that the next `enterProgrammingMode` starts again
    /// from the fastest: the next board on the cable may run faster than the one before it.
    func forgetTargetSpeed()

    /// Releases RESET so the target runs; never throws (it is also the clean-up path).
    func leaveProgrammingMode()

    /// Sends one instruction and returns the four bytes the target shifted out.
    func transfer(_ instruction: ISPInstruction) throws(ISPError) -> [UInt8]

    /// Reads `count` bytes of flash from byte `address`.
    func readFlash(from address: UInt32, count: Int, part: AVRPart) throws(ISPError) -> [UInt8]

    /// Programs whole pages (already erased) and waits until each is written. `progress` gets the bytes done.
    func writeFlash(_ pages: [FlashPage], part: AVRPart, progress: (Int) -> Void) throws(ISPError)

    /// Reads `count` bytes of EEPROM from `address`.
    func readEEPROM(from address: Int, count: Int, part: AVRPart) throws(ISPError) -> [UInt8]

    /// Writes EEPROM bytes (address, value), waiting for each.
    func writeEEPROM(_ bytes: [(address: Int, value: UInt8)], part: AVRPart) throws(ISPError)

    /// True when a round trip is cheap enough that polling RDY/BSY beats waiting the worst case.
    var pollsReadyBusy: Bool { get }

    /// True when the programmer picks its SCK to suit the target's clock, so a faster-running chip is
    /// programmed faster; false where its firmware fixes the SCK (ArduinoISP's 125 kHz).
    var adaptsSCK: Bool { get }

    /// The most bytes one request of the programmer reads: a read of a multiple of it costs no
    /// request carrying a remainder.
    var readBlockSize: Int { get }

    /// Lets go of the programmer: returns it to the state a person expects (a Bus Pirate to its console)
    /// and closes the device. Later calls fail.
    func close()
}
