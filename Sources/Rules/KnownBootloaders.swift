import FirmwareImage

/// A bootloader file the guide or a Debian package names: what it is and where a bench gets it. Used to
/// tell a technician which file a rule is missing, never to supply one (bootmedic ships no firmware).
public struct KnownBootloader: Sendable, Hashable {
    /// The file name as its origin distributes it.
    public let fileName: String
    /// The sha256 of the release we know, if we know one.
    public let sha256: SHA256Digest?
    /// What it is: "Caterina for the SparkFun Pro Micro 5V/16MHz".
    public let summary: String
    /// Where it comes from: a Debian package and path, or a repository and folder.
    public let origin: String
}

/// The bootloaders of the guide's tables and of Debian's `arduino-core-avr`, by file name and digest.
public enum KnownBootloaders {
    /// The entry for a missing file: by the digest the rule pins, else by its file name.
    public static func entry(forPath path: String, pinned: SHA256Digest?) -> KnownBootloader? {
        if let pinned, let byDigest = all.first(where: { $0.sha256 == pinned }) { return byDigest }
        let name = path.split(separator: "/").last.map(String.init) ?? path
        return all.first { $0.fileName == name }
    }

    static let qmk = "qmk/qmk_firmware on GitHub, folder util/ (QMK Toolbox installs the same files)"
    static let sparkfun = "sparkfun/Arduino_Boards on GitHub, sparkfun/avr/bootloaders/caterina/ (or SparkFun's board package in an Arduino IDE)"
    static let adafruit = "adafruit/Caterina-Bootloader on GitHub, or Adafruit's AVR board package in an Arduino IDE"
    static let arduinoCaterina = "an Arduino IDE's avr core, bootloaders/caterina/ (arduino/ArduinoCore-avr on GitHub); Debian's arduino-core-avr leaves the Caterina images out"
    // Debian 12 rebuilds optiboot with its avr-gcc: 533 bytes for the ATmega328P, past the 512-byte boot
    // section and the end of the flash, overlapping its own version word at 0x7FFE. avrdude refuses it too.
    static let ideOptiboot = "an Arduino IDE's avr core, bootloaders/optiboot/ (arduino/ArduinoCore-avr on GitHub); Debian 12's arduino-core-avr rebuilds it 533 bytes long, too big for its 512-byte boot section, and it is refused"
    static let debian = "Debian package arduino-core-avr (1.8.7+dfsg), /usr/share/arduino/hardware/arduino/avr/bootloaders/"

    static func known(_ name: String, _ sha256: String?, _ summary: String, _ origin: String) -> KnownBootloader {
        KnownBootloader(fileName: name, sha256: sha256.map { SHA256Digest(hex: $0)! }, summary: summary, origin: origin)
    }

    /// The table. Digests only where a release has been checked byte for byte.
    public static let all: [KnownBootloader] = [
        known("bootloader_atmega16u4_1_0_0.hex", nil, "Atmel DFU 1.0.0 for the ATmega16U4", qmk),
        known("bootloader_atmega32u4_1_0_0.hex", "9fc1fdb469bf273b5e3b2f4c3f056c2b2d62f1dd069a6d89880c208c4f9ca0ac", "Atmel DFU 1.0.0 for the ATmega32U4", qmk),
        known("bootloader_at90usb64_1_0_0.hex", nil, "Atmel DFU 1.0.0 for the AT90USB646/647", qmk),
        known("bootloader_at90usb128_1_0_0.hex", nil, "Atmel DFU 1.0.0 for the AT90USB1286/1287", qmk),
        known("bootloader_ps2avrgb_bootloadhid_1.0.1.hex", "2a0ff159186e35eba2671398e446e3c1cf4b2c554ca404c18039035bd4d36ec4", "BootloadHID 1.0.1 for PS2AVRGB keyboards", qmk),
        known("Caterina-promicro8.hex", nil, "Caterina for the SparkFun Pro Micro 3V3/8MHz", sparkfun),
        known("Caterina-promicro16.hex", "bd2cffaedb0636d7cb85664800679ad239f00a736c968a5e5a4329ec37af25e7", "Caterina for the SparkFun Pro Micro 5V/16MHz", sparkfun),
        known("Caterina-LilyPadUSB.hex", nil, "Caterina for the SparkFun LilyPadUSB", sparkfun),
        known("Caterina-A-Star.hex", nil, "Caterina for the Pololu A-Star 32U4, combined with a sketch", "Pololu's a-star board package (pololu/a-star on GitHub)"),
        known("Caterina-Feather32u4.hex", nil, "Caterina for the Adafruit Feather 32U4", adafruit),
        known("Caterina-ItsyBitsy32u4-3V.hex", nil, "Caterina for the Adafruit ItsyBitsy 32U4 3V3, combined with a sketch", adafruit),
        known("Caterina-ItsyBitsy32u4-5V.hex", nil, "Caterina for the Adafruit ItsyBitsy 32U4 5V", adafruit),
        known("Caterina-Leonardo.hex", nil, "Caterina for the Arduino Leonardo, combined with a sketch", arduinoCaterina),
        known("Caterina-Micro.hex", "b530f4b0868482aa5f3d481435996b7b4cb46923efcbdac881a7b345f8dcf9cb", "Caterina for the Arduino Micro, combined with a sketch", arduinoCaterina),
        known("usbasploader-atmega32a.hex", nil, "USBaspLoader for an ATmega32A board", "built from USBaspLoader's sources for the board (see the guide)"),
        known("usbasploader-atmega328p.hex", nil, "USBaspLoader for an ATmega328P board", "built from USBaspLoader's sources for the board (see the guide)"),
        known("generic_boot20_pc13.bin", "8738933a44363f2a3597c7bd6e13afb892b2a4ed304372c31e758745b23b903c", "STM32duino bootloader for the Bluepill (LED on PC13)", "rogerclarkmelbourne/STM32duino-bootloader on GitHub, bootloader_only_binaries/"),
        known("optiboot_atmega328.hex", nil, "optiboot for the ATmega328P (Uno, Nano)", ideOptiboot),
        known("optiboot_atmega168.hex", nil, "optiboot for the ATmega168", ideOptiboot),
        known("optiboot_atmega8.hex", "88727afa994a48d58f936b73fb6ba761d10aa397660d316f7be7cc5f469ae42c", "optiboot for the ATmega8", debian + "optiboot/"),
        known("ATmegaBOOT_168_atmega328.hex", "efa42c76e562d2ac50a818c729966d0a9ab5e147abb562288c8aabfbac5ace9e", "ATmegaBOOT for the ATmega328P at 16 MHz (Duemilanove, old Nano, Pro Mini 5V)", debian + "atmega/"),
        known("ATmegaBOOT_168_atmega328_pro_8MHz.hex", "e953d37d6333b2273c84bf1cc28253ce8658f04d2dadd6c2bf879bcdb3613f4c", "ATmegaBOOT for the ATmega328P at 8 MHz (Pro Mini 3V3, Fio, LilyPad)", debian + "atmega/"),
        known("ATmegaBOOT_168_atmega1280.hex", "9b3e4b07caef566d7d8a104cb0b3fc6fa18e5e61835e33e3c9269153ce3ab6fe", "ATmegaBOOT for the ATmega1280 (Mega)", debian + "atmega/"),
        known("ATmegaBOOT_168_diecimila.hex", "9d8997cf16f0cea162e91bc7c439a4042c7c76cffec22a5220a5106f4b77c734", "ATmegaBOOT for the ATmega168 at 16 MHz", debian + "atmega/"),
        known("ATmegaBOOT_168_pro_8MHz.hex", "ec8eee00dd6cc8f757f9823e936c2f2c45dd55c181fe4d47a34fbc3908200fbd", "ATmegaBOOT for the ATmega168 at 8 MHz", debian + "atmega/"),
        known("ATmegaBOOT_168_atmega328_bt.hex", "80695c6b2bed65c78881378876f02e55131d75c42413e47d8ffa02401e65880b", "ATmegaBOOT for the Arduino BT (ATmega328P)", debian + "bt/"),
        known("ATmegaBOOT.hex", "f329c7b2797fe830f1444a9801f152a29827c68bb3d71ee9be768665a506c864", "ATmegaBOOT for the ATmega8", debian + "atmega8/"),
        known("stk500boot_v2_mega2560.hex", "6d8cddfc2031eccfcbfddf8681f1bb457f689f80e79492b470a464e9670cc6a9", "the stk500v2 bootloader for the Arduino Mega 2560", debian + "stk500v2/"),
    ]
}
