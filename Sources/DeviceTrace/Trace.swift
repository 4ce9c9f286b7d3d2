import BenchModel
import FoundationEssentials
import Synchronization
import Transport

/// A trace file being written: every USB transfer of every device opened through it, one line each,
/// timestamped. Lines of several devices (an agent's slots) carry their session number, so one file holds
/// a whole bench and a replay picks one session.
///
/// ```text
/// 1 # usb 16C0:05DC "USBasp" serial="SIM-USBASP" release=0x0107 port=1-1
/// 1 0.000412 control-in request=127 value=0x0000 index=0x0000 length=4 -> 00 00 00 01
/// 1 0.001420 control-out request=6 value=0x7000 index=0x3380 data=0c94…  -> sent 254
/// 1 0.002511 bulk-read endpoint=0x81 length=64 -> error timeout 3000
/// ```
public final class TraceRecorder: Sendable {
    private struct State {
        var file: OutputFile
        var sessions = 0
    }
    private let state: Mutex<State>

    /// Creates (or truncates) the trace file at `path`.
    public init(path: String) throws(TraceError) {
        do { state = Mutex(State(file: try OutputFile(creating: path))) } catch { throw .cannotWrite(path) }
    }

    /// Wraps `device` so that its transfers are recorded under a new session; the header names the device.
    /// Times are read from `time` (a simulated device's own clock, or the system's), from now.
    public func recording(_ device: USBDevice, time: TimeSource = SystemTimeSource()) -> USBDevice {
        TracingUSBDevice(device, SessionWriter(session: newSession("usb " + TraceHeader(device.description).text), recorder: self, time: time))
    }

    /// Wraps a serial line so that everything crossing it is recorded under a new session; `label` says
    /// which firmware is on the other end ("stk500v1").
    public func recording(_ link: SerialLink, label: String, time: TimeSource = SystemTimeSource()) -> SerialLink {
        TracingSerialLink(link, SessionWriter(session: newSession("serial \(label) \(link.path)"), recorder: self, time: time))
    }

    private func newSession(_ header: String) -> Int {
        let session = state.withCheckedLock { state -> Int in
            state.sessions += 1
            return state.sessions
        }
        write(session, "# " + header)
        return session
    }

    fileprivate func write(_ session: Int, _ line: String) {
        state.withCheckedLock { try? $0.file.write("\(session) \(line)\n".utf8) }
    }
}

/// Why a trace cannot be written or replayed.
public enum TraceError: Error, Sendable, Equatable, CustomStringConvertible {
    case cannotWrite(String)
    case cannotRead(String)
    case malformed(line: Int, String)
    case noSession(Int)

    public var description: String {
        switch self {
        case let .cannotWrite(path): return "cannot write the trace to \(path)"
        case let .cannotRead(path): return "cannot read the trace \(path)"
        case let .malformed(line, text): return "trace line \(line): \(text)"
        case let .noSession(n): return "the trace has no session \(n)"
        }
    }
}

/// Writes one session's lines: each operation with its answer, or its error, at the time it ended.
struct SessionWriter {
    let session: Int
    let recorder: TraceRecorder
    let time: TimeSource
    private let start: UInt64

    init(session: Int, recorder: TraceRecorder, time: TimeSource) {
        self.session = session
        self.recorder = recorder
        self.time = time
        start = time.now
    }

    /// Seconds since the session began, when the answer came: a replay moves its clock there.
    private var seconds: String { String(cFormat: "%.6f", Double(time.now - start) / 1e9) }

    func record<T, E: Error>(_ operation: String, _ request: String, answer: (T) -> String, error: (E) -> String,
                             _ body: () throws(E) -> T) throws(E) -> T {
        do {
            let value = try body()
            line(operation, request, answer(value))
            return value
        } catch let failure {
            line(operation, request, "error " + error(failure))
            throw failure
        }
    }

    func line(_ operation: String, _ request: String, _ answer: String) {
        recorder.write(session, "\(seconds) \(operation) \(request) -> \(answer)")
    }
}

/// The text of the trace at `path`.
func readTrace(_ path: String) throws(TraceError) -> String {
    guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { throw .cannotRead(path) }
    return text
}

/// One session of a trace, read back: its header and its lines, not yet interpreted.
struct TraceSession {
    struct Line {
        let line: Int
        let seconds: Double
        let operation: String
        let request: String
        let answer: Substring

        /// The answer as bytes in hex ("(none)" for none).
        func bytes() throws(TraceError) -> [UInt8] {
            if answer == "(none)" { return [] }
            let bytes = answer.split(separator: " ").map { UInt8($0, radix: 16) }
            guard !bytes.contains(nil) else { throw .malformed(line: line, "'\(answer)' is not bytes in hex") }
            return bytes.map { $0! }
        }
    }

    let header: Substring
    let headerLine: Int
    let records: [Line]

    init(text: String, session: Int) throws(TraceError) {
        var header: (Substring, Int)?
        var records: [Line] = []
        for (index, rawLine) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() where !rawLine.isEmpty {
            let line = index + 1
            let fields = rawLine.split(separator: " ", maxSplits: 2)
            guard fields.count == 3, let number = Int(fields[0]) else { throw .malformed(line: line, "expected a session number, a time and a transfer") }
            guard number == session else { continue }
            if fields[1] == "#" {
                header = (fields[2], line)
                continue
            }
            guard let seconds = Double(fields[1]) else { throw .malformed(line: line, "'\(fields[1])' is not a time in seconds") }
            guard let arrow = fields[2].firstRange(of: " -> ") else { throw .malformed(line: line, "no ' -> ' before the answer") }
            let words = fields[2][..<arrow.lowerBound].split(separator: " ", maxSplits: 1)
            records.append(Line(line: line, seconds: seconds, operation: String(words.first ?? ""),
                                request: words.count > 1 ? String(words[1]) : "", answer: fields[2][arrow.upperBound...]))
        }
        guard let header else { throw .noSession(session) }
        (self.header, headerLine) = header
        self.records = records
    }
}

func hexText(_ bytes: [UInt8]) -> String {
    bytes.isEmpty ? "(none)" : bytes.map { String(cFormat: "%02x", $0) }.joined(separator: " ")
}

func hexRun(_ bytes: [UInt8]) -> String { bytes.map { String(cFormat: "%02x", $0) }.joined() }

/// A recorded programmer to play back: a USB device or a serial line, as the session's header says.
public enum TraceReplay {
    case usb(ReplayUSBDevice)
    case serial(ReplaySerialLink)

    /// Loads session `session` of the trace at `path`.
    public static func load(path: String, session: Int = 1) throws(TraceError) -> TraceReplay {
        let text = try readTrace(path)
        let parsed = try TraceSession(text: text, session: session)
        if parsed.header.hasPrefix("serial ") { return .serial(try ReplaySerialLink(trace: text, session: session)) }
        return .usb(try ReplayUSBDevice(trace: text, session: session))
    }

    /// The clock the replay moves.
    public var clock: VirtualClock {
        switch self {
        case let .usb(device): return device.clock
        case let .serial(link): return link.clock
        }
    }

    /// What the trace holds that the driver has not done yet.
    public var remainingTransfers: Int {
        switch self {
        case let .usb(device): return device.remainingTransfers
        case let .serial(link): return link.remainingTransfers
        }
    }
}
