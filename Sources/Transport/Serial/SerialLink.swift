/// A serial line as a programmer's driver uses it: a real port (``SerialPort``), or one that records or
/// replays what crosses it. Only this seam differs between a bench, a trace and a replay.
public protocol SerialLink: AnyObject {
    /// The device path, for messages.
    var path: String { get }
    /// Writes all of `bytes` within `timeoutMilliseconds`.
    func write(_ bytes: [UInt8], timeoutMilliseconds: Int) throws(SerialError)
    /// Reads exactly `count` bytes, or fails with a timeout carrying what did arrive.
    func read(count: Int, timeoutMilliseconds: Int) throws(SerialError) -> [UInt8]
    /// Discards input until the line is quiet for `quietMilliseconds` (at most `limitMilliseconds`).
    @discardableResult
    func drain(quietMilliseconds: Int, limitMilliseconds: Int) throws(SerialError) -> [UInt8]
    /// Sets DTR and RTS; false where the device has none.
    @discardableResult
    func setModemLines(dtr: Bool, rts: Bool) -> Bool
    func close()
}

extension SerialLink {
    /// Writes with the usual two seconds to spare.
    public func write(_ bytes: [UInt8]) throws(SerialError) { try write(bytes, timeoutMilliseconds: 2000) }

    /// Drains with the usual 20 ms of quiet, for at most a second.
    @discardableResult
    public func drain() throws(SerialError) -> [UInt8] { try drain(quietMilliseconds: 20, limitMilliseconds: 1000) }
}

extension SerialPort: SerialLink {}
