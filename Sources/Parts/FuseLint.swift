/// How serious a finding is.
public enum Severity: String, Sendable, Codable, Comparable {
    case note, warning, error

    public static func < (a: Severity, b: Severity) -> Bool {
        [Severity.note, .warning, .error].firstIndex(of: a)! < [Severity.note, .warning, .error].firstIndex(of: b)!
    }
}

/// What a fuse or placement check found.
public enum FindingCode: String, Sendable, Codable {
    case noSuchFuseByte = "no-such-fuse-byte"
    case unimplementedBits = "unimplemented-bits"
    case disablesSerialProgramming = "disables-spi-programming"
    case disablesReset = "disables-reset"
    case enablesDebugWIRE = "enables-debugwire"
    case reservedClock = "reserved-clock"
    case changesClockSource = "changes-clock-source"
    case changesClockDivider = "changes-clock-divider"
    case clockNotDeclared = "clock-not-declared"
    case watchdogAlwaysOn = "watchdog-always-on"
    case imageBeyondFlash = "image-beyond-flash"
    case noCodeAtBootSection = "no-code-at-boot-section"
    case bootloaderMisplaced = "bootloader-misplaced"
    case resetMissesBootloader = "reset-misses-bootloader"
    case placementUnchecked = "placement-unchecked"
    case programmerCannotAddress = "programmer-cannot-address"
    case wrongProgrammer = "wrong-programmer"
    case unimplementedLockBits = "unimplemented-lock-bits"
    case notForThisFamily = "not-for-this-family"
}

/// One finding of the fuse lint or the placement check.
public struct Finding: Hashable, Sendable, Codable, CustomStringConvertible {
    public let severity: Severity
    public let code: FindingCode
    public let message: String

    public init(_ severity: Severity, _ code: FindingCode, _ message: String) {
        self.severity = severity
        self.code = code
        self.message = message
    }

    public var description: String { "\(severity.rawValue): \(message)" }
}

/// The clock a board is built for, as its rule declares it.
public struct BoardClock: Hashable, Sendable {
    public let source: ClockSource
    /// Whether CKDIV8 should be programmed; nil leaves the divider to the chip's current value.
    public let dividedBy8: Bool?

    public init(source: ClockSource, dividedBy8: Bool? = nil) {
        self.source = source
        self.dividedBy8 = dividedBy8
    }
}

extension AVRPart {
    /// The safety lint: refuses fuses that would shut ISP out (SPIEN unprogrammed, RSTDISBL or DWEN
    /// programmed) or change the clock from what the board declares. With `allowUnsafe` the same
    /// findings come back as warnings, so a technician still sees them.
    ///
    /// - Parameters:
    ///   - board: the clock the rule declares for the board.
    ///   - current: the chip's fuses as read, used for the clock when the rule declares none.
    public func lint(_ fuses: FuseSet, board: BoardClock?, current: FuseSet? = nil, allowUnsafe: Bool = false) -> [Finding] {
        var findings: [Finding] = []
        let unsafe: Severity = allowUnsafe ? .warning : .error
        let consent = allowUnsafe ? " (allowed by allow_unsafe_fuses)" : "; set allow_unsafe_fuses = true in the rule if that is really meant"

        for byte in fuses.givenBytes {
            guard let layout = layout(of: byte) else {
                findings.append(Finding(.error, .noSuchFuseByte, "\(name) has no \(byte.rawValue) fuse byte"))
                continue
            }
            let value = fuses[byte]!
            if value & ~layout.implementedMask != ~layout.implementedMask {
                findings.append(Finding(.note, .unimplementedBits,
                    "\(byte.rawValue) fuse 0x\(formatHex(value)): bits 0x\(formatHex(~layout.implementedMask)) do not exist on \(name) and read back as anything; they are ignored when comparing"))
            }
        }
        func programmed(_ name: String) -> Bool {
            guard let field = field(name), let value = fuses[field.byte] else { return false }
            return field.isProgrammed(in: value)
        }
        if let spien = field("SPIEN"), let high = fuses[spien.byte], !spien.isProgrammed(in: high) {
            findings.append(Finding(unsafe, .disablesSerialProgramming,
                "high fuse 0x\(formatHex(high)) leaves SPIEN unprogrammed: ISP programming would be disabled and only a high-voltage programmer could reach the chip again\(consent)"))
        }
        if programmed("RSTDISBL") {
            findings.append(Finding(unsafe, .disablesReset,
                "high fuse 0x\(formatHex(fuses.high!)) programs RSTDISBL: RESET becomes an I/O pin and ISP can no longer enter programming mode\(consent)"))
        }
        if programmed("DWEN") {
            findings.append(Finding(unsafe, .enablesDebugWIRE,
                "high fuse 0x\(formatHex(fuses.high!)) programs DWEN: debugWIRE takes over RESET and ISP stops working until it is disabled over debugWIRE\(consent)"))
        }
        if programmed("WDTON") {
            findings.append(Finding(.warning, .watchdogAlwaysOn, "WDTON is programmed: the watchdog is always on, and a bootloader that does not feed it resets in a loop"))
        }
        if let low = fuses.low { findings += lintClock(low: low, board: board, current: current, severity: unsafe, consent: consent) }
        return findings
    }

    private func lintClock(low: UInt8, board: BoardClock?, current: FuseSet?, severity: Severity, consent: String) -> [Finding] {
        let planned = clock(low: low)
        if planned.source == .reserved {
            return [Finding(severity, .reservedClock, "low fuse 0x\(formatHex(low)) selects CKSEL=\(bits(planned.cksel, 4)), which \(name) reserves: the chip may not run at all\(consent)")]
        }
        // How the reference is named in messages: what the board declares, or what the chip has now.
        let reference: (source: ClockSource, divided: Bool?, sourcePhrase: String, dividerPhrase: (Bool) -> String)
        if let board {
            reference = (board.source, board.dividedBy8, "the board declares \(board.source)",
                         { "the board declares a clock \($0 ? "divided" : "not divided") by 8" })
        } else if let currentLow = current?.low {
            let now = clock(low: currentLow)
            let origin = "the chip's current low fuse 0x\(formatHex(currentLow))"
            reference = (now.source, now.dividedBy8, "\(origin) selects \(now.source)",
                         { "\(origin) \($0 ? "divides the clock" : "does not divide the clock") by 8" })
        } else {
            return [Finding(.warning, .clockNotDeclared,
                "the rule sets the low fuse but declares no board clock (clock = \"crystal\" …); the clock fuses will be compared with the chip's own at restore time")]
        }
        var findings: [Finding] = []
        if planned.source != reference.source {
            findings.append(Finding(severity, .changesClockSource,
                "low fuse 0x\(formatHex(low)) selects \(planned.detail), but \(reference.sourcePhrase); a wrong clock source can leave the chip without a clock\(consent)"))
        }
        if let want = reference.divided, let have = planned.dividedBy8, want != have {
            findings.append(Finding(severity, .changesClockDivider,
                "low fuse 0x\(formatHex(low)) \(have ? "programs" : "clears") CKDIV8, but \(reference.dividerPhrase(want))\(consent)"))
        }
        return findings
    }
}
