import Transport

/// A serial line whose far end answers with the fuzzer's bytes, in order: each read takes what it asks
/// for, or what is left and then times out, and every wait moves simulated time on by its bound (so a
/// driver's deadlines come due as they would on a silent line).
final class FuzzSerialLink: SerialLink {
    private var input: ArraySlice<UInt8>
    private let clock: VirtualClock
    let path = "/dev/fuzz"

    init(_ input: [UInt8], clock: VirtualClock) {
        self.input = input[...]
        self.clock = clock
    }

    func write(_ bytes: [UInt8], timeoutMilliseconds: Int) throws(SerialError) {
        clock.advance(nanoseconds: UInt64(bytes.count) * 87_000)   // 115200 baud
    }

    func read(count: Int, timeoutMilliseconds: Int) throws(SerialError) -> [UInt8] {
        let taken = Array(input.prefix(count))
        input = input.dropFirst(taken.count)
        guard taken.count == count else {
            clock.advance(nanoseconds: UInt64(max(0, timeoutMilliseconds)) * 1_000_000)
            throw .timeout(path: path, expected: count, received: taken, milliseconds: timeoutMilliseconds)
        }
        clock.advance(nanoseconds: UInt64(count) * 87_000)
        return taken
    }

    func drain(quietMilliseconds: Int, limitMilliseconds: Int) throws(SerialError) -> [UInt8] {
        clock.advance(nanoseconds: UInt64(max(0, quietMilliseconds)) * 1_000_000)
        return []
    }

    func setModemLines(dtr: Bool, rts: Bool) -> Bool { true }

    func close() {}
}

/// A USB device that answers every IN transfer with the fuzzer's next bytes (as many as asked, or what
/// is left, then timeouts) and takes every OUT transfer.
final class FuzzUSBDevice: USBDevice {
    private var input: ArraySlice<UInt8>
    private let clock: VirtualClock
    let description: USBDeviceDescription

    init(_ input: [UInt8], productID: UInt16, clock: VirtualClock) {
        self.input = input[...]
        self.clock = clock
        description = USBDeviceDescription(vendorID: 0x0483, productID: productID, product: "fuzz", serialNumber: "FUZZ")
    }

    private func answer(_ length: Int, timeoutMilliseconds: Int) throws(USBError) -> [UInt8] {
        guard !input.isEmpty else {
            clock.advance(nanoseconds: UInt64(max(0, timeoutMilliseconds)) * 1_000_000)
            throw .timeout(milliseconds: timeoutMilliseconds)
        }
        let taken = Array(input.prefix(length))
        input = input.dropFirst(taken.count)
        clock.advance(nanoseconds: 1_000_000)
        return taken
    }

    func controlIn(request: UInt8, value: UInt16, index: UInt16, length: Int, timeoutMilliseconds: Int) throws(USBError) -> [UInt8] {
        try answer(length, timeoutMilliseconds: timeoutMilliseconds)
    }

    func controlOut(request: UInt8, value: UInt16, index: UInt16, data: [UInt8], timeoutMilliseconds: Int) throws(USBError) -> Int {
        clock.advance(nanoseconds: 1_000_000)
        return data.count
    }

    func bulkWrite(endpoint: UInt8, data: [UInt8], timeoutMilliseconds: Int) throws(USBError) -> Int {
        clock.advance(nanoseconds: 1_000_000)
        return data.count
    }

    func bulkRead(endpoint: UInt8, length: Int, timeoutMilliseconds: Int) throws(USBError) -> [UInt8] {
        try answer(length, timeoutMilliseconds: timeoutMilliseconds)
    }

    func close() {}
}
