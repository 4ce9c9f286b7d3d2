import ArgumentParser
import FirmwareImage
import FoundationEssentials

struct HexCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "hex",
        abstract: "Inspect and combine firmware images.",
        subcommands: [Info.self, Merge.self]
    )

    struct Info: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "info", abstract: "Show the address ranges, size and start record of a firmware file.")

        @Argument(help: "An Intel HEX file (.hex) or a raw binary.")
        var file: String

        @Option(help: "Where a raw binary starts (e.g. 0x08000000).")
        var base: String = "0"

        @OptionGroup var output: OutputOptions

        struct Report: Encodable {
            struct Range: Encodable { let start: UInt64; let end: UInt64; let bytes: Int }
            struct Start: Encodable { let type: String; let cs: UInt16?; let ip: UInt16?; let eip: UInt32? }
            let file: String
            let format: String
            let bytes: Int
            let ranges: [Range]
            let start: Start?
            let sha256: String
        }

        func run() throws {
            guard let baseAddress = UInt32(base.lowercased().hasPrefix("0x") ? String(base.dropFirst(2)) : base,
                                           radix: base.lowercased().hasPrefix("0x") ? 16 : 10) else {
                throw fail("--base \(base) is not an address")
            }
            let firmware: FirmwareFile
            do { firmware = try FirmwareFile(path: file, binaryBase: baseAddress) } catch { throw fail(error.description) }
            let image = firmware.image
            let start: Report.Start? = image.startAddress.map {
                switch $0 {
                case let .segment(cs, ip): return .init(type: "segment", cs: cs, ip: ip, eip: nil)
                case let .linear(eip): return .init(type: "linear", cs: nil, ip: nil, eip: eip)
                }
            }
            let report = Report(
                file: file, format: firmware.format.rawValue, bytes: image.byteCount,
                ranges: image.segments.map { .init(start: UInt64($0.address), end: $0.endAddress, bytes: $0.bytes.count) },
                start: start, sha256: firmware.sha256.description)
            if output.json { try printJSON(report); return }
            let kind = firmware.format == .intelHex ? "Intel HEX" : "raw binary"
            print("\(file): \(kind), \(image.byteCount) bytes in \(image.segments.count) range\(image.segments.count == 1 ? "" : "s")")
            for segment in image.segments {
                print("  \(hex(UInt64(segment.address)))–\(hex(segment.endAddress - 1))  \(segment.bytes.count) bytes")
            }
            print("start: \(image.startAddress.map(\.description) ?? "none")")
            print("sha256: \(firmware.sha256)")
        }
    }

    struct Merge: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "merge",
            abstract: "Join an application and a bootloader into one production image.",
            discussion: "Refuses images that overlap. The output is Intel HEX.")

        @Argument(help: "The application (e.g. QMK firmware), Intel HEX.")
        var application: String

        @Argument(help: "The bootloader, Intel HEX.")
        var bootloader: String

        @Option(name: .shortAndLong, help: "The production image to write.")
        var output: String

        func run() throws {
            let app: FirmwareFile, boot: FirmwareFile
            do {
                app = try FirmwareFile(path: application)
                boot = try FirmwareFile(path: bootloader)
            } catch { throw fail(error.description) }
            let merged: MemoryImage
            do { merged = try MemoryImage.merging(application: app.image, bootloader: boot.image) } catch {
                throw fail("cannot merge \(application) with \(bootloader): \(error)")
            }
            try writeOutput(IntelHex.format(merged), to: output)
            print("\(output): \(merged.byteCount) bytes (\(app.image.byteCount) application + \(boot.image.byteCount) bootloader)")
        }
    }
}
