import AVRISP
import DeviceCatalog
import STLink

/// An opened programmer: an AVR in-system programmer or an ST-Link.
public enum ProgrammerConnection {
    case isp(ISPProgrammer)
    case swd(STLink)

    /// What the programmer says about itself.
    public var identity: ProgrammerIdentity {
        switch self {
        case let .isp(programmer): return programmer.identity
        case let .swd(link): return link.identity
        }
    }

    /// Lets go of the programmer (an ST-Link leaves SWD first) and closes its device.
    public func close() {
        switch self {
        case let .isp(programmer): programmer.close()
        case let .swd(link): link.disconnect(); link.device.close()
        }
    }
}
