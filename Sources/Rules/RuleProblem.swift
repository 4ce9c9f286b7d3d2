import BenchModel
import Parts

/// One problem in a rules file, located to its line.
public struct RuleProblem: Hashable, Sendable, Codable, CustomStringConvertible {
    public let file: String
    /// 1-based; 0 when the problem concerns the whole file.
    public let line: Int
    public let column: Int
    public let severity: Severity
    /// The rule's name, when the problem is inside one.
    public let rule: String?
    public let message: String

    public init(file: String, position: SourcePosition?, severity: Severity, rule: String?, message: String) {
        // A rule's name, a key or a value quoted from the file is shown escaped.
        self.file = file.escapedForDisplay
        self.line = position?.line ?? 0
        self.column = position?.column ?? 0
        self.severity = severity
        self.rule = rule?.escapedForDisplay
        self.message = message.escapedForDisplay
    }

    /// "config/rules.toml:12:14: error: [pro-micro-5v] unknown part 'atmega32u5'", as compilers print it.
    public var description: String {
        let place = line > 0 ? "\(file):\(line):\(column)" : file
        return "\(place): \(severity.rawValue): " + (rule.map { "[\($0)] " } ?? "") + message
    }
}
