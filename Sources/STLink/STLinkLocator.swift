import Transport

/// Finds an ST-Link on the bus with libusb, opens it and claims its interface.
public enum STLinkLocator {
    public static func open(port: String?, time: TimeSource) throws(STLinkError) -> STLink {
        let context: USBContext
        do { context = try USBContext() } catch { throw .usb(error, operation: "starting libusb") }
        var found: [LibUSBDevice] = []
        do {
            try context.withDevices(matching: { vid, pid in vid == STLink.vendorID && STLink.productIDs[pid] != nil }) { candidates in
                for candidate in candidates where port == nil || candidate.portPath == port {
                    found.append(try context.open(candidate))
                }
            }
        } catch let error as USBError {
            throw .usb(error, operation: "opening the ST-Link")
        } catch {
            throw .usb(.other("\(error)"), operation: "opening the ST-Link")
        }
        guard let device = found.first else { throw .notFound(port: port) }
        guard found.count == 1 else {
            let names = found.map { "\($0.description)" }.joined(separator: "; ")
            found.forEach { $0.close() }
            throw .protocolViolation("several ST-Links are plugged in (\(names)); choose one with --port")
        }
        do { try device.claimInterface(0) } catch { throw .usb(error, operation: "claiming the ST-Link's interface") }
        return STLink(device: device, time: time)
    }
}
