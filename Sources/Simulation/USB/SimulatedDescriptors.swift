import Bootloaders
import Transport

/// A simulated device's standard descriptors (USB 2.0 §9.6): the device descriptor, one configuration
/// with its interfaces and their alternate settings (each named by a string), a class descriptor after
/// an interface's last setting, and the string table. What a host's GET_DESCRIPTOR reads, in process or
/// over a virtual bus.
public struct SimulatedDescriptors: Sendable {
    public struct Interface: Sendable {
        public var number: UInt8
        public var interfaceClass: UInt8, subclass: UInt8, interfaceProtocol: UInt8
        /// One name per alternate setting, setting 0 first.
        public var settingNames: [String]
        /// Class-specific descriptor bytes that follow each setting (a DFU functional descriptor).
        public var classDescriptor: [UInt8]
        /// The endpoints of setting 0, after the class descriptor: address (bit 7: IN), transfer type
        /// (2 bulk, 3 interrupt), packet size, interval.
        public var endpoints: [(address: UInt8, type: UInt8, packetSize: UInt16, interval: UInt8)] = []

        public init(number: UInt8, interfaceClass: UInt8, subclass: UInt8, interfaceProtocol: UInt8, settingNames: [String],
                    classDescriptor: [UInt8] = [], endpoints: [(address: UInt8, type: UInt8, packetSize: UInt16, interval: UInt8)] = []) {
            self.number = number
            self.interfaceClass = interfaceClass
            self.subclass = subclass
            self.interfaceProtocol = interfaceProtocol
            self.settingNames = settingNames
            self.classDescriptor = classDescriptor
            self.endpoints = endpoints
        }
    }

    public var description: USBDeviceDescription
    public var deviceClass: UInt8 = 0
    public var maxPacketSize: UInt8 = 64
    public var interfaces: [Interface]
    /// bmAttributes and bMaxPower of the configuration.
    public var attributes: UInt8 = 0x80, maxPower: UInt8 = 50

    public init(description: USBDeviceDescription, interfaces: [Interface]) {
        self.description = description
        self.interfaces = interfaces
    }

    /// The strings by index: manufacturer 1, product 2, serial 3, then the setting names.
    public var strings: [String] {
        [description.manufacturer ?? "", description.product ?? "", description.serialNumber ?? ""] + interfaces.flatMap(\.settingNames)
    }

    public var device: [UInt8] {
        let d = description
        return [18, 1, 0x00, 0x02, deviceClass, 0, 0, maxPacketSize, UInt8(d.vendorID & 0xFF), UInt8(d.vendorID >> 8),
                UInt8(d.productID & 0xFF), UInt8(d.productID >> 8), UInt8(d.deviceRelease & 0xFF), UInt8(d.deviceRelease >> 8),
                d.manufacturer == nil ? 0 : 1, d.product == nil ? 0 : 2, d.serialNumber == nil ? 0 : 3, 1]
    }

    public var configuration: [UInt8] {
        var body: [UInt8] = []
        var stringIndex = 4
        for interface in interfaces {
            for (setting, _) in interface.settingNames.enumerated() {
                let endpoints = setting == 0 ? interface.endpoints.count : 0
                body += [9, 4, interface.number, UInt8(setting), UInt8(endpoints), interface.interfaceClass, interface.subclass, interface.interfaceProtocol, UInt8(stringIndex)]
                stringIndex += 1
            }
            body += interface.classDescriptor
            body += interface.endpoints.flatMap { [7, 5, $0.address, $0.type, UInt8($0.packetSize & 0xFF), UInt8($0.packetSize >> 8), $0.interval] }
        }
        let total = 9 + body.count
        return [9, 2, UInt8(total & 0xFF), UInt8(total >> 8), UInt8(interfaces.count), 1, 0, attributes, maxPower] + body
    }

    /// String descriptor `index` in UTF-16LE (0: the language list, US English), nil past the table.
    public func string(_ index: Int) -> [UInt8]? {
        if index == 0 { return [4, 3, 0x09, 0x04] }
        guard index - 1 < strings.count else { return nil }
        let units = Array(strings[index - 1].utf16.prefix(126))
        return [UInt8(2 + 2 * units.count), 3] + units.flatMap { [UInt8($0 & 0xFF), UInt8($0 >> 8)] }
    }

    /// The answer to GET_DESCRIPTOR with this wValue, nil for one the device does not have.
    public func answer(descriptor value: UInt16) -> [UInt8]? {
        switch value >> 8 {
        case 1: return device
        case 2 where value & 0xFF == 0: return configuration
        case 3: return string(Int(value & 0xFF))
        default: return nil
        }
    }

    /// A DFU-mode interface (FE/01/02) with these settings and functional descriptor.
    public static func dfuInterface(settings: [String], functional: DFUFunctionalDescriptor) -> Interface {
        Interface(number: 0, interfaceClass: 0xFE, subclass: 0x01, interfaceProtocol: 0x02, settingNames: settings, classDescriptor: functional.bytes)
    }
}
