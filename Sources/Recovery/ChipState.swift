import Foundation
import Parts

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
        let parsed: Any
        do { parsed = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path))) } catch {
            throw ChipStateError.malformedFuses(path: path, reason: "not JSON")
        }
        guard let object = parsed as? [String: Any] else { throw ChipStateError.malformedFuses(path: path, reason: "not a JSON object") }
        let known = FuseByte.allCases.map(\.rawValue) + ["lock"]
        var bytes: [String: UInt8] = [:]
        for (key, value) in object {
            guard known.contains(key) else { throw ChipStateError.malformedFuses(path: path, reason: "unknown key '\(key)'") }
            guard let number = value as? Int, let byte = UInt8(exactly: number), !(value is Bool) else {
                throw ChipStateError.malformedFuses(path: path, reason: "\(key) is not a byte value (0–255)")
            }
            bytes[key] = byte
        }
        let fuses = FuseSet(low: bytes["low"], high: bytes["high"], extended: bytes["extended"])
        return ChipState(flash: flash, eeprom: eeprom, fuses: fuses, lock: bytes["lock"])
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
    guard FileManager.default.createFile(atPath: path, contents: nil) else {
        throw CocoaError(.fileWriteUnknown, userInfo: [NSFilePathErrorKey: path])
    }
    let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: path))
    defer { try? handle.close() }
    try handle.write(contentsOf: data)
    try handle.synchronize()
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
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "UTC")
        formatter.dateFormat = "yyyyMMdd'T'HHmmss'Z'"
        let stamp = formatter.string(from: date)
        let temporary = directory + "/.incomplete-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: temporary, withIntermediateDirectories: true)
        try contents(temporary)
        formatter.dateFormat = "yyyy-MM-dd'T'HH:mm:ss'Z'"
        var fields = manifest
        fields["date"] = formatter.string(from: date)
        let json = try JSONSerialization.data(withJSONObject: fields, options: [.prettyPrinted, .sortedKeys])
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
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: directory, isDirectory: &isDirectory), isDirectory.boolValue else { throw error }
        }
    }
}
