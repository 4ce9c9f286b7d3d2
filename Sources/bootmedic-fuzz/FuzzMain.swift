// bootmedic-fuzz: the fuzz targets of FuzzTargets behind libFuzzer's entry points.
//
// Built with `-sanitize=fuzzer` and `-D FUZZING` (`make fuzz`), libFuzzer supplies main and runs the target
// named by BOOTMEDIC_FUZZ_TARGET. Built plainly (every `swift build`), it replays inputs instead:
//   bootmedic-fuzz TARGET FILE...     runs each file once; exit 1 on a finding
//   bootmedic-fuzz --seeds TARGET DIR writes the target's built-in seeds into DIR
#if canImport(Glibc)
import Glibc
#endif
import FuzzTargets

nonisolated(unsafe) private var target: FuzzTarget?

private func report(_ text: String) {
    let line = Array((text + "\n").utf8)
    _ = line.withUnsafeBytes { write(2, $0.baseAddress, $0.count) }
}

@_cdecl("LLVMFuzzerInitialize")
public func fuzzerInitialize(_ argc: UnsafeMutablePointer<CInt>, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>) -> CInt {
    let name = getenv("BOOTMEDIC_FUZZ_TARGET").map { String(cString: $0) } ?? ""
    guard let chosen = FuzzTarget(rawValue: name) else {
        report("set BOOTMEDIC_FUZZ_TARGET to one of: \(FuzzTarget.allCases.map(\.rawValue).joined(separator: ", "))")
        exit(2)
    }
    target = chosen
    return 0
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzerTestOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let input = data.map { Array(UnsafeBufferPointer(start: $0, count: size)) } ?? []
    do { try target!.run(input) } catch {
        report("finding in \(target!.rawValue): \(error)")
        abort()   // libFuzzer saves the input as crash-…
    }
    return 0
}

#if !FUZZING
@main
struct Replay {
    static func main() {
        var arguments = Array(CommandLine.arguments.dropFirst())
        let seeding = arguments.first == "--seeds"
        if seeding { arguments.removeFirst() }
        guard arguments.count >= 2, let chosen = FuzzTarget(rawValue: arguments[0]) else {
            report("usage: bootmedic-fuzz TARGET FILE... | bootmedic-fuzz --seeds TARGET DIR\ntargets: \(FuzzTarget.allCases.map(\.rawValue).joined(separator: ", "))")
            exit(2)
        }
        if seeding {
            for (n, seed) in chosen.builtInSeeds.enumerated() {
                guard let file = fopen("\(arguments[1])/seed-\(n)", "wb") else { report("cannot write into \(arguments[1])"); exit(1) }
                _ = seed.withUnsafeBytes { fwrite($0.baseAddress, 1, $0.count, file) }
                fclose(file)
            }
            return
        }
        var findings = 0
        for path in arguments.dropFirst() {
            guard let file = fopen(path, "rb") else { report("\(path): cannot open"); exit(1) }
            var bytes: [UInt8] = []
            var buffer = [UInt8](repeating: 0, count: 65536)
            while case let n = fread(&buffer, 1, buffer.count, file), n > 0 { bytes += buffer.prefix(n) }
            fclose(file)
            do { try chosen.run(bytes) } catch {
                report("\(path): \(error)")
                findings += 1
            }
        }
        exit(findings == 0 ? 0 : 1)
    }
}
#endif
