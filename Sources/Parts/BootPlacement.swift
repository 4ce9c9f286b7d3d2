import FirmwareImage

extension AVRPart {
    /// The placement check: the bootloader must start exactly where BOOTSZ puts the boot section,
    /// fit the flash, and be reached by the reset vector (BOOTRST, or HWBE on the USB parts).
    /// An image with data below the boot section (a production image) has its bootloader part checked.
    public func checkPlacement(of image: MemoryImage, fuses: FuseSet) -> [Finding] {
        guard let span = image.span else { return [Finding(.error, .noCodeAtBootSection, "the image holds no data")] }
        var findings: [Finding] = []
        if span.upperBound > UInt64(flash.size) {
            findings.append(Finding(.error, .imageBeyondFlash,
                "the image reaches \(formatHex(UInt32(span.upperBound - 1), width: 4)) but \(name) has \(flash.size) bytes of flash (up to \(formatHex(UInt32(flash.size - 1), width: 4)))"))
        }
        guard let high = fuses.high else {
            findings.append(Finding(.warning, .placementUnchecked, "the rule gives no high fuse, so BOOTSZ and BOOTRST are checked against the chip's own fuses at restore time"))
            return findings
        }
        let section = bootSection(bootsz: field("BOOTSZ")!.value(in: high))
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
}
