import Transport

/// A USB CDC ACM serial function as a device on a virtual bus gives it (CDC 1.2 and PSTN 1.2): a
/// communication interface (02/02/01, its header, call management, ACM and union descriptors and a
/// notification endpoint) and a data interface (0A) with a bulk endpoint each way — what the host's
/// cdc_acm driver binds as /dev/ttyACM*. It keeps the line coding and control lines the host sets
/// (SET_LINE_CODING, SET_CONTROL_LINE_STATE) and carries the bytes on the data endpoints to and from
/// `exchange`. Used by one thread, the one serving the bus.
public final class SimulatedCDCACM {
    /// The line as the host last set it.
    public struct Line: Equatable, Sendable {
        public var baudRate: Int = 9600
        public var dataTerminalReady = false
        public var requestToSend = false
    }

    public let descriptors: SimulatedDescriptors
    public private(set) var line = Line()
    /// Called after every change the host makes to the line.
    public var onLineChange: ((Line) -> Void)?
    /// Takes what the host wrote and returns what the device answers (queued for the IN endpoint).
    public var exchange: ([UInt8]) -> [UInt8] = { _ in [] }
    /// Bytes waiting for the host's next read.
    private var toHost: [UInt8] = []

    /// Endpoint addresses, as Caterina has them: notifications 0x82, data to the host 0x83, from it 0x04.
    public static let notification: UInt8 = 0x82, dataIn: UInt8 = 0x83, dataOut: UInt8 = 0x04

    public init(description: USBDeviceDescription) {
        // Header (CDC 1.10), call management (none, data interface 1), ACM (line coding and control
        // lines, break), union (communication 0, data 1).
        let functional: [UInt8] = [5, 0x24, 0x00, 0x10, 0x01, 5, 0x24, 0x01, 0x00, 0x01, 4, 0x24, 0x02, 0x06, 5, 0x24, 0x06, 0x00, 0x01]
        var descriptors = SimulatedDescriptors(description: description, interfaces: [
            SimulatedDescriptors.Interface(number: 0, interfaceClass: 0x02, subclass: 0x02, interfaceProtocol: 0x01, settingNames: [""],
                                           classDescriptor: functional, endpoints: [(Self.notification, 3, 8, 0xFF)]),
            SimulatedDescriptors.Interface(number: 1, interfaceClass: 0x0A, subclass: 0, interfaceProtocol: 0, settingNames: [""],
                                           endpoints: [(Self.dataOut, 2, 64, 0), (Self.dataIn, 2, 64, 0)]),
        ])
        descriptors.deviceClass = 0x02
        self.descriptors = descriptors
    }

    /// A control request on endpoint 0: the reply (an empty one for OUT requests), nil to stall.
    public func control(_ setup: SetupPacket, data: [UInt8]) -> [UInt8]? {
        guard let target = USBControlTarget(requestType: setup.requestType) else { return nil }
        switch (target.kind, setup.request) {
        case (.standard, 0x06): return descriptors.answer(descriptor: setup.value)
        case (.standard, 0x00): return [0, 0]                     // GET_STATUS
        case (.standard, 0x08): return [1]                        // GET_CONFIGURATION
        case (.standard, 0x0A): return [0]                        // GET_INTERFACE
        case (.standard, 0x09), (.standard, 0x0B), (.standard, 0x01), (.standard, 0x03): return []
        case (.class, 0x20) where data.count >= 7:       // SET_LINE_CODING: dwDTERate, stop bits, parity, data bits
            line.baudRate = Int(data[0]) | Int(data[1]) << 8 | Int(data[2]) << 16 | Int(data[3]) << 24
            onLineChange?(line)
            return []
        case (.class, 0x21):                              // GET_LINE_CODING
            let rate = UInt32(line.baudRate)
            return [UInt8(rate & 0xFF), UInt8(rate >> 8 & 0xFF), UInt8(rate >> 16 & 0xFF), UInt8(rate >> 24), 0, 0, 8]
        case (.class, 0x22):                              // SET_CONTROL_LINE_STATE: bit 0 DTR, bit 1 RTS
            line.dataTerminalReady = setup.value & 1 != 0
            line.requestToSend = setup.value & 2 != 0
            onLineChange?(line)
            return []
        case (.class, 0x23): return []                    // SEND_BREAK
        default: return nil
        }
    }

    /// Data the host wrote to an OUT endpoint.
    public func received(_ data: [UInt8], on endpoint: UInt8) -> Bool {
        guard endpoint == Self.dataOut & 0x0F else { return false }
        toHost += exchange(data)
        return true
    }

    /// What the host's read of an IN endpoint gets: waiting bytes, or nothing yet (the read waits).
    public func answer(_ endpoint: UInt8, maximum: Int) -> USBIPAttachment.EndpointAnswer {
        switch endpoint {
        case Self.dataIn where !toHost.isEmpty:
            let chunk = Array(toHost.prefix(maximum))
            toHost.removeFirst(chunk.count)
            return .data(chunk)
        case Self.dataIn, Self.notification: return .hold
        default: return .stall
        }
    }
}
