import CLibUDev
import FoundationEssentials
import Glibc
import Synchronization
import Transport

/// A USB device (or a USB serial port) as udev reports it.
public struct UdevDevice: Sendable, Hashable {
    public let syspath: String
    /// "usb" for a USB device, "tty" for a serial port on a USB adapter.
    public let subsystem: String
    public let vendorID: UInt16
    public let productID: UInt16
    public let serial: String?
    public let product: String?
    /// ID_PATH: the physical socket, stable across replugging.
    public let idPath: String?
    public let devnode: String?
    public let busNumber: UInt8
    public let deviceAddress: UInt8

    public init(
        syspath: String, subsystem: String, vendorID: UInt16, productID: UInt16,
        serial: String?, product: String?, idPath: String?, devnode: String?,
        busNumber: UInt8, deviceAddress: UInt8
    ) {
        self.syspath = syspath
        self.subsystem = subsystem
        self.vendorID = vendorID
        self.productID = productID
        self.serial = serial
        self.product = product
        self.idPath = idPath
        self.devnode = devnode
        self.busNumber = busNumber
        self.deviceAddress = deviceAddress
    }
}

/// What the watcher reports.
public enum DeviceEvent: Sendable, Equatable {
    case added(UdevDevice)
    case removed(syspath: String)
}

/// libudev: enumerates the USB devices present at start (a programmer plugged in before the service
/// counts), then follows the netlink monitor for add and remove events. udev_* handles stay inside.
public final class DeviceWatcher: Sendable {
    // libudev handles are not thread-safe: the monitor is read only by the monitor thread, and
    // `enumerate()` only uses `udev` to make enumerations of its own.
    nonisolated(unsafe) private let udev: OpaquePointer
    nonisolated(unsafe) private let monitor: OpaquePointer
    private let stopPipe: [CInt]
    private let worker = Mutex<WorkerThread?>(nil)

    /// - Parameter source: "udev" (events after udevd processed them) or "kernel".
    public init(source: String = "udev") throws {
        guard let udev = udev_new() else { throw DeviceWatcherError.udev("udev_new failed") }
        guard let monitor = udev_monitor_new_from_netlink(udev, source) else {
            udev_unref(udev)
            throw DeviceWatcherError.udev("cannot open the netlink monitor")
        }
        udev_monitor_filter_add_match_subsystem_devtype(monitor, "usb", "usb_device")
        udev_monitor_filter_add_match_subsystem_devtype(monitor, "tty", nil)
        guard udev_monitor_enable_receiving(monitor) == 0 else {
            udev_monitor_unref(monitor)
            udev_unref(udev)
            throw DeviceWatcherError.udev("cannot receive udev events")
        }
        self.udev = udev
        self.monitor = monitor
        var fds: [CInt] = [0, 0]
        _ = pipe(&fds)
        stopPipe = fds
    }

    deinit {
        stop()
        udev_monitor_unref(monitor)
        udev_unref(udev)
        close(stopPipe[0])
        close(stopPipe[1])
    }

    /// The USB devices and USB serial ports present now.
    public func enumerate() -> [UdevDevice] {
        scan { enumerate in
            udev_enumerate_add_match_subsystem(enumerate, "usb")
            udev_enumerate_add_match_property(enumerate, "DEVTYPE", "usb_device")
        } + scan { enumerate in udev_enumerate_add_match_subsystem(enumerate, "tty") }
    }

    private func scan(_ configure: (OpaquePointer) -> Void) -> [UdevDevice] {
        guard let enumerate = udev_enumerate_new(udev) else { return [] }
        defer { udev_enumerate_unref(enumerate) }
        configure(enumerate)
        udev_enumerate_scan_devices(enumerate)
        var out: [UdevDevice] = []
        var entry = udev_enumerate_get_list_entry(enumerate)
        while let current = entry {
            if let path = udev_list_entry_get_name(current), let device = udev_device_new_from_syspath(udev, path) {
                if let d = Self.describe(device) { out.append(d) }
                udev_device_unref(device)
            }
            entry = udev_list_entry_get_next(current)
        }
        return out
    }

    /// The monitor's events as an async sequence. It ends when `stop()` is called; a consumer that stops
    /// iterating stops the monitor. A watcher serves one sequence or one `start(_:)` at a time.
    public func events() -> AsyncStream<DeviceEvent> {
        let (stream, continuation) = AsyncStream.makeStream(of: DeviceEvent.self)
        continuation.onTermination = { [self] _ in requestStop() }
        start({ continuation.yield($0) }, onEnd: { continuation.finish() })
        return stream
    }

    /// Starts delivering events to `handler` from a background thread.
    public func start(_ handler: @escaping @Sendable (DeviceEvent) -> Void) {
        start(handler, onEnd: {})
    }

    private func start(_ handler: @escaping @Sendable (DeviceEvent) -> Void, onEnd: @escaping @Sendable () -> Void) {
        let fd = udev_monitor_get_fd(monitor)
        // A stop requested after the previous thread ended must not end this one.
        var stale = [pollfd(fd: stopPipe[0], events: Int16(POLLIN), revents: 0)]
        var byte: UInt8 = 0
        while poll(&stale, 1, 0) > 0 && read(stopPipe[0], &byte, 1) == 1 {}
        let thread = WorkerThread(name: "udev monitor") { [self] thread in
            while !thread.isStopRequested {
                var fds = [pollfd(fd: fd, events: Int16(POLLIN), revents: 0), pollfd(fd: stopPipe[0], events: Int16(POLLIN), revents: 0)]
                let ready = poll(&fds, 2, 1000)
                if ready < 0 && errno != EINTR { break }
                if fds[1].revents != 0 { break }
                guard fds[0].revents & Int16(POLLIN) != 0, let device = udev_monitor_receive_device(monitor) else { continue }
                let action = udev_device_get_action(device).map { String(cString: $0) }
                if action == "add", let d = Self.describe(device) { handler(.added(d)) }
                if action == "remove", let path = udev_device_get_syspath(device) { handler(.removed(syspath: String(cString: path))) }
                udev_device_unref(device)
            }
            onEnd()
        }
        worker.withCheckedLock { $0 = thread }
    }

    /// Stops the monitor thread and waits for it; ends the `events()` sequence.
    public func stop() {
        guard let thread = worker.withCheckedLock({ worker in defer { worker = nil }; return worker }) else { return }
        requestStop()
        thread.stop()
    }

    private func requestStop() {
        var byte: UInt8 = 1
        _ = write(stopPipe[1], &byte, 1)
    }

    private static func describe(_ device: OpaquePointer) -> UdevDevice? {
        let subsystem = udev_device_get_subsystem(device).map { String(cString: $0) } ?? ""
        // A tty counts only on a USB adapter; its ids and strings are the USB device's.
        let usb = subsystem == "tty" ? udev_device_get_parent_with_subsystem_devtype(device, "usb", "usb_device") : device
        guard let usb else { return nil }
        func property(_ name: String) -> String? {
            (udev_device_get_property_value(device, name) ?? udev_device_get_property_value(usb, name)).map { String(cString: $0) }
        }
        func attribute(_ name: String) -> String? { udev_device_get_sysattr_value(usb, name).map { String(cString: $0) } }
        guard let syspath = udev_device_get_syspath(device).map({ String(cString: $0) }) else { return nil }
        return UdevDevice(syspath: syspath, subsystem: subsystem, devnode: udev_device_get_devnode(device).map { String(cString: $0) },
                          property: property, attribute: attribute)
    }
}

extension UdevDevice {
    /// A device from what udev says of it: its properties (`ID_VENDOR_ID`, `ID_SERIAL_SHORT`, `ID_PATH`,
    /// `BUSNUM` …) and the sysfs attributes of its USB device where a property is missing. Nil unless both
    /// ids are four hex digits; a bus number or address that is not a byte reads as 0.
    public init?(syspath: String, subsystem: String, devnode: String?,
                 property: (String) -> String?, attribute: (String) -> String?) {
        func id(_ text: String?) -> UInt16? {
            guard let text, text.utf8.count == 4, text.utf8.allSatisfy({ $0 < 0x80 && Character(Unicode.Scalar($0)).isHexDigit }) else { return nil }
            return UInt16(text, radix: 16)
        }
        func byte(_ text: String?) -> UInt8 { text.flatMap { $0.utf8.allSatisfy { (0x30...0x39).contains($0) } ? UInt8($0) : nil } ?? 0 }
        guard let vendor = id(property("ID_VENDOR_ID") ?? attribute("idVendor")),
              let product = id(property("ID_MODEL_ID") ?? attribute("idProduct")) else { return nil }
        self.init(syspath: syspath, subsystem: subsystem, vendorID: vendor, productID: product,
                  serial: property("ID_SERIAL_SHORT") ?? attribute("serial"), product: attribute("product") ?? property("ID_MODEL"),
                  idPath: property("ID_PATH"), devnode: devnode,
                  busNumber: byte(property("BUSNUM") ?? attribute("busnum")),
                  deviceAddress: byte(property("DEVNUM") ?? attribute("devnum")))
    }
}

public enum DeviceWatcherError: Error, CustomStringConvertible {
    case udev(String)
    public var description: String { switch self { case let .udev(text): return "udev: \(text)" } }
}
