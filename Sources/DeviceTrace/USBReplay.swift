import Foundation
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
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { throw .cannotRead(path) }
        try self.init(trace: text, session: session)
    }

    /// Plays session `session` of a trace's text.
    public init(trace text: String, session: Int = 1) throws(TraceError) {
        var header: USBDeviceDescription?
        var records: [TraceRecord] = []
        for (index, rawLine) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() where !rawLine.isEmpty {
            let line = index + 1
            let fields = rawLine.split(separator: " ", maxSplits: 2)
            guard fields.count == 3, let number = Int(fields[0]) else { throw .malformed(line: line, "expected a session number, a time and a transfer") }
            guard number == session else { continue }
            if fields[1] == "#" {
                guard fields[2].hasPrefix("usb "), let parsed = TraceHeader(parsing: fields[2].dropFirst(4)) else {
                    throw .malformed(line: line, "a header names the device: # usb VVVV:PPPP \"product\" …")
                }
                header = parsed.description
                continue
            }
            records.append(try Self.record(fields[2], seconds: fields[1], line: line))
        }
        guard let header else { throw .noSession(session) }
        description = header
        self.records = records
    }

    private static func record(_ text: Substring, seconds: Substring, line: Int) throws(TraceError) -> TraceRecord {
        guard let time = Double(seconds) else { throw .malformed(line: line, "'\(seconds)' is not a time in seconds") }
        guard let arrow = text.range(of: " -> ") else { throw .malformed(line: line, "no ' -> ' before the answer") }
        let words = text[..<arrow.lowerBound].split(separator: " ", maxSplits: 1)
        guard words.count == 2, let operation = TraceRecord.Operation(rawValue: String(words[0])) else {
            throw .malformed(line: line, "unknown transfer '\(words.first ?? "")'")
        }
        let answerText = text[arrow.upperBound...]
        let answer: TraceRecord.Answer
        if answerText.hasPrefix("error ") {
            guard let error = USBError(traceText: answerText.dropFirst(6)) else { throw .malformed(line: line, "unknown error '\(answerText)'") }
            answer = .error(error)
        } else if answerText.hasPrefix("sent ") {
            guard let n = Int(answerText.dropFirst(5)) else { throw .malformed(line: line, "'\(answerText)' is not a count") }
            answer = .sent(n)
        } else if answerText == "(none)" {
            answer = .bytes([])
        } else {
            let bytes = answerText.split(separator: " ").map { UInt8($0, radix: 16) }
            guard !bytes.contains(nil) else { throw .malformed(line: line, "'\(answerText)' is not bytes in hex") }
            answer = .bytes(bytes.map { $0! })
        }
        return TraceRecord(line: line, seconds: time, operation: operation, request: String(words[1]), answer: answer)
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
