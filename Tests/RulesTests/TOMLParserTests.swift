import Rules
import Testing

@Suite struct TOMLParserTests {
    @Test func parsesTheConstructsARulesFileUses() throws {
        let text = """
        # comment
        title = "bench 3"   # trailing comment
        'quoted key' = 'C:\\path'
        "basic" = "tab\\tquote\\" \\u00E9"
        hex = 0xDEAD_beef
        oct = 0o755
        bin = 0b1010
        neg = -42
        pos = +7
        float = 1.5e3
        yes = true
        no = false
        list = [1, 2,
          3, # comment inside
        ]
        multi = \"\"\"
        line one
        line two\"\"\"
        literal = '''
        raw \\n text'''
        a.b.c = 1
        inline = { x = 1, y.z = "w" }

        [defaults]
        backup_dir = "/var/lib"

        [[rule]]
        name = "one"

        [[rule]]
        name = "two"
        [rule.sub]
        k = 1
        """
        let root = try TOMLParser.parse(text)
        func value(_ key: String, in table: TOMLTable? = nil) -> TOMLValue? { (table ?? root)[key]?.value }
        guard case .string("bench 3")? = value("title"), case .string("C:\\path")? = value("quoted key"),
              case .string("tab\tquote\" é")? = value("basic"), case .integer(0xDEAD_BEEF)? = value("hex"),
              case .integer(0o755)? = value("oct"), case .integer(10)? = value("bin"), case .integer(-42)? = value("neg"),
              case .integer(7)? = value("pos"), case .float(1500)? = value("float"), case .boolean(true)? = value("yes"),
              case .boolean(false)? = value("no"), case let .array(list)? = value("list"),
              case .string("line one\nline two")? = value("multi"), case .string("raw \\n text")? = value("literal"),
              case let .table(a)? = value("a"), case let .table(inline)? = value("inline"),
              case let .table(defaults)? = value("defaults"), case let .array(rules)? = value("rule")
        else { Issue.record("unexpected values: \(root.entries.map { ($0.key, $0.node.value) })"); return }
        #expect(list.count == 3)
        guard case let .table(b)? = a["b"]?.value, case .integer(1)? = b["c"]?.value else { Issue.record("dotted keys"); return }
        guard case .integer(1)? = inline["x"]?.value, case let .table(y)? = inline["y"]?.value, case .string("w")? = y["z"]?.value else {
            Issue.record("inline table"); return
        }
        guard case .string("/var/lib")? = defaults["backup_dir"]?.value else { Issue.record("defaults"); return }
        #expect(rules.count == 2)
        guard case let .table(second) = rules[1].value, case .string("two")? = second["name"]?.value,
              case let .table(sub)? = second["sub"]?.value, case .integer(1)? = sub["k"]?.value else { Issue.record("arrays of tables"); return }
        #expect(root["title"]?.position == SourcePosition(line: 2, column: 9))
        #expect(root.entry("hex")?.keyPosition == SourcePosition(line: 5, column: 1))
        #expect(rules[1].position.line == 30)
        #expect(second["name"]?.position == SourcePosition(line: 31, column: 8))
    }

    @Test func acceptsCRLF() throws {
        let root = try TOMLParser.parse("a = 1\r\n[t]\r\nb = \"x\"\r\n")
        guard case let .table(t)? = root["t"]?.value, case .string("x")? = t["b"]?.value else { Issue.record("CRLF"); return }
        #expect(t["b"]?.position == SourcePosition(line: 3, column: 5))
    }

    static let malformed: [(String, String)] = [
        ("a = ", "1:5: expected a value, found the end of the file"),
        ("a = # nothing", "1:5: expected a value after '='"),
        ("a", "1:2: expected '=' after the key 'a'"),
        ("a b = 1", "1:3: expected '=' after the key, found 'b'"),
        ("= 1", "1:1: expected a key, found '='"),
        ("a = 1 2", "1:7: expected the end of the line, found '2'"),
        ("a = 1\na = 2", "2:1: duplicate key 'a' (first on line 1)"),
        ("a = hello", "1:5: 'hello' is not a valid value (strings need quotes)"),
        ("a = trueish", "1:5: 'trueish' is not a valid value (strings need quotes)"),
        ("a = nope", "1:5: 'nope' is not a valid value (strings need quotes)"),
        ("a = \"open", "1:5: the string opened here is never closed"),
        ("a = \"open\nb = 1", "1:5: the string opened here is never closed on its line"),
        ("a = \"\"\"open\n", "1:5: the string opened here is never closed"),
        ("a = 'open\n", "1:5: the string opened here is never closed on its line"),
        ("a = \"bad \\q escape\"", "1:10: '\\q' is not a valid escape (use \\\\ for a backslash)"),
        ("a = \"\\uZZZZ\"", "1:6: '\\uZZZZ' is not a valid Unicode escape"),
        ("a = 0xZZ", "1:5: '0xZZ' is not a valid base-16 integer"),
        ("a = 0b102", "1:5: '0b102' is not a valid base-2 integer"),
        ("a = 012", "1:5: '012': leading zeros are not allowed (write hex as 0x12)"),
        ("a = 1__0", "1:5: '1__0' is not a valid value (strings need quotes)"),
        ("a = 99999999999999999999", "1:5: '99999999999999999999' does not fit in a 64-bit integer"),
        ("a = 2024-01-01", "1:5: dates and times are not used in a rules file"),
        ("a = [1, 2", "1:10: the array opened on line 1 is never closed"),
        ("a = [1 2]", "1:8: expected ',' or ']' in the array, found '2'"),
        ("a = { x = 1", "1:12: an inline table must close with '}' on the line it opens"),
        ("a = { x = 1 y = 2 }", "1:13: expected ',' or '}' in the inline table, found 'y'"),
        ("a = { x = 1, x = 2 }", "1:14: duplicate key 'x' (first on line 1)"),
        ("[t]\n[t]", "2:1: table [t] is defined twice (first on line 1)"),
        ("[t\nx = 1", "1:3: expected ']' to close the table header, found the end of the line"),
        ("[[t]\n", "1:5: expected ']' to close the array-of-tables header [[…]], found the end of the line"),
        ("t = 1\n[t]", "2:2: 't' already holds a value, not a table"),
        ("[[t]]\n[t]", "2:2: 't' is an array of tables; use [[t]] to add to it"),
        ("t = 1\n[[t]]", "2:3: 't' is already defined as something other than an array of tables"),
        ("t = { a = 1 }\nt.b = 2", "2:1: 't' is a table defined elsewhere; it cannot be extended with a dotted key here"),
        ("a = 1\na.b = 2", "2:1: 'a' already holds a value, not a table"),
        ("a = \"x\u{01}\"", "1:7: control character \\x01 in a string (write it as an escape in a basic string)"),
        // Accepted before the toml-test corpus was run (issue 14).
        ("a = 0X1", "1:5: '0X1' is not a valid value (strings need quotes)"),
        ("a = 0x-1", "1:5: '0x-1' is not a valid base-16 integer"),
        ("a = 0b_1", "1:5: '0b_1' is not a valid base-2 integer"),
        ("a = 1.e2", "1:5: '1.e2' is not a valid value (strings need quotes)"),
        ("a = 03.14", "1:5: '03.14' is not a valid value (strings need quotes)"),
        ("a = 1e_23", "1:5: '1e_23' is not a valid value (strings need quotes)"),
        ("vendor = buchanan", "1:10: 'buchanan' is not a valid value (strings need quotes)"),
        ("a = 1 # bell \u{07}", "1:14: control character \\x07 in a comment (write it as an escape in a basic string)"),
        ("a = 'raw \u{7F}'", "1:10: control character \\x7F in a string (write it as an escape in a basic string)"),
        ("\"\"\"long\nkey\"\"\" = 1", "1:1: a multi-line string cannot be a key"),
        ("a = '''x''''''", "1:14: too many quotes: at most two may stand right before the closing '''"),
        ("a = \"\"\"t\\ t\"\"\"", "1:9: '\\' followed by a space is not a valid escape (a line-ending backslash must end its line)"),
        ("a = 17:45:00", "1:5: dates and times are not used in a rules file"),
        // What the input holds is shown escaped: a newline or terminal escape cannot split or colour the message.
        ("\"k\\u001B[31m\" = 1\n\"k\\u001B[31m\" = 2", "2:1: duplicate key 'k\\x1B[31m' (first on line 1)"),
        ("a = \r", "1:5: expected a value, found '\\x0D'"),
        ("[]", "1:2: expected a key, found ']'"),
    ]

    @Test(arguments: malformed)
    func malformedTOMLNamesLineAndColumn(_ testCase: (String, String)) {
        do {
            _ = try TOMLParser.parse(testCase.0)
            Issue.record("parsed without error: \(testCase.0)")
        } catch {
            #expect(error.description == testCase.1, "input: \(testCase.0)")
        }
    }

    /// A file's bytes are read as UTF-8; the first byte that is not names its line and column.
    @Test func invalidUTF8IsNamedWithItsPlace() throws {
        let bytes: [UInt8] = Array("a = 1\nname = \"caf".utf8) + [0xC3, 0x28] + Array("\"\n".utf8)
        #expect(throws: TOMLError(position: SourcePosition(line: 2, column: 12), message: "invalid UTF-8 (\\xC3): a rules file must be UTF-8 text")) {
            try TOMLParser.parse(utf8: bytes)
        }
        let withMark = try TOMLParser.parse(utf8: [0xEF, 0xBB, 0xBF] + Array("a = 1".utf8))
        #expect(withMark.keys == ["a"])
    }

    /// A sub-table header under each `[[rule]]` belongs to that rule (it was "defined twice" for the second).
    @Test func subTablesRepeatUnderEachArrayElement() throws {
        let root = try TOMLParser.parse("[[rule]]\nname = \"a\"\n[rule.match]\npart = 1\n[[rule]]\nname = \"b\"\n[rule.match]\npart = 2\n")
        guard case let .array(rules)? = root["rule"]?.value else { Issue.record("no rules"); return }
        let parts = rules.compactMap { node -> Int64? in
            guard case let .table(rule) = node.value, case let .table(match)? = rule["match"]?.value, case let .integer(part)? = match["part"]?.value else { return nil }
            return part
        }
        #expect(parts == [1, 2])
        #expect(throws: TOMLError(position: SourcePosition(line: 4, column: 1), message: "table [rule.match] is defined twice (first on line 2)")) {
            try TOMLParser.parse("[[rule]]\n[rule.match]\na = 1\n[rule.match]\n")
        }
    }

    /// Hostile nesting ends in a message, not in a stack overflow (issue 14: 3,300 arrays crashed it).
    @Test func nestingHasALimit() throws {
        let deep = "x = " + String(repeating: "[", count: 3300) + String(repeating: "]", count: 3300)
        #expect(throws: TOMLError.self) { try TOMLParser.parse(deep) }
        do { _ = try TOMLParser.parse(deep) } catch {
            #expect(error.description == "1:69: arrays and inline tables are nested more than 64 deep here")
        }
        let inline = "x = " + String(repeating: "{a = ", count: 1300) + "1" + String(repeating: "}", count: 1300)
        do { _ = try TOMLParser.parse(inline); Issue.record("accepted") } catch {
            #expect(error.message == "arrays and inline tables are nested more than 64 deep here")
        }
        let dotted = (0...64).map { "k\($0)" }.joined(separator: ".") + " = 1"
        do { _ = try TOMLParser.parse(dotted); Issue.record("accepted") } catch {
            #expect(error.message == "the key has more than 64 dotted parts")
        }
        // 64 levels are still read.
        let allowed = "x = " + String(repeating: "[", count: 64) + String(repeating: "]", count: 64)
        #expect(throws: Never.self) { try TOMLParser.parse(allowed) }
    }

    @Test func manyKeysAreFoundAndDuplicatesStillRefused() throws {
        let text = (0..<20_000).map { "k\($0) = \($0)" }.joined(separator: "\n")
        let table = try TOMLParser.parse(text)
        #expect(table.entries.count == 20_000)
        guard case let .integer(v)? = table["k19999"]?.value else { Issue.record("k19999 missing"); return }
        #expect(v == 19_999)
        do { _ = try TOMLParser.parse(text + "\nk5 = 1"); Issue.record("accepted") } catch {
            #expect(error.message == "duplicate key 'k5' (first on line 6)")
        }
    }
}
