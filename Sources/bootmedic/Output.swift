import ArgumentParser
import BenchModel
import FirmwareImage
import FoundationEssentials
import Glibc
import Transport

/// `--json` for scripts; people get text by default.
struct OutputOptions: ParsableArguments {
    @Flag(name: .long, help: "Print JSON for scripts instead of text for people.")
    var json = false
}

/// Writes `value` as pretty, key-sorted JSON on standard output.
func printJSON<T: Encodable>(_ value: T) throws {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
    let data = try encoder.encode(value)
    print(String(decoding: data, as: UTF8.self))
}

/// A failure the command reports in one line on standard error, exiting with `code`.
struct CommandFailure: Error, CustomStringConvertible {
    let message: String
    var code: Int32 = 1
    var description: String { message }
}

/// Prints "bootmedic: error: …" and exits non-zero; used for every expected failure.
func fail(_ message: String, code: Int32 = 1) -> ExitCode {
    printError("bootmedic: error: \(message)")
    return ExitCode(code)
}

/// Writes lines to standard error, whatever a path, argument or device quoted in them holds shown escaped.
func printError(_ text: String) {
    fflush(nil)   // all streams: stdout lines come before the error, as they happened
    let lines = text.split(separator: "\n", omittingEmptySubsequences: false).map(\.escapedForDisplay)
    OutputFile.writeToStandardError(lines.joined(separator: "\n") + "\n")
}

/// A byte given on the command line in hex: 0x5E, 5E or $5E (a bare 99 is 0x99, never decimal).
struct HexByte: ExpressibleByArgument {
    let value: UInt8

    init?(argument: String) {
        // Always hex, as fuse bytes are written everywhere (datasheets, avrdude): a bare "99" is 0x99.
        let text = argument.lowercased()
        let digits = text.hasPrefix("0x") ? text.dropFirst(2) : (text.hasPrefix("$") ? text.dropFirst() : Substring(text))
        guard !digits.isEmpty, let parsed = UInt8(digits, radix: 16) else { return nil }
        value = parsed
    }
}

func hex(_ value: UInt64, width: Int = 4) -> String {
    let digits = String(value, radix: 16, uppercase: true)
    return "0x" + String(repeating: "0", count: max(0, width - digits.count)) + digits
}

/// Writes `text` to `path` for an `-o` option: a new file, or one replacing a regular file whole (written
/// beside it and renamed into place). A device node, FIFO or folder at `path` is refused: an atomic
/// write would replace it with a regular file.
func writeOutput(_ text: String, to path: String) throws {
    if let type = (try? FileManager.default.attributesOfItem(atPath: path))?[.type] as? FileAttributeType, type != .typeRegular {
        throw fail("\(path) is not a regular file; -o writes only a new file or replaces a regular one")
    }
    do { try text.write(toFile: path, atomically: true, encoding: .utf8) } catch {
        // Foundation's own error text names its error domain; say what is wrong in the file system's terms.
        let folder = InputFile.folder(of: path).isEmpty ? "." : InputFile.folder(of: path)
        var status = stat()
        let reason = stat(folder, &status) != 0 ? "there is no folder \(folder)"
            : status.st_mode & S_IFMT != S_IFDIR ? "\(folder) is not a folder"
            : !FileManager.default.isWritableFile(atPath: folder) ? "the folder \(folder) is not writable" : "the write failed"
        throw fail("cannot write \(path): \(reason)")
    }
}


/// The folder for temporary files, with its trailing slash: `$TMPDIR`, else /tmp.
func temporaryDirectory() -> String {
    let folder = ProcessInfo.processInfo.environment["TMPDIR"].flatMap { $0.isEmpty ? nil : $0 } ?? "/tmp"
    return folder.hasSuffix("/") ? folder : folder + "/"
}
