import FirmwareImage
import Foundation
import FuzzTargets
import TestSupport
import Testing

/// Every input a fuzzer found a fault with stays a test: `Tests/FuzzRegressions/<target>/` holds them,
/// and each must now run clean. The built-in seeds run clean too, and a short deterministic mutation pass
/// over them runs in every `make test` (libFuzzer's longer runs are `make fuzz`).
@Suite struct FuzzRegressionTests {
    static let regressions = Fixtures.repositoryRoot.appendingPathComponent("Tests/FuzzRegressions")

    static func savedInputs() -> [(target: FuzzTarget, file: String)] {
        FuzzTarget.allCases.flatMap { target -> [(FuzzTarget, String)] in
            let folder = regressions.appendingPathComponent(target.rawValue).path
            let names = (try? FileManager.default.contentsOfDirectory(atPath: folder)) ?? []
            return names.sorted().filter { !$0.hasPrefix(".") }.map { (target, folder + "/" + $0) }
        }
    }

    @Test func everySavedFindingRunsClean() throws {
        for (target, file) in Self.savedInputs() {
            let bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: file)))
            #expect(throws: Never.self, "\(target.rawValue): \(file)") { try target.run(bytes) }
        }
    }

    /// A seed is a whole session the simulator answered: it must run clean, and the session must get far
    /// enough for the fuzzer to start from deep inside the protocol.
    @Test(arguments: [FuzzTarget.stk500v1, .busPirate, .stlink, .udev, .journal])
    func builtInSeedsRunClean(_ target: FuzzTarget) throws {
        let seeds = target.builtInSeeds
        #expect(!seeds.isEmpty)
        for seed in seeds {
            #expect(seed.count >= 8, "\(target.rawValue) seed of \(seed.count) bytes")
            #expect(throws: Never.self) { try target.run(seed) }
        }
    }

    /// A few thousand mutations of each seed (bytes flipped, cut, repeated, inserted), reproducible from a
    /// fixed seed: a fast first line before libFuzzer.
    @Test(arguments: FuzzTarget.allCases)
    func mutatedSeedsRunClean(_ target: FuzzTarget) throws {
        var generator = SplitMix(seed: 0xB007_3ED1C)
        var seeds = target.builtInSeeds
        if target == .intelHex {
            seeds = [Array(IntelHex.format(try MemoryImage(bytes: garbage(600), at: 0x7E00), bytesPerRecord: 32).utf8)]
        } else if seeds.isEmpty {
            seeds = [try [UInt8](Data(contentsOf: URL(fileURLWithPath: Fixtures.shippedRules)))]
        }
        for round in 0..<1500 {
            var input = seeds[round % seeds.count]
            for _ in 0...Int.random(in: 0...3, using: &generator) { mutate(&input, using: &generator) }
            do { try target.run(input) } catch {
                Issue.record("\(target.rawValue): \(error) for input \(input.prefix(64).map { String(format: "%02X", $0) }.joined())")
                return
            }
        }
    }

    private func mutate(_ input: inout [UInt8], using generator: inout SplitMix) {
        guard !input.isEmpty else { input = [UInt8.random(in: 0...255, using: &generator)]; return }
        let at = Int.random(in: 0..<input.count, using: &generator)
        switch Int.random(in: 0..<5, using: &generator) {
        case 0: input[at] ^= 1 << UInt8.random(in: 0...7, using: &generator)
        case 1: input[at] = UInt8.random(in: 0...255, using: &generator)
        case 2: input.removeSubrange(at..<min(input.count, at + Int.random(in: 1...16, using: &generator)))
        case 3: input.insert(contentsOf: input[at..<min(input.count, at + Int.random(in: 1...16, using: &generator))], at: Int.random(in: 0...input.count, using: &generator))
        default: input.insert(UInt8.random(in: 0...255, using: &generator), at: at)
        }
    }
}

/// A small reproducible generator (SplitMix64).
struct SplitMix: RandomNumberGenerator {
    private var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
