import Bootloaders
import Foundation
import Recovery
import Rules
import Simulation
import TestSupport
import Testing
import Transport

/// Runs the flash job through `session` on the simulated chip's clock, with the rules text and a
/// throwaway backup folder, as `bootmedic flash` does it.
func runBootloaderJob(_ session: BootloaderSession, clock: VirtualClock, rules: String, rule: String? = nil) throws -> (RecoveryResult, RecordingSink) {
    let set = try #require(RulesFile.parse(rules, path: "t.toml", firmwareDirectory: Fixtures.firmwareDirectory.path).ruleSet)
    let backups = try Fixtures.temporaryDirectory()
    defer { try? FileManager.default.removeItem(at: backups) }
    let sink = RecordingSink()
    let job = RecoveryJob(bootloader: session, rules: set, ruleName: rule, backups: BackupStore(directory: backups.path), sink: sink)
    job.stepClock = clock
    return (job.run(), sink)
}
