import FoundationEssentials
import Transport

/// A recorded USB device played back: each transfer the driver makes must be the next one the trace
/// holds, and gets the answer recorded for it (bytes, a count, or the same error). Time moves as it did
/// while recording. A driver that asks for anything else stops at once with the trace line it left, so
/// a failure on a real bench, recorded with `--trace`, becomes a test of the real drivers.
public final class ReplayUSBDevice: USBDevice {
    public let description: USBDeviceDescription
    /// Simulated time, moved to each record's timestamp as it is played.
    public let clock = VirtualClock()
    private let records: [TraceRecord]
    private var next = 0

    /// Loads session `session` of the trace at `path`.
    public convenience init(path: String, session: Int = 1) throws(TraceError) {
        try self.init(trace: try readTrace(path), session: session)
    }

    /// Plays session `session` of a trace's text.
    public init(trace text: String, session: Int = 1) throws(TraceError) {
        let parsed = try TraceSession(text: text, session: session)
        guard parsed.header.hasPrefix("usb "), let header = TraceHeader(parsing: parsed.header.dropFirst(4)) else {
            throw .malformed(line: parsed.headerLine, "session \(session) is not a USB device's (# usb VVVV:PPPP \"product\" …)")
        }
        description = header.description
        var records: [TraceRecord] = []
        for raw in parsed.records {
            guard let operation = TraceRecord.Operation(rawValue: raw.operation) else { throw .malformed(line: raw.line, "unknown transfer '\(raw.operation)'") }
            let answer: TraceRecord.Answer
            if raw.answer.hasPrefix("error ") {
                guard let error = USBError(traceText: raw.answer.dropFirst(6)) else { throw .malformed(line: raw.line, "unknown error '\(raw.answer)'") }
                answer = .error(error)
            } else if raw.answer.hasPrefix("sent ") {
                guard let n = Int(raw.answer.dropFirst(5)) else { throw .malformed(line: raw.line, "'\(raw.answer)' is not a count") }
                answer = .sent(n)
            } else {
                answer = .bytes(try raw.bytes())
            }
            records.append(TraceRecord(line: raw.line, seconds: raw.seconds, operation: operation, request: raw.request, answer: answer))
        }
        self.records = records
    }

    /// Transfers the trace holds that the driver has not made yet.
    public var remainingTransfers: Int { records.count - next }

    private func play(_ operation: TraceRecord.Operation, _ request: String) throws(USBError) -> TraceRecord.Answer {
        guard next < records.count else {
            throw .other("replay: the trace ends, but the driver sent \(operation.rawValue) \(request)")
        }
        let record = records[next]
        guard record.operation == operation, record.request == request else {
            throw .other("replay: trace line \(record.line) recorded \(record.operation.rawValue) \(record.request), but the driver sent \(operation.rawValue) \(request)")
        }
        next += 1
        clock.advance(to: UInt64(record.seconds * 1e9))
        if case let .error(error) = record.answer { throw error }
        return record.answer
    }

    private func bytes(_ answer: TraceRecord.Answer) throws(USBError) -> [UInt8] {
        guard case let .bytes(bytes) = answer else { throw .other("replay: the trace answers a read with a count") }
        return bytes
    }

    private func count(_ answer: TraceRecord.Answer) throws(USBError) -> Int {
        guard case let .sent(n) = answer else { throw .other("replay: the trace answers a write with bytes") }
        return n
    }

    public func controlIn(request: UInt8, value: UInt16, index: UInt16, length: Int, timeoutMilliseconds: Int) throws(USBError) -> [UInt8] {
        try bytes(try play(.controlIn, TraceRecord.controlRequest(request, value, index, length: length)))
    }

    public func controlOut(request: UInt8, value: UInt16, index: UInt16, data: [UInt8], timeoutMilliseconds: Int) throws(USBError) -> Int {
        try count(try play(.controlOut, TraceRecord.controlRequest(request, value, index, data: data)))
    }

    public func bulkWrite(endpoint: UInt8, data: [UInt8], timeoutMilliseconds: Int) throws(USBError) -> Int {
        try count(try play(.bulkWrite, TraceRecord.bulkRequest(endpoint, data: data)))
    }

    public func bulkRead(endpoint: UInt8, length: Int, timeoutMilliseconds: Int) throws(USBError) -> [UInt8] {
        try bytes(try play(.bulkRead, TraceRecord.bulkRequest(endpoint, length: length)))
    }

    public func close() {}
}
