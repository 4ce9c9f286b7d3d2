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
        var definedHeaders: [[String]: SourcePosition] = [:]
        while true {
            skipBlankAndComments()
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
                if isArray {
                    current = try appendArrayTable(root, path, at: start)
                } else {
                    if let first = definedHeaders[path.map(\.key)] {
                        throw error("table [\(path.map(\.key).joined(separator: "."))] is defined twice (first on line \(first.line))", at: start)
                    }
                    current = try defineTable(root, path, at: start)
                    definedHeaders[path.map(\.key)] = start
                }
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
                    guard child.origin == .implicit else {
                        throw error("table [\(path.map(\.key).joined(separator: "."))] is already defined", at: start)
                    }
                    child.origin = .header
                }
                if child.origin == .inline { throw error("inline table '\(part.key)' cannot be extended", at: part.position) }
                node = child
            } else if node.table[part.key] != nil {
                throw error("'\(part.key)' already holds a value, not a table", at: part.position)
            } else {
                let child = Builder(position: start, origin: last ? .header : .implicit)
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
                                                       : "expected '=' after the key, found '\(peek()!)'", at: position)
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
        if c == "\"" { return try basicString() }
        if c == "'" { return try literalString() }
        var key = ""
        while let c = peek(), isBareKeyCharacter(c) {
            key.unicodeScalars.append(c)
            advance()
        }
        if key.isEmpty { throw error("expected a key, found '\(c)'", at: position) }
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
        if token == "inf" || token == "+inf" || token == "-inf" || token.hasSuffix("nan") {
            return TOMLNode(value: .float(token.hasSuffix("nan") ? .nan : (token.hasPrefix("-") ? -.infinity : .infinity)), position: start)
        }
        if token.count >= 10, token.dropFirst(4).first == "-", token.prefix(4).allSatisfy(\.isNumber) {
            throw error("dates and times are not used in a rules file", at: start)
        }
        func invalid() -> TOMLError { error("'\(token)' is not a valid value (strings need quotes)", at: start) }
        guard !token.isEmpty else { throw invalid() }
        // Underscores must sit between digits.
        let characters = Array(token)
        for (i, ch) in characters.enumerated() where ch == "_" {
            guard i > 0, i < characters.count - 1, characters[i - 1].isHexDigit, characters[i + 1].isHexDigit else { throw invalid() }
        }
        let digits = token.replacing("_", with: "")
        for (prefix, radix) in [("0x", 16), ("0o", 8), ("0b", 2)] where digits.hasPrefix(prefix) {
            guard digits.count > 2, let v = Int64(digits.dropFirst(2), radix: radix) else {
                throw error("'\(token)' is not a valid base-\(radix) integer", at: start)
            }
            return TOMLNode(value: .integer(v), position: start)
        }
        let unsigned = digits.first == "+" || digits.first == "-" ? digits.dropFirst() : Substring(digits)
        if unsigned.allSatisfy(\.isNumber) {
            guard !(unsigned.count > 1 && unsigned.first == "0") else {
                throw error("'\(token)': leading zeros are not allowed (write hex as 0x\(unsigned.dropFirst()))", at: start)
            }
            guard let v = Int64(digits) else { throw error("'\(token)' does not fit in a 64-bit integer", at: start) }
            return TOMLNode(value: .integer(v), position: start)
        }
        if let v = Double(digits), unsigned.first?.isNumber == true, unsigned.last?.isNumber == true {
            return TOMLNode(value: .float(v), position: start)
        }
        throw invalid()
    }

    private mutating func array() throws(TOMLError) -> TOMLNode {
        let start = position
        advance()
        var items: [TOMLNode] = []
        while true {
            skipBlankAndComments()
            if peek() == "]" { advance(); break }
            items.append(try value())
            skipBlankAndComments()
            if peek() == "," { advance(); continue }
            if peek() == "]" { advance(); break }
            throw error(peek() == nil ? "the array opened on line \(start.line) is never closed" : "expected ',' or ']' in the array, found '\(peek()!)'", at: position)
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
            throw error("expected ',' or '}' in the inline table, found '\(peek()!)'", at: position)
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
                index += 3
                // Up to two quotes may end the content right before the closing delimiter.
                while peek() == "\"" { out.append("\""); advance() }
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
                case "u", "U":
                    let width = e == "u" ? 4 : 8
                    var hex = ""
                    for _ in 0..<width { if let h = peek() { hex.unicodeScalars.append(h); advance() } }
                    guard let v = UInt32(hex, radix: 16), let scalar = Unicode.Scalar(v) else {
                        throw error("'\\\(e)\(hex)' is not a valid Unicode escape", at: escapeStart)
                    }
                    out.unicodeScalars.append(scalar)
                case _ where multiline && (e == " " || e == "\t" || e == "\n"):
                    // Line-ending backslash: trims the newline and following whitespace.
                    index -= 1
                    while let w = peek(), w == " " || w == "\t" || w == "\n" || w == "\r" { if w == "\n" { newline() } else { advance() } }
                default:
                    throw error("'\\\(e)' is not a valid escape (use \\\\ for a backslash)", at: escapeStart)
                }
                continue
            }
            if c.value < 0x20 && c != "\t" && c != "\r" {
                throw error("control character U+\(String(c.value, radix: 16, uppercase: true)) in a string", at: position)
            }
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
                index += 3
                while peek() == "'" { out.append("'"); advance() }
                return out
            }
            if !multiline, c == "'" { advance(); return out }
            if c == "\n" {
                guard multiline else { throw error("the string opened here is never closed on its line", at: start) }
                newline()
                out.append("\n")
                continue
            }
            out.unicodeScalars.append(c)
            advance()
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

    private mutating func skipComment() {
        if peek() == "#" { while let c = peek(), c != "\n" { advance() } }
    }

    private mutating func skipBlankAndComments() {
        while true {
            skipSpaces()
            skipComment()
            if peek() == "\n" { newline() } else { return }
        }
    }

    private mutating func endOfLine() throws(TOMLError) {
        skipSpaces()
        skipComment()
        guard let c = peek() else { return }
        guard c == "\n" else { throw error("expected the end of the line, found '\(c)'", at: position) }
        newline()
    }

    private mutating func expect(_ c: Unicode.Scalar, _ why: String) throws(TOMLError) {
        guard peek() == c else {
            throw error("expected '\(c)' \(why)" + (peek().map { ", found '\($0)'" } ?? ", found the end of the file"), at: position)
        }
        advance()
    }

    private func error(_ message: String, at position: SourcePosition) -> TOMLError {
        TOMLError(position: position, message: message)
    }
}
