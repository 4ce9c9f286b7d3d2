import CLibUSB
import Glibc

/// An open libusb device handle. Each transfer is one libusb call; the handle is closed once.
public final class LibUSBDevice: USBDevice {
    private var handle: OpaquePointer?
    public let description: USBDeviceDescription
    private var claimed: Set<Int32> = []
    /// Kept so the context outlives every handle opened from it.
    private let context: USBContext

    init(handle: OpaquePointer, description: USBDeviceDescription, context: USBContext) {
        self.handle = handle
        self.context = context
        self.description = description
        libusb_set_auto_detach_kernel_driver(handle, 1)
    }

    deinit { close() }

    /// A transfer cut off by an unplug fails as LIBUSB_ERROR_IO, and only a moment later does the
    /// kernel call the device gone: look again briefly, so the caller hears "unplugged", not "I/O error".
    private func failure(_ code: Int32, request: UInt8 = 0, timeoutMilliseconds: Int = 0) -> USBError {
        if code == LIBUSB_ERROR_IO.rawValue, let handle {
            for _ in 0..<10 {
                var configuration: Int32 = 0
                if libusb_get_configuration(handle, &configuration) == LIBUSB_ERROR_NO_DEVICE.rawValue { return .noDevice }
                usleep(50_000)
            }
        }
        return USBError(libusbCode: code, path: description.devicePath, request: request, timeoutMilliseconds: timeoutMilliseconds)
    }

    /// `libusb_claim_interface`, needed before bulk transfers.
    public func claimInterface(_ number: Int32) throws(USBError) {
        guard let handle else { throw .noDevice }
        let result = libusb_claim_interface(handle, number)
        guard result == 0 else { throw USBError(libusbCode: result, path: description.devicePath) }
        claimed.insert(number)
    }

    /// `libusb_control_transfer` with a vendor, device-recipient IN request.
    public func controlIn(request: UInt8, value: UInt16, index: UInt16, length: Int, timeoutMilliseconds: Int) throws(USBError) -> [UInt8] {
        try controlIn(to: .vendorDevice, request: request, value: value, index: index, length: length, timeoutMilliseconds: timeoutMilliseconds)
    }

    /// `libusb_control_transfer` with a vendor, device-recipient OUT request.
    @discardableResult
    public func controlOut(request: UInt8, value: UInt16, index: UInt16, data: [UInt8], timeoutMilliseconds: Int) throws(USBError) -> Int {
        try controlOut(to: .vendorDevice, request: request, value: value, index: index, data: data, timeoutMilliseconds: timeoutMilliseconds)
    }

    /// `libusb_control_transfer`, device to host.
    public func controlIn(to target: USBControlTarget, request: UInt8, value: UInt16, index: UInt16, length: Int, timeoutMilliseconds: Int) throws(USBError) -> [UInt8] {
        guard let handle else { throw .noDevice }
        var buffer = [UInt8](repeating: 0, count: max(length, 0))
        let n = libusb_control_transfer(handle, target.requestType(deviceToHost: true), request, value, index, &buffer, UInt16(length), UInt32(timeoutMilliseconds))
        guard n >= 0 else { throw failure(n, request: request, timeoutMilliseconds: timeoutMilliseconds) }
        return Array(buffer.prefix(Int(n)))
    }

    /// `libusb_control_transfer`, host to device.
    @discardableResult
    public func controlOut(to target: USBControlTarget, request: UInt8, value: UInt16, index: UInt16, data: [UInt8], timeoutMilliseconds: Int) throws(USBError) -> Int {
        guard let handle else { throw .noDevice }
        var buffer = data
        let n = libusb_control_transfer(handle, target.requestType(deviceToHost: false), request, value, index, &buffer, UInt16(data.count), UInt32(timeoutMilliseconds))
        guard n >= 0 else { throw failure(n, request: request, timeoutMilliseconds: timeoutMilliseconds) }
        return Int(n)
    }

    /// `libusb_set_interface_alt_setting`.
    public func selectAlternateSetting(_ setting: Int32, ofInterface number: Int32) throws(USBError) {
        guard let handle else { throw .noDevice }
        let result = libusb_set_interface_alt_setting(handle, number, setting)
        guard result == 0 else { throw failure(result, request: 11) }
    }

    /// `libusb_reset_device`; a device that re-enumerates as another (it left its bootloader) is gone
    /// from this handle, which is what was asked.
    public func resetDevice() throws(USBError) {
        guard let handle else { throw .noDevice }
        let result = libusb_reset_device(handle)
        guard result == 0 || result == LIBUSB_ERROR_NOT_FOUND.rawValue else { throw failure(result, request: 0) }
    }

    /// `libusb_bulk_transfer` OUT.
    @discardableResult
    public func bulkWrite(endpoint: UInt8, data: [UInt8], timeoutMilliseconds: Int) throws(USBError) -> Int {
        guard let handle else { throw .noDevice }
        var buffer = data
        var transferred: Int32 = 0
        let result = libusb_bulk_transfer(handle, endpoint & 0x7F, &buffer, Int32(data.count), &transferred, UInt32(timeoutMilliseconds))
        guard result == 0 else { throw failure(result, timeoutMilliseconds: timeoutMilliseconds) }
        return Int(transferred)
    }

    /// `libusb_bulk_transfer` IN.
    public func bulkRead(endpoint: UInt8, length: Int, timeoutMilliseconds: Int) throws(USBError) -> [UInt8] {
        guard let handle else { throw .noDevice }
        var buffer = [UInt8](repeating: 0, count: length)
        var transferred: Int32 = 0
        let result = libusb_bulk_transfer(handle, endpoint | 0x80, &buffer, Int32(length), &transferred, UInt32(timeoutMilliseconds))
        guard result == 0 else { throw failure(result, timeoutMilliseconds: timeoutMilliseconds) }
        return Array(buffer.prefix(Int(transferred)))
    }

    /// Releases claimed interfaces and `libusb_close`s the handle.
    public func close() {
        guard let handle else { return }
        for number in claimed { libusb_release_interface(handle, number) }
        libusb_close(handle)
        self.handle = nil
    }
}
