import BenchModel

/// A parser for the TOML 1.0 subset a rules file needs: comments, bare/quoted/dotted keys, tables,
/// arrays of tables, inline tables, basic/literal (multi-line) strings, integers in all four bases,
/// floats, booleans and arrays. Dates and times are refused with a clear message.
/// Every node keeps its line and column.
public struct TOMLParser {
    /// How deep arrays, inline tables and dotted keys may nest (a rules file needs three levels); deeper
    /// input is refused with a message instead of exhausting the stack.
    public static let maximumNesting = 64

    private let text: [Unicode.Scalar]
    private var index = 0
    private var line = 1
    private var lineStart = 0
    /// Arrays and inline tables open around the value being read.
    private var nesting = 0

    /// Parses `source` into its root table.
    public static func parse(_ source: String) throws(TOMLError) -> TOMLTable {
        var parser = TOMLParser(text: Array(source.unicodeScalars))
        return try parser.document()
    }

    /// Parses a file's bytes, which must be UTF-8: the first byte that is not is refused with its line and
    /// column. A leading byte-order mark is skipped.
    public static func parse(utf8 bytes: some Collection<UInt8>) throws(TOMLError) -> TOMLTable {
        var parser = TOMLParser(text: try decode(bytes))
        return try parser.document()
    }

    private static func decode(_ bytes: some Collection<UInt8>) throws(TOMLError) -> [Unicode.Scalar] {
        var scalars: [Unicode.Scalar] = []
        scalars.reserveCapacity(bytes.count)
        var line = 1, lineStart = 0
        var iterator = bytes.makeIterator()
        var parser = Unicode.UTF8.ForwardParser()
        var offset = 0
        while true {
            switch parser.parseScalar(from: &iterator) {
            case let .valid(encoded):
                let scalar = Unicode.UTF8.decode(encoded)
                if scalars.isEmpty && offset == 0 && scalar == "\u{FEFF}" { offset += encoded.count; continue }
                scalars.append(scalar)
                offset += encoded.count
                if scalar == "\n" { line += 1; lineStart = scalars.count }
            case .emptyInput:
                return scalars
            case let .error(length):
                let start = bytes.index(bytes.startIndex, offsetBy: offset)
                let shown = bytes[start...].prefix(max(length, 1)).escapedBytes
                throw TOMLError(position: SourcePosition(line: line, column: scalars.count - lineStart + 1),
                                message: "invalid UTF-8 (\(shown)): a rules file must be UTF-8 text")
            }
        }
    }

    private init(text: [Unicode.Scalar]) { self.text = text }

    // MARK: Document structure

    /// Tables are built as a tree of paths so headers can reopen them; `Builder` holds it mutably.
    private final class Builder {
        var table: TOMLTable
        var children: [String: Builder] = [:]
        var arrays: [String: [Builder]] = [:]
        /// How this table came to exist: by a header, implicitly, by dotted keys, or inline.
        var origin: Origin
        enum Origin { case header, implicit, dotted, inline, arrayElement }
        /// The header that defined the table, for "defined twice".
        var header: SourcePosition?

        init(position: SourcePosition, origin: Origin) {
            table = TOMLTable(position: position)
            self.origin = origin
        }

        func finish() -> TOMLTable {
            var out = table
            for i in out.entries.indices {
                let key = out.entries[i].key
                if let child = children[key] {
                    out.entries[i].node = TOMLNode(value: .table(child.finish()), position: out.entries[i].node.position)
                } else if let elements = arrays[key] {
                    let nodes = elements.map { TOMLNode(value: .table($0.finish()), position: $0.table.position) }
                    out.entries[i].node = TOMLNode(value: .array(nodes), position: out.entries[i].node.position)
                }
            }
            return out
        }
    }

    private mutating func document() throws(TOMLError) -> TOMLTable {
        let root = Builder(position: SourcePosition(line: 1, column: 1), origin: .header)
        var current = root
        while true {
            try skipBlankAndComments()
            guard let c = peek() else { break }
            let start = position
            if c == "[" {
                advance()
                let isArray = peek() == "["
                if isArray { advance() }
                skipSpaces()
                let path = try keyPath()
                skipSpaces()
                try expect("]", "to close the table header")
                if isArray { try expect("]", "to close the array-of-tables header [[…]]") }
                current = try isArray ? appendArrayTable(root, path, at: start) : defineTable(root, path, at: start)
            } else {
                try keyValue(into: current)
            }
            try endOfLine()
        }
        return root.finish()
    }

    private mutating func defineTable(_ root: Builder, _ path: [(key: String, position: SourcePosition)], at start: SourcePosition) throws(TOMLError) -> Builder {
        var node = root
        for (i, part) in path.enumerated() {
            let last = i == path.count - 1
            if let elements = node.arrays[part.key] {
                if last { throw error("'\(part.key)' is an array of tables; use [[\(part.key)]] to add to it", at: part.position) }
                node = elements[elements.count - 1]
            } else if let child = node.children[part.key] {
                if last {
                    let name = path.map(\.key).joined(separator: ".")
                    if let first = child.header { throw error("table [\(name)] is defined twice (first on line \(first.line))", at: start) }
                    guard child.origin == .implicit else {
                        throw error("table [\(name)] is already defined by \(child.origin == .inline ? "an inline table" : "dotted keys") on line \(child.table.position.line)", at: start)
                    }
                    child.origin = .header
                    child.header = start
                }
                if child.origin == .inline { throw error("inline table '\(part.key)' cannot be extended", at: part.position) }
                node = child
            } else if node.table[part.key] != nil {
                throw error("'\(part.key)' already holds a value, not a table", at: part.position)
            } else {
                let child = Builder(position: start, origin: last ? .header : .implicit)
                if last { child.header = start }
                node.children[part.key] = child
                node.table.append(.init(key: part.key, keyPosition: part.position, node: TOMLNode(value: .boolean(false), position: start)))
                node = child
            }
        }
        return node
    }

    private mutating func appendArrayTable(_ root: Builder, _ path: [(key: String, position: SourcePosition)], at start: SourcePosition) throws(TOMLError) -> Builder {
        let parent = try path.count > 1 ? defineTablePath(root, Array(path.dropLast())) : root
        let last = path[path.count - 1]
        let element = Builder(position: start, origin: .arrayElement)
        if parent.arrays[last.key] != nil {
            parent.arrays[last.key]!.append(element)
        } else if parent.table[last.key] != nil {
            throw error("'\(last.key)' is already defined as something other than an array of tables", at: last.position)
        } else {
            parent.arrays[last.key] = [element]
            parent.table.append(.init(key: last.key, keyPosition: last.position, node: TOMLNode(value: .array([]), position: start)))
        }
        return element
    }

    /// Walks to (creating implicitly) the table a dotted path names, entering the last element of arrays of tables.
    private mutating func defineTablePath(_ root: Builder, _ path: [(key: String, position: SourcePosition)]) throws(TOMLError) -> Builder {
        var node = root
        for part in path {
            if let elements = node.arrays[part.key] {
                node = elements[elements.count - 1]
            } else if let child = node.children[part.key] {
                node = child
            } else if node.table[part.key] != nil {
                throw error("'\(part.key)' already holds a value, not a table", at: part.position)
            } else {
                let child = Builder(position: part.position, origin: .implicit)
                node.children[part.key] = child
                node.table.append(.init(key: part.key, keyPosition: part.position, node: TOMLNode(value: .boolean(false), position: part.position)))
                node = child
            }
        }
        return node
    }

    private mutating func keyValue(into table: Builder) throws(TOMLError) {
        let path = try keyPath()
        skipSpaces()
        guard peek() == "=" else {
            throw error(peek() == nil || peek() == "\n" ? "expected '=' after the key '\(path.map(\.key).joined(separator: "."))'"
                                                       : "expected '=' after the key, found \(found)", at: position)
        }
        advance()
        skipSpaces()
        let node = try value()
        var target = table
        for part in path.dropLast() {
            if let child = target.children[part.key] {
                guard child.origin == .dotted || child.origin == .implicit else {
                    throw error("'\(part.key)' is a table defined elsewhere; it cannot be extended with a dotted key here", at: part.position)
                }
                target = child
            } else if target.table[part.key] != nil {
                throw error("'\(part.key)' already holds a value, not a table", at: part.position)
            } else {
                let child = Builder(position: part.position, origin: .dotted)
                target.children[part.key] = child
                target.table.append(.init(key: part.key, keyPosition: part.position, node: TOMLNode(value: .boolean(false), position: part.position)))
                target = child
            }
        }
        let last = path[path.count - 1]
        if let existing = target.table.entry(last.key) {
            throw error("duplicate key '\(last.key)' (first on line \(existing.keyPosition.line))", at: last.position)
        }
        if case let .table(inline) = node.value {
            // Keep inline tables as builders too, so the finished tree is uniform.
            let child = Builder(position: inline.position, origin: .inline)
            child.table = inline
            target.children[last.key] = child
        }
        target.table.append(.init(key: last.key, keyPosition: last.position, node: node))
    }

    // MARK: Keys

    private mutating func keyPath() throws(TOMLError) -> [(key: String, position: SourcePosition)] {
        var parts: [(key: String, position: SourcePosition)] = []
        while true {
            let start = position
            if parts.count == Self.maximumNesting {
                throw error("the key has more than \(Self.maximumNesting) dotted parts", at: start)
            }
            parts.append((try simpleKey(), start))
            skipSpaces()
            guard peek() == "." else { return parts }
            advance()
            skipSpaces()
        }
    }

    private mutating func simpleKey() throws(TOMLError) -> String {
        guard let c = peek() else { throw error("expected a key, found the end of the file", at: position) }
        if matches("\"\"\"") || matches("'''") { throw error("a multi-line string cannot be a key", at: position) }
        if c == "\"" { return try basicString() }
        if c == "'" { return try literalString() }
        var key = ""
        while let c = peek(), isBareKeyCharacter(c) {
            key.unicodeScalars.append(c)
            advance()
        }
        if key.isEmpty { throw error("expected a key, found \(found)", at: position) }
        return key
    }

    private func isBareKeyCharacter(_ c: Unicode.Scalar) -> Bool {
        ("a"..."z").contains(c) || ("A"..."Z").contains(c) || ("0"..."9").contains(c) || c == "_" || c == "-"
    }

    // MARK: Values

    private mutating func value() throws(TOMLError) -> TOMLNode {
        let start = position
        guard let c = peek() else { throw error("expected a value, found the end of the file", at: start) }
        if c == "[" || c == "{" {
            guard nesting < Self.maximumNesting else {
                throw error("arrays and inline tables are nested more than \(Self.maximumNesting) deep here", at: start)
            }
            nesting += 1
        }
        defer { if c == "[" || c == "{" { nesting -= 1 } }
        switch c {
        case "\"":
            return TOMLNode(value: .string(try basicString()), position: start)
        case "'":
            return TOMLNode(value: .string(try literalString()), position: start)
        case "[":
            return try array()
        case "{":
            return try inlineTable()
        case "t" where matchesWord("true"):
            index += 4
            return TOMLNode(value: .boolean(true), position: start)
        case "f" where matchesWord("false"):
            index += 5
            return TOMLNode(value: .boolean(false), position: start)
        case "\n", "#":
            throw error("expected a value after '='", at: start)
        default:
            return try number()
        }
    }

    private mutating func number() throws(TOMLError) -> TOMLNode {
        let start = position
        var token = ""
        while let c = peek(), !" \t\n\r,]}#".unicodeScalars.contains(c) {
            token.unicodeScalars.append(c)
            advance()
        }
        let scalars = Array(token.unicodeScalars)
        let isDate = scalars.count >= 10 && scalars[4] == "-" && scalars[0..<4].allSatisfy(Self.isDigit)
        let isTime = scalars.count >= 5 && scalars[2] == ":" && scalars[0..<2].allSatisfy(Self.isDigit)
        if isDate || isTime { throw error("dates and times are not used in a rules file", at: start) }
        switch Self.numberLiteral(scalars) {
        case let .integer(digits, radix)?:
            guard let v = Int64(digits, radix: radix) else {
                throw error("'\(token)' does not fit in a 64-bit integer", at: start)
            }
            return TOMLNode(value: .integer(v), position: start)
        case let .float(v)?:
            return TOMLNode(value: .float(v), position: start)
        case nil:
            if scalars.count > 1, scalars[0] == "0", scalars[1] != ".", scalars.allSatisfy(Self.isDigit) {
                throw error("'\(token)': leading zeros are not allowed (write hex as 0x\(token.dropFirst()))", at: start)
            }
            for (prefix, base) in ["0x": 16, "0o": 8, "0b": 2] where token.hasPrefix(prefix) {
                throw error("'\(token)' is not a valid base-\(base) integer", at: start)
            }
            throw error(token.isEmpty ? "expected a value, found \(found)" : "'\(token)' is not a valid value (strings need quotes)", at: start)
        }
    }

    private enum NumberLiteral {
        /// The digits without underscores, with the sign for decimal.
        case integer(String, radix: Int)
        case float(Double)
    }

    /// Reads `s` by TOML 1.0's grammar for integers and floats, nil if it is neither. Underscores stand
    /// only between digits; only decimals take a sign; prefixes are lower case; no leading zeros.
    private static func numberLiteral(_ s: [Unicode.Scalar]) -> NumberLiteral? {
        var i = 0
        let sign: Unicode.Scalar? = s.first == "+" || s.first == "-" ? s[0] : nil
        if sign != nil { i = 1 }
        let rest = String(String.UnicodeScalarView(s[i...]))
        if rest == "inf" { return .float(sign == "-" ? -.infinity : .infinity) }
        if rest == "nan" { return .float(.nan) }
        if sign == nil, s.count > 2, s[0] == "0", let radix = ["x": 16, "o": 8, "b": 2][Character(s[1])] {
            var j = 2
            guard let digits = digitRun(s, &j, radix: radix), j == s.count else { return nil }
            return .integer(digits, radix: radix)
        }
        let integerStart = i
        guard let integerPart = digitRun(s, &i, radix: 10) else { return nil }
        if integerPart.count > 1, s[integerStart] == "0" { return nil }
        if i == s.count { return .integer((sign == "-" ? "-" : "") + integerPart, radix: 10) }
        var text = integerPart
        if s[i] == "." {
            i += 1
            guard let fraction = digitRun(s, &i, radix: 10) else { return nil }
            text += "." + fraction
        }
        if i < s.count, s[i] == "e" || s[i] == "E" {
            i += 1
            var exponentSign = ""
            if i < s.count, s[i] == "+" || s[i] == "-" { exponentSign = String(s[i]); i += 1 }
            guard let exponent = digitRun(s, &i, radix: 10) else { return nil }
            text += "e" + exponentSign + exponent
        }
        guard i == s.count, let v = Double(text) else { return nil }
        return .float(sign == "-" ? -v : v)
    }

    /// One or more digits of `radix` from `i`, single underscores allowed between them; the digits without
    /// underscores, or nil if there is no digit or an underscore is misplaced.
    private static func digitRun(_ s: [Unicode.Scalar], _ i: inout Int, radix: Int) -> String? {
        var digits = ""
        while i < s.count {
            if s[i] == "_" {
                guard !digits.isEmpty, i + 1 < s.count, isDigit(s[i + 1], radix: radix) else { return nil }
                i += 1
                continue
            }
            guard isDigit(s[i], radix: radix) else { break }
            digits.unicodeScalars.append(s[i])
            i += 1
        }
        return digits.isEmpty ? nil : digits
    }

    private static func isDigit(_ c: Unicode.Scalar) -> Bool { isDigit(c, radix: 10) }

    private static func isDigit(_ c: Unicode.Scalar, radix: Int) -> Bool {
        switch radix {
        case 16: return ("0"..."9").contains(c) || ("a"..."f").contains(c) || ("A"..."F").contains(c)
        case 8: return ("0"..."7").contains(c)
        case 2: return c == "0" || c == "1"
        default: return ("0"..."9").contains(c)
        }
    }

    private mutating func array() throws(TOMLError) -> TOMLNode {
        let start = position
        advance()
        var items: [TOMLNode] = []
        while true {
            try skipBlankAndComments()
            if peek() == "]" { advance(); break }
            items.append(try value())
            try skipBlankAndComments()
            if peek() == "," { advance(); continue }
            if peek() == "]" { advance(); break }
            throw error(peek() == nil ? "the array opened on line \(start.line) is never closed" : "expected ',' or ']' in the array, found \(found)", at: position)
        }
        return TOMLNode(value: .array(items), position: start)
    }

    private mutating func inlineTable() throws(TOMLError) -> TOMLNode {
        let start = position
        advance()
        let builder = Builder(position: start, origin: .inline)
        skipSpaces()
        if peek() == "}" {
            advance()
            return TOMLNode(value: .table(builder.finish()), position: start)
        }
        while true {
            skipSpaces()
            try keyValue(into: builder)
            skipSpaces()
            if peek() == "," { advance(); continue }
            if peek() == "}" { advance(); break }
            if peek() == "\n" || peek() == nil { throw error("an inline table must close with '}' on the line it opens", at: position) }
            throw error("expected ',' or '}' in the inline table, found \(found)", at: position)
        }
        return TOMLNode(value: .table(builder.finish()), position: start)
    }

    // MARK: Strings

    private mutating func basicString() throws(TOMLError) -> String {
        let start = position
        let multiline = matches("\"\"\"")
        index += multiline ? 3 : 1
        if multiline, peek() == "\n" { newline() }
        var out = ""
        while true {
            guard let c = peek() else { throw error("the string opened here is never closed", at: start) }
            if multiline, matches("\"\"\"") {
                try closeMultiline("\"", appendingTo: &out)
                return out
            }
            if !multiline, c == "\"" { advance(); return out }
            if c == "\n" {
                guard multiline else { throw error("the string opened here is never closed on its line", at: start) }
                out.append("\n")
                newline()
                continue
            }
            if c == "\\" {
                let escapeStart = position
                advance()
                guard let e = peek() else { throw error("the string opened here is never closed", at: start) }
                advance()
                switch e {
                case "b": out.append("\u{08}")
                case "t": out.append("\t")
                case "n": out.append("\n")
                case "f": out.append("\u{0C}")
                case "r": out.append("\r")
                case "\"": out.append("\"")
                case "\\": out.append("\\")
                case "e": out.append("\u{1B}")   // TOML 1.1
                case "u", "U":
                    let width = e == "u" ? 4 : 8
                    var hex = ""
                    for _ in 0..<width { if let h = peek() { hex.unicodeScalars.append(h); advance() } }
                    guard let v = UInt32(hex, radix: 16), let scalar = Unicode.Scalar(v) else {
                        throw error("'\\\(e)\(hex)' is not a valid Unicode escape", at: escapeStart)
                    }
                    out.unicodeScalars.append(scalar)
                case _ where multiline && (e == " " || e == "\t" || e == "\n"):
                    // Line-ending backslash: only blanks may stand between it and the newline; it trims the
                    // newline and all whitespace after.
                    index -= 1
                    skipSpaces()
                    guard peek() == "\n" else {
                        throw error("'\\' followed by a space is not a valid escape (a line-ending backslash must end its line)", at: escapeStart)
                    }
                    while let w = peek(), w == " " || w == "\t" || w == "\n" { if w == "\n" { newline() } else { advance() } }
                default:
                    throw error("'\\\(e)' is not a valid escape (use \\\\ for a backslash)", at: escapeStart)
                }
                continue
            }
            try refuseControlCharacter(c, in: "a string")
            out.unicodeScalars.append(c)
            advance()
        }
    }

    private mutating func literalString() throws(TOMLError) -> String {
        let start = position
        let multiline = matches("'''")
        index += multiline ? 3 : 1
        if multiline, peek() == "\n" { newline() }
        var out = ""
        while true {
            guard let c = peek() else { throw error("the string opened here is never closed", at: start) }
            if multiline, matches("'''") {
                try closeMultiline("'", appendingTo: &out)
                return out
            }
            if !multiline, c == "'" { advance(); return out }
            if c == "\n" {
                guard multiline else { throw error("the string opened here is never closed on its line", at: start) }
                newline()
                out.append("\n")
                continue
            }
            try refuseControlCharacter(c, in: "a string")
            out.unicodeScalars.append(c)
            advance()
        }
    }

    /// At the closing `"""` or `'''`: up to two more quotes belong to the content; a sixth is an error.
    private mutating func closeMultiline(_ quote: Unicode.Scalar, appendingTo out: inout String) throws(TOMLError) {
        index += 3
        for _ in 0..<2 where peek() == quote {
            out.unicodeScalars.append(quote)
            advance()
        }
        if peek() == quote {
            throw error("too many quotes: at most two may stand right before the closing \(quote)\(quote)\(quote)", at: position)
        }
    }

    /// Tab is the only control character TOML allows inside strings and comments (line ends are read apart).
    private func refuseControlCharacter(_ c: Unicode.Scalar, in place: String) throws(TOMLError) {
        if (c.value < 0x20 && c != "\t") || c.value == 0x7F {
            throw error("control character \(String(c)) in \(place) (write it as an escape in a basic string)", at: position)
        }
    }

    // MARK: Lexing helpers

    private var position: SourcePosition { SourcePosition(line: line, column: index - lineStart + 1) }

    private func peek() -> Unicode.Scalar? {
        guard index < text.count else { return nil }
        // CRLF reads as LF.
        if text[index] == "\r", index + 1 < text.count, text[index + 1] == "\n" { return "\n" }
        return text[index]
    }

    private mutating func advance() { index += 1 }

    /// What stands at the current position, for "expected …, found …".
    private var found: String {
        switch peek() {
        case nil: return "the end of the file"
        case "\n": return "the end of the line"
        case let c?: return "'\(c)'"
        }
    }

    private mutating func newline() {
        if text[index] == "\r" { index += 1 }
        index += 1
        line += 1
        lineStart = index
    }

    private func matches(_ word: String) -> Bool {
        var i = index
        for c in word.unicodeScalars {
            guard i < text.count, text[i] == c else { return false }
            i += 1
        }
        return true
    }

    /// `word` followed by something that ends a value.
    private func matchesWord(_ word: String) -> Bool {
        guard matches(word) else { return false }
        let end = index + word.unicodeScalars.count
        return end >= text.count || " \t\r\n,]}#".unicodeScalars.contains(text[end])
    }

    private mutating func skipSpaces() {
        while let c = peek(), c == " " || c == "\t" { advance() }
    }

    private mutating func skipComment() throws(TOMLError) {
        guard peek() == "#" else { return }
        while let c = peek(), c != "\n" {
            try refuseControlCharacter(c, in: "a comment")
            advance()
        }
    }

    private mutating func skipBlankAndComments() throws(TOMLError) {
        while true {
            skipSpaces()
            try skipComment()
            if peek() == "\n" { newline() } else { return }
        }
    }

    private mutating func endOfLine() throws(TOMLError) {
        skipSpaces()
        try skipComment()
        guard let c = peek() else { return }
        guard c == "\n" else { throw error("expected the end of the line, found \(found)", at: position) }
        newline()
    }

    private mutating func expect(_ c: Unicode.Scalar, _ why: String) throws(TOMLError) {
        guard peek() == c else {
            throw error("expected '\(c)' \(why), found \(found)", at: position)
        }
        advance()
    }

    /// Whatever of the input a message quotes is shown escaped.
    private func error(_ message: String, at position: SourcePosition) -> TOMLError {
        TOMLError(position: position, message: message.escapedForDisplay)
    }
}
