import FirmwareImage

extension AVRPart {
    /// The placement check: the bootloader must start exactly where BOOTSZ puts the boot section,
    /// fit the flash, and be reached by the reset vector (BOOTRST, or HWBE on the USB parts).
    /// An image with data below the boot section (a production image) has its bootloader part checked.
    /// On a part without a boot section the bootloader sits at an address of its own: the check follows
    /// the reset vector instead, and asks for SELFPRGEN (``checkAddressPlacement(of:span:fuses:)``).
    public func checkPlacement(of image: MemoryImage, fuses: FuseSet) -> [Finding] {
        guard let span = image.span else { return [Finding(.error, .noCodeAtBootSection, "the image holds no data")] }
        var findings: [Finding] = []
        if span.upperBound > UInt64(flash.size) {
            findings.append(Finding(.error, .imageBeyondFlash,
                "the image reaches \(formatHex(UInt32(span.upperBound - 1), width: 4)) but \(name) has \(flash.size) bytes of flash (up to \(formatHex(UInt32(flash.size - 1), width: 4)))"))
        }
        guard hasNamedFuses else {
            findings.append(Finding(.warning, .placementUnchecked,
                "bootmedic has no named fuse semantics for \(name), so where its bootloader must start \(hasBootSection ? "(BOOTSZ, BOOTRST)" : "and how reset reaches it") is not checked; only that the image fits the flash"))
            return findings
        }
        guard hasBootSection else { return findings + checkAddressPlacement(of: image, span: span, fuses: fuses) }
        guard let section = bootSection(in: fuses) else {
            let byte = field("BOOTSZ")?.byte.rawValue ?? "high"
            findings.append(Finding(.warning, .placementUnchecked, "the rule gives no \(byte) fuse, so BOOTSZ and BOOTRST are checked against the chip's own fuses at restore time"))
            return findings
        }
        let spanText = "\(formatHex(UInt32(span.lowerBound), width: 4))–\(formatHex(UInt32(span.upperBound - 1), width: 4))"
        let inBoot = image.restricted(to: section.range)
        if inBoot.isEmpty || image[section.start] == nil {
            var message = "BOOTSZ=\(bits(section.bootsz, 2)) puts the boot section at \(formatHex(section.start, width: 4)), but the image has no code there (its data spans \(spanText))"
            if let fit = bootSections.first(where: { UInt64($0.start) == span.lowerBound }) {
                message += "; BOOTSZ=\(bits(fit.bootsz, 2)) (\(fit.size) bytes at \(formatHex(fit.start, width: 4))) would match"
            }
            findings.append(Finding(.error, .noCodeAtBootSection, message))
        } else if span.lowerBound > 0, span.lowerBound < UInt64(section.start) {
            // A bootloader-only image that starts below the boot section: reset would land in its middle,
            // and its lower part could not run SPM. (An image from 0x0000 is a production image: the
            // application fills the space below.)
            var message = "the bootloader starts at \(formatHex(UInt32(span.lowerBound), width: 4)), below the boot section at \(formatHex(section.start, width: 4)) that BOOTSZ=\(bits(section.bootsz, 2)) selects: reset would land in its middle"
            if let fit = bootSections.first(where: { UInt64($0.start) == span.lowerBound }) {
                message += "; BOOTSZ=\(bits(fit.bootsz, 2)) (\(fit.size) bytes at \(formatHex(fit.start, width: 4))) would match"
            }
            findings.append(Finding(.error, .bootloaderMisplaced, message))
        }
        switch resetVector(fuses) {
        case .application?:
            findings.append(Finding(.error, .resetMissesBootloader,
                "BOOTRST is unprogrammed\(field("HWBE") != nil ? " and HWBE is not programmed" : ""): reset starts at 0x0000 and never reaches the bootloader at \(formatHex(section.start, width: 4))"))
        case .applicationOrHardwareBoot?:
            findings.append(Finding(.note, .resetMissesBootloader,
                "reset starts the application at 0x0000; the bootloader runs when HWB is held low at reset (HWBE programmed), or when the application space is empty"))
        default: break
        }
        return findings
    }

    /// A part without a boot section (the ATtinys, the ATmega48) has no BOOTRST to point at a bootloader:
    /// a micronucleus-style bootloader sits at an address of its own, and reset reaches it through a jump
    /// at 0x0000 or, with nothing there, through erased flash (0xFFFF executes as a skip) up to it. Either
    /// way it writes flash itself, so SELFPRGEN must be programmed.
    func checkAddressPlacement(of image: MemoryImage, span: Range<UInt64>, fuses: FuseSet) -> [Finding] {
        var findings: [Finding] = []
        let start = UInt32(span.lowerBound)
        if start == 0, let low = image[0], let high = image[1] {
            let word = UInt16(high) << 8 | UInt16(low)
            if let target = resetJumpTarget(word, next: image[2].flatMap { l in image[3].map { UInt16($0) << 8 | UInt16(l) } }) {
                if image[target] == nil {
                    findings.append(Finding(.error, .resetMissesBootloader,
                        "the reset vector at 0x0000 jumps to \(formatHex(target, width: 4)), where the image has no code: \(name) has no boot section, so that jump is the only way reset reaches the bootloader"))
                } else {
                    findings.append(Finding(.note, .placementByAddress,
                        "\(name) has no boot section or BOOTRST: the reset vector at 0x0000 jumps to \(formatHex(target, width: 4)), where the image has code"))
                }
            } else {
                findings.append(Finding(.note, .placementByAddress,
                    "\(name) has no boot section or BOOTRST: the image starts at 0x0000 (an application or a combined image); reset runs it from there"))
            }
        } else {
            findings.append(Finding(.note, .placementByAddress,
                "\(name) has no boot section or BOOTRST: nothing is written at 0x0000, so reset runs through erased flash (0xFFFF words) up to the bootloader at \(formatHex(start, width: 4)); bootmedic erases the chip before writing, which makes that so"))
        }
        if let selfProgramming = field("SELFPRGEN") {
            if let value = fuses[selfProgramming.byte] {
                if !selfProgramming.isProgrammed(in: value) {
                    findings.append(Finding(.error, .selfProgrammingDisabled,
                        "\(selfProgramming.byte.rawValue) fuse 0x\(formatHex(value)) leaves SELFPRGEN unprogrammed: the bootloader could not write flash (SPM is disabled)"))
                }
            } else {
                findings.append(Finding(.warning, .selfProgrammingDisabled,
                    "the rule gives no \(selfProgramming.byte.rawValue) fuse, so whether SELFPRGEN lets the bootloader write flash is left to the chip's own fuses (the factory leaves it unprogrammed)"))
            }
        }
        return findings
    }

    /// Where an RJMP or JMP at 0x0000 goes, as a byte address; nil for any other instruction.
    private func resetJumpTarget(_ word: UInt16, next: UInt16?) -> UInt32? {
        if word & 0xF000 == 0xC000 {
            // RJMP k: PC + k + 1 in words, k a signed 12-bit offset, wrapping around the flash.
            let k = Int(Int16(bitPattern: word << 4) >> 4)
            let words = flash.size / 2
            return UInt32(((k + 1) % words + words) % words * 2)
        }
        if word & 0xFE0E == 0x940C, let next {
            return (UInt32(word & 0x01F0) << 13 | UInt32(word & 0x0001) << 16 | UInt32(next)) * 2
        }
        return nil
    }
}
