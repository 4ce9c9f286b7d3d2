import BenchModel
import FoundationEssentials
import Synchronization
import Transport

/// A device's identity as a trace header writes it, and reads it back.
struct TraceHeader {
    let description: USBDeviceDescription

    init(_ description: USBDeviceDescription) { self.description = description }

    var text: String {
        let d = description
        var out = d.ids
        if let product = d.product { out += " \"\(product)\"" }
        if let serial = d.serialNumber { out += " serial=\"\(serial)\"" }
        out += String(cFormat: " release=0x%04X", d.deviceRelease)
        if !d.portPath.isEmpty { out += " port=\(d.portPath)" }
        return out
    }

    /// Parses what `text` wrote.
    init?(parsing text: Substring) {
        let words = text.split(separator: " ", maxSplits: 1)
        guard let ids = words.first, ids.count == 9, let vendor = UInt16(ids.prefix(4), radix: 16), let product = UInt16(ids.suffix(4), radix: 16) else { return nil }
        var d = USBDeviceDescription(vendorID: vendor, productID: product)
        let rest = words.count > 1 ? String(words[1]) : ""
        func quoted(after prefix: String) -> String? {
            guard let range = rest.firstRange(of: prefix) else { return nil }
            let tail = rest[range.upperBound...]
            guard let end = tail.firstIndex(of: "\"") else { return nil }
            return String(tail[..<end])
        }
        if rest.hasPrefix("\"") { d.product = quoted(after: "\"") }
        d.serialNumber = quoted(after: "serial=\"")
        if let range = rest.firstRange(of: "release=0x") { d.deviceRelease = UInt16(rest[range.upperBound...].prefix(4), radix: 16) ?? 0 }
        if let range = rest.firstRange(of: "port=") { d.portPath = String(rest[range.upperBound...].prefix { $0 != " " }) }
        description = d
    }
}

/// One recorded transfer.
struct TraceRecord: Equatable {
    enum Operation: String { case controlIn = "control-in", controlOut = "control-out", bulkWrite = "bulk-write", bulkRead = "bulk-read" }
    enum Answer: Equatable {
        case bytes([UInt8])
        case sent(Int)
        case error(USBError)
    }

    let line: Int
    let seconds: Double
    let operation: Operation
    /// The request as the host made it: "request=6 value=0x7000 index=0x3380 data=…".
    let request: String
    let answer: Answer
}

extension USBError {
    /// How a trace writes the error, so a replay can raise the same one.
    var traceText: String {
        switch self {
        case .noDevice: return "no-device"
        case let .timeout(ms): return "timeout \(ms)"
        case let .stall(request): return "stall \(request)"
        case let .accessDenied(path): return "access-denied \(path)"
        case .busy: return "busy"
        case let .shortTransfer(expected, actual): return "short \(expected) \(actual)"
        case let .other(text): return "other \(text)"
        }
    }

    init?(traceText: Substring) {
        let words = traceText.split(separator: " ", maxSplits: 1).map(String.init)
        let argument = words.count > 1 ? words[1] : ""
        switch words.first {
        case "no-device": self = .noDevice
        case "timeout": self = .timeout(milliseconds: Int(argument) ?? 0)
        case "stall": self = .stall(request: UInt8(argument) ?? 0)
        case "access-denied": self = .accessDenied(path: argument)
        case "busy": self = .busy
        case "short":
            let n = argument.split(separator: " ").compactMap { Int($0) }
            guard n.count == 2 else { return nil }
            self = .shortTransfer(expected: n[0], actual: n[1])
        case "other": self = .other(argument)
        default: return nil
        }
    }
}

/// A USB device whose every transfer is written to a trace as it happens.
final class TracingUSBDevice: USBDevice {
    private let device: USBDevice
    private let writer: SessionWriter

    init(_ device: USBDevice, _ writer: SessionWriter) {
        self.device = device
        self.writer = writer
    }

    var description: USBDeviceDescription { device.description }

    private func record<T>(_ operation: TraceRecord.Operation, _ request: String, _ answer: @escaping (T) -> TraceRecord.Answer,
                           _ body: () throws(USBError) -> T) throws(USBError) -> T {
        try writer.record(operation.rawValue, request, answer: { TraceRecord.answerText(answer($0)) }, error: { (error: USBError) in error.traceText }, body)
    }

    func controlIn(request: UInt8, value: UInt16, index: UInt16, length: Int, timeoutMilliseconds: Int) throws(USBError) -> [UInt8] {
        try record(.controlIn, TraceRecord.controlRequest(request, value, index, length: length), { .bytes($0) }) { () throws(USBError) in
            try device.controlIn(request: request, value: value, index: index, length: length, timeoutMilliseconds: timeoutMilliseconds)
        }
    }

    func controlOut(request: UInt8, value: UInt16, index: UInt16, data: [UInt8], timeoutMilliseconds: Int) throws(USBError) -> Int {
        try record(.controlOut, TraceRecord.controlRequest(request, value, index, data: data), { .sent($0) }) { () throws(USBError) in
            try device.controlOut(request: request, value: value, index: index, data: data, timeoutMilliseconds: timeoutMilliseconds)
        }
    }

    func bulkWrite(endpoint: UInt8, data: [UInt8], timeoutMilliseconds: Int) throws(USBError) -> Int {
        try record(.bulkWrite, TraceRecord.bulkRequest(endpoint, data: data), { .sent($0) }) { () throws(USBError) in
            try device.bulkWrite(endpoint: endpoint, data: data, timeoutMilliseconds: timeoutMilliseconds)
        }
    }

    func bulkRead(endpoint: UInt8, length: Int, timeoutMilliseconds: Int) throws(USBError) -> [UInt8] {
        try record(.bulkRead, TraceRecord.bulkRequest(endpoint, length: length), { .bytes($0) }) { () throws(USBError) in
            try device.bulkRead(endpoint: endpoint, length: length, timeoutMilliseconds: timeoutMilliseconds)
        }
    }

    /// Vendor requests are recorded; the class and standard ones of the bootloaders pass through unrecorded.
    func controlIn(to target: USBControlTarget, request: UInt8, value: UInt16, index: UInt16, length: Int, timeoutMilliseconds: Int) throws(USBError) -> [UInt8] {
        if target == .vendorDevice { return try controlIn(request: request, value: value, index: index, length: length, timeoutMilliseconds: timeoutMilliseconds) }
        return try device.controlIn(to: target, request: request, value: value, index: index, length: length, timeoutMilliseconds: timeoutMilliseconds)
    }

    func controlOut(to target: USBControlTarget, request: UInt8, value: UInt16, index: UInt16, data: [UInt8], timeoutMilliseconds: Int) throws(USBError) -> Int {
        if target == .vendorDevice { return try controlOut(request: request, value: value, index: index, data: data, timeoutMilliseconds: timeoutMilliseconds) }
        return try device.controlOut(to: target, request: request, value: value, index: index, data: data, timeoutMilliseconds: timeoutMilliseconds)
    }

    func claimInterface(_ number: Int32) throws(USBError) { try device.claimInterface(number) }
    func selectAlternateSetting(_ setting: Int32, ofInterface number: Int32) throws(USBError) { try device.selectAlternateSetting(setting, ofInterface: number) }
    func resetDevice() throws(USBError) { try device.resetDevice() }

    func close() { device.close() }
}

extension TraceRecord {
    static func controlRequest(_ request: UInt8, _ value: UInt16, _ index: UInt16, length: Int? = nil, data: [UInt8]? = nil) -> String {
        var text = String(cFormat: "request=%d value=0x%04X index=0x%04X", request, value, index)
        if let length { text += " length=\(length)" }
        if let data { text += " data=" + hexRun(data) }
        return text
    }

    static func bulkRequest(_ endpoint: UInt8, length: Int? = nil, data: [UInt8]? = nil) -> String {
        var text = String(cFormat: "endpoint=0x%02X", endpoint)
        if let length { text += " length=\(length)" }
        if let data { text += " data=" + hexRun(data) }
        return text
    }

    static func answerText(_ answer: Answer) -> String {
        switch answer {
        case let .bytes(bytes): return hexText(bytes)
        case let .sent(n): return "sent \(n)"
        case let .error(error): return "error " + error.traceText
        }
    }
}
