import FoundationEssentials
import Transport

/// A serial line whose every write, read, drain and modem-line change is written to a trace.
final class TracingSerialLink: SerialLink {
    private let link: SerialLink
    private let writer: SessionWriter

    init(_ link: SerialLink, _ writer: SessionWriter) {
        self.link = link
        self.writer = writer
    }

    var path: String { link.path }

    private func record<T>(_ operation: String, _ request: String, _ answer: (T) -> String, _ body: () throws(SerialError) -> T) throws(SerialError) -> T {
        try writer.record(operation, request, answer: answer, error: { (error: SerialError) in error.traceText }, body)
    }

    func write(_ bytes: [UInt8], timeoutMilliseconds: Int) throws(SerialError) {
        try record("write", "data=\(hexRun(bytes))", { "ok" }) { () throws(SerialError) in try link.write(bytes, timeoutMilliseconds: timeoutMilliseconds) }
    }

    func read(count: Int, timeoutMilliseconds: Int) throws(SerialError) -> [UInt8] {
        try record("read", "count=\(count) timeout=\(timeoutMilliseconds)", hexText) { () throws(SerialError) in
            try link.read(count: count, timeoutMilliseconds: timeoutMilliseconds)
        }
    }

    func drain(quietMilliseconds: Int, limitMilliseconds: Int) throws(SerialError) -> [UInt8] {
        try record("drain", "quiet=\(quietMilliseconds) limit=\(limitMilliseconds)", hexText) { () throws(SerialError) in
            try link.drain(quietMilliseconds: quietMilliseconds, limitMilliseconds: limitMilliseconds)
        }
    }

    func setModemLines(dtr: Bool, rts: Bool) -> Bool {
        let done = link.setModemLines(dtr: dtr, rts: rts)
        writer.line("modem", "dtr=\(dtr ? 1 : 0) rts=\(rts ? 1 : 0)", "\(done)")
        return done
    }

    func close() { link.close() }
}

/// A recorded serial line played back: each write must carry the bytes recorded, and each read, drain
/// and modem change gets the recorded answer (or error), with time moving as it did. A driver that
/// sends anything else stops at once with the trace line it left.
public final class ReplaySerialLink: SerialLink {
    /// The firmware the trace says was on the line ("stk500v1").
    public let label: String
    public let path: String
    /// Simulated time, moved to each record's timestamp as it is played.
    public let clock = VirtualClock()
    private let records: [TraceSession.Line]
    private var next = 0

    /// Loads session `session` of the trace at `path`.
    public convenience init(path: String, session: Int = 1) throws(TraceError) {
        try self.init(trace: try readTrace(path), session: session)
    }

    /// Plays session `session` of a trace's text.
    public init(trace text: String, session: Int = 1) throws(TraceError) {
        let parsed = try TraceSession(text: text, session: session)
        let words = parsed.header.split(separator: " ", maxSplits: 2)
        guard words.count == 3, words[0] == "serial" else {
            throw .malformed(line: parsed.headerLine, "session \(session) is not a serial line's (# serial KIND PATH)")
        }
        label = String(words[1])
        path = String(words[2])
        records = parsed.records
    }

    /// What the trace holds that the driver has not done yet.
    public var remainingTransfers: Int { records.count - next }

    private func play(_ operation: String, _ request: String) throws(SerialError) -> TraceSession.Line {
        guard next < records.count else {
            throw .io(path: path, reason: "replay: the trace ends, but the driver did \(operation) \(request)")
        }
        let record = records[next]
        guard record.operation == operation, record.request == request else {
            throw .io(path: path, reason: "replay: trace line \(record.line) recorded \(record.operation) \(record.request), but the driver did \(operation) \(request)")
        }
        next += 1
        clock.advance(to: UInt64(record.seconds * 1e9))
        if record.answer.hasPrefix("error ") {
            throw SerialError(traceText: record.answer.dropFirst(6), path: path) ?? .io(path: path, reason: "replay: trace line \(record.line) holds an unknown error")
        }
        return record
    }

    private func bytes(_ operation: String, _ request: String) throws(SerialError) -> [UInt8] {
        let record = try play(operation, request)
        do { return try record.bytes() } catch { throw .io(path: path, reason: "replay: \(error)") }
    }

    public func write(_ bytes: [UInt8], timeoutMilliseconds: Int) throws(SerialError) {
        _ = try play("write", "data=\(hexRun(bytes))")
    }

    public func read(count: Int, timeoutMilliseconds: Int) throws(SerialError) -> [UInt8] {
        try bytes("read", "count=\(count) timeout=\(timeoutMilliseconds)")
    }

    public func drain(quietMilliseconds: Int, limitMilliseconds: Int) throws(SerialError) -> [UInt8] {
        try bytes("drain", "quiet=\(quietMilliseconds) limit=\(limitMilliseconds)")
    }

    public func setModemLines(dtr: Bool, rts: Bool) -> Bool {
        (try? play("modem", "dtr=\(dtr ? 1 : 0) rts=\(rts ? 1 : 0)"))?.answer == "true"
    }

    public func close() {}
}

extension SerialError {
    /// How a trace writes the error (the path is the session's), so a replay can raise the same one.
    var traceText: String {
        switch self {
        case let .cannotOpen(_, reason): return "cannot-open \(reason)"
        case .busy: return "busy"
        case .vanished: return "vanished"
        case let .timeout(_, expected, received, ms): return "timeout expected=\(expected) ms=\(ms) received=\(hexRun(received))"
        case let .unsupportedBaudRate(rate): return "baud \(rate)"
        case let .io(_, reason): return "io \(reason)"
        }
    }

    init?(traceText: Substring, path: String) {
        let words = traceText.split(separator: " ", maxSplits: 1).map(String.init)
        let argument = words.count > 1 ? words[1] : ""
        switch words.first {
        case "cannot-open": self = .cannotOpen(path: path, reason: argument)
        case "busy": self = .busy(path: path)
        case "vanished": self = .vanished(path: path)
        case "baud": self = .unsupportedBaudRate(Int(argument) ?? 0)
        case "io": self = .io(path: path, reason: argument)
        case "timeout":
            var fields: [String: String] = [:]
            for pair in argument.split(separator: " ") {
                let kv = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
                if kv.count == 2 { fields[String(kv[0])] = String(kv[1]) }
            }
            guard let expected = fields["expected"].flatMap({ Int($0) }), let ms = fields["ms"].flatMap({ Int($0) }),
                  let run = fields["received"], run.count % 2 == 0 else { return nil }
            var received: [UInt8] = []
            var index = run.startIndex
            while index < run.endIndex {
                let next = run.index(index, offsetBy: 2)
                guard let byte = UInt8(run[index..<next], radix: 16) else { return nil }
                received.append(byte)
                index = next
            }
            self = .timeout(path: path, expected: expected, received: received, milliseconds: ms)
        default: return nil
        }
    }
}
