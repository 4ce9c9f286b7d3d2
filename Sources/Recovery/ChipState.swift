#if canImport(Glibc)
import Glibc
#endif
import BenchModel
import FoundationEssentials
import Parts
import Transport

/// The contents of an AVR as files: `flash.bin` (whole flash, erased bytes 0xFF), `eeprom.bin` and
/// `fuses.json` (`{"low":…,"high":…,"extended":…,"lock":…}`, numbers). Backups and `rehearse --dump`
/// both use this layout, so anyone can compare them byte by byte.
public struct ChipState: Sendable, Equatable {
    public var flash: [UInt8]
    public var eeprom: [UInt8]
    public var fuses: FuseSet
    public var lock: UInt8?

    public init(flash: [UInt8], eeprom: [UInt8], fuses: FuseSet, lock: UInt8?) {
        self.flash = flash
        self.eeprom = eeprom
        self.fuses = fuses
        self.lock = lock
    }

    /// `fuses.json`: the fuse bytes the part has, and the lock byte.
    public var fusesJSON: String {
        var fields: [String] = []
        for byte in FuseByte.allCases { if let v = fuses[byte] { fields.append("\"\(byte.rawValue)\": \(v)") } }
        if let lock { fields.append("\"lock\": \(lock)") }
        return "{" + fields.joined(separator: ", ") + "}\n"
    }

    /// Writes the three files into `directory`, creating it, each flushed to disk.
    public func write(to directory: String) throws {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        try writeDurably(Data(flash), to: directory + "/flash.bin")
        try writeDurably(Data(eeprom), to: directory + "/eeprom.bin")
        try writeDurably(Data(fusesJSON.utf8), to: directory + "/fuses.json")
    }

    /// Reads the three files back; a `fuses.json` that is not an object of byte values is an error,
    /// never "no fuses".
    public static func read(from directory: String) throws -> ChipState {
        let flash = try [UInt8](Data(contentsOf: URL(fileURLWithPath: directory + "/flash.bin")))
        let eeprom = try [UInt8](Data(contentsOf: URL(fileURLWithPath: directory + "/eeprom.bin")))
        let path = directory + "/fuses.json"
        let object: [String: JSONNumber]
        do { object = try JSONDecoder().decode([String: JSONNumber].self, from: Data(contentsOf: URL(fileURLWithPath: path))) } catch {
            if case DecodingError.typeMismatch = error { throw ChipStateError.malformedFuses(path: path, reason: "not a JSON object") }
            throw ChipStateError.malformedFuses(path: path, reason: "not JSON")
        }
        let known = FuseByte.allCases.map(\.rawValue) + ["lock"]
        var bytes: [String: UInt8] = [:]
        for (key, value) in object {
            guard known.contains(key) else { throw ChipStateError.malformedFuses(path: path, reason: "unknown key '\(key)'") }
            guard case let .integer(number) = value, let byte = UInt8(exactly: number) else {
                throw ChipStateError.malformedFuses(path: path, reason: "\(key) is not a byte value (0–255)")
            }
            bytes[key] = byte
        }
        let fuses = FuseSet(low: bytes["low"], high: bytes["high"], extended: bytes["extended"])
        return ChipState(flash: flash, eeprom: eeprom, fuses: fuses, lock: bytes["lock"])
    }
}

/// A value of `fuses.json`: an integer, or anything else (a string, a boolean, an array…).
private enum JSONNumber: Decodable {
    case integer(Int)
    case other

    init(from decoder: any Decoder) throws {
        let value = try decoder.singleValueContainer()
        if (try? value.decode(Bool.self)) != nil { self = .other } else { self = (try? value.decode(Int.self)).map(Self.integer) ?? .other }
    }
}

/// Why a saved chip state cannot be read back.
public enum ChipStateError: Error, Sendable, Equatable, CustomStringConvertible {
    case malformedFuses(path: String, reason: String)

    public var description: String {
        switch self {
        case let .malformedFuses(path, reason): return "\(path) is malformed: \(reason)"
        }
    }
}

/// Writes `data` to `path` and fsyncs it, so a backup survives a power cut on the bench.
func writeDurably(_ data: Data, to path: String) throws {
    do { try OutputFile.writeDurably(data, to: path) } catch { throw POSIXError(POSIXErrorCode(rawValue: error.code) ?? .EIO) }
}

/// Saves chip backups as timestamped folders under a directory, atomically: a backup is written into a
/// hidden temporary folder and renamed into place only when complete.
public struct BackupStore: Sendable {
    public let directory: String

    public init(directory: String) { self.directory = directory }

    /// Saves `state` with a manifest and returns the backup's folder.
    public func save(_ state: ChipState, part: AVRPart, signature: Signature, programmer: String, rule: String?, date: Date = Date()) throws -> String {
        try saveFolder(named: part.id, date: date, manifest: [
            "part": part.id, "signature": signature.description, "programmer": programmer, "rule": rule ?? "",
        ]) { folder in try state.write(to: folder) }
    }

    /// Writes a backup into a hidden folder, then renames it to `<timestamp>-<name>[-n]`.
    func saveFolder(named name: String, date: Date, manifest: [String: String], contents: (String) throws -> Void) throws -> String {
        try createSharedDirectory()
        let utc = UTCTime(date)
        let stamp = String(cFormat: "%04d%02d%02dT%02d%02d%02dZ", utc.year, utc.month, utc.day, utc.hour, utc.minute, utc.second)
        let temporary = directory + "/.incomplete-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: temporary, withIntermediateDirectories: true)
        try contents(temporary)
        var fields = manifest
        fields["date"] = String(cFormat: "%04d-%02d-%02dT%02d:%02d:%02dZ", utc.year, utc.month, utc.day, utc.hour, utc.minute, utc.second)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        let json = try encoder.encode(fields)
        try writeDurably(json, to: temporary + "/backup.json")
        // Jobs on other slots may save the same part in the same second: claim a name by renaming,
        // and take the next suffix when another job got there first.
        var n = 1
        while true {
            let final = directory + "/\(stamp)-\(name)" + (n == 1 ? "" : "-\(n)")
            do {
                try FileManager.default.moveItem(atPath: temporary, toPath: final)
                return final
            } catch where FileManager.default.fileExists(atPath: final) && n < 1000 {
                n += 1
            }
        }
    }

    /// Creates the backup directory; another slot creating it at the same moment is not an error.
    private func createSharedDirectory() throws {
        do {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        } catch {
            var status = stat()
            guard stat(directory, &status) == 0, status.st_mode & S_IFMT == S_IFDIR else { throw error }
        }
    }
}

/// A moment's calendar fields in UTC (the kernel's `gmtime_r`), for names and manifests that must read
/// the same on every bench whatever its locale.
struct UTCTime {
    let year, month, day, hour, minute, second: Int

    init(_ date: Date) {
        var seconds = time_t(date.timeIntervalSince1970.rounded(.down))
        var fields = tm()
        gmtime_r(&seconds, &fields)
        year = Int(fields.tm_year) + 1900
        month = Int(fields.tm_mon) + 1
        day = Int(fields.tm_mday)
        hour = Int(fields.tm_hour)
        minute = Int(fields.tm_min)
        second = Int(fields.tm_sec)
    }
}
