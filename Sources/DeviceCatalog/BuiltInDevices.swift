extension DeviceCatalog {
    /// The devices bootmedic knows out of the box. Programmer ids from avrdude's `usbdevs.h` and ST's
    /// ST-Link list; bootloader ids from the guide's tables and the bootloaders' own descriptors.
    public static let builtIn = DeviceCatalog(entries: programmers + serialAdapters + bootloaders)

    static func id(_ vendor: UInt16, _ product: UInt16) -> USBID { USBID(vendor: vendor, product: product) }

    static let programmers: [DeviceEntry] = [
        // V-USB's shared ids: the product string tells a USBasp from the USBaspLoader bootloader (below).
        DeviceEntry(id(0x16C0, 0x05DC), product: "USBasp", .programmer(.usbasp), "USBasp"),
        DeviceEntry(id(0x1781, 0x0C9F), .programmer(.usbtiny), "USBtinyISP / SparkFun PocketAVR"),
        DeviceEntry(id(0x0483, 0x3748), .programmer(.stlink), "ST-Link/V2"),
        DeviceEntry(id(0x0483, 0x374A), .programmer(.stlink), "ST-Link/V2-1"),
        DeviceEntry(id(0x0483, 0x374B), .programmer(.stlink), "ST-Link/V2-1"),
        DeviceEntry(id(0x0483, 0x3752), .programmer(.stlink), "ST-Link/V2-1"),
        DeviceEntry(id(0x0483, 0x374D), .programmer(.stlink), "STLINK-V3 loader"),
        DeviceEntry(id(0x0483, 0x374E), .programmer(.stlink), "STLINK-V3"),
        DeviceEntry(id(0x0483, 0x374F), .programmer(.stlink), "STLINK-V3"),
        DeviceEntry(id(0x0483, 0x3753), .programmer(.stlink), "STLINK-V3"),
        DeviceEntry(id(0x0483, 0x3754), .programmer(.stlink), "STLINK-V3"),
    ]

    /// VID:PID alone is ambiguous here (an FTDI or CH340 id belongs to thousands of things, an Arduino id
    /// to any sketch): these are only nominated for the harmless probe.
    static let serialAdapters: [DeviceEntry] = [
        DeviceEntry(id(0x2341, 0x0043), .serialCandidate([.stk500v1]), "Arduino Uno (ATmega16U2)"),
        DeviceEntry(id(0x2341, 0x0001), .serialCandidate([.stk500v1]), "Arduino Uno (ATmega8U2)"),
        DeviceEntry(id(0x2341, 0x0243), .serialCandidate([.stk500v1]), "Arduino Uno R3 (ATmega16U2)"),
        DeviceEntry(id(0x2A03, 0x0043), .serialCandidate([.stk500v1]), "Arduino Uno (arduino.org)"),
    ] + sketches + [
        DeviceEntry(id(0x16C0, 0x0483), .serialCandidate([.avrisp]), "Teensy USB serial / QMK ISP firmware"),
        DeviceEntry(id(0x1A86, 0x7523), .serialCandidate([.stk500v1]), "CH340 USB serial (clone Uno, Nano)"),
        DeviceEntry(id(0x0403, 0x6001), .serialCandidate([.stk500v1, .buspirate]), "FTDI FT232R (Bus Pirate v3, FTDI Arduinos)"),
        DeviceEntry(id(0x04D8, 0xFB00), .serialCandidate([.buspirate]), "Bus Pirate v4"),
    ]

    /// Caterina boards running a sketch: probed like any Arduino (a Leonardo or a Pro Micro may run
    /// ArduinoISP), and sent to their bootloader by the 1200-baud touch when a rule asks for it. The
    /// pairs are the boards' own (Arduino's and the makers' boards.txt: the bootloader's id, and the
    /// sketch's, which the cores' USB stack reports).
    static let sketches: [DeviceEntry] = [
        (id(0x2341, 0x8036), id(0x2341, 0x0036), [ProgrammerKind.stk500v1], "Arduino Leonardo"),
        (id(0x2341, 0x8037), id(0x2341, 0x0037), [.stk500v1], "Arduino Micro"),
        (id(0x1B4F, 0x9204), id(0x1B4F, 0x9203), [.avrisp, .stk500v1], "SparkFun Pro Micro 3V3"),
        (id(0x1B4F, 0x9206), id(0x1B4F, 0x9205), [.avrisp, .stk500v1], "SparkFun Pro Micro 5V"),
        (id(0x1B4F, 0x9208), id(0x1B4F, 0x9207), [.stk500v1], "SparkFun LilyPadUSB"),
        (id(0x239A, 0x800C), id(0x239A, 0x000C), [.stk500v1], "Adafruit Feather 32U4"),
        (id(0x239A, 0x800D), id(0x239A, 0x000D), [.stk500v1], "Adafruit ItsyBitsy 32U4 3V3"),
        (id(0x239A, 0x800E), id(0x239A, 0x000E), [.stk500v1], "Adafruit ItsyBitsy 32U4 5V"),
        (id(0x1FFB, 0x2300), id(0x1FFB, 0x0101), [.stk500v1], "Pololu A-Star 32U4"),
    ].map { DeviceEntry($0.0, .serialCandidate($0.2), "\($0.3) running a sketch", bootloaderAfterTouch: $0.1) }

    /// The product id Atmel's DFU bootloader enumerates with on each USB AVR (vendor 03EB; Atmel's
    /// bootloader datasheets, dfu-programmer's target table), with the parts that answer it.
    public static let atmelDFUProducts: [(productID: UInt16, parts: [String], label: String)] = [
        (0x2FEE, ["atmega8u2"], "ATmega8U2"),
        (0x2FEF, ["atmega16u2"], "ATmega16U2"),
        (0x2FF0, ["atmega32u2"], "ATmega32U2"),
        (0x2FF3, ["atmega16u4"], "ATmega16U4"),
        (0x2FF4, ["atmega32u4"], "ATmega32U4"),
        (0x2FF7, ["at90usb82"], "AT90USB82"),
        (0x2FF9, ["at90usb646", "at90usb647"], "AT90USB64"),
        (0x2FFA, ["at90usb162"], "AT90USB162"),
        (0x2FFB, ["at90usb1286", "at90usb1287"], "AT90USB128"),
    ]

    /// The id Atmel's DFU bootloader answers with on `part` (a part id such as "atmega32u4").
    public static func atmelDFUProductID(for part: String) -> UInt16? {
        atmelDFUProducts.first { $0.parts.contains(part) }?.productID
    }

    /// Boards in their bootloaders: waiting to be flashed over USB, never driven as programmers.
    static let bootloaders: [DeviceEntry] = atmelDFUProducts.map {
        DeviceEntry(id(0x03EB, $0.productID), .bootloader(.atmelDFU), "\($0.label) in Atmel DFU")
    } + [
        DeviceEntry(id(0x16C0, 0x05DC), .bootloader(.usbasploader), "USBaspLoader, or another V-USB device sharing the USBasp ids"),
        DeviceEntry(id(0x16C0, 0x05DF), product: "HIDBoot", .bootloader(.bootloadhid), "BootloadHID (PS2AVRGB and other V-USB boards)"),
        DeviceEntry(id(0x16C0, 0x0478), .bootloader(.halfkay), "Teensy in HalfKay"),
        DeviceEntry(id(0x2341, 0x0036), .bootloader(.caterina), "Arduino Leonardo in Caterina"),
        DeviceEntry(id(0x2341, 0x0037), .bootloader(.caterina), "Arduino Micro in Caterina"),
        DeviceEntry(id(0x1B4F, 0x9203), .bootloader(.caterina), "SparkFun Pro Micro 3V3 in Caterina"),
        DeviceEntry(id(0x1B4F, 0x9205), .bootloader(.caterina), "SparkFun Pro Micro 5V in Caterina"),
        DeviceEntry(id(0x1B4F, 0x9207), .bootloader(.caterina), "SparkFun LilyPadUSB in Caterina"),
        DeviceEntry(id(0x239A, 0x000C), .bootloader(.caterina), "Adafruit Feather 32U4 in Caterina"),
        DeviceEntry(id(0x239A, 0x000D), .bootloader(.caterina), "Adafruit ItsyBitsy 32U4 3V3 in Caterina"),
        DeviceEntry(id(0x239A, 0x000E), .bootloader(.caterina), "Adafruit ItsyBitsy 32U4 5V in Caterina"),
        DeviceEntry(id(0x1FFB, 0x0101), .bootloader(.caterina), "Pololu A-Star 32U4 in Caterina"),
        DeviceEntry(id(0x1EAF, 0x0003), .bootloader(.stm32duino), "STM32duino bootloader (Maple DFU)"),
        DeviceEntry(id(0x0483, 0xDF11), .bootloader(.stm32DFU), "STM32 system bootloader (DfuSe)"),
        DeviceEntry(id(0x314B, 0x0106), .bootloader(.stm32DFU), "APM32 system bootloader (DFU)"),
    ]
}
