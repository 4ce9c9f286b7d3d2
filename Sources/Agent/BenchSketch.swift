import DeviceCatalog
import Dispatch
import Glibc
import Transport

/// A Caterina board running a sketch, on its serial port, that a rule sends to its bootloader with the
/// 1200-baud touch (`use_1200bps_touch`): the board resets, its sketch's port goes, and the bootloader's
/// comes up in the same USB socket for about eight seconds.
public struct BenchSketch: Sendable {
    /// The tty's udev syspath.
    public let id: String
    /// The serial port (/dev/ttyACM0).
    public let path: String
    public let usb: USBID
    /// udev's ID_PATH of the tty.
    public let port: String?

    public init(id: String, path: String, usb: USBID, port: String?) {
        self.id = id
        self.path = path
        self.usb = usb
        self.port = port
    }

    /// The USB socket of a tty's or a USB device's ID_PATH: the tty's interface ("…-usb-0:2:1.0" → "…-usb-0:2").
    public static func socket(of idPath: String) -> String {
        guard let colon = idPath.lastIndex(of: ":") else { return idPath }
        let last = idPath[idPath.index(after: colon)...].split(separator: ".", omittingEmptySubsequences: false)
        let isInterface = last.count == 2 && last.allSatisfy { !$0.isEmpty && $0.allSatisfy(\.isNumber) }
        return isInterface ? String(idPath[..<colon]) : idPath
    }

    /// The USB socket the board sits in (its tty's syspath where udev gave no ID_PATH).
    public var socket: String { port.map(Self.socket(of:)) ?? id }

    /// What the board is, for people: the catalog's name, else its ids.
    public var name: String {
        DeviceCatalog.builtIn.entry(for: usb, product: nil).map(\.name) ?? "the board \(usb) running a sketch"
    }

    /// Whether `bootloader` is this board come back in its bootloader: a serial bootloader in the same
    /// USB socket; where udev gave no socket, the bootloader the catalog pairs with the sketch's ids.
    public func isSameBoard(_ bootloader: BenchBootloader) -> Bool {
        guard bootloader.kind.isSerial else { return false }
        if let port, let other = bootloader.port { return Self.socket(of: port) == Self.socket(of: other) }
        return DeviceCatalog.builtIn.entry(for: usb, product: nil)?.bootloaderAfterTouch == bootloader.usb
    }

    /// Sends the touch, then asks `find` every 50 ms, for at most `timeout` seconds, for the board's bootloader.
    public func enterBootloader(timeout: Double, find: () -> BenchBootloader?) throws(TouchError) -> BenchBootloader {
        do { try SerialPort.touch(path) } catch { throw .portUnusable(error) }
        let deadline = DispatchTime.now() + timeout
        while true {
            if let found = find() { return found }
            guard DispatchTime.now() < deadline else { throw .bootloaderMissing(seconds: timeout) }
            usleep(50_000)
        }
    }
}

/// Why a board running a sketch did not get to its bootloader.
public enum TouchError: Error, Sendable, CustomStringConvertible {
    /// The sketch's port could not be opened for the touch.
    case portUnusable(SerialError)
    /// No bootloader came up in the board's socket in time.
    case bootloaderMissing(seconds: Double)

    /// The board did not come back in a bootloader (rather than its port failing).
    public var isMissing: Bool {
        if case .bootloaderMissing = self { return true }
        return false
    }

    public var description: String {
        switch self {
        case let .portUnusable(error): return "the 1200-baud touch could not be sent: \(error)"
        case let .bootloaderMissing(seconds):
            return "no bootloader came up in the board's USB socket within \(String(cFormat: "%g", seconds)) s of the 1200-baud touch "
                + "(a sketch built without Arduino's USB core, or one that crashed, ignores the touch: double-tap the board's reset button)"
        }
    }
}
