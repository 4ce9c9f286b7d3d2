#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Why an input file (rules, firmware, boards.txt, a bench description) could not be read. The text is the
/// kernel's answer, never a Foundation error domain.
public enum InputFileError: Error, Equatable, Sendable, CustomStringConvertible {
    case missing
    /// A folder, device node, FIFO or socket: named by its kind.
    case notRegular(kind: String)
    case tooLarge(size: Int, limit: Int)
    /// The kernel refused to open or read it (`strerror` text).
    case unreadable(reason: String)

    public var description: String {
        switch self {
        case .missing: return "no such file"
        case let .notRegular(kind): return "not a regular file (it is \(kind))"
        case let .tooLarge(size, limit): return "it is \(size) bytes; at most \(Self.describe(limit)) is read"
        case let .unreadable(reason): return reason
        }
    }

    private static func describe(_ bytes: Int) -> String { bytes % (1 << 20) == 0 ? "\(bytes >> 20) MiB" : "\(bytes) bytes" }
}

/// Reads whole regular files through the kernel's own calls: a device node, FIFO or socket is refused before
/// anything is read from it (so `/dev/zero` cannot fill memory, nor a FIFO block), and the size is checked
/// against a limit first.
public enum InputFile {
    /// The bytes of the regular file at `path`, at most `maximumSize` of them.
    public static func contents(of path: String, maximumSize: Int) throws(InputFileError) -> [UInt8] {
        // O_NONBLOCK: opening a FIFO with no writer must not wait; it is refused right after by fstat.
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY)
        guard fd >= 0 else {
            let code = errno
            throw code == ENOENT ? .missing : .unreadable(reason: String(cString: strerror(code)))
        }
        defer { close(fd) }
        var status = stat()
        guard fstat(fd, &status) == 0 else { throw .unreadable(reason: String(cString: strerror(errno))) }
        guard status.st_mode & S_IFMT == S_IFREG else { throw .notRegular(kind: kind(of: status.st_mode)) }
        let size = Int(status.st_size)
        guard size <= maximumSize else { throw .tooLarge(size: size, limit: maximumSize) }
        var bytes = [UInt8](repeating: 0, count: size)
        var filled = 0
        while filled < size {
            let n = bytes.withUnsafeMutableBytes { read(fd, $0.baseAddress! + filled, size - filled) }
            if n < 0, errno == EINTR { continue }
            guard n >= 0 else { throw .unreadable(reason: String(cString: strerror(errno))) }
            if n == 0 { break }   // shrank while being read
            filled += n
        }
        return Array(bytes.prefix(filled))
    }

    /// The folder part of `path`, as a shell's `dirname` gives it but "" for a bare name.
    public static func folder(of path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return "" }
        return slash == path.startIndex ? "/" : String(path[..<slash])
    }

    private static func kind(of mode: mode_t) -> String {
        switch mode & S_IFMT {
        case S_IFDIR: return "a folder"
        case S_IFCHR: return "a character device"
        case S_IFBLK: return "a block device"
        case S_IFIFO: return "a FIFO"
        case S_IFSOCK: return "a socket"
        default: return "a special file"
        }
    }
}

#if canImport(FoundationEssentials)
import FoundationEssentials

extension InputFile {
    /// A Foundation file error in the kernel's words ("Permission denied", "No space left on device"),
    /// never an error domain and code.
    public static func reason(_ error: any Error) -> String {
        if let posix = error as? POSIXError { return String(cString: strerror(posix.code.rawValue)) }
        guard let cocoa = error as? CocoaError else { return "\(error)" }
        if let underlying = cocoa.underlying as? POSIXError { return String(cString: strerror(underlying.code.rawValue)) }
        switch cocoa.code {
        case .fileNoSuchFile, .fileReadNoSuchFile: return String(cString: strerror(ENOENT))
        case .fileReadNoPermission, .fileWriteNoPermission: return String(cString: strerror(EACCES))
        case .fileWriteOutOfSpace: return String(cString: strerror(ENOSPC))
        case .fileWriteVolumeReadOnly: return String(cString: strerror(EROFS))
        case .fileWriteFileExists: return String(cString: strerror(EEXIST))
        default: return "the file system refused (\(cocoa.code.rawValue))"
        }
    }
}
#endif
