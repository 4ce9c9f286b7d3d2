#if canImport(Glibc)
import Glibc
#endif

/// Why a file could not be written, in the kernel's words.
public struct OutputFileError: Error, Sendable, CustomStringConvertible {
    public let path: String
    /// The errno the kernel answered.
    public let code: CInt

    init(path: String, code: CInt = errno) {
        self.path = path
        self.code = code
    }

    /// The kernel's words for it ("No space left on device").
    public var reason: String { String(cString: strerror(code)) }
    public var description: String { "\(path): \(reason)" }
}

/// A file opened for writing by the kernel's own calls: created or truncated, written whole, synced on
/// request. The descriptor closes when the value is released.
public final class OutputFile {
    public let path: String
    private let descriptor: CInt

    /// Creates `path`, or truncates it, for writing.
    public init(creating path: String) throws(OutputFileError) {
        self.path = path
        descriptor = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard descriptor >= 0 else { throw OutputFileError(path: path) }
    }

    deinit { close(descriptor) }

    /// Writes all of `bytes`, retrying short and interrupted writes.
    public func write(_ bytes: some Collection<UInt8>) throws(OutputFileError) {
        try Self.write(Array(bytes), to: descriptor, path: path)
    }

    /// Flushes what was written to the disk (`fsync`), so it survives a power cut.
    public func synchronize() throws(OutputFileError) {
        guard fsync(descriptor) == 0 else { throw OutputFileError(path: path) }
    }

    /// Writes `path` whole and syncs it.
    public static func writeDurably(_ bytes: some Collection<UInt8>, to path: String) throws(OutputFileError) {
        let file = try OutputFile(creating: path)
        try file.write(bytes)
        try file.synchronize()
    }

    /// Writes `text` to standard error in one piece where the kernel allows it; nothing if that fails.
    public static func writeToStandardError(_ text: String) {
        try? write(Array(text.utf8), to: STDERR_FILENO, path: "standard error")
    }

    /// Writes `text` to standard output in one piece where the kernel allows it, after what `print` buffered;
    /// nothing if that fails.
    public static func writeToStandardOutput(_ text: String) {
        fflush(nil)
        try? write(Array(text.utf8), to: STDOUT_FILENO, path: "standard output")
    }

    private static func write(_ bytes: [UInt8], to descriptor: CInt, path: String) throws(OutputFileError) {
        var offset = 0
        while offset < bytes.count {
            let n = bytes.withUnsafeBytes { Glibc.write(descriptor, $0.baseAddress! + offset, bytes.count - offset) }
            if n < 0 {
                if errno == EINTR { continue }
                throw OutputFileError(path: path)
            }
            offset += n
        }
    }
}
