import CLibUDev
import CLibUSB
import CSystemd
import TestSupport
import Foundation
import Testing

/// Each system-library target links and its library answers a real call.
@Suite struct SystemLibraryTests {
    @Test func libusbInitialisesAContextAndListsDevices() throws {
        var context: OpaquePointer?
        #expect(libusb_init(&context) == 0)
        defer { libusb_exit(context) }
        let version = libusb_get_version().pointee
        #expect(version.major == 1)
        #expect(version.minor == 0)
        var list: UnsafeMutablePointer<OpaquePointer?>?
        let count = libusb_get_device_list(context, &list)
        #expect(count >= 0, "libusb_get_device_list failed: \(count)")
        libusb_free_device_list(list, 1)
        #expect(String(cString: libusb_error_name(Int32(LIBUSB_ERROR_NO_DEVICE.rawValue))) == "LIBUSB_ERROR_NO_DEVICE")
    }

    @Test func libudevReadsADeviceFromSysfs() throws {
        let udev = try #require(udev_new())
        defer { udev_unref(udev) }
        let device = try #require(udev_device_new_from_syspath(udev, "/sys/class/net/lo"))
        defer { udev_device_unref(device) }
        #expect(String(cString: udev_device_get_sysname(device)) == "lo")
        #expect(String(cString: udev_device_get_subsystem(device)) == "net")
        let enumerate = try #require(udev_enumerate_new(udev))
        defer { udev_enumerate_unref(enumerate) }
        #expect(udev_enumerate_add_match_subsystem(enumerate, "usb") == 0)
        #expect(udev_enumerate_scan_devices(enumerate) == 0)
    }

    @Test func sdNotifyReachesTheNotifySocket() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("bootmedic-notify-\(getpid())").path
        unlink(path)
        let fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue), 0)
        try #require(fd >= 0)
        defer { close(fd); unlink(path) }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            path.utf8CString.withUnsafeBytes { raw.copyBytes(from: $0.prefix(raw.count)) }
        }
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        try #require(bound == 0)
        setenv("NOTIFY_SOCKET", path, 1)
        defer { unsetenv("NOTIFY_SOCKET") }
        #expect(sd_notify(0, "READY=1\nSTATUS=bootmedic test") > 0)
        var buffer = [UInt8](repeating: 0, count: 256)
        let n = recv(fd, &buffer, buffer.count, Int32(MSG_DONTWAIT))
        #expect(String(decoding: buffer.prefix(max(n, 0)), as: UTF8.self) == "READY=1\nSTATUS=bootmedic test")
    }

    @Test func sdJournalAndId128AreCallable() throws {
        try Fixtures.ensureJournald()
        var id = sd_id128_t()
        #expect(sd_id128_from_string("7d4958e842da4a758f6c1cdc7b36dcc5", &id) == 0)
        var text = [CChar](repeating: 0, count: 33)
        sd_id128_to_string(id, &text)
        let digits = text.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }
        #expect(String(decoding: digits, as: UTF8.self) == "7d4958e842da4a758f6c1cdc7b36dcc5")
        // sd_journal_sendv is the non-variadic entry point the journal sink uses. It returns 0 when journald
        // takes the entry, and -ECONNREFUSED on a socket whose journald is gone; the journal tests of the
        // agent read entries back.
        let fields = ["MESSAGE=bootmedic system-library test", "PRIORITY=7"]
        var storage = fields.map { Array($0.utf8) }
        let result = storage.withUnsafeMutableBufferPointer { buffers -> Int32 in
            var vectors = buffers.map { iovec(iov_base: UnsafeMutableRawPointer(mutating: $0.withUnsafeBytes { $0.baseAddress }), iov_len: $0.count) }
            return sd_journal_sendv(&vectors, Int32(vectors.count))
        }
        #expect(result == 0)
    }
}
