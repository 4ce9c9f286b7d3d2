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
    case changesClockOutput = "changes-clock-output"
    case changesStartUpTime = "changes-start-up-time"
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
    case placementByAddress = "placement-by-address"
    case selfProgrammingDisabled = "self-programming-disabled"
    case noFuseSemantics = "no-fuse-semantics"
    case partNotRestorable = "part-not-restorable"
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
    /// The safety lint: refuses fuses that could shut ISP out — SPIEN unprogrammed, RSTDISBL or DWEN
    /// programmed, a reserved CKSEL, an oscillator other than the one the board declares, or (with no
    /// declared clock) another oscillator class than the chip runs on now. CKDIV8, CKOUT and start-up
    /// time changes are notes. With `allowUnsafe` the refusals come back as warnings, so a technician
    /// still sees them.
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
        guard hasNamedFuses else {
            if !fuses.givenBytes.isEmpty {
                findings.append(Finding(unsafe, .noFuseSemantics,
                    "bootmedic has no named fuse semantics for \(name), so it cannot tell whether \(fuses) keeps ISP working (SPIEN, RSTDISBL, DWEN, the clock source)\(allowUnsafe ? " (written as given: allow_unsafe_fuses)" : "; check the values against the datasheet and set allow_unsafe_fuses = true in the rule to write them")"))
            }
            return findings
        }
        /// The field's byte and value when `fuses` gives that byte and the field is programmed in it.
        func programmed(_ name: String) -> (FuseByte, UInt8)? {
            guard let field = field(name), let value = fuses[field.byte], field.isProgrammed(in: value) else { return nil }
            return (field.byte, value)
        }
        if let spien = field("SPIEN"), let value = fuses[spien.byte], !spien.isProgrammed(in: value) {
            findings.append(Finding(unsafe, .disablesSerialProgramming,
                "\(spien.byte.rawValue) fuse 0x\(formatHex(value)) leaves SPIEN unprogrammed: ISP programming would be disabled and only a high-voltage programmer could reach the chip again\(consent)"))
        }
        if let (byte, value) = programmed("RSTDISBL") {
            findings.append(Finding(unsafe, .disablesReset,
                "\(byte.rawValue) fuse 0x\(formatHex(value)) programs RSTDISBL: RESET becomes an I/O pin and ISP can no longer enter programming mode\(consent)"))
        }
        if let (byte, value) = programmed("DWEN") {
            findings.append(Finding(unsafe, .enablesDebugWIRE,
                "\(byte.rawValue) fuse 0x\(formatHex(value)) programs DWEN: debugWIRE takes over RESET and ISP stops working until it is disabled over debugWIRE\(consent)"))
        }
        if programmed("WDTON") != nil {
            findings.append(Finding(.warning, .watchdogAlwaysOn, "WDTON is programmed: the watchdog is always on, and a bootloader that does not feed it resets in a loop"))
        }
        if let low = fuses.low { findings += lintClock(low: low, board: board, current: current, severity: unsafe, consent: consent) }
        return findings
    }

    /// Only a change of oscillator class can cost ISP access (the chip is left without the clock it was
    /// given); the divider, CKOUT and the start-up time never do, since the programmer adapts its SCK.
    private func lintClock(low: UInt8, board: BoardClock?, current: FuseSet?, severity: Severity, consent: String) -> [Finding] {
        guard let planned = clock(low: low) else { return [] }
        if planned.source == .reserved {
            return [Finding(severity, .reservedClock, "low fuse 0x\(formatHex(low)) selects CKSEL=\(bits(planned.cksel, 4)), which \(name) reserves: the chip may not run at all\(consent)")]
        }
        var findings: [Finding] = []
        if let board {
            // The rule contradicts itself: its fuses select another oscillator than the board it declares.
            if planned.source != board.source {
                findings.append(Finding(severity, .changesClockSource,
                    "low fuse 0x\(formatHex(low)) selects \(planned.detail), but the board declares \(board.source); a wrong clock source can leave the chip without a clock\(consent)"))
            }
            if let want = board.dividedBy8, let have = planned.dividedBy8, want != have {
                findings.append(Finding(.warning, .changesClockDivider,
                    "low fuse 0x\(formatHex(low)) \(have ? "programs" : "clears") CKDIV8, but the rule's clock_div8 = \(want) says otherwise; harmless to ISP, but one of the two is not what the board needs"))
            }
        }
        guard let currentLow = current?.low else {
            if board == nil {
                findings.append(Finding(.warning, .clockNotDeclared,
                    "the rule sets the low fuse but declares no board clock; at restore time a change of oscillator class from the chip's own is refused (add clock = \"\(planned.source.rawValue)\" if the board has a \(planned.source))"))
            }
            return findings
        }
        guard let now = clock(low: currentLow) else { return findings }
        let origin = "the chip's current low fuse 0x\(formatHex(currentLow))"
        if planned.source != now.source {
            if board == nil {
                let allowed = severity == .warning ? " (allowed by allow_unsafe_fuses)" : ""
                findings.append(Finding(severity, .changesClockSource,
                    "low fuse 0x\(formatHex(low)) selects \(planned.detail), but \(origin) selects \(now.source); if the board has a \(planned.source), declare it in the rule with clock = \"\(planned.source.rawValue)\" (without one the chip is left with no clock and no ISP access)\(allowed)"))
            } else {
                findings.append(Finding(.note, .changesClockSource,
                    "low fuse 0x\(formatHex(low)) moves the chip from the \(now.source) to the \(planned.source) the board declares"))
            }
        }
        // Harmless changes, told so that a technician knows what changes.
        if let have = planned.dividedBy8, let had = now.dividedBy8, have != had {
            findings.append(Finding(.note, .changesClockDivider,
                "low fuse 0x\(formatHex(low)) \(have ? "programs" : "clears") CKDIV8 (\(origin) \(had ? "divides" : "does not divide") the clock by 8): the chip runs \(have ? "8 times slower" : "8 times faster") from the next reset"))
        }
        if let clockOutput = field("CKOUT"), clockOutput.byte == .low, (low ^ currentLow) & clockOutput.mask != 0 {
            let driven = clockOutput.isProgrammed(in: low)
            findings.append(Finding(.note, .changesClockOutput,
                "low fuse 0x\(formatHex(low)) \(driven ? "programs" : "clears") CKOUT: the system clock is \(driven ? "" : "no longer ")driven on the CLKO pin"))
        }
        if planned.sut != now.sut, planned.source == now.source {
            findings.append(Finding(.note, .changesStartUpTime,
                "low fuse 0x\(formatHex(low)) changes the start-up time (SUT \(bits(now.sut, 2)) → \(bits(planned.sut, 2)))"))
        }
        return findings
    }
}
