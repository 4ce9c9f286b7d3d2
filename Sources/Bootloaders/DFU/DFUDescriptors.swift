import Transport

/// One alternate setting of a DFU-mode interface: DfuSe and Maple name a memory with each.
public struct DFUAlternateSetting: Sendable, Equatable {
    public var interface: UInt8
    public var setting: UInt8
    /// The interface string (iInterface), "" when it has none.
    public var name: String

    public init(interface: UInt8, setting: UInt8, name: String) {
        self.interface = interface
        self.setting = setting
        self.name = name
    }
}

/// The DFU functional descriptor (DFU 1.1 §4.1.3): what the device lets a host do and in what blocks.
public struct DFUFunctionalDescriptor: Sendable, Equatable {
    /// bmAttributes: bit 0 download, bit 1 upload, bit 2 manifestation tolerant, bit 3 will detach.
    public var attributes: UInt8
    public var detachTimeoutMilliseconds: Int
    /// wTransferSize: the most one DFU_DNLOAD or DFU_UPLOAD carries.
    public var transferSize: Int
    /// bcdDFUVersion (0x011A for DfuSe).
    public var version: UInt16

    public init(attributes: UInt8, detachTimeoutMilliseconds: Int, transferSize: Int, version: UInt16) {
        self.attributes = attributes
        self.detachTimeoutMilliseconds = detachTimeoutMilliseconds
        self.transferSize = transferSize
        self.version = version
    }

    public var canUpload: Bool { attributes & 0x02 != 0 }
    public var willDetach: Bool { attributes & 0x08 != 0 }

    /// The descriptor's nine bytes.
    public var bytes: [UInt8] {
        [9, 0x21, attributes, UInt8(detachTimeoutMilliseconds & 0xFF), UInt8(detachTimeoutMilliseconds >> 8 & 0xFF),
         UInt8(transferSize & 0xFF), UInt8(transferSize >> 8), UInt8(version & 0xFF), UInt8(version >> 8)]
    }
}

/// What a device in DFU mode describes of itself: its DFU-mode interfaces' alternate settings with their
/// names, and the functional descriptor, read with standard GET_DESCRIPTOR requests.
public struct DFUDeviceDescriptors: Sendable, Equatable {
    public var settings: [DFUAlternateSetting]
    public var functional: DFUFunctionalDescriptor?

    public init(settings: [DFUAlternateSetting], functional: DFUFunctionalDescriptor?) {
        self.settings = settings
        self.functional = functional
    }

    static let requestMilliseconds = 1000

    /// Reads the first configuration descriptor and the names of its DFU-mode (FE/01/02) settings.
    public static func read(from device: USBDevice) throws(BootloaderError) -> DFUDeviceDescriptors {
        let head = try descriptor(0x0200, length: 9, device, "reading the configuration descriptor")
        guard head.count == 9, head[1] == 2 else { throw .protocolViolation("a configuration descriptor of \(head.count) bytes") }
        let total = Int(head[2]) | Int(head[3]) << 8
        let whole = try descriptor(0x0200, length: total, device, "reading the configuration descriptor")
        var parsed = try parse(configuration: whole)
        for i in parsed.settings.indices {
            let index = parsed.nameIndexes[i]
            guard index != 0 else { continue }
            let text = try descriptor(0x0300 | UInt16(index), language: 0x0409, length: 255, device, "reading interface string \(index)")
            parsed.settings[i].name = Self.string(from: text)
        }
        return DFUDeviceDescriptors(settings: parsed.settings, functional: parsed.functional)
    }

    /// The DFU-mode settings and functional descriptor of a configuration descriptor, with each
    /// setting's string index.
    public static func parse(configuration bytes: [UInt8]) throws(BootloaderError) -> (settings: [DFUAlternateSetting], nameIndexes: [UInt8], functional: DFUFunctionalDescriptor?) {
        var settings: [DFUAlternateSetting] = [], names: [UInt8] = [], functional: DFUFunctionalDescriptor?
        var i = 0, inDFU = false
        while i + 2 <= bytes.count {
            let length = Int(bytes[i]), type = bytes[i + 1]
            guard length >= 2, i + length <= bytes.count else { throw .protocolViolation("a configuration descriptor cut short at byte \(i)") }
            let d = Array(bytes[i..<i + length])
            if type == 4, length >= 9 {
                inDFU = d[5] == 0xFE && d[6] == 0x01
                if inDFU {
                    settings.append(DFUAlternateSetting(interface: d[2], setting: d[3], name: ""))
                    names.append(d[8])
                }
            } else if type == 0x21, length >= 9, inDFU {
                functional = DFUFunctionalDescriptor(attributes: d[2], detachTimeoutMilliseconds: Int(d[3]) | Int(d[4]) << 8,
                                                     transferSize: Int(d[5]) | Int(d[6]) << 8, version: UInt16(d[7]) | UInt16(d[8]) << 8)
            }
            i += length
        }
        return (settings, names, functional)
    }

    /// A string descriptor's UTF-16LE text.
    static func string(from descriptor: [UInt8]) -> String {
        guard descriptor.count >= 2 else { return "" }
        let end = min(Int(descriptor[0]), descriptor.count)
        let units = stride(from: 2, to: end - 1, by: 2).map { UInt16(descriptor[$0]) | UInt16(descriptor[$0 + 1]) << 8 }
        return String(decoding: units, as: UTF16.self)
    }

    private static func descriptor(_ value: UInt16, language: UInt16 = 0, length: Int, _ device: USBDevice, _ operation: String) throws(BootloaderError) -> [UInt8] {
        do {
            return try device.controlIn(to: USBControlTarget(.standard, to: .device), request: 0x06, value: value, index: language,
                                        length: length, timeoutMilliseconds: requestMilliseconds)
        } catch .noDevice { throw .gone(operation: operation) } catch { throw .usb(error, operation: operation) }
    }
}
