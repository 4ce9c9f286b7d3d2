#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

extension String {
    /// `format` with its conversions filled in as C's `printf` fills them (`%02X`, `%.2f`, `%d`, …), through
    /// `vsnprintf`. For numbers only: text goes into a message by interpolation, never through `%s`.
    public init(cFormat format: String, _ arguments: CVarArg...) {
        self.init(cFormat: format, arguments: arguments)
    }

    /// `format` filled in from an array of arguments, as ``init(cFormat:_:)``.
    public init(cFormat format: String, arguments: [CVarArg]) {
        self = cFormatted(format, arguments)
    }
}

private func cFormatted(_ format: String, _ arguments: [CVarArg]) -> String {
    var capacity = 128
    while true {
        var buffer = [CChar](repeating: 0, count: capacity)
        let needed = Int(withVaList(arguments) { vsnprintf(&buffer, capacity, format, $0) })
        if needed < capacity { return String(decoding: buffer.prefix(max(0, needed)).map { UInt8(bitPattern: $0) }, as: UTF8.self) }
        capacity = needed + 1
    }
}
