/// A place in a TOML file, 1-based.
public struct SourcePosition: Hashable, Sendable, Comparable, CustomStringConvertible {
    public let line: Int
    public let column: Int

    public init(line: Int, column: Int) {
        self.line = line
        self.column = column
    }

    public static func < (a: SourcePosition, b: SourcePosition) -> Bool { (a.line, a.column) < (b.line, b.column) }
    public var description: String { "\(line):\(column)" }
}

/// A TOML value with the place it was written, so that every later check can point at its line.
public struct TOMLNode: Sendable {
    public let value: TOMLValue
    public let position: SourcePosition
}

/// The value kinds the rules file uses (TOML dates are refused by the parser).
public enum TOMLValue: Sendable {
    case string(String)
    case integer(Int64)
    case float(Double)
    case boolean(Bool)
    case array([TOMLNode])
    case table(TOMLTable)

    /// The TOML name of the kind, for error messages.
    public var kindName: String {
        switch self {
        case .string: return "a string"
        case .integer: return "an integer"
        case .float: return "a float"
        case .boolean: return "a boolean"
        case .array: return "an array"
        case .table: return "a table"
        }
    }
}

/// A TOML table: keys in the order they were written, each with where its key stands.
public struct TOMLTable: Sendable {
    public struct Entry: Sendable {
        public let key: String
        public let keyPosition: SourcePosition
        public var node: TOMLNode
    }

    public internal(set) var entries: [Entry] = []
    /// Where each key's entry is, so that a table of many keys is built and read in linear time.
    private var indexByKey: [String: Int] = [:]
    /// Where the table was opened (its header, or the `{` of an inline table).
    public let position: SourcePosition

    public init(position: SourcePosition) { self.position = position }

    public subscript(key: String) -> TOMLNode? { indexByKey[key].map { entries[$0].node } }

    public func entry(_ key: String) -> Entry? { indexByKey[key].map { entries[$0] } }

    /// Adds an entry; the parser has checked that its key is new.
    mutating func append(_ entry: Entry) {
        indexByKey[entry.key] = entries.count
        entries.append(entry)
    }

    public var keys: [String] { entries.map(\.key) }
}

/// A TOML syntax error.
public struct TOMLError: Error, Equatable, Sendable, CustomStringConvertible {
    public let position: SourcePosition
    public let message: String

    public init(position: SourcePosition, message: String) {
        self.position = position
        self.message = message
    }

    public var description: String { "\(position): \(message)" }
}
