import FoundationEssentials
import FirmwareImage

/// Why a `boards.txt` could not be read.
public enum BoardsFileError: Error, Equatable, Sendable, CustomStringConvertible {
    case unreadable(path: String, reason: String)
    case malformedLine(path: String, line: Int, text: String)

    public var description: String {
        switch self {
        case let .unreadable(path, reason): return "\(path): \(reason)"
        case let .malformedLine(path, line, text): return "\(path):\(line): '\(text)' is not KEY=VALUE"
        }
    }
}

/// One board of an Arduino `boards.txt`: its own properties and its `menu.cpu` variants.
public struct ArduinoBoard: Sendable, Hashable {
    /// A variant from the board's processor menu (`ID.menu.cpu.VARIANT=Label`).
    public struct Variant: Sendable, Hashable {
        public let id: String
        public let label: String
        /// What the variant sets, over the board's own properties.
        public let properties: [String: String]
    }

    /// The board's id, the first part of its keys ("uno").
    public let id: String
    /// `ID.name`.
    public let name: String
    /// Every `ID.KEY=VALUE` outside the menus, by KEY.
    public let properties: [String: String]
    /// The processor menu's entries, in file order; empty when the board has none.
    public let variants: [Variant]
    /// Other menus (speed, clock, …) whose entries set bootloader or MCU properties: a rule per board
    /// cannot say which entry a board was built with.
    public let otherMenusSettingBootloader: [String]
}

/// Arduino's board database: `KEY=VALUE` lines, `#` comments, boards keyed by their first dotted part.
public struct BoardsFile: Sendable {
    public let path: String
    /// The boards in the order the file first names them.
    public let boards: [ArduinoBoard]

    /// The folder a board's `bootloader.file` is relative to: `bootloaders/` beside the file.
    public var bootloaderFolder: String {
        let folder = InputFile.folder(of: path)
        return (folder.isEmpty ? "." : folder) + "/bootloaders"
    }

    /// The largest boards.txt read (Arduino's own is 50 KiB; a big third-party core's a few hundred).
    public static let maximumFileSize = 16 << 20

    public static func load(path: String) throws(BoardsFileError) -> BoardsFile {
        let bytes: [UInt8]
        do { bytes = try InputFile.contents(of: path, maximumSize: maximumFileSize) } catch {
            throw .unreadable(path: path, reason: error == .notRegular(kind: "a folder") ? "is a folder; give its boards.txt" : error.description)
        }
        // boards.txt files are UTF-8 in practice; an odd byte in a comment must not stop an import.
        return try parse(String(decoding: bytes, as: UTF8.self), path: path)
    }

    public static func parse(_ text: String, path: String) throws(BoardsFileError) -> BoardsFile {
        var order: [String] = []
        var keys: [String: [(key: String, value: String)]] = [:]
        for (index, raw) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let line = raw.trimmingWhitespace
            if line.isEmpty || line.hasPrefix("#") { continue }
            guard let equals = line.firstIndex(of: "=") else {
                throw .malformedLine(path: path, line: index + 1, text: String(line.prefix(80)))
            }
            let key = line[..<equals].trimmingWhitespace
            let value = line[line.index(after: equals)...].trimmingWhitespace
            guard let dot = key.firstIndex(of: "."), dot != key.startIndex else {
                throw .malformedLine(path: path, line: index + 1, text: String(line.prefix(80)))
            }
            let board = String(key[..<dot])
            if board == "menu" { continue }   // the menus' own titles: menu.cpu=Processor
            if keys[board] == nil { order.append(board) }
            keys[board, default: []].append((String(key[key.index(after: dot)...]), value))
        }
        let boards = order.compactMap { id -> ArduinoBoard? in
            let entries = keys[id]!
            guard let name = entries.last(where: { $0.key == "name" })?.value else { return nil }
            return board(id: id, name: name, entries: entries)
        }
        return BoardsFile(path: path, boards: boards)
    }

    private static func board(id: String, name: String, entries: [(key: String, value: String)]) -> ArduinoBoard {
        var properties: [String: String] = [:]
        var variantOrder: [String] = []
        var labels: [String: String] = [:]
        var variantProperties: [String: [String: String]] = [:]
        var otherMenus: [String] = []
        for (key, value) in entries {
            let parts = key.split(separator: ".", maxSplits: 3, omittingEmptySubsequences: false).map(String.init)
            guard parts[0] == "menu", parts.count >= 3 else { properties[key] = value; continue }
            let (menu, entry) = (parts[1], parts[2])
            if menu == "cpu" {
                if labels[entry] == nil, variantProperties[entry] == nil { variantOrder.append(entry) }
                if parts.count == 3 { labels[entry] = value } else { variantProperties[entry, default: [:]][parts[3]] = value }
            } else if parts.count == 4, parts[3].hasPrefix("bootloader.") || parts[3] == "build.mcu", !otherMenus.contains(menu) {
                otherMenus.append(menu)
            }
        }
        let variants = variantOrder.map { ArduinoBoard.Variant(id: $0, label: labels[$0] ?? $0, properties: variantProperties[$0] ?? [:]) }
        return ArduinoBoard(id: id, name: name, properties: properties, variants: variants, otherMenusSettingBootloader: otherMenus)
    }
}
