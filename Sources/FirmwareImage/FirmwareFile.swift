import FoundationEssentials

/// Why a firmware file could not be loaded.
public enum FirmwareFileError: Error, Equatable, Sendable, CustomStringConvertible {
    case missing(path: String)
    case unreadable(path: String, reason: String)
    case malformedHex(path: String, IntelHexError)
    case badImage(path: String, MemoryImageError)

    /// The file concerned.
    public var path: String {
        switch self {
        case let .missing(path), let .unreadable(path, _), let .malformedHex(path, _), let .badImage(path, _): return path
        }
    }

    public var description: String {
        switch self {
        case let .missing(path): return "\(path): no such file"
        case let .unreadable(path, reason): return "\(path): cannot read: \(reason)"
        case let .malformedHex(path, error): return "\(path):\(error.line):\(error.column): \(error.problem.message)"
        case let .badImage(path, error): return "\(path): \(error)"
        }
    }
}

/// A firmware file on disk: Intel HEX (`.hex`, `.ihx`, `.ihex`) or raw binary (anything else, loaded at a base address).
public struct FirmwareFile: Sendable {
    public enum Format: String, Sendable, Codable { case intelHex = "ihex", binary }

    public let path: String
    public let format: Format
    /// The file's bytes exactly as on disk (what a pinned sha256 covers).
    public let contents: [UInt8]
    public let image: MemoryImage

    /// The largest file read: an Intel HEX file of 64 MiB holds about 23 MiB of data, ten times the
    /// largest flash of any part here.
    public static let maximumFileSize = 64 << 20

    /// Loads `path`; raw binaries are placed at `binaryBase`.
    public init(path: String, binaryBase: UInt32 = 0) throws(FirmwareFileError) {
        do { contents = try InputFile.contents(of: path, maximumSize: Self.maximumFileSize) } catch {
            if error == .missing { throw .missing(path: path) }
            throw .unreadable(path: path, reason: error.description)
        }
        self.path = path
        self.format = Self.format(ofPath: path)
        switch format {
        case .intelHex:
            do { image = try IntelHex.parse(contents) } catch { throw .malformedHex(path: path, error) }
        case .binary:
            do { image = try MemoryImage(bytes: contents, at: binaryBase) } catch { throw .badImage(path: path, error) }
        }
    }

    /// The format a path's extension implies.
    public static func format(ofPath path: String) -> Format {
        let name = path.split(separator: "/").last ?? ""
        let ext = name.lastIndex(of: ".").flatMap { $0 == name.startIndex ? nil : name[name.index(after: $0)...].lowercased() } ?? ""
        return ["hex", "ihx", "ihex"].contains(ext) ? .intelHex : .binary
    }

    /// The sha256 of the file's bytes.
    public var sha256: SHA256Digest { SHA256Digest(of: contents) }
}
